// ---- Tensor-core path: FlashAttention-2 style ----
// A block of THREADS/32 warps owns BLOCK_Q query rows; warp w owns rows 16w..16w+15. Q·Kᵀ and P·V
// run on mma.sync.m16n8k16 (16-bit inputs, f32 accumulation); operands come from shared memory
// through ldmatrix; K and V tiles arrive by cp.async, double-buffered, and K is rotated in place
// after it lands. Shared memory rows are XOR-swizzled in 16-byte chunks so ldmatrix is free of
// bank conflicts.

constexpr int CHUNKS_PER_ROW = HEAD_DIM / 8;                    // 16-byte chunks per row
constexpr int SWIZZLE = (CHUNKS_PER_ROW < 8 ? CHUNKS_PER_ROW : 8) - 1;
constexpr int Q_TILE = BLOCK_Q * HEAD_DIM;
constexpr int KV_TILE = BLOCK_K * HEAD_DIM;
constexpr int SMEM_ELEMENTS = 2 * Q_TILE + 4 * KV_TILE;         // raw Q, rotated Q, 2 × K, 2 × V

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
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const storage_t* row) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4(r, shared_address(row));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const storage_t* row) {
#ifdef DCAGEN_EMULATE
  dcagen_emu::ldmatrix_x4_trans(r, shared_address(row));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row)));
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

struct SoftmaxState {
  float m[2];                 // running max of rows g and g + 8, in log2 units
  float l[2];                 // this thread's share of the running sums
  float acc[HEAD_DIM / 8][4]; // output accumulators: 8-column n-tiles over the head dim
};

// Rotates the raw query tile into sq at each row's region position (any RoPE style, partial rotary).
template <class Region>
__device__ __forceinline__ void rotate_queries(storage_t* sq, const storage_t* sq_raw, const float2* __restrict__ rope, int row_first, int tid) {
  for (int e = tid; e < Q_TILE; e += THREADS) {
    const int row = e / HEAD_DIM;
    const int d = e % HEAD_DIM;
    const float x = to_float(sq_raw[smem_index(row, d)]);
    float y = x;
    if (d < ROTARY_DIM) {
      const float2 cs = rope_cos_sin(rope, Region::query_position(row_first + row), rope_pair(d));
      y = x * cs.x + rope_sign(d) * to_float(sq_raw[smem_index(row, rope_partner(d))]) * cs.y;
    }
    sq[smem_index(row, d)] = from_float<storage_t>(y);
  }
}

// Rotates a landed K tile in place at each key's region key position: each thread owns whole
// rotation pairs, so no other thread reads what it writes.
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

