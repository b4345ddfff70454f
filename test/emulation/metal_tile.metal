// Test kernels for the Metal emulation (test/metal.test.ts, driven by metal_tile_main.cpp).
//
// tile_body: two simdgroups stage a 16×16 tile of A in threadgroup memory, multiply it by Bᵀ (B read
// with a transposed simdgroup_load straight from device memory), then scale each row and add a
// per-element offset through thread_elements() (so the result depends on Apple's lane layout),
// reduce rows with simd_shuffle_xor and store the 16×8 result with simdgroup_store.
// Planted bugs the emulator must catch (compile with -D...=1):
//   PLANT_MISSING_BARRIER  no threadgroup_barrier between the staging writes and the simdgroup loads
//   PLANT_WRONG_ELEMENT    lanes assumed to hold a row-major 8×8 layout (4 lanes per row)
// layout_body: each lane writes its lane id into thread_elements() and stores the matrix, so the
// host can check the emulator's layout against the documented one; also a diagonal matrix.
// overrun_body: a simdgroup_load past the end of threadgroup memory, which the emulator reports.
#include <metal_stdlib>
using namespace metal;

#ifndef PLANT_MISSING_BARRIER
#define PLANT_MISSING_BARRIER 0
#endif
#ifndef PLANT_WRONG_ELEMENT
#define PLANT_WRONG_ELEMENT 0
#endif

static constant constexpr const int N = 16;        // A is N × N; simdgroup s owns rows 8s .. 8s + 7
static constant constexpr const int THREADS = 64;

// Row and first column of this lane's two elements of an 8×8 simdgroup matrix.
inline int lane_row(uint lane) {
#if PLANT_WRONG_ELEMENT
  return int(lane / 4u);
#else
  return int(((lane >> 4) & 1u) * 4u + ((lane >> 2) & 1u) * 2u + ((lane >> 1) & 1u));
#endif
}
inline int lane_col(uint lane) {
#if PLANT_WRONG_ELEMENT
  return int(lane % 4u) * 2;
#else
  return int(((lane >> 3) & 1u) * 4u + (lane & 1u) * 2u);
#endif
}

// c[r][n] = (A·Bᵀ)[r][n] · scale[r] + 1000 r + n  (r < 16, n < 8); rowsum[r] = Σ_n c[r][n].
inline void tile_body(device const float* a, device const float* b, device const float* scale, device float* c,
                      device float* rowsum, threadgroup float* tg, uint tid, uint lane, uint simd) {
  // Each simdgroup's rows are written by threads of both simdgroups.
  for (int e = int(tid); e < N * N; e += THREADS) tg[e] = a[e];
#if !PLANT_MISSING_BARRIER
  threadgroup_barrier(mem_flags::mem_threadgroup);
#endif
  simdgroup_matrix<float, 8, 8> acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int kk = 0; kk < N / 8; ++kk) {
    simdgroup_matrix<float, 8, 8> x;
    simdgroup_matrix<float, 8, 8> y;
    simdgroup_load(x, tg + int(simd) * 8 * N + kk * 8, N);   // A[8s.., 8kk..]
    simdgroup_load(y, b + kk * 8, N, ulong2(0, 0), true);     // Bᵀ[8kk.., 0..8] (B is 8 × N)
    simdgroup_multiply_accumulate(acc, x, y, acc);
  }
  const int r = int(simd) * 8 + lane_row(lane);
  const int col = lane_col(lane);
  float sum = 0.0f;
  for (int e = 0; e < 2; ++e) {
    const float value = acc.thread_elements()[e] * scale[r] + 1000.0f * float(r) + float(col + e);
    acc.thread_elements()[e] = value;
    sum += value;
  }
  sum += simd_shuffle_xor(sum, ushort(1));
  sum += simd_shuffle_xor(sum, ushort(8));
  if (col == 0) rowsum[r] = sum;
  simdgroup_store(acc, c + int(simd) * 8 * 8, 8);
}

// out[0..64): lane · 2 + e at each element's place; out[64..128): 3 · identity.
inline void layout_body(device float* out, uint lane) {
  simdgroup_matrix<float, 8, 8> m;
  m.thread_elements()[0] = float(lane * 2u);
  m.thread_elements()[1] = float(lane * 2u + 1u);
  simdgroup_store(m, out, 8);
  simdgroup_matrix<float, 8, 8> diagonal(3.0f);
  simdgroup_store(diagonal, out + 64, 8);
}

// overrun_body: a simdgroup_load whose 8×8 block runs past the 64 floats of threadgroup memory
// (rows 1..8 of an 8-wide view): the emulator must stop with a diagnostic.
inline void overrun_body(device float* out, threadgroup float* tg, uint lane) {
  tg[lane] = 1.0f;
  tg[lane + 32] = 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_matrix<float, 8, 8> m;
  simdgroup_load(m, tg + 8, 8);
  simdgroup_store(m, out, 8);
}

kernel void tile_kernel(device const float* a [[buffer(0)]], device const float* b [[buffer(1)]],
                        device const float* scale [[buffer(2)]], device float* c [[buffer(3)]],
                        device float* rowsum [[buffer(4)]], uint tid [[thread_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]], uint simd [[simdgroup_index_in_threadgroup]]) {
  threadgroup float tg[N * N];
  tile_body(a, b, scale, c, rowsum, tg, tid, lane, simd);
}

kernel void layout_kernel(device float* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  layout_body(out, lane);
}
