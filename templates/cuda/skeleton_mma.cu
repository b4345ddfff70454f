// ---- Tensor-core path: FlashAttention-2 style ----
// A block of WARPS warps owns BLOCK_Q query rows; warp w owns rows ROWS_PER_WARP·w and the next
// ROWS_PER_WARP (M_TILES stacked 16-row MMA tiles), so every K and V fragment a warp loads from
// shared memory feeds M_TILES MMAs. Q·Kᵀ and P·V run on mma.sync.m16n8k16 (16-bit inputs, f32
// accumulation); operands come from shared memory through ldmatrix.
//
// Shared memory: one rotated Q tile, one K tile, one V tile and each thread's softmax row state.
// Q is rotated straight from global memory at each region's positions, so no raw copy stays
// resident. K and V are single-buffered and overlap as FlashAttention-2 does: V of a tile loads
// while Q·Kᵀ runs, K of the next tile loads while P·V runs. Rows are XOR-swizzled in 16-byte chunks
// so ldmatrix is free of bank conflicts. The output is staged through the Q tile's shared memory
// and leaves in 16-byte stores. Keys arrive rotated (rotate_keys_kernel, or the caller) unless a
// region places keys at its own position; then each K tile is rotated in place after it lands.

constexpr int WARPS = THREADS / 32;
constexpr int M_TILES = BLOCK_Q / (16 * WARPS);                 // 16-row MMA tiles per warp
constexpr int ROWS_PER_WARP = 16 * M_TILES;
static_assert(M_TILES * 16 * WARPS == BLOCK_Q, "BLOCK_Q must be a multiple of 16 rows per warp");
constexpr int N_TILES = BLOCK_K / 8;                            // 8-key MMA tiles of S per row tile
constexpr int D_TILES = HEAD_DIM / 8;                           // 8-column MMA tiles of O per row tile
constexpr int CHUNKS_PER_ROW = HEAD_DIM / 8;                    // 16-byte chunks per row
constexpr int SWIZZLE = (CHUNKS_PER_ROW < 8 ? CHUNKS_PER_ROW : 8) - 1;
static_assert((CHUNKS_PER_ROW & (CHUNKS_PER_ROW - 1)) == 0, "the swizzle keeps every chunk inside its row");
constexpr int Q_TILE = BLOCK_Q * HEAD_DIM;
constexpr int KV_TILE = BLOCK_K * HEAD_DIM;
constexpr int ML_FLOATS = 4 * M_TILES * THREADS;                // running max and sum per thread-row
constexpr int SMEM_ELEMENTS = Q_TILE + 2 * KV_TILE + ML_FLOATS * 2;  // rotated Q, K, V, softmax state

__device__ __forceinline__ int smem_index(int row, int col) {
  return row * HEAD_DIM + ((((col >> 3) ^ (row & SWIZZLE))) << 3) + (col & 7);
}

// ---- PTX wrappers: the only code the CPU emulation swaps ----
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::{{mmaEmulation}}(d, a, b, d);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.{{mmaType}}.{{mmaType}}.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}
// `row` is a 32-bit shared-memory address (shared_address): one register per operand base.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t row) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4(r, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t row) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4_trans(r, row);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
#endif
}
// 16 bytes global → shared; `bytes` = 0 zero-fills (rows past the end of the sequence).
__device__ __forceinline__ void cp_async_16(storage_t* dst, const storage_t* src, int bytes) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_cg_16(shared_address(dst), src, bytes);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(shared_address(dst)), "l"(src), "r"(bytes));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_commit_group();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
__device__ __forceinline__ void cp_async_wait_all() {
#ifdef DCAGEN_EMULATE
  dcagen_emu::cp_async_wait_group(0);
#else
  asm volatile("cp.async.wait_group 0;\n" ::);
#endif
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  {{packTwo}}
}

