// ---- Serving: a paged KV cache ----
// The cache as vLLM lays it out: k_cache, v_cache (num_blocks, block_size, key_heads, HEAD_DIM)
// storage_t; block_table int (batch, max_blocks): logical block b of sequence s lives in physical block
// block_table[s][b]; seq_lens int (batch,). Key j of sequence s sits in block block_table[s][j / block_size],
// row j % block_size. Queries (batch, queries, query_heads, HEAD_DIM) are every sequence's last
// `queries` positions; or, for chunked prefill / varlen (FlashAttention's convention), q is packed
// (total_queries, query_heads, HEAD_DIM) and sequence b owns rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] − 1,
// the last positions of the sequence; out is like q, lse (query_heads, total_queries). Any block size
// and block order; chunk lengths need not be multiples of it.
// Keys in the cache are {{cacheKeys}}.
// Qwen's temperature (engine semantics): logits × softmax_scale × s(n), n = the sequence's length,
// s(n) = max(1, 0.1 ln(n / original_max_position) + 1); keys written by cache_append carry the s of
// their write; raw keys get s(n) on load (prefill's s(n)²).
static constant constexpr const bool KEYS_PRE_ROTATED = {{keysPreRotated}};
static constant constexpr const int SIMD_WIDTH = 32;                 // threads per simdgroup (Apple GPUs)
static constant constexpr const int LANE_DIMS = (HEAD_DIM + SIMD_WIDTH - 1) / SIMD_WIDTH;  // output dims per decode lane
static constant constexpr const int DECODE_MAX_ROWS = {{decodeMaxRows}};  // decode rows (simdgroups) per threadgroup at most{{decodeMaxRowsNote}}
static constant constexpr const int DECODE_TG_FLOATS = {{decodeTgFloats}};  // rotated queries + probabilities of DECODE_MAX_ROWS rows

// Shapes of one paged call (buffer 4 of the paged kernels).
struct PagedParams {
  int batch;
  int queries;                // query rows per sequence (its last positions); varlen: the largest count
  int query_heads;
  int key_heads;
  int block_size;             // keys per cache block
  int max_blocks;             // columns of block_table
  float softmax_scale;        // before Qwen's temperature
  int original_max_position;  // > 0: Qwen's temperature s(n) from each sequence's length
  int splits;                 // decode: key ranges per sequence (1: out and lse written directly)
  int split_keys;             // decode: keys per range
  int group_rows;             // decode: rows per threadgroup, one simdgroup each (≤ DECODE_MAX_ROWS)
  int total_queries;          // varlen: query rows packed by cu_seqlens_q (buffer 10); 0: (batch, queries, …)
};

// Shapes of a decode call over contiguous keys (buffer 4 of the contiguous decode kernels): the
// attention passes' AttentionParams, then the split. Prefill kernels bound to the same buffer read the
// AttentionParams prefix only.
struct DecodeParams {
  AttentionParams call;
  int splits;                 // key ranges per sequence (1: out and lse written directly)
  int split_keys;             // keys per range
  int group_rows;             // rows per threadgroup, one simdgroup each (≤ DECODE_MAX_ROWS)
};

// Qwen's factor s(n) (1 when original_max_position is not positive).
inline float qwen_factor(int n, int original_max_position) {
  if (original_max_position <= 0) return 1.0f;
  return max(1.0f, 0.1f * log(float(n) / float(original_max_position)) + 1.0f);
}

// Softmax scale × s(n) for a sequence of n keys; raw keys take their s(n) here too.
inline float paged_logit_scale(const PagedParams p, int n) {
  const float s = qwen_factor(n, p.original_max_position);
  return p.softmax_scale * s * (KEYS_PRE_ROTATED ? 1.0f : s);
}

// Keys in the paged cache: key j of the sequence is in physical block blocks[j / block_size].
struct PagedRows {
  device const int* blocks;  // the sequence's row of block_table
  int block_size;
  long head;                 // kv_head · HEAD_DIM
  long slot_step;            // key_heads · HEAD_DIM: elements between consecutive slots
};

