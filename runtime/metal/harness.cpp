// Host harness for an emitted dcagen Metal kernel set on the CPU emulation: reads raw q, k, v
// (storage dtype) from files, builds the RoPE table and the AttentionParams, runs every pass of the set
// (pass_body<0> .. pass_body<PASS_COUNT − 1>, the functions the .metal's kernels call) — or, for kind
// decode, the split-K decode over contiguous keys and its merge — on emulated threadgroups, and writes
// out (storage dtype) and lse (f32). It plays the part of the emitted Swift host, which does the same
// with Metal on a Mac.
//
// Build (the runner does this, cached by content hash):
//   g++ -std=c++17 -O1 -fno-strict-aliasing -fstack-clash-protection -Wno-attributes -DDCAGEN_EMULATE
//       -I runtime/emulation/metal_include -I <dir of kernel.metal>
//       -DDCAGEN_METAL_SOURCE=kernel.metal -DDCAGEN_NS=<namespace of the .metal>
//       -DDCAGEN_DECODE=<1 when the set has the contiguous decode kernel, else 0>
//       runtime/metal/harness.cpp -o harness -lpthread
//
// usage: harness q.bin k.bin v.bin out.bin lse.bin batch queries keys query_heads key_heads
//                rope_theta scale original_max_position kind splits repeats
//   kind: prefill (the set's passes; splits 1) or decode (split-K into `splits` key ranges of
//   ceil(keys / splits) keys, then the merge when splits > 1)
//   prints one line per timed repeat: "time_ms <milliseconds>" (emulation time, not GPU time)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

// The .metal, compiled as C++: its #include <metal_stdlib> resolves to the emulation header.
#define DCAGEN_STR2(x) #x
#define DCAGEN_STR(x) DCAGEN_STR2(x)
#include DCAGEN_STR(DCAGEN_METAL_SOURCE)

namespace ks = DCAGEN_NS;
using dcagen_emu::msl::Builtins;

#include "host_io.hpp"

struct Buffers {
  const ks::storage_t* q;
  const ks::storage_t* k;
  const ks::storage_t* v;
  const float2* rope;
  ks::AttentionParams params;
  ks::storage_t* out;
  float* lse;
  float* partials;
  uint3 grid;
};

// One pass, as a Metal host dispatches its kernel: every threadgroup of the grid, THREADS threads each.
template <int PASS>
static void run_pass(const Buffers& b) {
  static char name[32];
  std::snprintf(name, sizeof name, "pass_body<%d>", PASS);
  dcagen_emu::msl::dispatch(name, b.grid, uint3(ks::THREADS, 1, 1), sizeof(float) * ks::TG_MEMORY_FLOATS,
                            [&b](const Builtins& id, void* tg) {
                              ks::pass_body<PASS>(b.q, b.k, b.v, b.rope, b.params, b.out, b.lse, b.partials,
                                                  static_cast<float*>(tg), id.threadgroup_position_in_grid,
                                                  id.thread_index_in_threadgroup, id.thread_index_in_simdgroup,
                                                  id.simdgroup_index_in_threadgroup);
                            });
}

template <int... P>
static void run_passes(const Buffers& b, std::integer_sequence<int, P...>) {
  (run_pass<P>(b), ...);
}

#if DCAGEN_DECODE
// Split-K decode over contiguous keys, as the Swift host dispatches it: rows of one KV head, group_rows
// (a power of two) per threadgroup, one simdgroup each; then the merge of the splits.
static void run_decode(const Buffers& b, int splits) {
  const ks::AttentionParams& p = b.params;
  const int kv_rows = p.query_heads / p.key_heads * p.queries;
  int group_rows = 1;
  while (group_rows < kv_rows && group_rows < ks::DECODE_MAX_ROWS) group_rows *= 2;
  const int row_blocks = (kv_rows + group_rows - 1) / group_rows;
  const ks::DecodeParams params{p, splits, (p.keys + splits - 1) / splits, group_rows};
  dcagen_emu::msl::dispatch("contiguous_decode", uint3((unsigned)splits, (unsigned)(p.key_heads * row_blocks), (unsigned)p.batch),
                            uint3((unsigned)(ks::SIMD_WIDTH * group_rows), 1, 1), sizeof(float) * ks::DECODE_TG_FLOATS,
                            [&](const Builtins& id, void* tg) {
                              ks::contiguous_decode(b.q, b.k, b.v, b.rope, params, b.out, b.lse, b.partials, static_cast<float*>(tg),
                                                    id.threadgroup_position_in_grid, id.thread_index_in_simdgroup,
                                                    id.simdgroup_index_in_threadgroup);
                            });
  if (splits > 1) {
    dcagen_emu::msl::dispatch("contiguous_decode_merge", b.grid, uint3(ks::THREADS, 1, 1), 0, [&](const Builtins& id, void*) {
      ks::contiguous_decode_merge(b.partials, params, b.out, b.lse, id.threadgroup_position_in_grid, id.thread_index_in_threadgroup);
    });
  }
}
#endif