// One 16-byte chunk per thread per step: `rows` rows of HEAD_DIM from global (row stride in
// elements), rows at or past `valid_rows` zero-filled.
__device__ __forceinline__ void load_tile_async(storage_t* tile, const storage_t* __restrict__ src, long long row_stride,
                                                int rows, int valid_rows, int tid) {
  for (int c = tid; c < rows * CHUNKS_PER_ROW; c += THREADS) {
    const int row = c / CHUNKS_PER_ROW;
    const int col = (c % CHUNKS_PER_ROW) * 8;
    const bool valid = row < valid_rows;
    const storage_t* from = src + (valid ? row * row_stride + col : 0);
    cp_async_16(tile + smem_index(row, col), from, valid ? 16 : 0);
  }
}

// Per thread: rows g and g + 8 of each of the warp's M_TILES row tiles (row index r = 2·mt + h).
struct SoftmaxState {
  float acc[M_TILES][D_TILES][4];     // output accumulators: 8-column n-tiles over the head dim
};
// Running max (raw scores) and this thread's share of the running sum of each of its rows live in
// shared memory, [2·M_TILES][THREADS] each: the softmax touches them once per tile, and the
// registers go to the accumulators.
__device__ __forceinline__ float& row_max_of(float* ml, int r) { return ml[r * THREADS + threadIdx.x]; }
__device__ __forceinline__ float& row_sum_of(float* ml, int r) { return ml[(2 * M_TILES + r) * THREADS + threadIdx.x]; }

// Rotates the block's query rows from global memory into sq at each row's region position (any
// RoPE style, partial rotary); rows at or past `valid_rows` become zero.
template <class Region>
__device__ __forceinline__ void rotate_queries(storage_t* sq, const storage_t* __restrict__ q, long long q_row_stride, int valid_rows,
                                               const float2* __restrict__ rope, int row_first, int tid) {
  for (int e = tid; e < Q_TILE; e += THREADS) {
    const int row = e / HEAD_DIM;
    const int d = e % HEAD_DIM;
    const float y = row < valid_rows ? rotated_element(q + row * q_row_stride, d, Region::query_position(row_first + row), rope) : 0.f;
    sq[smem_index(row, d)] = from_float<storage_t>(y);
  }
}

// Rotates a landed K tile in place at each key's region key position: each thread owns whole
// rotation pairs, so no other thread reads what it writes. Only patterns whose regions place keys
// at their own positions need this inside the key loop; the others get keys rotated once before
// the kernel runs (rotate_keys_kernel).
template <class Region>
__device__ __forceinline__ void rotate_keys(storage_t* sk, const float2* __restrict__ rope, int key_tile, int tid) {
  for (int e = tid; e < BLOCK_K * ROPE_PAIRS; e += THREADS) {
    const int row = e / ROPE_PAIRS;
    const int pair = e % ROPE_PAIRS;
    const int a = rope_first(pair);
    const int b = rope_partner(a);
    const float2 cs = rope_cos_sin(rope, Region::key_position(key_tile + row), pair);
    const float xa = to_float(sk[smem_index(row, a)]);
    const float xb = to_float(sk[smem_index(row, b)]);
    sk[smem_index(row, a)] = from_float<storage_t>(xa * cs.x - xb * cs.y);
    sk[smem_index(row, b)] = from_float<storage_t>(xb * cs.x + xa * cs.y);
  }
}

// Runs f(RegionTag<R>{}) for R, the r-th of Regions (r uniform across the block). The key loop body
// is shared by every region: only its region-specific parts (the mask of an edge tile, the
// unmasked test, in-loop key rotation) branch on r. One inlined copy of the body per region would
// make the register allocator spill the output accumulators.
template <class R> struct RegionTag { using type = R; };
template <class... Regions, class F>
__device__ __forceinline__ void with_region(int r, F&& f) {
  int k = 0;
  ((k++ == r ? (f(RegionTag<Regions>{}), 0) : 0), ...);
}

// What one region's key loop needs, fixed for the whole region.
struct KeyLoop {
  const storage_t* k_base;
  const storage_t* v_base;
  long long k_stride, v_stride;
  int keys;        // keys in the sequence: rows at or past it load as zeros
  int key_end;     // last key of the region for this query tile
  int row_first;   // first query index of the block (absolute key coordinates)
  float scale_log2;
};

