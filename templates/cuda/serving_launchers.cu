// ---- Host side, serving: paged attention (split choice, launch, merge) and the cache append ----
namespace {{namespace}} {
namespace paged {

// Work-based split choice (flash-decoding): a call with fewer blocks than TARGET_BLOCKS_PER_SM per
// multiprocessor splits its keys until it has about that many, never below MIN_SPLIT_KEYS keys each.
constexpr int TARGET_BLOCKS_PER_SM = 2;
constexpr int MIN_SPLIT_KEYS = 512;

__host__ inline bool power_of_two(int x) { return x > 0 && (x & (x - 1)) == 0; }

// Checks a call and lays it out: rows per block, key splits, the softmax scale. Returns 0 or a cudaError_t.
__host__ inline int paged_layout(const PagedAttentionParams& p, CallLayout& c, dim3& grid) {
  if (p.batch < 1 || p.queries < 1 || p.key_heads < 1 || p.query_heads < p.key_heads || p.query_heads % p.key_heads != 0 ||
      !power_of_two(p.block_size) || p.max_seq_len < p.queries || p.splits < 0 || p.q == nullptr || p.k_cache == nullptr ||
      p.v_cache == nullptr || p.block_table == nullptr || p.seq_lens == nullptr || p.out == nullptr || p.lse == nullptr || p.rope == nullptr) {
    return (int)cudaErrorInvalidValue;
  }
  const int group = p.query_heads / p.key_heads;
  // Decode (queries <= MAX_ROWS): all the queries of as many of the KV head's query heads as fit;
  // prefill: MAX_ROWS consecutive queries of one head.
  c.query_block = p.queries < MAX_ROWS ? p.queries : MAX_ROWS;
  c.head_block = MAX_ROWS / c.query_block < group ? MAX_ROWS / c.query_block : group;
  c.head_blocks = (group + c.head_block - 1) / c.head_block;
  const int query_blocks = (p.queries + c.query_block - 1) / c.query_block;
  const long long row_blocks = (long long)query_blocks * c.head_blocks * p.key_heads * p.batch;
  int splits = p.splits;
  if (splits == 0) {
    int device = 0;
    int multiprocessors = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      multiprocessors = 132;
    }
    const long long target = (long long)TARGET_BLOCKS_PER_SM * multiprocessors;
    const int wanted = row_blocks >= target ? 1 : (int)((target + row_blocks - 1) / row_blocks);
    int split_keys = (p.max_seq_len + wanted - 1) / wanted;
    split_keys = (split_keys + TILE_KEYS - 1) / TILE_KEYS * TILE_KEYS;
    split_keys = split_keys > MIN_SPLIT_KEYS ? split_keys : MIN_SPLIT_KEYS;
    splits = (p.max_seq_len + split_keys - 1) / split_keys;
  }
  c.splits = splits;
  // One split covers every key whatever max_seq_len says; several share max_seq_len between them.
  c.split_keys = splits == 1 ? 0x7fffffff : (p.max_seq_len + splits - 1) / splits;
  c.block_shift = 0;
  while ((1 << c.block_shift) < p.block_size) ++c.block_shift;
  const float scale = p.softmax_scale > 0.f ? p.softmax_scale : (float)(1.0 / sqrt((double)HEAD_DIM));
  c.scale_log2 = scale * LOG2E;
  if ((long long)query_blocks * splits > 0x7fffffffll || (long long)c.head_blocks * p.key_heads > 65535 || p.batch > 65535) return (int)cudaErrorInvalidValue;
  grid = dim3((unsigned)(query_blocks * splits), (unsigned)(c.head_blocks * p.key_heads), (unsigned)p.batch);
  return 0;
}

}  // namespace paged
}  // namespace {{namespace}}

extern "C" int {{prefix}}_paged_splits(const dcagen_paged_attention_params* params) {
  using namespace {{namespace}};
  paged::CallLayout c;
  dim3 grid;
  const int status = paged::paged_layout(*params, c, grid);
  return status != 0 ? -status : c.splits;
}

extern "C" long long {{prefix}}_paged_workspace_bytes(const dcagen_paged_attention_params* params) {
  using namespace {{namespace}};
  const int splits = {{prefix}}_paged_splits(params);
  if (splits <= 1) return 0;
  return partial_floats(splits, (long long)params->batch * params->queries * params->query_heads) * 4;
}

extern "C" int {{prefix}}_paged_attention(const dcagen_paged_attention_params* params, void* stream_handle) {
  using namespace {{namespace}};
  const paged::PagedAttentionParams& p = *params;
  paged::CallLayout c;
  dim3 grid;
  const int status = paged::paged_layout(p, c, grid);
  if (status != 0) return status;
  if (c.splits > 1 && p.workspace == nullptr) return (int)cudaErrorInvalidValue;
  cudaStream_t stream = (cudaStream_t)stream_handle;
  const int smem_bytes = paged::PAGED_SMEM_FLOATS * (int)sizeof(float);
  // The regions in the plan's visit order, as in the fused prefill kernel.
  void (*kernel)(const paged::PagedAttentionParams, const paged::CallLayout) = paged::attention_kernel<{{regionList}}>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  DCAGEN_LAUNCH(kernel, grid, dim3(paged::PAGED_THREADS), smem_bytes, stream)(p, c);
  if (c.splits > 1) {
    launch_merge((const float*)p.workspace, c.splits, p.out, p.lse, p.out_batch_stride, p.out_seq_stride, p.out_head_stride,
                 p.batch, p.queries, p.query_heads, stream);
  }
  return (int)cudaGetLastError();
}

extern "C" int {{prefix}}_append_to_cache(const dcagen_cache_append_params* params, void* stream_handle) {
{{appendLaunch}}
}
