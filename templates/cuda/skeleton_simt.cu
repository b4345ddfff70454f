// ---- SIMT path (f32 storage, and head dims the tensor-core tiles do not cover) ----
// A block owns BLOCK_Q query rows; ROW_THREADS threads share a row, each holding every
// ROW_THREADS-th dimension, and reduce dot products with warp shuffles. K and V tiles are staged
// in shared memory (rotated as they are loaded) and read by every row of the block.

constexpr int ROW_THREADS = 4;
constexpr int DIMS_PER_THREAD = HEAD_DIM / ROW_THREADS;
constexpr int SMEM_ELEMENTS = 2 * BLOCK_K * HEAD_DIM;   // K tile, V tile (f32)

struct SoftmaxState {
  float m;                         // running max, log2 units
  float l;                         // running sum
  float acc[DIMS_PER_THREAD];      // this thread's dims of the output row
  float q[DIMS_PER_THREAD];        // this thread's dims of the rotated query
};

template <class Region>
__device__ __forceinline__ void visit_region(const AttentionParams& p, SoftmaxState& st, float* smem, int row_first, int row_last,
                             const storage_t* __restrict__ q_row, const storage_t* __restrict__ k_base, const storage_t* __restrict__ v_base, int i) {
  const int key_begin = Region::key_begin(row_first);
  const int key_end = Region::key_end(row_last);
  if (key_begin > key_end) return;  // uniform across the block
  const int tid = threadIdx.x;
  const int part = tid % ROW_THREADS;
  float* sk = smem;
  float* sv = smem + BLOCK_K * HEAD_DIM;
  const float2* __restrict__ rope = (const float2*)p.rope;
  const float scale_log2 = p.logit_scale * LOG2E;

  const int query_position = Region::query_position(i);
  #pragma unroll
  for (int x = 0; x < DIMS_PER_THREAD; ++x) {
    st.q[x] = rotated_element(q_row, x * ROW_THREADS + part, query_position, rope);
  }

  for (int key_tile = (key_begin / BLOCK_K) * BLOCK_K; key_tile <= key_end; key_tile += BLOCK_K) {
    __syncthreads();  // everyone is done with the previous tile
    for (int e = tid; e < BLOCK_K * HEAD_DIM; e += THREADS) {
      const int j = key_tile + e / HEAD_DIM;
      const int d = e % HEAD_DIM;
      float k_value = 0.f;
      float v_value = 0.f;
      if (j < p.keys) {
        const storage_t* k_row = k_base + (long long)j * p.k_seq_stride;
        k_value = {{stagedKey}}
        v_value = to_float(v_base[(long long)j * p.v_seq_stride + d]);
      }
      sk[e] = k_value;
      sv[e] = v_value;
    }
    __syncthreads();
    const bool unmasked = Region::unmasked(row_first, row_last, key_tile);
    float s[BLOCK_K];
    float tile_max = MASKED_SCORE;
    #pragma unroll
    for (int jj = 0; jj < BLOCK_K; ++jj) {
      float dot = 0.f;
      #pragma unroll
      for (int x = 0; x < DIMS_PER_THREAD; ++x) dot += st.q[x] * sk[jj * HEAD_DIM + x * ROW_THREADS + part];
      dot += __shfl_xor_sync(0xffffffffu, dot, 1);
      dot += __shfl_xor_sync(0xffffffffu, dot, 2);
      float score = dot * scale_log2;
      if (!unmasked && !Region::visible(i, key_tile + jj)) score = MASKED_SCORE;
      s[jj] = score;
      tile_max = fmaxf(tile_max, score);
    }
    const SoftmaxRescale step = softmax_rescale(st.m, tile_max, 1.f);   // scores already scaled
    const float alpha = step.alpha;
    float row_sum = 0.f;
    #pragma unroll
    for (int jj = 0; jj < BLOCK_K; ++jj) {
      s[jj] = exp2f(s[jj] - step.base);
      row_sum += s[jj];
    }
    #pragma unroll
    for (int x = 0; x < DIMS_PER_THREAD; ++x) {
      float a = st.acc[x] * alpha;
      #pragma unroll
      for (int jj = 0; jj < BLOCK_K; ++jj) a += s[jj] * sv[jj * HEAD_DIM + x * ROW_THREADS + part];
      st.acc[x] = a;
    }
    st.l = st.l * alpha + row_sum;
    st.m = step.m;
  }
}

template <int OUTPUT_SLOT, bool PARTIAL, class... Regions>
__global__ void __launch_bounds__(THREADS) attention_kernel(const AttentionParams p) {
  DCAGEN_DYNAMIC_SMEM(float, smem);
  const int tid = threadIdx.x;
  const int part = tid % ROW_THREADS;
  const int batch = blockIdx.z;
  const int head = blockIdx.y;
  const int kv_head = head / (p.query_heads / p.key_heads);   // GQA
  const int offset = p.keys - p.queries;                      // queries are the last Sq positions
  const int row0 = blockIdx.x * BLOCK_Q;
  const int row = row0 + tid / ROW_THREADS;
  const int safe_row = imin(row, p.queries - 1);              // tail rows compute a copy, store nothing
  const int i = safe_row + offset;
  const int row_first = row0 + offset;
  const int row_last = imin(row0 + BLOCK_Q, p.queries) - 1 + offset;
  const storage_t* q_row = (const storage_t*)p.q + batch * p.q_batch_stride + head * p.q_head_stride + (long long)safe_row * p.q_seq_stride;
  const storage_t* k_base = (const storage_t*)p.k + batch * p.k_batch_stride + kv_head * p.k_head_stride;
  const storage_t* v_base = (const storage_t*)p.v + batch * p.v_batch_stride + kv_head * p.v_head_stride;

  SoftmaxState st;
  st.m = MASKED_SCORE;
  st.l = 0.f;
  #pragma unroll
  for (int x = 0; x < DIMS_PER_THREAD; ++x) st.acc[x] = 0.f;

  (visit_region<Regions>(p, st, smem, row_first, row_last, q_row, k_base, v_base, i), ...);

  if (row >= p.queries) return;
  const float inv = st.l > 0.f ? 1.f / st.l : 0.f;
  #pragma unroll
  for (int x = 0; x < DIMS_PER_THREAD; ++x) {
    const int d = x * ROW_THREADS + part;
    if (PARTIAL) {
      ((float*)p.partial_out)[(long long)OUTPUT_SLOT * p.batch * p.queries * p.query_heads * HEAD_DIM +
                              (((long long)batch * p.queries + row) * p.query_heads + head) * HEAD_DIM + d] = st.acc[x] * inv;
    } else {
      ((storage_t*)p.out)[batch * p.out_batch_stride + head * p.out_head_stride + (long long)row * p.out_seq_stride + d] = from_float<storage_t>(st.acc[x] * inv);
    }
  }
  if (part == 0) {
    const float lse = st.l > 0.f ? (st.m + log2f(st.l)) / LOG2E : MASKED_SCORE;
    float* lse_out = PARTIAL ? (float*)p.partial_lse + (long long)OUTPUT_SLOT * p.batch * p.query_heads * p.queries : p.lse;
    lse_out[((long long)batch * p.query_heads + head) * p.queries + row] = lse;
  }
}
