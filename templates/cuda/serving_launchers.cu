// ---- Host side, serving: split-K attention over a paged cache or contiguous K/V (split choice,
// launch, merge) and the cache append ----
namespace {{namespace}} {
namespace paged {

// Work-based split choice (flash-decoding): a call with fewer blocks than TARGET_BLOCKS_PER_SM per
// multiprocessor splits its keys until it has about that many, never below MIN_SPLIT_KEYS keys each.
// The target is the blocks one multiprocessor keeps resident: decode needs them all to keep enough
// K/V loads in flight.
constexpr int TARGET_BLOCKS_PER_SM = MIN_RESIDENT_BLOCKS;
constexpr int MIN_SPLIT_KEYS = 512;

__host__ inline bool power_of_two(int x) { return x > 0 && (x & (x - 1)) == 0; }

// Lays out a call of `queries` query rows per sequence (the largest count when packed) over at most
// `max_keys` keys each: rows per block, key splits (`splits` 0: from the work; n > 0: forced), the
// softmax scale. Returns 0 or a cudaError_t.
__host__ inline int serving_layout(int batch, int queries, int query_heads, int key_heads, int max_keys, int splits, float scale,
                                   CallLayout& c, dim3& grid) {
  if (batch < 1 || queries < 1 || key_heads < 1 || query_heads < key_heads || query_heads % key_heads != 0 || max_keys < queries || splits < 0) {
    return (int)cudaErrorInvalidValue;
  }
  const int group = query_heads / key_heads;
  // Decode (queries <= MAX_ROWS): all the queries of as many of the KV head's query heads as fit;
  // prefill: MAX_ROWS consecutive queries of one head.
  c.query_block = queries < MAX_ROWS ? queries : MAX_ROWS;
  c.head_block = MAX_ROWS / c.query_block < group ? MAX_ROWS / c.query_block : group;
  c.head_blocks = (group + c.head_block - 1) / c.head_block;
  const int query_blocks = (queries + c.query_block - 1) / c.query_block;
  const long long row_blocks = (long long)query_blocks * c.head_blocks * key_heads * batch;
  if (splits == 0) {
    int device = 0;
    int multiprocessors = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      multiprocessors = 132;
    }
    const long long target = (long long)TARGET_BLOCKS_PER_SM * multiprocessors;
    const int wanted = row_blocks >= target ? 1 : (int)((target + row_blocks - 1) / row_blocks);
    int split_keys = (max_keys + wanted - 1) / wanted;
    split_keys = (split_keys + TILE_KEYS - 1) / TILE_KEYS * TILE_KEYS;
    split_keys = split_keys > MIN_SPLIT_KEYS ? split_keys : MIN_SPLIT_KEYS;
    splits = (max_keys + split_keys - 1) / split_keys;
  }
  c.splits = splits;
  // One split covers every key whatever max_keys says; several share max_keys between them.
  c.split_keys = splits == 1 ? 0x7fffffff : (max_keys + splits - 1) / splits;
  c.scale_log2 = scale * LOG2E;
  if ((long long)query_blocks * splits > 0x7fffffffll || (long long)c.head_blocks * key_heads > 65535 || batch > 65535) return (int)cudaErrorInvalidValue;
  grid = dim3((unsigned)(query_blocks * splits), (unsigned)(c.head_blocks * key_heads), (unsigned)batch);
  return 0;
}

// Checks a paged call and lays it out. Returns 0 or a cudaError_t.
__host__ inline int paged_layout(const PagedAttentionParams& p, CallLayout& c, dim3& grid) {
  if (!power_of_two(p.block_size) || p.q == nullptr || p.k_cache == nullptr || p.v_cache == nullptr || p.block_table == nullptr ||
      p.seq_lens == nullptr || p.out == nullptr || p.lse == nullptr || p.rope == nullptr) {
    return (int)cudaErrorInvalidValue;
  }
  const float scale = p.softmax_scale > 0.f ? p.softmax_scale : (float)(1.0 / sqrt((double)HEAD_DIM));
  return serving_layout(p.batch, p.queries, p.query_heads, p.key_heads, p.max_seq_len, p.splits, scale, c, grid);
}

// Checks a contiguous decode call and lays it out; logit_scale already holds Qwen's temperature.
__host__ inline int contiguous_layout(const AttentionParams& p, int splits, CallLayout& c, dim3& grid) {
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.out == nullptr || p.lse == nullptr || p.rope == nullptr ||
      p.queries > DECODE_MAX_QUERIES) {
    return (int)cudaErrorInvalidValue;
  }
  return serving_layout(p.batch, p.queries, p.query_heads, p.key_heads, p.keys, splits, p.logit_scale, c, grid);
}

