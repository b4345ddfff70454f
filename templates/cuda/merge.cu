// ---- Log-sum-exp merge of partial results (the three-pass baseline's region passes, and the key
// splits of the paged kernel) ----
// One partial layout for every kernel that writes partials: `partials` output blocks of f32 shaped
// like q, contiguous, (partial, batch, query, query head, HEAD_DIM), then `partials` LSE blocks
// (partial, batch, query head, query), natural log, MASKED_SCORE where the partial saw no key.
// Packed (varlen) calls keep these fixed slots (queries = the largest count) and the merge places
// each row at its packed position, skipping the slots past a sequence's own count.
struct MergeParams {
  const float* partial_out;   // (partials, batch, queries, query_heads, HEAD_DIM)
  const float* partial_lse;   // (partials, batch, query_heads, queries), natural log
  void* out;                  // storage type, strided like q
  float* lse;                 // (batch, query_heads, queries), or (query_heads, total_q) when packed
  const int* cu_seqlens_q;    // varlen: (batch + 1) int32, packed out and lse; NULL: fixed rows
  long long out_batch_stride, out_seq_stride, out_head_stride;
  int batch, queries, query_heads, partials;
};

constexpr int MERGE_THREADS = 128;

// Floats of one call's partials: `partials` × rows × (HEAD_DIM outputs + 1 LSE).
__host__ __device__ __forceinline__ long long partial_floats(int partials, long long rows) {
  return (long long)partials * rows * (HEAD_DIM + 1);
}

// One thread per (row, output dim): every thread of a row finds the row's max and sum over the
// partials itself (partials are few), so no thread walks HEAD_DIM × partials.
__global__ void __launch_bounds__(MERGE_THREADS) merge_kernel(const MergeParams p) {
  const long long rows = (long long)p.batch * p.queries * p.query_heads;
  const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // (batch, query, head, d)
  if (index >= rows * HEAD_DIM) return;
  const long long row = index / HEAD_DIM;
  const int d = (int)(index % HEAD_DIM);
  const int head = (int)(row % p.query_heads);
  const int query = (int)((row / p.query_heads) % p.queries);
  const int batch = (int)(row / ((long long)p.query_heads * p.queries));
  const long long slot_lse = ((long long)batch * p.query_heads + head) * p.queries + query;   // the partials' LSE slot
  long long lse_at = slot_lse;
  storage_t* out = (storage_t*)p.out + batch * p.out_batch_stride + head * p.out_head_stride + (long long)query * p.out_seq_stride;
  if (p.cu_seqlens_q != nullptr) {
    const int first = p.cu_seqlens_q[batch];
    if (query >= p.cu_seqlens_q[batch + 1] - first) return;   // a slot past this sequence's rows
    lse_at = (long long)head * p.cu_seqlens_q[p.batch] + first + query;
    out = (storage_t*)p.out + head * p.out_head_stride + (long long)(first + query) * p.out_seq_stride;
  }
  float m = MASKED_SCORE;
  for (int k = 0; k < p.partials; ++k) m = fmaxf(m, p.partial_lse[k * rows + slot_lse]);
  if (m == MASKED_SCORE) {   // no partial saw a key
    if (d == 0) p.lse[lse_at] = MASKED_SCORE;
    out[d] = from_float<storage_t>(0.f);
    return;
  }
  float total = 0.f;
  for (int k = 0; k < p.partials; ++k) total += expf(p.partial_lse[k * rows + slot_lse] - m);
  const float merged = m + logf(total);
  if (d == 0) p.lse[lse_at] = merged;
  float o = 0.f;
  for (int k = 0; k < p.partials; ++k) o += expf(p.partial_lse[k * rows + slot_lse] - merged) * p.partial_out[(k * rows + row) * HEAD_DIM + d];
  out[d] = from_float<storage_t>(o);
}

// Launches the merge of `partials` partials that start at `workspace` (outputs, then LSEs);
// cu_seqlens_q (varlen) places packed rows.
__host__ __forceinline__ void launch_merge(const float* workspace, int partials, void* out, float* lse, long long out_batch_stride,
                                           long long out_seq_stride, long long out_head_stride, int batch, int queries, int query_heads,
                                           cudaStream_t stream, const int* cu_seqlens_q = nullptr) {
  const long long rows = (long long)batch * queries * query_heads;
  MergeParams m;
  m.partial_out = workspace;
  m.partial_lse = workspace + (long long)partials * rows * HEAD_DIM;
  m.out = out;
  m.lse = lse;
  m.cu_seqlens_q = cu_seqlens_q;
  m.out_batch_stride = out_batch_stride;
  m.out_seq_stride = out_seq_stride;
  m.out_head_stride = out_head_stride;
  m.batch = batch;
  m.queries = queries;
  m.query_heads = query_heads;
  m.partials = partials;
  const long long threads = rows * HEAD_DIM;
  DCAGEN_LAUNCH(merge_kernel, dim3((unsigned)((threads + MERGE_THREADS - 1) / MERGE_THREADS)), dim3(MERGE_THREADS), 0, stream)(m);
}