// One key tile of region `region`: K[key_tile] is in flight (or landed) in sk. `masked` (uniform
// across the block) is false for tiles the plan proves fully visible: they skip the element mask
// with one branch. (One body serves both kinds of tile, for the same register reason.)
template <class... Regions>
__device__ __forceinline__ void key_step(const KeyLoop& L, SoftmaxState& st, storage_t* sq, storage_t* sk, storage_t* sv,
                                         const float2* __restrict__ rope, int region, int key_tile, bool masked) {
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4;   // fragment row
  const int t = lane % 4;   // fragment column pair
  float* ml = reinterpret_cast<float*>(sq + Q_TILE + 2 * KV_TILE);
  (void)rope;

  cp_async_wait_all();
  __syncthreads();  // K of this tile has landed for every thread; every warp is done with the previous V
  load_tile_async(sv, L.v_base + (long long)key_tile * L.v_stride, L.v_stride, BLOCK_K, L.keys - key_tile, tid);
  cp_async_commit();
{{rotateKeys}}

  // ldmatrix addresses. Lane l supplies row l % 8 of matrix l / 8 of each x4 load. Every fragment
  // row r has r % 8 = l % 8, so its swizzle is s = l % 8 (masked to SWIZZLE), and the 16-byte chunk
  // it reads is (2·step + c) ^ s = (c ^ s) ^ 2·step for the lane's chunk offset c ∈ {0, 1}. A row
  // is HEAD_DIM · 2 bytes, a power of two above the chunk bits, so a lane's byte offset within a
  // tile is one value per operand: each k-step XORs a constant into it, and each further 16 rows
  // (or 8 keys) of the tile adds a constant.
  const int quad_row = lane % 8;
  const int swizzle = quad_row & SWIZZLE;
  const int matrix = lane / 8;
  uint32_t q_lane = 2 * (warp * ROWS_PER_WARP + (matrix % 2) * 8 + quad_row) * HEAD_DIM + ((((matrix / 2) ^ swizzle)) << 4);
  uint32_t k_lane = 2 * ((matrix / 2) * 8 + quad_row) * HEAD_DIM + ((((matrix % 2) ^ swizzle)) << 4);
  uint32_t v_lane = 2 * ((matrix % 2) * 8 + quad_row) * HEAD_DIM + ((((matrix / 2) ^ swizzle)) << 4);
  // Opaque to the optimiser: without it, NVVM hoists every step's address out of the key loop
  // (32 registers for V alone) into registers the accumulators need.
  asm volatile("" : "+r"(q_lane), "+r"(k_lane), "+r"(v_lane));
  const uint32_t sq_addr = shared_address(sq);
  const uint32_t sk_addr = shared_address(sk);
  const uint32_t sv_addr = shared_address(sv);

  // S = Q·Kᵀ for this warp's ROWS_PER_WARP rows and the tile's BLOCK_K keys. Each K fragment is
  // loaded once and used by all M_TILES row tiles; Q fragments are re-read from shared memory per
  // 16 dims to leave registers for the accumulators.
  float s[M_TILES][N_TILES][4];
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    #pragma unroll
    for (int nt = 0; nt < N_TILES; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.f;
  }
  #pragma unroll
  for (int kk = 0; kk < HEAD_DIM / 16; ++kk) {
    uint32_t qf[M_TILES][4];
    #pragma unroll
    for (int mt = 0; mt < M_TILES; ++mt) {
      ldmatrix_x4(qf[mt], sq_addr + (q_lane ^ (kk << 5)) + mt * 16 * HEAD_DIM * 2);
    }
    #pragma unroll
    for (int nt = 0; nt < N_TILES; nt += 2) {
      uint32_t b[4];
      ldmatrix_x4(b, sk_addr + (k_lane ^ (kk << 5)) + nt * 8 * HEAD_DIM * 2);
      const uint32_t b0[2] = {b[0], b[1]};
      const uint32_t b1[2] = {b[2], b[3]};
      #pragma unroll
      for (int mt = 0; mt < M_TILES; ++mt) {
        mma_16816(s[mt][nt], qf[mt], b0);
        mma_16816(s[mt][nt + 1], qf[mt], b1);
      }
    }
  }

  // Edge tiles only (region boundaries, the causal diagonal, keys past the end): mask elements.
  if (masked) {
    with_region<Regions...>(region, [&](auto tag) {
      using Region = typename decltype(tag)::type;
      #pragma unroll
      for (int mt = 0; mt < M_TILES; ++mt) {
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int i = L.row_first + warp * ROWS_PER_WARP + mt * 16 + g + h * 8;
          // Interval regions: the row's key range once, then two compares per score.
          const int lo = Region::ROW_INTERVAL ? Region::key_begin(i) : 0;
          const int hi = Region::ROW_INTERVAL ? Region::key_end(i) : 0;
          #pragma unroll
          for (int nt = 0; nt < N_TILES; ++nt) {
            #pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int j = key_tile + nt * 8 + 2 * t + c;
              const bool visible = Region::ROW_INTERVAL ? (j >= lo && j <= hi) : Region::visible(i, j);
              if (!visible) s[mt][nt][2 * h + c] = MASKED_SCORE;
            }
          }
        }
      }
    });
  }

  // Online softmax on raw scores, one row tile at a time: each row's BLOCK_K scores are spread over
  // the 4 threads of a quad; p = 2^(s·scale·log2e − m·scale·log2e) is one FFMA and one
  // ex2.approx.ftz per score. P goes to 16-bit A fragments as soon as its row tile is done
  // (FlashAttention-2's register reuse: S accumulators become P·V's A operand), so the f32 scores
  // die early and leave registers to the output accumulators.
  uint32_t pf[M_TILES][BLOCK_K / 16][4];
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = 2 * mt + h;
      float row_max = row_max_of(ml, r);
      #pragma unroll
      for (int nt = 0; nt < N_TILES; ++nt) row_max = fmaxf(row_max, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
      row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, 1));
      row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, 2));
      const SoftmaxRescale step = softmax_rescale(row_max_of(ml, r), row_max, L.scale_log2);
      const float max_scaled = step.base;
      const float alpha = step.alpha;
      float row_sum = 0.f;
      #pragma unroll
      for (int nt = 0; nt < N_TILES; ++nt) {
        s[mt][nt][2 * h] = exp2_ftz(fmaf(s[mt][nt][2 * h], L.scale_log2, -max_scaled));
        s[mt][nt][2 * h + 1] = exp2_ftz(fmaf(s[mt][nt][2 * h + 1], L.scale_log2, -max_scaled));
        row_sum += s[mt][nt][2 * h] + s[mt][nt][2 * h + 1];
      }
      row_sum_of(ml, r) = row_sum_of(ml, r) * alpha + row_sum;
      row_max_of(ml, r) = step.m;
      #pragma unroll
      for (int dt = 0; dt < D_TILES; ++dt) {
        st.acc[mt][dt][2 * h] *= alpha;
        st.acc[mt][dt][2 * h + 1] *= alpha;
      }
    }
    #pragma unroll
    for (int kc = 0; kc < BLOCK_K / 16; ++kc) {
      pf[mt][kc][0] = pack2(s[mt][2 * kc][0], s[mt][2 * kc][1]);
      pf[mt][kc][1] = pack2(s[mt][2 * kc][2], s[mt][2 * kc][3]);
      pf[mt][kc][2] = pack2(s[mt][2 * kc + 1][0], s[mt][2 * kc + 1][1]);
      pf[mt][kc][3] = pack2(s[mt][2 * kc + 1][2], s[mt][2 * kc + 1][3]);
    }
  }

  // Issued after the softmax, when P is 16-bit: the next K load's address math does not compete
  // with the f32 scores for registers; it still overlaps P·V.
  cp_async_wait_all();
  __syncthreads();  // V of this tile has landed; every warp is done reading K
  const int next = key_tile + BLOCK_K;
  if (next <= L.key_end) {
    load_tile_async(sk, L.k_base + (long long)next * L.k_stride, L.k_stride, BLOCK_K, L.keys - next, tid);
  }
  cp_async_commit();

  // O += P·V: each V fragment is loaded once for all M_TILES row tiles.
  #pragma unroll
  for (int kc = 0; kc < BLOCK_K / 16; ++kc) {
    #pragma unroll
    for (int dt = 0; dt < D_TILES; dt += 2) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, sv_addr + (v_lane ^ (dt << 4)) + kc * 16 * HEAD_DIM * 2);
      const uint32_t b0[2] = {b[0], b[1]};
      const uint32_t b1[2] = {b[2], b[3]};
      #pragma unroll
      for (int mt = 0; mt < M_TILES; ++mt) {
        mma_16816(st.acc[mt][dt], pf[mt][kc], b0);
        mma_16816(st.acc[mt][dt + 1], pf[mt][kc], b1);
      }
    }
  }
}

