// divergent_main.cpp: host harness for divergent.cu. Usage: divergent MODE.
// Prints "completed" and checks the output when the kernel returns.
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <cstdio>
#include <cstdlib>

cudaError_t divergent_launch(int mode, float* out, cudaStream_t stream);

int main(int argc, char** argv) {
  int mode = argc > 1 ? atoi(argv[1]) : 3;
  float* dout;
  if (cudaMalloc(&dout, 64 * sizeof(float)) != cudaSuccess) return 2;
  cudaError_t e = divergent_launch(mode, dout, 0);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    printf("CUDA error: %s\n", cudaGetErrorString(e));
    return 2;
  }
  float out[64];
  cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost);
  int bad = 0;
  if (mode == 3)
    for (int i = 0; i < 64; ++i) bad += out[i] != (float)(63 - i);
  printf("completed, %d wrong values\n", bad);
  return bad ? 1 : 0;
}
