// gemm_main.cpp: host harness for gemm_mma.cu; runs natively or emulated.
// Usage: gemm [M N K]. Prints PASS (exit 0) or MISMATCH (exit 1).
// Inputs are k/64 with |k| <= 64, exact in f16 and bf16, so every partial sum
// is exact in f32 and the result must equal the double reference exactly.
#ifndef DCAGEN_EMULATE
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

cudaError_t gemm_launch(const void* A, const void* B, float* C, int M, int N, int K, cudaStream_t stream);
bool gemm_is_bf16();

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "CUDA error '%s' at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);  \
      return 2;                                                                                    \
    }                                                                                              \
  } while (0)

static uint16_t to_bits(float v, bool bf16) {
  uint16_t u;
  if (bf16) {
    __nv_bfloat16 h = __float2bfloat16_rn(v);
    memcpy(&u, &h, 2);
  } else {
    __half h = __float2half_rn(v);
    memcpy(&u, &h, 2);
  }
  return u;
}

int main(int argc, char** argv) {
  int M = argc > 3 ? atoi(argv[1]) : 128, N = argc > 3 ? atoi(argv[2]) : 128, K = argc > 3 ? atoi(argv[3]) : 256;
  bool bf16 = gemm_is_bf16();
  std::vector<float> a((size_t)M * K), b((size_t)K * N);
  std::vector<uint16_t> ab(a.size()), bb(b.size());
  uint32_t s = 12345;
  auto next = [&] {
    s = s * 1664525u + 1013904223u;
    return (int)((s >> 8) % 129) - 64;
  };
  for (size_t i = 0; i < a.size(); ++i) a[i] = next() / 64.0f, ab[i] = to_bits(a[i], bf16);
  for (size_t i = 0; i < b.size(); ++i) b[i] = next() / 64.0f, bb[i] = to_bits(b[i], bf16);

  void *dA, *dB;
  float* dC;
  CHECK(cudaMalloc(&dA, ab.size() * 2));
  CHECK(cudaMalloc(&dB, bb.size() * 2));
  CHECK(cudaMalloc(&dC, (size_t)M * N * 4));
  CHECK(cudaMemcpy(dA, ab.data(), ab.size() * 2, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dB, bb.data(), bb.size() * 2, cudaMemcpyHostToDevice));
  CHECK(gemm_launch(dA, dB, dC, M, N, K, 0));
  CHECK(cudaDeviceSynchronize());
  std::vector<float> c((size_t)M * N);
  CHECK(cudaMemcpy(c.data(), dC, c.size() * 4, cudaMemcpyDeviceToHost));

  double max_err = 0;
  long bad = 0, nan = 0;
  int first_r = -1, first_c = -1;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double ref = 0;
      for (int k = 0; k < K; ++k) ref += (double)a[(size_t)i * K + k] * b[(size_t)k * N + j];
      double got = c[(size_t)i * N + j], err = std::fabs(got - ref);
      if (std::isnan(got)) ++nan;
      if (!(err <= 1e-6)) {
        if (bad++ == 0) first_r = i, first_c = j;
        if (!std::isnan(err) && err > max_err) max_err = err;
      }
    }
  printf("gemm %s M=%d N=%d K=%d: %ld of %d elements wrong (%ld NaN), max_abs_err=%g", bf16 ? "bf16" : "f16", M, N, K,
         bad, M * N, nan, max_err);
  if (bad) printf(", first at (%d,%d)", first_r, first_c);
  printf("\n%s\n", bad ? "MISMATCH" : "PASS");
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
  return bad ? 1 : 0;
}
