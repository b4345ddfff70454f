// misuse_main.cpp: host harness for misuse.cu. Usage: misuse MODE.
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <cstdio>
#include <cstdlib>
#include <vector>

cudaError_t misuse_launch(int mode, const float* src, int n, float* out, int smem_bytes);

int main(int argc, char** argv) {
  int mode = argc > 1 ? atoi(argv[1]) : 0;
  const int n = 1024;
  float *src, *out;
  if (cudaMalloc(&src, n * sizeof(float)) != cudaSuccess || cudaMalloc(&out, 32 * sizeof(float)) != cudaSuccess)
    return 2;
  std::vector<float> host(n, 1.0f);
  cudaMemcpy(src, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  int smem = mode == 3 ? 64 * 1024 : n * (int)sizeof(float);
  cudaError_t e = misuse_launch(mode, src, n, mode == 4 ? host.data() : out, smem);
  printf("launch returned: %s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 2;
}