// The fused pass over the regions in the plan's visit order: per region, rotate Q at the region's
// positions, then walk its key tiles; only edge tiles the plan cannot prove unmasked compute the
// element mask.
template <class... Regions>
__device__ __forceinline__ void visit_regions(const AttentionParams& p, SoftmaxState& st, storage_t* smem, int row0, int row_first, int row_last,
                                              const storage_t* __restrict__ q, const storage_t* __restrict__ k_base, const storage_t* __restrict__ v_base) {
  const int tid = threadIdx.x;
  storage_t* sq = smem;
  storage_t* sk = smem + Q_TILE;
  storage_t* sv = sk + KV_TILE;
  const float2* __restrict__ rope = (const float2*)p.rope;
  #pragma unroll 1
  for (int region = 0; region < (int)sizeof...(Regions); ++region) {
    int key_begin = 0;
    int key_end = -1;
    with_region<Regions...>(region, [&](auto tag) {
      using Region = typename decltype(tag)::type;
      key_begin = Region::key_begin(row_first);
      key_end = Region::key_end(row_last);
    });
    if (key_begin > key_end) continue;  // the tile meets no key of this region (uniform across the block)
    const KeyLoop L = {k_base, v_base, p.k_seq_stride, p.v_seq_stride, p.keys, key_end, row_first, p.logit_scale * LOG2E};

    int key_tile = (key_begin / BLOCK_K) * BLOCK_K;
    __syncthreads();  // the previous region is done with sq, sk and sv
    load_tile_async(sk, k_base + (long long)key_tile * p.k_seq_stride, p.k_seq_stride, BLOCK_K, p.keys - key_tile, tid);
    cp_async_commit();
    with_region<Regions...>(region, [&](auto tag) {  // overlaps the K load
      rotate_queries<typename decltype(tag)::type>(sq, q, p.q_seq_stride, p.queries - row0, rope, row_first, tid);
    });

    #pragma unroll 1
    for (; key_tile <= key_end; key_tile += BLOCK_K) {
      bool masked = true;
      with_region<Regions...>(region, [&](auto tag) { masked = !decltype(tag)::type::unmasked(row_first, row_last, key_tile); });
      key_step<Regions...>(L, st, sq, sk, sv, rope, region, key_tile, masked);
    }
  }
}