inline PagedRows paged_rows(const PagedParams p, device const int* block_table, int batch, int kv_head) {
  PagedRows rows;
  rows.blocks = block_table + long(batch) * p.max_blocks;
  rows.block_size = p.block_size;
  rows.head = long(kv_head) * HEAD_DIM;
  rows.slot_step = long(p.key_heads) * HEAD_DIM;
  return rows;
}

inline long key_row(thread const PagedRows& rows, int j) {
  const long slot = long(rows.blocks[j / rows.block_size]) * rows.block_size + j % rows.block_size;
  return slot * rows.slot_step + rows.head;
}

// One sequence of a call, whichever the K/V layout: its query rows (where they sit in q, out and lse)
// and its keys.
struct SequenceRows {
  int queries;         // query rows of the sequence: its last `queries` positions
  long first_row;      // row of its first query in q and out: element ((first_row + query) · query_heads + head) · HEAD_DIM
  int keys;
  long lse_base;       // LSE index of (head 0, query 0) …
  long lse_head_step;  // … and of (head h, query r): lse_base + h · lse_head_step + r
  float logit_scale;   // softmax scale × Qwen's temperature for this sequence (natural-log units)
};

// Sequence b of a paged call: seq_lens[b] keys; rows packed by cu_seqlens_q when total_queries > 0.
inline SequenceRows paged_sequence(const PagedParams p, device const int* seq_lens, device const int* cu_seqlens_q, int b) {
  SequenceRows s;
  s.keys = seq_lens[b];
  if (p.total_queries > 0) {
    s.first_row = cu_seqlens_q[b];
    s.queries = cu_seqlens_q[b + 1] - cu_seqlens_q[b];
    s.lse_base = s.first_row;
    s.lse_head_step = p.total_queries;
  } else {
    s.first_row = long(b) * p.queries;
    s.queries = p.queries;
    s.lse_base = long(b) * p.query_heads * p.queries;
    s.lse_head_step = p.queries;
  }
  s.logit_scale = paged_logit_scale(p, s.keys);
  return s;
}

// Batch entry b of a contiguous call: every entry has p.queries queries over p.keys keys.
inline SequenceRows contiguous_sequence(const AttentionParams p, int b) {
  SequenceRows s;
  s.keys = p.keys;
  s.first_row = long(b) * p.queries;
  s.queries = p.queries;
  s.lse_base = long(b) * p.query_heads * p.queries;
  s.lse_head_step = p.queries;
  s.logit_scale = p.logit_scale;
  return s;
}

// ---- Regions by index (the plan's visit order), for kernels that meet keys one at a time ----
{{regionDispatch}}

// ---- Cache append ----
// Shapes of one append (buffer 6 of the cache-append kernel).
struct AppendParams {
  int tokens;
  int key_heads;
  int slots;                  // num_blocks × block_size
  int original_max_position;  // > 0: keys × s(lengths[token])
};

// One (token, key head) of new keys: rotated once at `position` and multiplied by `factor`, into
// dst; lanes over dims.
inline void write_rotated_key(device const storage_t* key, int position, float factor, device const float2* rope,
                              device storage_t* dst, uint lane) {
  for (int d = int(lane); d < HEAD_DIM; d += SIMD_WIDTH) {
    float x = float(key[d]);
    if (d < ROTARY_DIM) {
      const float2 cs = rope_cos_sin(rope, position, rope_pair(d));
      x = x * cs.x + rope_sign(d) * float(key[rope_partner(d)]) * cs.y;
    }
    dst[d] = storage_t(x * factor);
  }
}

{{cacheAppendBodies}}

// ---- Split-K decode for calls with few query rows, over contiguous keys or the paged cache ----
// One threadgroup per (key split, KV head × row block, batch entry). Its rows are the rows reading one
// KV head — the query heads that share it (GQA) × the sequence's queries — group_rows at a time, one
// simdgroup per row, so the rows walk the same keys together and each K/V row comes from memory once
// per threadgroup. Within a row, lanes take one key each (score, then simd_max / simd_sum for the
// online softmax), then one output dim each for P·V, reading the step's probabilities back from
// threadgroup memory. Nothing is shared between simdgroups, so there is no threadgroup barrier.
// K/V addressing is a compile-time form (the plan's kvLayout): decode_split is instantiated with
// ContiguousRows (batch, keys, key_heads, HEAD_DIM) and with PagedRows (the block table); both forms
// write the same partial layout and share one merge.