// Launches the split-K kernel for one K/V form, then (several splits) the merge. With several splits
// and no workspace given, scratch comes from the device's stream-ordered pool and returns to it
// after the merge (so {{prefix}}_launch needs none from its caller).
template <class Kv>
__host__ int launch_split_k(ServingCall call, const Kv& kv, const CallLayout& c, const dim3& grid, cudaStream_t stream) {
  const int smem_bytes = PAGED_SMEM_FLOATS * (int)sizeof(float);
  void* pooled = nullptr;
  if (c.splits > 1 && call.workspace == nullptr) {
    const long long bytes = partial_floats(c.splits, (long long)call.batch * call.queries * call.query_heads) * 4;
    const cudaError_t status = cudaMallocAsync(&pooled, (size_t)bytes, stream);
    if (status != cudaSuccess) return (int)status;
    call.workspace = pooled;
  }
  CallLayout layout = c;
  layout.vector_kv = kv.aligned() ? 1 : 0;
  // The regions in the plan's visit order, as in the fused prefill kernel.
  void (*kernel)(const ServingCall, const Kv, const CallLayout) = attention_kernel<Kv, {{regionList}}>;
  // The opt-in above 48 KiB can fail (too much for this GPU): its result is checked like a launch's.
  const cudaError_t opt_in = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes);
  if (opt_in != cudaSuccess) {
    if (pooled != nullptr) cudaFreeAsync(pooled, stream);
    return (int)opt_in;
  }
  DCAGEN_LAUNCH(kernel, grid, dim3(PAGED_THREADS), smem_bytes, stream)(call, kv, layout);
  if (c.splits > 1) {
    launch_merge((const float*)call.workspace, c.splits, call.out, call.lse, call.out_batch_stride, call.out_seq_stride, call.out_head_stride,
                 call.batch, call.queries, call.query_heads, stream, call.cu_seqlens_q);
  }
  if (pooled != nullptr) cudaFreeAsync(pooled, stream);
  return (int)cudaGetLastError();
}

__host__ int launch_contiguous(const AttentionParams& p, int splits, void* workspace, cudaStream_t stream) {
  CallLayout c;
  dim3 grid;
  const int status = contiguous_layout(p, splits, c, grid);
  if (status != 0) return status;
  ServingCall call = {};
  call.q = p.q; call.out = p.out; call.lse = p.lse; call.rope = p.rope; call.workspace = workspace;
  call.q_batch_stride = p.q_batch_stride; call.q_seq_stride = p.q_seq_stride; call.q_head_stride = p.q_head_stride;
  call.out_batch_stride = p.out_batch_stride; call.out_seq_stride = p.out_seq_stride; call.out_head_stride = p.out_head_stride;
  call.batch = p.batch; call.queries = p.queries; call.query_heads = p.query_heads; call.key_heads = p.key_heads;
  ContiguousKv kv;
  kv.k = (const storage_t*)p.k; kv.v = (const storage_t*)p.v;
  kv.k_batch_stride = p.k_batch_stride; kv.k_seq_stride = p.k_seq_stride; kv.k_head_stride = p.k_head_stride;
  kv.v_batch_stride = p.v_batch_stride; kv.v_seq_stride = p.v_seq_stride; kv.v_head_stride = p.v_head_stride;
  kv.keys = p.keys;
  return launch_split_k(call, kv, c, grid, stream);
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
  paged::ServingCall call = {};
  call.q = p.q; call.out = p.out; call.lse = p.lse; call.rope = p.rope; call.workspace = p.workspace; call.cu_seqlens_q = p.cu_seqlens_q;
  call.q_batch_stride = p.q_batch_stride; call.q_seq_stride = p.q_seq_stride; call.q_head_stride = p.q_head_stride;
  call.out_batch_stride = p.out_batch_stride; call.out_seq_stride = p.out_seq_stride; call.out_head_stride = p.out_head_stride;
  call.batch = p.batch; call.queries = p.queries; call.query_heads = p.query_heads; call.key_heads = p.key_heads;
  call.original_max_position = p.original_max_position;
  paged::PagedKv kv;
  kv.k = (const storage_t*)p.k_cache; kv.v = (const storage_t*)p.v_cache; kv.block_table = p.block_table; kv.seq_lens = p.seq_lens;
  kv.k_block_stride = p.k_block_stride; kv.k_row_stride = p.k_row_stride; kv.k_head_stride = p.k_head_stride;
  kv.v_block_stride = p.v_block_stride; kv.v_row_stride = p.v_row_stride; kv.v_head_stride = p.v_head_stride;
  kv.block_table_stride = p.block_table_stride;
  kv.block_shift = 0;
  while ((1 << kv.block_shift) < p.block_size) ++kv.block_shift;
  return paged::launch_split_k(call, kv, c, grid, (cudaStream_t)stream_handle);
}

extern "C" int {{prefix}}_decode_splits(const dcagen_attention_params* params, int splits) {
  using namespace {{namespace}};
  if (params->queries > paged::DECODE_MAX_QUERIES) return 0;   // {{prefix}}_launch runs the prefill kernel
  paged::CallLayout c;
  dim3 grid;
  const int status = paged::contiguous_layout(*params, splits, c, grid);
  return status != 0 ? -status : c.splits;
}

extern "C" long long {{prefix}}_decode_workspace_bytes(const dcagen_attention_params* params, int splits) {
  using namespace {{namespace}};
  const int used = {{prefix}}_decode_splits(params, splits);
  if (used <= 1) return 0;
  return partial_floats(used, (long long)params->batch * params->queries * params->query_heads) * 4;
}

extern "C" int {{prefix}}_decode(const dcagen_attention_params* params, int splits, void* workspace, void* stream_handle) {
  using namespace {{namespace}};
  return paged::launch_contiguous(*params, splits, workspace, (cudaStream_t)stream_handle);
}

extern "C" int {{prefix}}_append_to_cache(const dcagen_cache_append_params* params, void* stream_handle) {
{{appendLaunch}}
}
