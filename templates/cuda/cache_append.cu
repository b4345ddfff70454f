// ---- Cache append (vLLM's reshape_and_cache layout) ----
// New tokens go into the paged cache through slot_mapping (block × block_size + row; a negative
// slot skips the token). Each key is rotated once, at the key position every region of the pattern
// shares, and multiplied by Qwen's key factor s(n) when enabled; values are copied. Attention over
// a cache filled this way never rotates keys again (a pre-rotated kernel set).
constexpr int APPEND_THREADS = 128;

// The key position shared by every region: where the cache stores key j.
__device__ __forceinline__ int cache_key_position(int j) {
  return {{keyPosition}};
}

// One thread per (token, key head, dim).
__global__ void __launch_bounds__(APPEND_THREADS) append_kernel(const CacheAppendParams p) {
  const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // (token, key head, d)
  if (index >= (long long)p.tokens * p.key_heads * HEAD_DIM) return;
  const int d = (int)(index % HEAD_DIM);
  const int head = (int)((index / HEAD_DIM) % p.key_heads);
  const int token = (int)(index / ((long long)HEAD_DIM * p.key_heads));
  const long long slot = p.slot_mapping[token];
  if (slot < 0 || slot >= (long long)p.num_blocks * p.block_size) return;   // padding token
  const long long block = slot / p.block_size;
  const long long row = slot % p.block_size;
  const float factor = p.lengths != nullptr ? qwen_factor(p.lengths[token], p.original_max_position) : 1.f;
  const storage_t* key = (const storage_t*)p.key + token * p.key_token_stride + head * p.key_head_stride;
  const float k_value = rotated_element(key, d, cache_key_position(p.positions[token]), (const float2*)p.rope);
  storage_t* k_cache = (storage_t*)p.k_cache + block * p.k_block_stride + row * p.k_row_stride + head * p.k_head_stride;
  storage_t* v_cache = (storage_t*)p.v_cache + block * p.v_block_stride + row * p.v_row_stride + head * p.v_head_stride;
  k_cache[d] = from_float<storage_t>(k_value * factor);
  v_cache[d] = ((const storage_t*)p.value)[token * p.value_token_stride + head * p.value_head_stride + d];
}