// One region of the fused pass: rotate Q at the region's positions, then walk its key tiles.
template <class Region>
__device__ __forceinline__ void visit_region(const AttentionParams& p, SoftmaxState& st, storage_t* smem, int row_first, int row_last,
                             const storage_t* __restrict__ k_base, const storage_t* __restrict__ v_base) {
  const int key_begin = Region::key_begin(row_first);
  const int key_end = Region::key_end(row_last);
  if (key_begin > key_end) return;  // the tile meets no key of this region (uniform across the block)
  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4;   // fragment row
  const int t = lane % 4;   // fragment column pair
  storage_t* sq_raw = smem;
  storage_t* sq = smem + Q_TILE;
  storage_t* sk = smem + 2 * Q_TILE;
  storage_t* sv = sk + 2 * KV_TILE;
  const float2* __restrict__ rope = (const float2*)p.rope;
  const float scale_log2 = p.logit_scale * LOG2E;

  const int first_tile = (key_begin / BLOCK_K) * BLOCK_K;
  __syncthreads();  // the previous region is done with sq, sk and sv
  load_tile_async(sk, k_base + (long long)first_tile * p.k_seq_stride, p.k_seq_stride, BLOCK_K, p.keys - first_tile, tid);
  load_tile_async(sv, v_base + (long long)first_tile * p.v_seq_stride, p.v_seq_stride, BLOCK_K, p.keys - first_tile, tid);
  cp_async_commit();
  rotate_queries<Region>(sq, sq_raw, rope, row_first, tid);
  __syncthreads();

  int stage = 0;
  for (int key_tile = first_tile; key_tile <= key_end; key_tile += BLOCK_K, stage ^= 1) {
    storage_t* k_tile = sk + stage * KV_TILE;
    storage_t* v_tile = sv + stage * KV_TILE;
    cp_async_wait_all();
    __syncthreads();  // this tile has landed for every thread; the other stage is free
    const int next = key_tile + BLOCK_K;
    if (next <= key_end) {
      load_tile_async(sk + (stage ^ 1) * KV_TILE, k_base + (long long)next * p.k_seq_stride, p.k_seq_stride, BLOCK_K, p.keys - next, tid);
      load_tile_async(sv + (stage ^ 1) * KV_TILE, v_base + (long long)next * p.v_seq_stride, p.v_seq_stride, BLOCK_K, p.keys - next, tid);
    }
    cp_async_commit();
{{rotateKeys}}
    // S = Q·Kᵀ for this warp's 16 rows and the tile's BLOCK_K keys. Q fragments are re-read from
    // shared memory per tile (one ldmatrix per 16 dims) to leave registers for the accumulators.
    float s[BLOCK_K / 8][4];
    #pragma unroll
    for (int nt = 0; nt < BLOCK_K / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
    #pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; ++kk) {
      uint32_t qf[4];
      ldmatrix_x4(qf, sq + smem_index(warp * 16 + ((lane / 8) % 2) * 8 + lane % 8, kk * 16 + (lane / 16) * 8));
      #pragma unroll
      for (int nt = 0; nt < BLOCK_K / 8; nt += 2) {
        uint32_t b[4];
        const int m = lane / 8;
        ldmatrix_x4(b, k_tile + smem_index(nt * 8 + (m / 2) * 8 + lane % 8, kk * 16 + (m % 2) * 8));
        const uint32_t b0[2] = {b[0], b[1]};
        const uint32_t b1[2] = {b[2], b[3]};
        mma_16816(s[nt], qf, b0);
        mma_16816(s[nt + 1], qf, b1);
      }
    }

    // Scale to log2 units; edge tiles mask keys outside the region (and past the diagonal).
    const bool unmasked = Region::unmasked(row_first, row_last, key_tile);
    #pragma unroll
    for (int nt = 0; nt < BLOCK_K / 8; ++nt) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * scale_log2;
        if (!unmasked) {
          const int i = row_first + warp * 16 + g + (e / 2) * 8;
          const int j = key_tile + nt * 8 + 2 * t + (e % 2);
          if (!Region::visible(i, j)) x = MASKED_SCORE;
        }
        s[nt][e] = x;
      }
    }

    // Online softmax: each row's BLOCK_K scores are spread over the 4 threads of a quad.
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
      float row_max = MASKED_SCORE;
      #pragma unroll
      for (int nt = 0; nt < BLOCK_K / 8; ++nt) row_max = fmaxf(row_max, fmaxf(s[nt][2 * h], s[nt][2 * h + 1]));
      row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, 1));
      row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, 2));
      const float m_new = fmaxf(st.m[h], row_max);
      const float m_base = m_new == MASKED_SCORE ? 0.f : m_new;  // a row with nothing visible yet stays at zero
      const float alpha = exp2f(st.m[h] - m_base);
      float row_sum = 0.f;
      #pragma unroll
      for (int nt = 0; nt < BLOCK_K / 8; ++nt) {
        s[nt][2 * h] = exp2f(s[nt][2 * h] - m_base);
        s[nt][2 * h + 1] = exp2f(s[nt][2 * h + 1] - m_base);
        row_sum += s[nt][2 * h] + s[nt][2 * h + 1];
      }
      st.l[h] = st.l[h] * alpha + row_sum;
      st.m[h] = m_new;
      #pragma unroll
      for (int dt = 0; dt < HEAD_DIM / 8; ++dt) {
        st.acc[dt][2 * h] *= alpha;
        st.acc[dt][2 * h + 1] *= alpha;
      }
    }

    // O += P·V: the S accumulators become A fragments directly (FlashAttention-2's register reuse).
    #pragma unroll
    for (int kc = 0; kc < BLOCK_K / 16; ++kc) {
      const uint32_t a[4] = {pack2(s[2 * kc][0], s[2 * kc][1]), pack2(s[2 * kc][2], s[2 * kc][3]),
                             pack2(s[2 * kc + 1][0], s[2 * kc + 1][1]), pack2(s[2 * kc + 1][2], s[2 * kc + 1][3])};
      #pragma unroll
      for (int dt = 0; dt < HEAD_DIM / 8; dt += 2) {
        uint32_t b[4];
        const int m = lane / 8;
        ldmatrix_x4_trans(b, v_tile + smem_index(kc * 16 + (m % 2) * 8 + lane % 8, dt * 8 + (m / 2) * 8));
        const uint32_t b0[2] = {b[0], b[1]};
        const uint32_t b1[2] = {b[2], b[3]};
        mma_16816(st.acc[dt], a, b0);
        mma_16816(st.acc[dt + 1], a, b1);
      }
    }
  }
}

