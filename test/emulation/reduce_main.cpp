// reduce_main.cpp: host harness for reduce.cu. Prints PASS (exit 0) or MISMATCH (exit 1).
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <cmath>
#include <cstdio>
#include <vector>

cudaError_t tree_sum_launch(const float* x, float* out, int blocks, cudaStream_t stream);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "CUDA error '%s' at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);  \
      return 2;                                                                                    \
    }                                                                                              \
  } while (0)

int main() {
  const int blocks = 8, n = blocks * 256;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = 1.0f + (float)((i * 37) % 101) / 8.0f;  // sums are exact in f32
  float *dx, *dout;
  CHECK(cudaMalloc(&dx, n * sizeof(float)));
  CHECK(cudaMalloc(&dout, blocks * sizeof(float)));
  CHECK(cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  CHECK(tree_sum_launch(dx, dout, blocks, 0));
  std::vector<float> out(blocks);
  CHECK(cudaMemcpy(out.data(), dout, blocks * sizeof(float), cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int b = 0; b < blocks; ++b) {
    double ref = 0;
    for (int i = 0; i < 256; ++i) ref += x[b * 256 + i];
    bool ok = out[b] == ref;
    bad += !ok;
    printf("block %d: sum %.3f, expected %.3f%s\n", b, out[b], ref, ok ? "" : "  <-- wrong");
  }
  printf("%s\n", bad ? "MISMATCH" : "PASS");
  return bad ? 1 : 0;
}
