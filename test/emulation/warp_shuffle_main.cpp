// warp_shuffle_main.cpp: host harness for warp_shuffle.cu. Prints PASS or MISMATCH.
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <cstdio>
#include <vector>

cudaError_t warp_ops_launch(const float* x, float* xor_sum, float* down_sum, float* scan, float* bcast,
                            unsigned* ballot, float* block_sum, int blocks, cudaStream_t stream);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "CUDA error '%s' at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);  \
      return 2;                                                                                    \
    }                                                                                              \
  } while (0)

int main() {
  const int blocks = 4, threads = 128, n = blocks * threads, warps = n / 32;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = (float)((i * 29 + 7) % 67) / 8.0f;  // sums exact in any order
  float *dx, *dxor, *ddown, *dscan, *dbc, *dblock;
  unsigned* dballot;
  CHECK(cudaMalloc(&dx, n * 4));
  CHECK(cudaMalloc(&dxor, n * 4));
  CHECK(cudaMalloc(&ddown, warps * 4));
  CHECK(cudaMalloc(&dscan, n * 4));
  CHECK(cudaMalloc(&dbc, n * 4));
  CHECK(cudaMalloc(&dballot, warps * 4));
  CHECK(cudaMalloc(&dblock, blocks * 4));
  CHECK(cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice));
  CHECK(warp_ops_launch(dx, dxor, ddown, dscan, dbc, dballot, dblock, blocks, 0));
  std::vector<float> xr(n), down(warps), scan(n), bc(n), bs(blocks);
  std::vector<unsigned> ballot(warps);
  CHECK(cudaMemcpy(xr.data(), dxor, n * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(down.data(), ddown, warps * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(scan.data(), dscan, n * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(bc.data(), dbc, n * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(ballot.data(), dballot, warps * 4, cudaMemcpyDeviceToHost));
  CHECK(cudaMemcpy(bs.data(), dblock, blocks * 4, cudaMemcpyDeviceToHost));

  int bad = 0;
  auto expect = [&](bool ok, const char* what, int i, double got, double want) {
    if (!ok && bad++ < 10) printf("%s[%d] = %g, expected %g\n", what, i, got, want);
  };
  for (int w = 0; w < warps; ++w) {
    double total = 0, run = 0;
    unsigned bal = 0;
    for (int l = 0; l < 32; ++l) {
      total += x[w * 32 + l];
      if (x[w * 32 + l] > 4.0f) bal |= 1u << l;
    }
    for (int l = 0; l < 32; ++l) {
      int i = w * 32 + l;
      run += x[i];
      expect(xr[i] == total, "xor_sum", i, xr[i], total);
      expect(scan[i] == run, "scan", i, scan[i], run);
      double want = x[w * 32 + (l & ~15) + 3];
      expect(bc[i] == want, "bcast", i, bc[i], want);
    }
    expect(down[w] == total, "down_sum", w, down[w], total);
    expect(ballot[w] == bal, "ballot", w, ballot[w], bal);
  }
  for (int b = 0; b < blocks; ++b) {
    double total = 0;
    for (int i = 0; i < threads; ++i) total += x[b * threads + i];
    expect(bs[b] == total, "block_sum", b, bs[b], total);
  }
  printf("%d wrong values\n%s\n", bad, bad ? "MISMATCH" : "PASS");
  return bad ? 1 : 0;
}