// The fused kernel (PARTIAL = false) or one three-pass region kernel writing partial OUTPUT_SLOT.
template <int OUTPUT_SLOT, bool PARTIAL, class... Regions>
__global__ void __launch_bounds__(THREADS, 1) attention_kernel(const AttentionParams p) {
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
  const int row0 = blockIdx.x * BLOCK_Q;
  const int row_first = row0 + offset;
  const int row_last = imin(row0 + BLOCK_Q, p.queries) - 1 + offset;
  const storage_t* q = (const storage_t*)p.q + batch * p.q_batch_stride + head * p.q_head_stride + (long long)row0 * p.q_seq_stride;
  const storage_t* k_base = (const storage_t*)p.k + batch * p.k_batch_stride + kv_head * p.k_head_stride;
  const storage_t* v_base = (const storage_t*)p.v + batch * p.v_batch_stride + kv_head * p.v_head_stride;

  load_tile_async(smem, q, p.q_seq_stride, BLOCK_Q, p.queries - row0, tid);
  cp_async_commit();
  cp_async_wait_all();

  SoftmaxState st;
  st.m[0] = st.m[1] = MASKED_SCORE;
  st.l[0] = st.l[1] = 0.f;
  #pragma unroll
  for (int dt = 0; dt < HEAD_DIM / 8; ++dt) st.acc[dt][0] = st.acc[dt][1] = st.acc[dt][2] = st.acc[dt][3] = 0.f;

  (visit_region<Regions>(p, st, smem, row_first, row_last, k_base, v_base), ...);

  #pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = st.l[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = row0 + warp * 16 + g + h * 8;
    if (row >= p.queries) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const long long slot_out = PARTIAL ? (long long)OUTPUT_SLOT * p.batch * p.queries * p.query_heads * HEAD_DIM : 0;
    #pragma unroll
    for (int dt = 0; dt < HEAD_DIM / 8; ++dt) {
      const int d = dt * 8 + 2 * t;
      const float o0 = st.acc[dt][2 * h] * inv;
      const float o1 = st.acc[dt][2 * h + 1] * inv;
      if (PARTIAL) {
        float* out = (float*)p.partial_out + slot_out + (((long long)batch * p.queries + row) * p.query_heads + head) * HEAD_DIM;
        out[d] = o0;
        out[d + 1] = o1;
      } else {
        storage_t* out = (storage_t*)p.out + batch * p.out_batch_stride + head * p.out_head_stride + (long long)row * p.out_seq_stride;
        out[d] = from_float<storage_t>(o0);
        out[d + 1] = from_float<storage_t>(o1);
      }
    }
    if (t == 0) {
      const float lse = l > 0.f ? (st.m[h] + log2f(l)) / LOG2E : MASKED_SCORE;
      float* lse_out = PARTIAL ? (float*)p.partial_lse + (long long)OUTPUT_SLOT * p.batch * p.query_heads * p.queries : p.lse;
      lse_out[((long long)batch * p.query_heads + head) * p.queries + row] = lse;
    }
  }
}
