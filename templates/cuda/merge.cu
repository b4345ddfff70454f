// ---- Three-pass baseline: log-sum-exp merge of the per-region partials ----
template <int PARTIALS>
__global__ void merge_kernel(const AttentionParams p) {
  const long long rows = (long long)p.batch * p.queries * p.query_heads;
  const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;   // (batch, query, head)
  if (index >= rows) return;
  const int head = (int)(index % p.query_heads);
  const int query = (int)((index / p.query_heads) % p.queries);
  const int batch = (int)(index / ((long long)p.query_heads * p.queries));
  const long long lse_at = ((long long)batch * p.query_heads + head) * p.queries + query;
  const float* partial_lse = p.partial_lse;
  const float* partial_out = (const float*)p.partial_out;
  float m = MASKED_SCORE;
  for (int k = 0; k < PARTIALS; ++k) m = fmaxf(m, partial_lse[k * rows + lse_at]);
  storage_t* out = (storage_t*)p.out + batch * p.out_batch_stride + head * p.out_head_stride + (long long)query * p.out_seq_stride;
  if (m == MASKED_SCORE) {
    p.lse[lse_at] = MASKED_SCORE;
    for (int d = 0; d < HEAD_DIM; ++d) out[d] = from_float<storage_t>(0.f);
    return;
  }
  float total = 0.f;
  for (int k = 0; k < PARTIALS; ++k) total += expf(partial_lse[k * rows + lse_at] - m);
  const float merged = m + logf(total);
  p.lse[lse_at] = merged;
  for (int d = 0; d < HEAD_DIM; ++d) {
    float o = 0.f;
    for (int k = 0; k < PARTIALS; ++k) o += expf(partial_lse[k * rows + lse_at] - merged) * partial_out[(k * rows + index) * HEAD_DIM + d];
    out[d] = from_float<storage_t>(o);
  }
}
