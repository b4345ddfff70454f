// fragments_main.cpp: host harness for fragments.cu. Checks every ldmatrix and
// mma variant against the PTX ISA layouts; prints PASS (exit 0) or MISMATCH.
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <cstdint>
#include <cstdio>
#include <vector>

cudaError_t ldmatrix_probe_launch(int variant, const int* offs, uint32_t* out);
cudaError_t mma_probe_launch(int variant, const float* A, const float* B, const float* C, float* D);

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "CUDA error '%s' at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);  \
      return 2;                                                                                    \
    }                                                                                              \
  } while (0)

int main() {
  int bad_total = 0;

  // ldmatrix: lane l gives the row address of row l % 8 of matrix l / 8; rows
  // are scattered over the tile and start at column 0 or 8.
  int offs[32];
  for (int l = 0; l < 32; ++l) offs[l] = ((l * 7 + 3) % 64) * 16 + ((l >> 2) & 1) * 8;
  int* doffs;
  uint32_t* dout;
  CHECK(cudaMalloc(&doffs, sizeof offs));
  CHECK(cudaMalloc(&dout, 32 * 4 * sizeof(uint32_t)));
  CHECK(cudaMemcpy(doffs, offs, sizeof offs, cudaMemcpyHostToDevice));
  const char* lnames[] = {"x1", "x2", "x4", "x1.trans", "x2.trans", "x4.trans"};
  for (int v = 0; v < 6; ++v) {
    int num = v % 3 == 0 ? 1 : v % 3 == 1 ? 2 : 4;
    bool trans = v >= 3;
    std::vector<uint32_t> out(128);
    CHECK(ldmatrix_probe_launch(v, doffs, dout));
    CHECK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < 4; ++i) {
        uint32_t want = 0;  // registers past .num stay as initialised
        if (i < num) {
          // Each thread receives two elements of a row (non-trans: row l/4,
          // columns 2(l%4) and 2(l%4)+1); .trans reads the transposed matrix.
          int e0, e1;
          if (!trans) {
            e0 = offs[8 * i + l / 4] + 2 * (l % 4);
            e1 = e0 + 1;
          } else {
            e0 = offs[8 * i + 2 * (l % 4)] + l / 4;
            e1 = offs[8 * i + 2 * (l % 4) + 1] + l / 4;
          }
          want = (uint32_t)e0 | ((uint32_t)e1 << 16);
        }
        if (out[l * 4 + i] != want && bad++ < 4)
          printf("ldmatrix.%s lane %d r%d = 0x%08x, expected 0x%08x\n", lnames[v], l, i, out[l * 4 + i], want);
      }
    printf("ldmatrix.%s: %d wrong registers\n", lnames[v], bad);
    bad_total += bad;
  }

  // mma: small multiples of powers of two, so every result is exact.
  std::vector<float> A(16 * 16), B(16 * 8), C(16 * 8);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) A[i * 16 + j] = (float)((i * 7 + j * 3) % 9 - 4) * 0.5f + (float)(i == j) * 0.25f;
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < 8; ++n) B[k * 8 + n] = (float)((k * 5 + n * 11) % 7 - 3) * 0.25f + (float)(k == 2 * n) * 2.0f;
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) C[m * 8 + n] = (float)(m - 2 * n) * 0.125f;
  float *dA, *dB, *dC, *dD;
  CHECK(cudaMalloc(&dA, A.size() * 4));
  CHECK(cudaMalloc(&dB, B.size() * 4));
  CHECK(cudaMalloc(&dC, C.size() * 4));
  CHECK(cudaMalloc(&dD, C.size() * 4));
  CHECK(cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice));
  const char* mnames[] = {"m16n8k16.f16", "m16n8k16.bf16", "m16n8k8.f16", "m16n8k8.bf16", "m16n8k8.tf32"};
  for (int v = 0; v < 5; ++v) {
    int K = v <= 1 ? 16 : 8;
    std::vector<float> D(16 * 8);
    CHECK(mma_probe_launch(v, dA, dB, dC, dD));
    CHECK(cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 8; ++n) {
        double ref = C[m * 8 + n];
        for (int k = 0; k < K; ++k) ref += (double)A[m * 16 + k] * B[k * 8 + n];
        if (D[m * 8 + n] != ref && bad++ < 4)
          printf("mma.%s D[%d][%d] = %g, expected %g\n", mnames[v], m, n, D[m * 8 + n], ref);
      }
    printf("mma.%s: %d wrong elements\n", mnames[v], bad);
    bad_total += bad;
  }
  printf("%s\n", bad_total ? "MISMATCH" : "PASS");
  return bad_total ? 1 : 0;
}