// The grid of a decode call: what every threadgroup needs to find its rows and its key range.
struct DecodeGrid {
  int batch;
  int queries;      // query rows per sequence, the largest count for varlen (sizes the grid and the partials)
  int query_heads;
  int key_heads;
  int splits;
  int split_keys;
  int group_rows;
};

inline DecodeGrid paged_decode_grid(const PagedParams p) {
  const DecodeGrid g = {p.batch, p.queries, p.query_heads, p.key_heads, p.splits, p.split_keys, p.group_rows};
  return g;
}

inline DecodeGrid contiguous_decode_grid(const DecodeParams p) {
  const DecodeGrid g = {p.call.batch, p.call.queries, p.call.query_heads, p.call.key_heads, p.splits, p.split_keys, p.group_rows};
  return g;
}

// The row (query head, query) of one simdgroup of a decode threadgroup.
struct DecodeRow {
  int kv_head;
  int head;
  int query;
};

// This simdgroup's row among the rows reading one KV head; false for a spare simdgroup (its row block
// runs past the sequence's rows: the last block, or a varlen sequence with fewer queries than the grid's).
inline bool decode_row(const DecodeGrid g, int queries, uint3 group, uint simd, thread DecodeRow& r) {
  const int heads_per_kv = g.query_heads / g.key_heads;
  // Row blocks per KV head, from the call's largest query count (the grid is sized by it).
  const int row_blocks = (heads_per_kv * g.queries + g.group_rows - 1) / g.group_rows;
  const int row = (int(group.y) % row_blocks) * g.group_rows + int(simd);
  if (row >= heads_per_kv * queries) return false;
  r.kv_head = int(group.y) / row_blocks;
  r.head = r.kv_head * heads_per_kv + row / queries;
  r.query = row % queries;
  return true;
}

// Score (log2 units) of key row k_row against `query`, rotated for `region` and pre-scaled.
inline float key_score(threadgroup const float* query, device const storage_t* k_row, device const float2* rope, int region, int j) {
{{keyScore}}
}

// The row's result: out and lse with one split, else this split's partial (the merge's layout).
inline void store_decode_row(const DecodeGrid g, int split, long q_row, long lse_at, float m, float l, thread const float* acc,
                             device storage_t* out, device float* lse, device float* partials, uint lane) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  if (g.splits == 1) {
    for (int c = 0; c < LANE_DIMS; ++c) {
      const int d = int(lane) + c * SIMD_WIDTH;
      if (d < HEAD_DIM) out[q_row * HEAD_DIM + d] = storage_t(acc[c] * inv);
    }
    if (lane == 0) lse[lse_at] = l > 0.0f ? (m + log2(l)) / LOG2E : -INFINITY;
    return;
  }
  device float* partial = partials + long(split) * partial_slot_floats(g.batch, g.queries, g.query_heads);
  for (int c = 0; c < LANE_DIMS; ++c) {
    const int d = int(lane) + c * SIMD_WIDTH;
    if (d < HEAD_DIM) partial[q_row * HEAD_DIM + d] = acc[c] * inv;
  }
  if (lane == 0) partial[partial_lse_base(g.batch, g.queries, g.query_heads) + lse_at] = l > 0.0f ? (m + log2(l)) / LOG2E : MASKED_SCORE;
}

