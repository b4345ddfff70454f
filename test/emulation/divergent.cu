// divergent.cu: kernels whose synchronisation is broken in ways hardware may
// hang on or silently tolerate; the emulator must abort and say why.
//   mode 0: __syncthreads inside a branch half the block skips (then exits)
//   mode 1: the two halves of the block wait at two different __syncthreads
//   mode 2: a full-mask __shfl_xor_sync after half of each warp returned
//   mode 3: the correct kernel (control)
#include "ptx_wrappers.cuh"

__global__ void divergent(int mode, float* __restrict__ out) {
  __shared__ float s[64];
  const int tid = threadIdx.x;
  s[tid] = (float)tid;
  if (mode == 0) {
    if (tid < 32) {
      __syncthreads();
      out[tid] = s[63 - tid];
    }
  } else if (mode == 1) {
    if (tid < 32) {
      __syncthreads();
    } else {
      __syncthreads();
    }
    out[tid] = s[63 - tid];
  } else if (mode == 2) {
    if (tid % 32 >= 16) return;
    out[tid] = __shfl_xor_sync(0xffffffffu, s[tid], 1);
  } else {
    __syncthreads();
    out[tid] = s[63 - tid];
  }
}

cudaError_t divergent_launch(int mode, float* out, cudaStream_t stream) {
  DCAGEN_LAUNCH(divergent, 1, 64, 0, stream)(mode, out);
  return cudaGetLastError();
}
