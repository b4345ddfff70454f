// misuse.cu: kernels and launches that break CUDA's rules in ways a GPU may
// silently tolerate; the emulator must stop and name the problem.
//   mode 0: ldmatrix with row addresses that are not 16-byte aligned
//   mode 1: cp.async reading past the end of its cudaMalloc allocation
//   mode 2: a store one element past the dynamic shared memory of the launch
//   mode 3: 64 KiB of dynamic shared memory without cudaFuncSetAttribute
//   mode 4: a host pointer passed as a kernel argument
//   mode 5: a thread overflowing its stack (384 KiB of locals)
#include "ptx_wrappers.cuh"

__device__ __noinline__ float big_frame(int seed) {
  volatile float big[96 * 1024];
  for (int i = 0; i < 96 * 1024; i += 1024) big[i] = (float)(seed + i);
  return big[seed & 1023];
}

__global__ void misuse(int mode, const float* __restrict__ src, int n, float* __restrict__ out) {
  DCAGEN_DYNAMIC_SMEM(float, dyn);
  __shared__ __align__(16) uint16_t tile[16 * 16];
  const int tid = threadIdx.x;
  float v = 0.0f;
  if (mode == 0) {
    for (int i = tid; i < 256; i += 32) tile[i] = 0;
    __syncwarp();
    uint32_t r[4];
    ldsm_x4(r, &tile[(tid % 16) * 16 + 1]);
    v = (float)r[0];
  } else if (mode == 1) {
    cp_async_16(&dyn[tid * 4], &src[n - 4 + tid * 4]);
    cp_async_commit();
    cp_async_wait<0>();
    v = dyn[tid * 4];
  } else if (mode == 2) {
    if (tid == 0) dyn[n] = 1.0f;
    v = dyn[0];
  } else if (mode == 5) {
    v = big_frame(tid);
  }
  out[tid] = v;
}

cudaError_t misuse_launch(int mode, const float* src, int n, float* out, int smem_bytes) {
  DCAGEN_LAUNCH(misuse, 1, 32, smem_bytes, 0)(mode, src, n, out);
  cudaError_t e = cudaGetLastError();
  return e != cudaSuccess ? e : cudaDeviceSynchronize();
}