// The fused kernel (PARTIAL = false) or one three-pass region kernel writing partial OUTPUT_SLOT.
// Blocks run longest-first: every region's key range grows with the query index, so block x takes
// the query tile gridDim.x − 1 − x and the tiles with the most keys start first.
template <int OUTPUT_SLOT, bool PARTIAL, class... Regions>
__global__ void __launch_bounds__(THREADS, 2) attention_kernel(const AttentionParams p) {
  DCAGEN_DYNAMIC_SMEM(storage_t, smem);
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4;
  const int t = lane % 4;
  const int batch = blockIdx.z;
  const int head = blockIdx.y;
  const int kv_head = head / (p.query_heads / p.key_heads);   // GQA
  const int offset = p.keys - p.queries;                      // queries are the last Sq positions
  const int row0 = (gridDim.x - 1 - blockIdx.x) * BLOCK_Q;    // longest-first
  const int row_first = row0 + offset;
  const int row_last = imin(row0 + BLOCK_Q, p.queries) - 1 + offset;
  const storage_t* q = (const storage_t*)p.q + batch * p.q_batch_stride + head * p.q_head_stride + (long long)row0 * p.q_seq_stride;
  const storage_t* k_base = (const storage_t*)p.k + batch * p.k_batch_stride + kv_head * p.k_head_stride;
  const storage_t* v_base = (const storage_t*)p.v + batch * p.v_batch_stride + kv_head * p.v_head_stride;

  SoftmaxState st;
  float* ml = reinterpret_cast<float*>(smem + Q_TILE + 2 * KV_TILE);
  #pragma unroll
  for (int r = 0; r < 2 * M_TILES; ++r) {
    row_max_of(ml, r) = MASKED_SCORE;
    row_sum_of(ml, r) = 0.f;
  }
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    #pragma unroll
    for (int dt = 0; dt < D_TILES; ++dt) st.acc[mt][dt][0] = st.acc[mt][dt][1] = st.acc[mt][dt][2] = st.acc[mt][dt][3] = 0.f;
  }

  visit_regions<Regions...>(p, st, smem, row0, row_first, row_last, q, k_base, v_base);

  // Normalise; write the LSE; stage the output tile in shared memory (the Q tile's space).
  const float scale_log2 = p.logit_scale * LOG2E;
  const long long slot_out = PARTIAL ? (long long)OUTPUT_SLOT * p.batch * p.queries * p.query_heads * HEAD_DIM : 0;
  storage_t* so = smem;
  __syncthreads();  // every warp is done reading sq, sk and sv
  #pragma unroll
  for (int mt = 0; mt < M_TILES; ++mt) {
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = 2 * mt + h;
      float l = row_sum_of(ml, r);
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int tile_row = warp * ROWS_PER_WARP + mt * 16 + g + h * 8;
      const int row = row0 + tile_row;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      #pragma unroll
      for (int dt = 0; dt < D_TILES; ++dt) {
        const int d = dt * 8 + 2 * t;
        const float o0 = st.acc[mt][dt][2 * h] * inv;
        const float o1 = st.acc[mt][dt][2 * h + 1] * inv;
        if (PARTIAL) {
          if (row < p.queries) {
            float* out = (float*)p.partial_out + slot_out + (((long long)batch * p.queries + row) * p.query_heads + head) * HEAD_DIM;
            *reinterpret_cast<float2*>(out + d) = make_float2(o0, o1);
          }
        } else {
          *reinterpret_cast<uint32_t*>(so + smem_index(tile_row, d)) = pack2(o0, o1);
        }
      }
      if (t == 0 && row < p.queries) {
        const float lse = l > 0.f ? (row_max_of(ml, r) * scale_log2 + log2f(l)) / LOG2E : MASKED_SCORE;
        float* lse_out = PARTIAL ? (float*)p.partial_lse + (long long)OUTPUT_SLOT * p.batch * p.query_heads * p.queries : p.lse;
        lse_out[((long long)batch * p.query_heads + head) * p.queries + row] = lse;
      }
    }
  }
  if (!PARTIAL) {
    __syncthreads();  // the staged output tile is complete
    storage_t* out = (storage_t*)p.out + batch * p.out_batch_stride + head * p.out_head_stride + (long long)row0 * p.out_seq_stride;
    for (int c = tid; c < BLOCK_Q * CHUNKS_PER_ROW; c += THREADS) {
      const int tile_row = c / CHUNKS_PER_ROW;
      const int col = (c % CHUNKS_PER_ROW) * 8;
      if (row0 + tile_row < p.queries) {
        *reinterpret_cast<uint4*>(out + tile_row * p.out_seq_stride + col) = *reinterpret_cast<const uint4*>(so + smem_index(tile_row, col));
      }
    }
  }
}
