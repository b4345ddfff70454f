// ---- Host side: RoPE tables, logit scale, parameter checks, launch ----
#include <cstdio>
extern "C" int {{prefix}}_max_position(int keys) {
  return {{maxPosition}};
}

extern "C" long long {{prefix}}_rope_table_floats(int max_position) {
  const long long fine_rows = 1ll << {{ropeFineBits}};
  const long long coarse_rows = (long long)(max_position >> {{ropeFineBits}}) + 1;
  return (fine_rows + coarse_rows) * {{ropePairs}} * 2;
}

extern "C" void {{prefix}}_fill_rope_table(float* table, double theta, int max_position) {
  const int fine_rows = 1 << {{ropeFineBits}};
  const int coarse_rows = (max_position >> {{ropeFineBits}}) + 1;
  for (int row = 0; row < fine_rows + coarse_rows; ++row) {
    const double position = row < fine_rows ? (double)row : (double)(row - fine_rows) * fine_rows;
    for (int k = 0; k < {{ropePairs}}; ++k) {
      const double angle = position * pow(theta, -2.0 * k / {{rotaryDim}});
      table[(row * {{ropePairs}} + k) * 2] = (float)cos(angle);
      table[(row * {{ropePairs}} + k) * 2 + 1] = (float)sin(angle);
    }
  }
}

extern "C" float {{prefix}}_logit_scale(int keys, double scale, int original_max_position) {
  double s = scale > 0 ? scale : 1.0 / sqrt((double){{headDim}});
  if (original_max_position > 0) {
    const double f = fmax(1.0, 0.1 * log((double)keys / original_max_position) + 1.0);
    s *= f * f;
  }
  return (float)s;
}

extern "C" long long {{prefix}}_workspace_bytes(int batch, int queries, int query_heads) {
  return {{workspaceFloats}} * (long long)batch * queries * query_heads * 4;
}

// Grid limits: blockIdx.x (query tiles) reaches 2^31 − 1, but blockIdx.y (query head) and
// blockIdx.z (batch) stop at 65535. Calls with more batches or query heads than that are cut into
// slices launched one after another on the same stream (so they also reuse the three-pass
// workspace in order). Tests lower the limit to exercise the slicing on small shapes.
#ifndef DCAGEN_GRID_YZ_LIMIT
#define DCAGEN_GRID_YZ_LIMIT 65535
#endif

namespace {{namespace}} {

// Bytes the kernels load global q, k and v in at a time: cp.async moves 16-byte chunks, so every
// base pointer and every stride that is ever multiplied by a non-zero index must be a multiple of it.
constexpr int LOAD_BYTES = {{loadBytes}};

inline bool aligned_pointer(const void* p, int bytes) { return (uintptr_t)p % (uintptr_t)bytes == 0; }
// A stride only matters when its dimension has more than one index.
inline bool aligned_stride(long long stride, int extent, int bytes) {
  return extent <= 1 || (stride * (long long)sizeof(storage_t)) % bytes == 0;
}

// Why `p` cannot be launched, written into `why` (empty when it can). Empty calls (batch, queries or
// query heads 0) are launchable: they do nothing, whatever their pointers.
inline bool check_params(const AttentionParams& p, char* why, size_t size) {
  why[0] = '\0';
  if (p.batch < 0 || p.queries < 0 || p.keys < 0 || p.query_heads < 0 || p.key_heads < 0) {
    snprintf(why, size, "negative shape (batch %d, queries %d, keys %d, query_heads %d, key_heads %d)", p.batch, p.queries, p.keys,
             p.query_heads, p.key_heads);
    return false;
  }
  if (p.keys < p.queries) {
    snprintf(why, size, "more queries (%d) than keys (%d): queries are the last `queries` positions of the keys", p.queries, p.keys);
    return false;
  }
  if (p.batch == 0 || p.queries == 0 || p.query_heads == 0) return true;
  if (p.key_heads < 1 || p.query_heads % p.key_heads != 0) {
    snprintf(why, size, "query_heads (%d) must be a multiple of key_heads (%d)", p.query_heads, p.key_heads);
    return false;
  }
  const struct { const char* name; const void* ptr; } pointers[] = {
      {"q", p.q}, {"k", p.k}, {"v", p.v}, {"out", p.out}, {"lse", p.lse}, {"rope", p.rope}};
  for (const auto& t : pointers) {
    if (t.ptr == nullptr) {
      snprintf(why, size, "%s is NULL", t.name);
      return false;
    }
  }
  if (!aligned_pointer(p.rope, 8) || !aligned_pointer(p.lse, 4)) {
    snprintf(why, size, "rope must be 8-byte aligned and lse 4-byte aligned");
    return false;
  }
  const struct { const char* name; const void* ptr; long long batch, seq, head; int rows, heads; } tensors[] = {
      {"q", p.q, p.q_batch_stride, p.q_seq_stride, p.q_head_stride, p.queries, p.query_heads},
      {"k", p.k, p.k_batch_stride, p.k_seq_stride, p.k_head_stride, p.keys, p.key_heads},
      {"v", p.v, p.v_batch_stride, p.v_seq_stride, p.v_head_stride, p.keys, p.key_heads},
      {"out", p.out, p.out_batch_stride, p.out_seq_stride, p.out_head_stride, p.queries, p.query_heads}};
  for (const auto& t : tensors) {
    if (!aligned_pointer(t.ptr, LOAD_BYTES)) {
      snprintf(why, size, "%s (%p) is not %d-byte aligned (the kernel loads %d-byte chunks with cp.async)", t.name, t.ptr, LOAD_BYTES,
               LOAD_BYTES);
      return false;
    }
    if (!aligned_stride(t.batch, p.batch, LOAD_BYTES) || !aligned_stride(t.seq, t.rows, LOAD_BYTES) ||
        !aligned_stride(t.head, t.heads, LOAD_BYTES)) {
      snprintf(why, size,
               "%s strides (batch %lld, seq %lld, head %lld elements of %d bytes) must be multiples of %d bytes; "
               "make the tensor contiguous",
               t.name, t.batch, t.seq, t.head, (int)sizeof(storage_t), LOAD_BYTES);
      return false;
    }
  }
  return true;
}

// One launch (the slice `p` fits the grid): the fused kernel, or the three-pass region kernels and
// their merge. Returns 0 or a cudaError_t.
inline int launch_slice(const AttentionParams& p, int smem_bytes, cudaStream_t stream) {
  const dim3 grid((p.queries + BLOCK_Q - 1) / BLOCK_Q, p.query_heads, p.batch);
{{launchBody}}
  return (int)cudaGetLastError();
}

}  // namespace {{namespace}}

