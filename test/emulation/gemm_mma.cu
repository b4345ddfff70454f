// gemm_mma.cu: tiled GEMM on tensor cores (ldmatrix + mma.sync m16n8k16 +
// cp.async double buffering), the emulator's end-to-end test kernel.
// C[M,N] (f32) = A[M,K] * B[K,N]; A, B row-major f16, or bf16 with -DGEMM_BF16.
// M, N multiples of 64, K a multiple of 32.
//
// Planted bugs the emulated run must expose:
//   -DPLANT_WRONG_FRAGMENT=1   A's ldmatrix.x4 lanes address sub-matrices 1 and 2 swapped
//   -DPLANT_WRONG_FRAGMENT=2   the epilogue stores accumulator c1 where c2 belongs
//   -DPLANT_MISSING_WAIT=1     no cp.async.wait_group before a stage is used
//   -DPLANT_MISSING_WAIT=2     wait_group 2 instead of 1 (one group too lax)
//   -DPLANT_MISSING_BARRIER=1  no __syncthreads after a stage is consumed, so the
//                              next prefetch overwrites it while others still read
#include "ptx_wrappers.cuh"

#ifndef PLANT_WRONG_FRAGMENT
#define PLANT_WRONG_FRAGMENT 0
#endif
#ifndef PLANT_MISSING_WAIT
#define PLANT_MISSING_WAIT 0
#endif
#ifndef PLANT_MISSING_BARRIER
#define PLANT_MISSING_BARRIER 0
#endif

#ifdef GEMM_BF16
typedef __nv_bfloat16 elem_t;
#define MMA_16816 mma_16816_bf16
#else
typedef __half elem_t;
#define MMA_16816 mma_16816_f16
#endif

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 128;  // 4 warps, each a 32x32 tile
constexpr int A_LD = BK + 8;                              // padded rows stay 16-byte aligned
constexpr int B_LD = BN + 8;
constexpr int A_STAGE = BM * A_LD, B_STAGE = BK * B_LD;
constexpr int SMEM_BYTES = 2 * (A_STAGE + B_STAGE) * (int)sizeof(elem_t);

__device__ __forceinline__ void load_stage(elem_t* As, elem_t* Bs, const elem_t* A, const elem_t* B, int m0, int n0,
                                           int k0, int N, int K) {
  for (int c = threadIdx.x; c < BM * BK / 8; c += THREADS) {  // 16-byte chunks
    int r = c / (BK / 8), col = (c % (BK / 8)) * 8;
    cp_async_16(&As[r * A_LD + col], &A[(size_t)(m0 + r) * K + k0 + col]);
  }
  for (int c = threadIdx.x; c < BK * BN / 8; c += THREADS) {
    int r = c / (BN / 8), col = (c % (BN / 8)) * 8;
    cp_async_16(&Bs[r * B_LD + col], &B[(size_t)(k0 + r) * N + n0 + col]);
  }
}

__global__ void __launch_bounds__(THREADS)
    gemm_kernel(const elem_t* __restrict__ A, const elem_t* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
  DCAGEN_DYNAMIC_SMEM(unsigned char, smem_raw);
  elem_t* As = reinterpret_cast<elem_t*>(smem_raw);
  elem_t* Bs = As + 2 * A_STAGE;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 2, wn = warp % 2;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  (void)M;

  float acc[2][4][4];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  const int KT = K / BK;
  load_stage(As, Bs, A, B, m0, n0, 0, N, K);
  cp_async_commit();
  for (int kt = 0; kt < KT; ++kt) {
    const int s = kt & 1;
    if (kt + 1 < KT) load_stage(As + (s ^ 1) * A_STAGE, Bs + (s ^ 1) * B_STAGE, A, B, m0, n0, (kt + 1) * BK, N, K);
    cp_async_commit();  // possibly empty, so that "all but the newest group" is always stage s
#if PLANT_MISSING_WAIT == 2
    cp_async_wait<2>();
#elif PLANT_MISSING_WAIT == 0
    cp_async_wait<1>();
#endif
    __syncthreads();

    const elem_t* as = As + s * A_STAGE;
    const elem_t* bs = Bs + s * B_STAGE;
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t a[2][4], b[4][2];
      for (int mi = 0; mi < 2; ++mi) {
        // x4: lanes 8j..8j+7 address sub-matrix j = (rows +8*(j&1), cols +8*(j>>1)).
#if PLANT_WRONG_FRAGMENT == 1
        int row = wm * 32 + mi * 16 + (lane % 8) + (lane / 16) * 8;
        int col = kk + ((lane / 8) % 2) * 8;
#else
        int row = wm * 32 + mi * 16 + (lane % 16);
        int col = kk + (lane / 16) * 8;
#endif
        ldsm_x4(a[mi], &as[row * A_LD + col]);
      }
      for (int nj = 0; nj < 2; ++nj) {
        // B is k-major in shared memory; .trans turns 8x8 (k, n) blocks into
        // the "col" B fragments: r0/r1 = k 0-7/8-15 of n-tile 2nj, r2/r3 of 2nj+1.
        int j = lane / 8;
        int krow = kk + (j & 1) * 8 + lane % 8;
        int ncol = wn * 32 + nj * 16 + (j >> 1) * 8;
        uint32_t r[4];
        ldsm_x4_trans(r, smem_u32(&bs[krow * B_LD + ncol]));
        b[2 * nj][0] = r[0];
        b[2 * nj][1] = r[1];
        b[2 * nj + 1][0] = r[2];
        b[2 * nj + 1][1] = r[3];
      }
      for (int mi = 0; mi < 2; ++mi)
        for (int ni = 0; ni < 4; ++ni) MMA_16816(acc[mi][ni], a[mi], b[ni], acc[mi][ni]);
    }
#if !PLANT_MISSING_BARRIER
    __syncthreads();  // stage s is refilled by the next iteration's prefetch
#endif
  }

  // Accumulators: c0, c1 at row g, cols 2t, 2t+1; c2, c3 at row g+8.
  const int g = lane / 4, t = lane % 4;
  for (int mi = 0; mi < 2; ++mi)
    for (int ni = 0; ni < 4; ++ni) {
      int row = m0 + wm * 32 + mi * 16 + g, col = n0 + wn * 32 + ni * 8 + 2 * t;
      const float* c = acc[mi][ni];
#if PLANT_WRONG_FRAGMENT == 2
      C[(size_t)row * N + col] = c[0];
      C[(size_t)row * N + col + 1] = c[2];
      C[(size_t)(row + 8) * N + col] = c[1];
#else
      C[(size_t)row * N + col] = c[0];
      C[(size_t)row * N + col + 1] = c[1];
      C[(size_t)(row + 8) * N + col] = c[2];
#endif
      C[(size_t)(row + 8) * N + col + 1] = c[3];
    }
}

bool gemm_is_bf16() {
#ifdef GEMM_BF16
  return true;
#else
  return false;
#endif
}

cudaError_t gemm_launch(const void* A, const void* B, float* C, int M, int N, int K, cudaStream_t stream) {
  cudaError_t e = cudaFuncSetAttribute(gemm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
  if (e != cudaSuccess) return e;
  dim3 grid(N / BN, M / BM);
  DCAGEN_LAUNCH(gemm_kernel, grid, dim3(THREADS), SMEM_BYTES, stream)
  (static_cast<const elem_t*>(A), static_cast<const elem_t*>(B), C, M, N, K);
  return cudaGetLastError();
}