int main(int argc, char** argv) {
  if (argc != 17) { std::fprintf(stderr, "harness: expected 16 arguments, got %d\n", argc - 1); return 2; }
  const int batch = std::atoi(argv[6]), queries = std::atoi(argv[7]), keys = std::atoi(argv[8]);
  const int query_heads = std::atoi(argv[9]), key_heads = std::atoi(argv[10]);
  const double theta = std::atof(argv[11]), scale = std::atof(argv[12]);
  const int original_max_position = std::atoi(argv[13]);
  const std::string kind = argv[14];
  const int splits = std::atoi(argv[15]), repeats = std::atoi(argv[16]);
  if (batch < 1 || queries < 1 || keys < queries || key_heads < 1 || query_heads % key_heads != 0 || splits < 1 ||
      (kind != "prefill" && kind != "decode") || (kind == "prefill" && splits != 1)) {
    std::fprintf(stderr, "harness: bad shape, kind or splits\n");
    return 2;
  }
#if !DCAGEN_DECODE
  if (kind == "decode") { std::fprintf(stderr, "harness: this kernel set has no decode kernel\n"); return 2; }
#endif
  const int D = ks::HEAD_DIM;

  // RoPE table, as the Swift host builds it: float64 angles rounded once to f32.
  const float2* rope = rope_table(theta, ks::POSITION_LIMIT >= 0 ? ks::POSITION_LIMIT : keys - 1);

  // Softmax scale × Qwen temperature f(n)².
  double logit_scale = scale > 0 ? scale : 1.0 / std::sqrt((double)D);
  if (original_max_position > 0) {
    const double f = std::fmax(1.0, 0.1 * std::log((double)keys / original_max_position) + 1.0);
    logit_scale *= f * f;
  }

  Buffers b;
  b.q = upload<ks::storage_t>(argv[1], (size_t)batch * queries * query_heads * D);
  b.k = upload<ks::storage_t>(argv[2], (size_t)batch * keys * key_heads * D);
  b.v = upload<ks::storage_t>(argv[3], (size_t)batch * keys * key_heads * D);
  b.rope = rope;
  b.params = ks::AttentionParams{batch, queries, keys, query_heads, key_heads, (float)logit_scale};
  const size_t out_elements = (size_t)batch * queries * query_heads * D;
  const size_t lse_elements = (size_t)batch * query_heads * queries;
  b.out = dcagen_emu::msl::new_buffer<ks::storage_t>(out_elements);
  b.lse = dcagen_emu::msl::new_buffer<float>(lse_elements);
  // Three-pass scratch (one slot per region), or one slot per decode split.
  const int slots = kind == "decode" ? (splits > 1 ? splits : 0) : (ks::PASS_COUNT > 1 ? ks::REGION_COUNT : 0);
  b.partials = dcagen_emu::msl::new_buffer<float>(slots > 0 ? (size_t)slots * batch * queries * query_heads * (D + 1) : 1);
  b.grid = uint3((unsigned)((queries + ks::BLOCK_Q - 1) / ks::BLOCK_Q), (unsigned)query_heads, (unsigned)batch);

  for (int r = 0; r < (repeats < 1 ? 1 : repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
#if DCAGEN_DECODE
    if (kind == "decode") run_decode(b, splits);
    else
#endif
      run_passes(b, std::make_integer_sequence<int, ks::PASS_COUNT>{});
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("time_ms %.6f\n", ms);
  }
  write_file(argv[4], b.out, out_elements * sizeof(ks::storage_t));
  write_file(argv[5], b.lse, lse_elements * sizeof(float));
  return 0;
}