extern "C" const char* {{prefix}}_check_params(const dcagen_attention_params* params) {
  // One message per host thread, so concurrent callers do not overwrite each other's.
  static thread_local char why[320];
  if (params == nullptr) return "params is NULL";
  return {{namespace}}::check_params(*params, why, sizeof why) ? nullptr : why;
}

extern "C" int {{prefix}}_launch(const dcagen_attention_params* params, void* stream_handle) {
  using namespace {{namespace}};
  if ({{prefix}}_check_params(params) != nullptr) return (int)cudaErrorInvalidValue;
  const AttentionParams& p = *params;
  if (p.batch == 0 || p.queries == 0 || p.query_heads == 0) return 0;   // empty output, as FlashAttention
  cudaStream_t stream = (cudaStream_t)stream_handle;
  const int smem_bytes = SMEM_ELEMENTS * (int)sizeof({{smemType}});
  const int limit = DCAGEN_GRID_YZ_LIMIT;
  const int group = p.query_heads / p.key_heads;
  // Slices of whole GQA groups while a group fits the limit, else pieces of one group (one KV head).
  const int heads_per_slice = group <= limit ? (limit / group) * group : limit;
  // A slice of fewer than all query heads takes one batch index: the kernel's LSE indexing
  // (batch × query_heads + head) assumes the slice's heads are all of the call's heads.
  const int batches_per_slice = heads_per_slice >= p.query_heads ? limit : 1;
  for (int b0 = 0; b0 < p.batch; b0 += batches_per_slice) {
    for (int h0 = 0; h0 < p.query_heads;) {
      int heads = p.query_heads - h0 < heads_per_slice ? p.query_heads - h0 : heads_per_slice;
      if (group > limit && heads > group - h0 % group) heads = group - h0 % group;   // stay inside one KV head
      AttentionParams s = p;
      s.batch = p.batch - b0 < batches_per_slice ? p.batch - b0 : batches_per_slice;
      s.query_heads = heads;
      s.key_heads = group <= limit ? heads / group : 1;
      s.q = (const storage_t*)p.q + b0 * p.q_batch_stride + h0 * p.q_head_stride;
      s.k = (const storage_t*)p.k + b0 * p.k_batch_stride + (h0 / group) * p.k_head_stride;
      s.v = (const storage_t*)p.v + b0 * p.v_batch_stride + (h0 / group) * p.v_head_stride;
      s.out = (storage_t*)p.out + b0 * p.out_batch_stride + h0 * p.out_head_stride;
      s.lse = p.lse + ((long long)b0 * p.query_heads + h0) * p.queries;
      const int status = launch_slice(s, smem_bytes, stream);
      if (status != 0) return status;
      h0 += heads;
    }
  }
  return 0;
}
