// Host for test/emulation/metal_tile.metal on the Metal emulation (test/metal.test.ts).
//   metal_tile tile    runs tile_body on one threadgroup of 64 threads and checks it against a
//                      float64 reference: prints "ok", or "mismatch ..." and exits 1
//   metal_tile layout  checks the simdgroup_matrix lane layout and the diagonal constructor against
//                      Apple's layout written out independently here
//   metal_tile overrun a simdgroup_load past the threadgroup memory: the emulator must exit 86
// The emulator itself exits 86 on a detected misuse (deadlock, bad address, ...).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "metal_tile.metal"

using dcagen_emu::msl::Builtins;

static int check_tile() {
  const int R = 16, K = 16, M = 8;
  float* a = dcagen_emu::msl::new_buffer<float>(R * K);
  float* b = dcagen_emu::msl::new_buffer<float>(M * K);
  float* scale = dcagen_emu::msl::new_buffer<float>(R);
  float* c = dcagen_emu::msl::new_buffer<float>(R * M);
  float* rowsum = dcagen_emu::msl::new_buffer<float>(R);
  for (int i = 0; i < R * K; ++i) a[i] = (float)((i * 37 % 23) - 11) / 8.0f;
  for (int i = 0; i < M * K; ++i) b[i] = (float)((i * 19 % 17) - 8) / 4.0f;
  for (int r = 0; r < R; ++r) scale[r] = 1.0f + 0.25f * (float)r;
  dcagen_emu::msl::dispatch("tile_body", uint3(1, 1, 1), uint3(THREADS, 1, 1), sizeof(float) * N * N,
                            [&](const Builtins& id, void* tg) {
                              tile_body(a, b, scale, c, rowsum, static_cast<float*>(tg), id.thread_index_in_threadgroup,
                                        id.thread_index_in_simdgroup, id.simdgroup_index_in_threadgroup);
                            });
  int bad = 0;
  for (int r = 0; r < R; ++r) {
    double sum = 0;
    for (int n = 0; n < M; ++n) {
      double dot = 0;
      for (int k = 0; k < K; ++k) dot += (double)a[r * K + k] * b[n * K + k];
      const double want = dot * scale[r] + 1000.0 * r + n;
      sum += want;
      const float got = c[r * M + n];
      if (!(std::fabs(got - want) <= 1e-3 * (1 + std::fabs(want)))) {
        if (bad++ < 5) std::printf("mismatch c[%d][%d]: got %g, want %g\n", r, n, got, want);
      }
    }
    if (!(std::fabs(rowsum[r] - sum) <= 1e-3 * (1 + std::fabs(sum)))) {
      if (bad++ < 5) std::printf("mismatch rowsum[%d]: got %g, want %g\n", r, rowsum[r], sum);
    }
  }
  if (bad) {
    std::printf("mismatch: %d wrong values\n", bad);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

static int check_layout() {
  float* out = dcagen_emu::msl::new_buffer<float>(128);
  dcagen_emu::msl::dispatch("layout_body", uint3(1, 1, 1), uint3(32, 1, 1), 0,
                            [&](const Builtins& id, void*) { layout_body(out, id.thread_index_in_simdgroup); });
  int bad = 0;
  for (int lane = 0; lane < 32; ++lane) {
    // Apple's layout as MLX and metal-flash-attention spell it: quad q = lane / 4,
    // row = (q & 4) + (lane / 2) % 4, column = (q & 2) · 2 + (lane % 2) · 2.
    const int q = lane / 4;
    const int row = (q & 4) + (lane / 2) % 4;
    const int col = (q & 2) * 2 + (lane % 2) * 2;
    for (int e = 0; e < 2; ++e)
      if (out[row * 8 + col + e] != (float)(lane * 2 + e)) {
        if (bad++ < 5) std::printf("mismatch: element (%d,%d) holds %g, want lane %d element %d\n", row, col + e, out[row * 8 + col + e], lane, e);
      }
  }
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c)
      if (out[64 + r * 8 + c] != (r == c ? 3.0f : 0.0f)) {
        if (bad++ < 5) std::printf("mismatch: diagonal matrix (%d,%d) = %g\n", r, c, out[64 + r * 8 + c]);
      }
  if (bad) {
    std::printf("mismatch: %d wrong elements\n", bad);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

// Must not return: the emulator exits 86 with a diagnostic naming the overrun.
static int overrun() {
  float* out = dcagen_emu::msl::new_buffer<float>(64);
  dcagen_emu::msl::dispatch("overrun_body", uint3(1, 1, 1), uint3(32, 1, 1), sizeof(float) * 64,
                            [&](const Builtins& id, void* tg) {
                              overrun_body(out, static_cast<float*>(tg), id.thread_index_in_simdgroup);
                            });
  std::printf("overrun not detected\n");
  return 1;
}

int main(int argc, char** argv) {
  if (argc == 2 && !std::strcmp(argv[1], "tile")) return check_tile();
  if (argc == 2 && !std::strcmp(argv[1], "layout")) return check_layout();
  if (argc == 2 && !std::strcmp(argv[1], "overrun")) return overrun();
  std::fprintf(stderr, "usage: metal_tile tile|layout|overrun\n");
  return 2;
}
