// ---- Keys rotated once ----
// Every region of this pattern places key j at the same position ({{regionName}}'s key position), so
// the launcher rotates K once per call, O(keys × HEAD_DIM), into the key workspace, and the attention
// kernel reads rotated keys: no rotation work inside the key loop, and no query block repeats what
// another already did.
constexpr int ROTATE_THREADS = 256;

// One thread per element of K; the rotated copy is contiguous (batch, keys, key_heads, HEAD_DIM).
template <class Region>
__global__ void __launch_bounds__(ROTATE_THREADS) rotate_keys_kernel(const AttentionParams p, storage_t* rotated) {
  const long long e = (long long)blockIdx.x * ROTATE_THREADS + threadIdx.x;
  if (e >= (long long)p.batch * p.keys * p.key_heads * HEAD_DIM) return;
  const int d = (int)(e % HEAD_DIM);
  const long long key_row = e / HEAD_DIM;                 // (batch · keys + j) · key_heads + head
  const int head = (int)(key_row % p.key_heads);
  const long long token = key_row / p.key_heads;
  const int j = (int)(token % p.keys);
  const int batch = (int)(token / p.keys);
  const storage_t* k_row = (const storage_t*)p.k + batch * p.k_batch_stride + (long long)j * p.k_seq_stride + head * p.k_head_stride;
  rotated[e] = from_float<storage_t>(rotated_element(k_row, d, Region::key_position(j), (const float2*)p.rope));
}