// One row's softmax over the keys of split `split` of sequence `s`, K/V rows found through `rows`.
template <class Rows>
inline void decode_split(const DecodeGrid g, thread const SequenceRows& s, thread const DecodeRow& r, thread const Rows& rows,
                         device const storage_t* q, device const storage_t* k, device const storage_t* v,
                         device const float2* rope, device storage_t* out, device float* lse, device float* partials,
                         threadgroup float* tg, int split, uint lane, uint simd) {
  const int i = r.query + s.keys - s.queries;  // the query's position in its sequence (queries are the last positions)
  const long q_row = (s.first_row + r.query) * g.query_heads + r.head;  // row of q and out
  const long lse_at = s.lse_base + r.head * s.lse_head_step + r.query;

  // The query rotated at each region's query position and pre-scaled to log2 units, into this
  // simdgroup's part of threadgroup memory.
  threadgroup float* rotated = tg + int(simd) * REGION_COUNT * HEAD_DIM;
  threadgroup float* probs = tg + DECODE_MAX_ROWS * REGION_COUNT * HEAD_DIM + int(simd) * SIMD_WIDTH;
  const float scale_log2 = s.logit_scale * LOG2E;
  device const storage_t* q_in = q + q_row * HEAD_DIM;
  for (int e = int(lane); e < REGION_COUNT * HEAD_DIM; e += SIMD_WIDTH) {
    const int region = e / HEAD_DIM;
    const int d = e % HEAD_DIM;
    float x = float(q_in[d]);
    if (d < ROTARY_DIM) {
      const float2 cs = rope_cos_sin(rope, region_query_position(region, i), rope_pair(d));
      x = x * cs.x + rope_sign(d) * float(q_in[rope_partner(d)]) * cs.y;
    }
    rotated[e] = x * scale_log2;
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);

  // This split's keys that some region lets the row see, SIMD_WIDTH per step.
  const int split_first = split * g.split_keys;
  const int first = imax(split_first, first_visible_key(i));
  const int last = imin(split_first + g.split_keys - 1, i);  // causal: nothing past the diagonal
  float m = MASKED_SCORE;  // running max score, the same in every lane (MASKED_SCORE: nothing visible yet)
  float l = 0.0f;          // running sum of exp2(score − m), the same in every lane
  float acc[LANE_DIMS];    // output dims lane, lane + SIMD_WIDTH, …, unnormalised
  for (int c = 0; c < LANE_DIMS; ++c) acc[c] = 0.0f;
  for (int step = first; step <= last; step += SIMD_WIDTH) {
    // Lanes over keys: key j's score against the query rotated for the region that owns it.
    const int j = step + int(lane);
    float score = MASKED_SCORE;
    if (j <= last) {
      const int region = key_region(i, j);
      if (region < REGION_COUNT) score = key_score(rotated + region * HEAD_DIM, k + key_row(rows, j), rope, region, j);
    }
    const float step_max = simd_max(score);
    if (step_max == MASKED_SCORE) continue;  // no visible key in this step (the same in every lane)
    const float m_new = max(m, step_max);
    const float alpha = m == MASKED_SCORE ? 0.0f : exp2(m - m_new);
    const float prob = score == MASKED_SCORE ? 0.0f : exp2(score - m_new);
    l = l * alpha + simd_sum(prob);
    m = m_new;

    // Lanes over dims: O = O·alpha + P·V, each key's probability read back from threadgroup memory.
    probs[lane] = prob;
    simdgroup_barrier(mem_flags::mem_threadgroup);
    for (int c = 0; c < LANE_DIMS; ++c) acc[c] *= alpha;
    const int step_keys = imin(SIMD_WIDTH, last - step + 1);
    for (int n = 0; n < step_keys; ++n) {
      const float pn = probs[n];
      if (pn == 0.0f) continue;  // a key the row does not see (the same in every lane)
      device const storage_t* v_row = v + key_row(rows, step + n);
      for (int c = 0; c < LANE_DIMS; ++c) {
        const int d = int(lane) + c * SIMD_WIDTH;
        if (d < HEAD_DIM) acc[c] += pn * float(v_row[d]);
      }
    }
    simdgroup_barrier(mem_flags::mem_threadgroup);  // every lane has read probs before the next step writes it
  }
  store_decode_row(g, split, q_row, lse_at, m, l, acc, out, lse, partials, lane);
}

// Split-K decode over the paged cache.
inline void paged_decode(device const storage_t* q, device const storage_t* k_cache, device const storage_t* v_cache,
                         device const float2* rope, const PagedParams p, device storage_t* out, device float* lse,
                         device float* partials, device const int* block_table, device const int* seq_lens,
                         device const int* cu_seqlens_q, threadgroup float* tg, uint3 group, uint lane, uint simd) {
  const DecodeGrid g = paged_decode_grid(p);
  const int batch = int(group.z);
  const SequenceRows s = paged_sequence(p, seq_lens, cu_seqlens_q, batch);
  DecodeRow r;
  if (!decode_row(g, s.queries, group, simd, r)) return;  // a spare simdgroup (no threadgroup barrier follows)
  const PagedRows rows = paged_rows(p, block_table, batch, r.kv_head);
  decode_split(g, s, r, rows, q, k_cache, v_cache, rope, out, lse, partials, tg, int(group.x), lane, simd);
}

