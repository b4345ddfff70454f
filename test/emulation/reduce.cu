// reduce.cu: block-wide sum through a shared-memory tree, with planted barrier bugs.
// Threads read upward in the tree (only forward order runs a reader before its
// writer) and the result is read by the last thread (only reverse order does).
//   -DPLANT_MISSING_BARRIER=1  no __syncthreads between filling the shared array and the tree
//   -DPLANT_MISSING_BARRIER=2  no __syncthreads between the levels of the tree
//   -DPLANT_MISSING_BARRIER=3  no __syncthreads after the last level, before the result is read
#include "ptx_wrappers.cuh"

#ifndef PLANT_MISSING_BARRIER
#define PLANT_MISSING_BARRIER 0
#endif

constexpr int RB = 256;

__global__ void tree_sum(const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float sm[RB];
  const int tid = threadIdx.x;
  sm[tid] = x[blockIdx.x * RB + tid];
#if PLANT_MISSING_BARRIER != 1
  __syncthreads();
#endif
  for (int s = RB / 2; s > 0; s >>= 1) {
    if (tid < s) sm[tid] += sm[tid + s];
#if PLANT_MISSING_BARRIER == 3
    if (s > 1) __syncthreads();
#elif PLANT_MISSING_BARRIER != 2
    __syncthreads();
#endif
  }
  if (tid == RB - 1) out[blockIdx.x] = sm[0];
}

cudaError_t tree_sum_launch(const float* x, float* out, int blocks, cudaStream_t stream) {
  DCAGEN_LAUNCH(tree_sum, blocks, RB, 0, stream)(x, out);
  return cudaGetLastError();
}
