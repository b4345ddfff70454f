// ---- Shared by the attention (prefill and decode) and merge kernels ----
const MASKED_SCORE: f32 = -3.0e38;   // score of a key a row must not see; finite, so exp() gives 0

// Call parameters, written by the launcher (64 bytes).
struct AttentionParams {
  batch: u32,
  queries: u32,
  keys: u32,
  query_heads: u32,
  key_heads: u32,
  rope_coarse_rows: u32,
  logit_scale: f32,   // softmax scale (× Qwen temperature² for contiguous keys), computed by the launcher
  splits: u32,        // key ranges per (query tile, head, batch), or per (KV head, batch) in decode
  split_keys: u32,    // keys per split: a multiple of BLOCK_K (prefill) or of the lanes per row (decode)
  partials: u32,      // partial results per row: passes × splits
  group_rows: u32,    // decode: rows (query head × query) per workgroup, a power of two
  // Paged K/V only (see sequence_keys, kv_row_base):
  max_blocks: u32,             // block-table columns
  block_shift: u32,            // log2(block size)
  original_max_position: u32,  // Qwen temperature c_orig, applied per sequence; 0: none
  raw_keys: u32,               // 1: the cache holds raw keys (rotated on load); 0: pre-rotated keys
  total_queries: u32,          // varlen: query rows packed (total_queries, query_heads, HEAD_DIM) by cu_seqlens_q; 0: (batch, queries, …)
}

struct SoftmaxState {
  m: f32,   // running max of the row's scores (MASKED_SCORE until a key is seen)
  l: f32,   // running sum of exp(score − m)
}

// Where a query row's LSE goes: (batch, query_heads, queries), or (query_heads, total_queries) for
// packed (varlen) queries, as FlashAttention's varlen functions return it. `first_query` is the
// sequence's first row among all query rows.
fn lse_index(first_query: u32, batch: u32, head: u32, query: u32) -> u32 {
  if (params.total_queries != 0u) {
    return head * params.total_queries + first_query + query;
  }
  return (batch * params.query_heads + head) * params.queries + query;
}

// Partial results live in one f32 buffer: `partials` output blocks shaped like q, then `partials`
// LSE blocks shaped like lse (MASKED_SCORE where the partial saw no key).
fn partial_out_index(slot: u32, q_row: u32) -> u32 {
  let rows = params.batch * params.queries * params.query_heads;
  return (slot * rows + q_row) * HEAD_DIM;
}

fn partial_lse_index(slot: u32, lse_at: u32) -> u32 {
  let rows = params.batch * params.queries * params.query_heads;
  return params.partials * rows * HEAD_DIM + slot * rows + lse_at;
}

// −∞, the LSE of a row that sees no key. A WGSL constant expression cannot be infinite (Chromium's
// Tint rejects one), so the bits go through a runtime value.
fn negative_infinity() -> f32 {
  let bits = 0xff800000u;
  return bitcast<f32>(bits);
}