// Split-K decode over contiguous keys: k, v (batch, keys, key_heads, HEAD_DIM).
inline void contiguous_decode(device const storage_t* q, device const storage_t* k, device const storage_t* v,
                              device const float2* rope, const DecodeParams p, device storage_t* out, device float* lse,
                              device float* partials, threadgroup float* tg, uint3 group, uint lane, uint simd) {
  const DecodeGrid g = contiguous_decode_grid(p);
  const int batch = int(group.z);
  const SequenceRows s = contiguous_sequence(p.call, batch);
  DecodeRow r;
  if (!decode_row(g, s.queries, group, simd, r)) return;  // a spare simdgroup (no threadgroup barrier follows)
  const ContiguousRows rows = contiguous_rows_of(p.call, batch, r.kv_head);
  decode_split(g, s, r, rows, q, k, v, rope, out, lse, partials, tg, int(group.x), lane, simd);
}

// The decode splits' partials merged into out and lse (merge_row, as the three-pass merge), on grid
// ((queries + BLOCK_Q − 1) / BLOCK_Q, query_heads, batch) × THREADS: THREADS / BLOCK_Q threads per row.
inline void paged_merge(device const float* partials, const PagedParams p, device storage_t* out, device float* lse,
                        device const int* seq_lens, device const int* cu_seqlens_q, uint3 group, uint tid) {
  const SequenceRows s = paged_sequence(p, seq_lens, cu_seqlens_q, int(group.z));
  const int head = int(group.y);
  const int row = int(group.x) * BLOCK_Q + int(tid) / (THREADS / BLOCK_Q);
  if (row >= s.queries) return;
  merge_row(partials, p.splits, partial_slot_floats(p.batch, p.queries, p.query_heads), partial_lse_base(p.batch, p.queries, p.query_heads),
            ((s.first_row + row) * p.query_heads + head) * HEAD_DIM, s.lse_base + head * s.lse_head_step + row, out, lse,
            int(tid) % (THREADS / BLOCK_Q), THREADS / BLOCK_Q);
}

// The same for contiguous decode: every batch entry has the call's queries.
inline void contiguous_decode_merge(device const float* partials, const DecodeParams p, device storage_t* out, device float* lse,
                                    uint3 group, uint tid) {
  merge_partials(partials, p.splits, p.call, out, lse, group, tid);
}

// ---- Paged prefill: the fused kernel over the cache (calls with more query rows) ----
// Grid ((queries + BLOCK_Q − 1) / BLOCK_Q, query_heads, batch) × THREADS, as the fused pass; each
// threadgroup walks its own sequence's keys through the block table.
inline void paged_prefill(device const storage_t* q, device const storage_t* k_cache, device const storage_t* v_cache,
                          device const float2* rope, const PagedParams p, device storage_t* out, device float* lse,
                          device const int* block_table, device const int* seq_lens, device const int* cu_seqlens_q,
                          threadgroup float* tg, uint3 group, uint tid, uint lane, uint simd) {
  const SequenceRows s = paged_sequence(p, seq_lens, cu_seqlens_q, int(group.z));
  // Varlen: a sequence with fewer query rows than the grid's tiles (the same for the whole threadgroup).
  if (int(group.x) * BLOCK_Q >= s.queries) return;
  Tile t = make_tile_for(group, p.batch, s.queries, s.keys, p.query_heads, p.key_heads, s.logit_scale);
  t.q_base = s.first_row * t.q_step + long(t.head) * HEAD_DIM;
  t.lse_base = s.lse_base + t.head * s.lse_head_step;
  const PagedRows rows = paged_rows(p, block_table, t.batch, t.kv_head);
  attend(t, rows, q, k_cache, v_cache, rope, out, lse, tg, tid, lane, simd);
}
