// ---- Serving: attention over a paged KV cache, and split-K decode of any K/V (DESIGN.md §5) ----
// k_cache and v_cache are (num_blocks, block_size, key_heads, HEAD_DIM); key j of sequence b sits
// in physical block block_table[b][j / block_size], row j % block_size. Blocks may lie in any
// physical order, sequences have their own lengths (seq_lens), and a chunk of the pattern need not
// be a multiple of the block size: K/V rows are addressed one key at a time. The same kernel reads
// contiguous K/V (batch, keys, key_heads, HEAD_DIM) too: K/V addressing is a compile-time form of it
// (PagedKv, ContiguousKv below; the plan's KvLayout), so decode of either runs one kernel and one merge.
namespace paged {

using PagedAttentionParams = dcagen_paged_attention_params;
using CacheAppendParams = dcagen_cache_append_params;

// Calls with at most this many queries (decode, speculative decoding) run the split-K kernel,
// paged or contiguous; the forward launcher (*_launch) routes contiguous ones here.
constexpr int DECODE_MAX_QUERIES = 16;

// Qwen's temperature s(n) = max(1, 0.1·ln(n / c_orig) + 1); 1 when original_max_position <= 0.
__device__ __forceinline__ float qwen_factor(int n, int original_max_position) {
  if (original_max_position <= 0) return 1.f;
  return fmaxf(1.f, 0.1f * logf((float)n / (float)original_max_position) + 1.f);
}

{{cacheAppend}}

// ---- Split-K attention over paged or contiguous K/V: decode, and (the same kernel over more query
// rows) paged prefill and varlen ----
// A block owns one key split of one (row block, KV head, sequence). Its rows are the query heads
// that share the KV head (GQA) × the sequence's queries, up to MAX_ROWS of them: with Sq <= 16 a
// KV head's rows usually fit one block, so each K/V row is read from memory once per block for all
// of them (decode, speculative decoding); longer calls take MAX_ROWS consecutive queries of one
// head per block (paged prefill). Like the fused prefill kernel, the block visits the regions in
// the plan's order; per region it rotates its rows' queries at the region's query positions, then
// walks the region's keys inside its split in tiles of TILE_KEYS: the tile is gathered from the
// cache or contiguous K/V into shared memory (rotated at the key position unless the keys are stored rotated),
// each warp scores its rows against it (lane = key), keeps an online softmax per row, and adds
// P·V with lanes over the output dims. One split writes out and lse itself; several write
// partials that merge_kernel combines (the same partial layout as the three-pass baseline).
constexpr int PAGED_WARPS = 4;
constexpr int PAGED_THREADS = 32 * PAGED_WARPS;
constexpr int MIN_RESIDENT_BLOCKS = 3;                   // blocks per multiprocessor the register budget allows
constexpr int TILE_KEYS = 32;                            // keys per K/V tile: one per lane when scoring
constexpr int ROWS_PER_WARP = {{rowsPerWarp}};                     // rows each warp scores (slots warp, warp + PAGED_WARPS, …)
constexpr int MAX_ROWS = PAGED_WARPS * ROWS_PER_WARP;    // rows (query head × query) per block
constexpr int DIMS_PER_LANE = (HEAD_DIM + 31) / 32;      // output dims each lane accumulates per row
constexpr int K_STRIDE = HEAD_DIM + 4;                   // padded key row: 32 lanes' float4 reads hit distinct banks
constexpr int GATHER_VEC = 16 / (int)sizeof(storage_t);   // storage elements per 16-byte load: 8 (bf16, f16) or 4 (f32)
constexpr bool VECTOR_GATHER = HEAD_DIM % GATHER_VEC == 0;  // whole 16-byte pieces per key row
constexpr int GATHER_LOADS = (TILE_KEYS * HEAD_DIM / GATHER_VEC + PAGED_THREADS - 1) / PAGED_THREADS;   // 16-byte loads per thread per tile, of K and of V
constexpr int GATHER_BATCH = GATHER_LOADS < 4 ? GATHER_LOADS : 4;   // of them in flight at once: 128 bytes per thread, within the register budget
// Shared memory (floats): key tile, value tile, rotated queries, the tile's probabilities, the tile's cache blocks.
constexpr int PAGED_SMEM_FLOATS = TILE_KEYS * K_STRIDE + TILE_KEYS * HEAD_DIM + MAX_ROWS * HEAD_DIM + MAX_ROWS * TILE_KEYS + TILE_KEYS;
// {{keysSummary}}
constexpr bool PRE_ROTATED_KEYS = {{preRotatedKeys}};

// One call as the kernel sees it, whichever C ABI block it came from: queries, outputs, scratch.
// Queries are fixed (batch, queries, query_heads, HEAD_DIM) or, with cu_seqlens_q, packed (varlen:
// total_q rows, sequence b owning rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] − 1, `queries` the
// largest count); out is laid out like q, lse (batch, query_heads, queries) or (query_heads, total_q).
struct ServingCall {
  const void* q;
  void* out;
  float* lse;
  const float* rope;
  void* workspace;                  // partials of the key splits (merge.cu's layout); NULL with one split
  const int* cu_seqlens_q;          // (batch + 1) int32, or NULL: fixed query rows
  long long q_batch_stride, q_seq_stride, q_head_stride;       // in elements; batch strides unused when packed
  long long out_batch_stride, out_seq_stride, out_head_stride;
  int batch, queries, query_heads, key_heads;
  int original_max_position;        // > 0: Qwen's s(n) per sequence (paged); contiguous calls fold it into the scale
};

// ---- K/V addressing: the two compile-time forms of the kernel ----
// locate(b, j) says where key j of sequence b lives (looked up once per key of a tile, kept in shared
// memory); key_row / value_row then address its row of one KV head.

// KvLayout 'paged': the vLLM / FlashInfer cache through the block table; each sequence its own length.
struct PagedKv {
  const storage_t* k;
  const storage_t* v;
  const int* block_table;           // (batch, block_table_stride) physical block of each logical block
  const int* seq_lens;              // (batch,) keys of each sequence
  long long k_block_stride, k_row_stride, k_head_stride;
  long long v_block_stride, v_row_stride, v_head_stride;
  long long block_table_stride;
  int block_shift;                  // log2(block_size)
  __device__ __forceinline__ int sequence_keys(int b) const { return seq_lens[b]; }
  __device__ __forceinline__ int locate(int b, int j) const { return block_table[b * block_table_stride + (j >> block_shift)]; }
  __device__ __forceinline__ const storage_t* key_row(int block, int j, int head) const {
    return k + block * k_block_stride + (j & ((1 << block_shift) - 1)) * k_row_stride + head * k_head_stride;
  }
  __device__ __forceinline__ const storage_t* value_row(int block, int j, int head) const {
    return v + block * v_block_stride + (j & ((1 << block_shift) - 1)) * v_row_stride + head * v_head_stride;
  }
  // Whether every row starts on a 16-byte boundary (the vector gather's requirement).
  __host__ bool aligned() const {
    return (uintptr_t)k % 16 == 0 && (uintptr_t)v % 16 == 0 && (k_block_stride | k_row_stride | k_head_stride | v_block_stride | v_row_stride | v_head_stride) % GATHER_VEC == 0;
  }
};

// KvLayout 'contiguous': k, v (batch, keys, key_heads, HEAD_DIM) by strides; every sequence has `keys` keys.
struct ContiguousKv {
  const storage_t* k;
  const storage_t* v;
  long long k_batch_stride, k_seq_stride, k_head_stride;
  long long v_batch_stride, v_seq_stride, v_head_stride;
  int keys;
  __device__ __forceinline__ int sequence_keys(int) const { return keys; }
  __device__ __forceinline__ int locate(int b, int) const { return b; }
  __device__ __forceinline__ const storage_t* key_row(int b, int j, int head) const {
    return k + b * k_batch_stride + (long long)j * k_seq_stride + head * k_head_stride;
  }
  __device__ __forceinline__ const storage_t* value_row(int b, int j, int head) const {
    return v + b * v_batch_stride + (long long)j * v_seq_stride + head * v_head_stride;
  }
  __host__ bool aligned() const {
    return (uintptr_t)k % 16 == 0 && (uintptr_t)v % 16 == 0 && (k_batch_stride | k_seq_stride | k_head_stride | v_batch_stride | v_seq_stride | v_head_stride) % GATHER_VEC == 0;
  }
};

// How the launcher laid out a call (serving_layout on the host).
struct CallLayout {
  int splits;         // key splits per (row block, KV head, sequence)
  int split_keys;     // keys per split
  int query_block;    // queries per block
  int head_block;     // query heads (sharing one KV head) per block
  int head_blocks;    // blocks along one KV head's query heads
  int vector_kv;      // K/V rows are 16-byte aligned (pointers and strides): gather them 16 bytes at a time
  float scale_log2;   // softmax scale × log2(e), before the sequence's Qwen factor
};

// The rows of one block: slot r is query head first_head + r / block_queries, query
// first_query + r % block_queries.
struct BlockRows {
  int batch, kv_head, split;
  int first_head, first_query, block_queries, count;
  int first_token;                // varlen: the packed row of the sequence's query 0; −1 for fixed rows
  int offset;                     // seq_len − queries: query q sits at position offset + q
  int row_first, row_last;        // first and last query position of the block's rows
  int split_first, split_last;    // the keys of this block's split
  __device__ __forceinline__ int head(int slot) const { return first_head + slot / block_queries; }
  __device__ __forceinline__ int query(int slot) const { return first_query + slot % block_queries; }
  // Element offset of (query, head) in a tensor laid out like q (fixed or packed rows).
  __device__ __forceinline__ long long at(int query, int head, long long batch_stride, long long seq_stride, long long head_stride) const {
    return first_token >= 0 ? (long long)(first_token + query) * seq_stride + head * head_stride
                            : batch * batch_stride + (long long)query * seq_stride + head * head_stride;
  }
};

struct SoftmaxState {
  float m[ROWS_PER_WARP];                    // running max of each of the warp's rows, log2 units (same in every lane)
  float l[ROWS_PER_WARP];                    // this lane's share of each row's running sum
  float acc[ROWS_PER_WARP][DIMS_PER_LANE];   // output dims lane, lane + 32, … of each row
};

__device__ __forceinline__ float warp_max(float x) {
  #pragma unroll
  for (int o = 16; o > 0; o /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
  #pragma unroll
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// One region of the pass: rotate the block's queries at the region's positions, then walk the
// region's keys in the block's split.
template <class Region, class Kv>
__device__ __forceinline__ void visit_region(const ServingCall& p, const Kv& kv, const CallLayout& c, const BlockRows& rows, SoftmaxState& st,
                                             float* smem, float scale_log2) {
  const int key_begin = imax(Region::key_begin(rows.row_first), rows.split_first);
  const int key_end = imin(Region::key_end(rows.row_last), rows.split_last);
  if (key_begin > key_end) return;  // no key of this region in the split (uniform across the block)
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  float* sk = smem;                                  // [TILE_KEYS][K_STRIDE] keys, rotated
  float* sv = sk + TILE_KEYS * K_STRIDE;             // [TILE_KEYS][HEAD_DIM] values
  float* sq = sv + TILE_KEYS * HEAD_DIM;             // [MAX_ROWS][HEAD_DIM] queries rotated for this region
  float* sp = sq + MAX_ROWS * HEAD_DIM;              // [MAX_ROWS][TILE_KEYS] the tile's probabilities
  int* tile_where = (int*)(sp + MAX_ROWS * TILE_KEYS);   // [TILE_KEYS] Kv::locate of each key, −1 past the range
  const float2* __restrict__ rope = (const float2*)p.rope;

  __syncthreads();  // the previous region is done with sq
  for (int e = tid; e < rows.count * HEAD_DIM; e += PAGED_THREADS) {
    const int slot = e / HEAD_DIM;
    const int d = e % HEAD_DIM;
    const storage_t* q_row = (const storage_t*)p.q + rows.at(rows.query(slot), rows.head(slot), p.q_batch_stride, p.q_seq_stride, p.q_head_stride);
    sq[slot * HEAD_DIM + d] = rotated_element(q_row, d, Region::query_position(rows.offset + rows.query(slot)), rope);
  }

  for (int key_tile = key_begin; key_tile <= key_end; key_tile += TILE_KEYS) {
    __syncthreads();  // every warp is done with the previous tile, and sq is complete
    if (tid < TILE_KEYS) {
      const int j = key_tile + tid;
      tile_where[tid] = j <= key_end ? kv.locate(rows.batch, j) : -1;
    }
    __syncthreads();
    if (VECTOR_GATHER && c.vector_kv) {
      // Gather the tile 16 bytes at a time, in rounds of GATHER_BATCH pieces per thread: every load
      // of a round is issued before the first is used, so a thread keeps GATHER_BATCH loads of K and
      // of V in flight (decode is bound by this read).
      for (int round = 0; round < GATHER_LOADS; round += GATHER_BATCH) {
        uint4 k_raw[GATHER_BATCH];
        uint4 v_raw[GATHER_BATCH];
        #pragma unroll
        for (int u = 0; u < GATHER_BATCH; ++u) {
          const int e = tid + (round + u) * PAGED_THREADS;   // 16-byte piece of the tile: key jj, dims d .. d + GATHER_VEC − 1
          const int jj = e / (HEAD_DIM / GATHER_VEC);
          const int d = e % (HEAD_DIM / GATHER_VEC) * GATHER_VEC;
          k_raw[u] = make_uint4(0u, 0u, 0u, 0u);
          v_raw[u] = make_uint4(0u, 0u, 0u, 0u);
          if (e < TILE_KEYS * HEAD_DIM / GATHER_VEC && tile_where[jj] >= 0) {
            k_raw[u] = *reinterpret_cast<const uint4*>(kv.key_row(tile_where[jj], key_tile + jj, rows.kv_head) + d);
            v_raw[u] = *reinterpret_cast<const uint4*>(kv.value_row(tile_where[jj], key_tile + jj, rows.kv_head) + d);
          }
        }
        #pragma unroll
        for (int u = 0; u < GATHER_BATCH; ++u) {
          const int e = tid + (round + u) * PAGED_THREADS;
          if (e >= TILE_KEYS * HEAD_DIM / GATHER_VEC) continue;
          const int jj = e / (HEAD_DIM / GATHER_VEC);
          const int d = e % (HEAD_DIM / GATHER_VEC) * GATHER_VEC;
          const storage_t* k_elements = reinterpret_cast<const storage_t*>(&k_raw[u]);
          const storage_t* v_elements = reinterpret_cast<const storage_t*>(&v_raw[u]);
          #pragma unroll
          for (int x = 0; x < GATHER_VEC; ++x) {
            sk[jj * K_STRIDE + d + x] = to_float(k_elements[x]);
            sv[jj * HEAD_DIM + d + x] = to_float(v_elements[x]);
          }
        }
      }
      if (!PRE_ROTATED_KEYS) {
        // Raw keys: rotate each staged (d, partner) pair at the region's key position, in shared memory.
        __syncthreads();
        for (int e = tid; e < TILE_KEYS * ROPE_PAIRS; e += PAGED_THREADS) {
          const int jj = e / ROPE_PAIRS;
          const int pair = e % ROPE_PAIRS;
          if (tile_where[jj] < 0) continue;
          const float2 cs = rope_cos_sin(rope, Region::key_position(key_tile + jj), pair);
          float* k_staged = sk + jj * K_STRIDE;
          const int d = rope_first(pair);
          const float x = k_staged[d];
          const float y = k_staged[rope_partner(d)];
          k_staged[d] = x * cs.x + rope_sign(d) * y * cs.y;
          k_staged[rope_partner(d)] = y * cs.x + rope_sign(rope_partner(d)) * x * cs.y;
        }
      }
    } else {
      // Gather the tile element by element (rows not 16-byte aligned): consecutive threads read
      // consecutive dims of one key row.
      for (int e = tid; e < TILE_KEYS * HEAD_DIM; e += PAGED_THREADS) {
        const int jj = e / HEAD_DIM;
        const int d = e % HEAD_DIM;
        const int j = key_tile + jj;
        const int where = tile_where[jj];
        float k_value = 0.f;
        float v_value = 0.f;
        if (where >= 0) {
          const storage_t* k_row = kv.key_row(where, j, rows.kv_head);
          k_value = {{stagedKey}}
          v_value = to_float(kv.value_row(where, j, rows.kv_head)[d]);
        }
        sk[jj * K_STRIDE + d] = k_value;
        sv[jj * HEAD_DIM + d] = v_value;
      }
    }
    __syncthreads();

    // Scores: lane = key, each warp its rows.
    const int j = key_tile + lane;
    float s[ROWS_PER_WARP];
    #pragma unroll
    for (int x = 0; x < ROWS_PER_WARP; ++x) s[x] = 0.f;
    const float* k_row = sk + lane * K_STRIDE;
    for (int d = 0; d < HEAD_DIM; d += 4) {
      const float4 k4 = *reinterpret_cast<const float4*>(k_row + d);
      #pragma unroll
      for (int x = 0; x < ROWS_PER_WARP; ++x) {
        const int slot = warp + x * PAGED_WARPS;
        if (slot < rows.count) {
          const float4 q4 = *reinterpret_cast<const float4*>(sq + slot * HEAD_DIM + d);
          s[x] += q4.x * k4.x + q4.y * k4.y + q4.z * k4.z + q4.w * k4.w;
        }
      }
    }

    // Online softmax per row: the warp's max over the tile rescales what came before.
    #pragma unroll
    for (int x = 0; x < ROWS_PER_WARP; ++x) {
      const int slot = warp + x * PAGED_WARPS;
      if (slot >= rows.count) continue;  // uniform across the warp
      float score = s[x] * scale_log2;
      if (j > key_end || !Region::visible(rows.offset + rows.query(slot), j)) score = MASKED_SCORE;
      const SoftmaxRescale step = softmax_rescale(st.m[x], warp_max(score), 1.f);   // scores already scaled
      const float alpha = step.alpha;
      const float prob = exp2_ftz(score - step.base);
      st.l[x] = st.l[x] * alpha + prob;
      st.m[x] = step.m;
      #pragma unroll
      for (int y = 0; y < DIMS_PER_LANE; ++y) st.acc[x][y] *= alpha;
      sp[slot * TILE_KEYS + lane] = prob;
    }
    __syncwarp();

    // O += P·V: lane owns dims lane, lane + 32, …; each row's probabilities are read back broadcast.
    #pragma unroll 4
    for (int jj = 0; jj < TILE_KEYS; ++jj) {
      float v[DIMS_PER_LANE];
      #pragma unroll
      for (int y = 0; y < DIMS_PER_LANE; ++y) v[y] = y * 32 + lane < HEAD_DIM ? sv[jj * HEAD_DIM + y * 32 + lane] : 0.f;
      #pragma unroll
      for (int x = 0; x < ROWS_PER_WARP; ++x) {
        const int slot = warp + x * PAGED_WARPS;
        if (slot < rows.count) {
          const float prob = sp[slot * TILE_KEYS + jj];
          #pragma unroll
          for (int y = 0; y < DIMS_PER_LANE; ++y) st.acc[x][y] += prob * v[y];
        }
      }
    }
  }
}

// At least MIN_RESIDENT_BLOCKS blocks per multiprocessor (registers <= 168 per thread): decode keeps
// its K/V loads in flight through the resident blocks, and the launcher's split target counts on them.
template <class Kv, class... Regions>
__global__ void __launch_bounds__(PAGED_THREADS, MIN_RESIDENT_BLOCKS) attention_kernel(const ServingCall p, const Kv kv, const CallLayout c) {
  DCAGEN_DYNAMIC_SMEM(float, smem);
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int group = p.query_heads / p.key_heads;   // GQA: query heads sharing a KV head
  const int head_block = blockIdx.y % c.head_blocks;
  BlockRows rows;
  rows.batch = blockIdx.z;
  rows.kv_head = blockIdx.y / c.head_blocks;
  rows.split = blockIdx.x % c.splits;
  rows.first_head = rows.kv_head * group + head_block * c.head_block;
  rows.first_query = (blockIdx.x / c.splits) * c.query_block;
  // This sequence's query rows: the call's `queries`, or (varlen) its own count, at most `queries`.
  const bool packed = p.cu_seqlens_q != nullptr;
  rows.first_token = packed ? p.cu_seqlens_q[rows.batch] : -1;
  const int queries = packed ? p.cu_seqlens_q[rows.batch + 1] - rows.first_token : p.queries;
  if (rows.first_query >= queries) return;   // varlen: fewer rows than the call's largest (uniform across the block)
  rows.block_queries = imin(c.query_block, queries - rows.first_query);
  rows.count = rows.block_queries * imin(c.head_block, group - head_block * c.head_block);
  const int seq_len = kv.sequence_keys(rows.batch);
  rows.offset = seq_len - queries;   // queries are the last positions of their sequence
  rows.row_first = rows.offset + rows.first_query;
  rows.row_last = rows.row_first + rows.block_queries - 1;
  rows.split_first = rows.split * c.split_keys;
  rows.split_last = imin(c.split_keys, seq_len - rows.split_first) + rows.split_first - 1;
  // Qwen temperature of this sequence: the query's factor, and the key's too unless the cache keys carry it.
  const float factor = qwen_factor(seq_len, p.original_max_position);
  const float scale_log2 = c.scale_log2 * (PRE_ROTATED_KEYS ? factor : factor * factor);

  SoftmaxState st;
  #pragma unroll
  for (int x = 0; x < ROWS_PER_WARP; ++x) {
    st.m[x] = MASKED_SCORE;
    st.l[x] = 0.f;
    #pragma unroll
    for (int y = 0; y < DIMS_PER_LANE; ++y) st.acc[x][y] = 0.f;
  }

  (visit_region<Regions>(p, kv, c, rows, st, smem, scale_log2), ...);

  // Each row's sum over the lanes; then out and lse (one split) or this split's partial. Partials
  // use fixed (batch, query, head) slots even for packed rows; the merge places them.
  const long long all_rows = (long long)p.batch * p.queries * p.query_heads;
  #pragma unroll
  for (int x = 0; x < ROWS_PER_WARP; ++x) {
    const int slot = warp + x * PAGED_WARPS;
    if (slot >= rows.count) continue;  // uniform across the warp
    const float l = warp_sum(st.l[x]);
    const int head = rows.head(slot);
    const int query = rows.query(slot);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float lse = l > 0.f ? (st.m[x] + log2f(l)) / LOG2E : MASKED_SCORE;
    if (c.splits == 1) {
      storage_t* out = (storage_t*)p.out + rows.at(query, head, p.out_batch_stride, p.out_seq_stride, p.out_head_stride);
      #pragma unroll
      for (int y = 0; y < DIMS_PER_LANE; ++y) {
        if (y * 32 + lane < HEAD_DIM) out[y * 32 + lane] = from_float<storage_t>(st.acc[x][y] * inv);
      }
      // lse: (query_heads, total_q) for packed rows (total_q = cu_seqlens_q[batch]), else (batch, query_heads, queries).
      const long long lse_at = packed ? (long long)head * p.cu_seqlens_q[p.batch] + rows.first_token + query
                                      : ((long long)rows.batch * p.query_heads + head) * p.queries + query;
      if (lane == 0) p.lse[lse_at] = lse;
    } else {
      const long long slot_lse = ((long long)rows.batch * p.query_heads + head) * p.queries + query;
      float* partial_out = (float*)p.workspace + (rows.split * all_rows + ((long long)rows.batch * p.queries + query) * p.query_heads + head) * HEAD_DIM;
      #pragma unroll
      for (int y = 0; y < DIMS_PER_LANE; ++y) {
        if (y * 32 + lane < HEAD_DIM) partial_out[y * 32 + lane] = st.acc[x][y] * inv;
      }
      if (lane == 0) ((float*)p.workspace)[(long long)c.splits * all_rows * HEAD_DIM + rows.split * all_rows + slot_lse] = lse;
    }
  }
}

// Host: lays out and launches a contiguous decode call (serving_launchers.cu); *_launch routes
// calls of at most DECODE_MAX_QUERIES queries here. workspace NULL: scratch from the stream-ordered pool.
__host__ int launch_contiguous(const AttentionParams& p, int splits, void* workspace, cudaStream_t stream);

}  // namespace paged