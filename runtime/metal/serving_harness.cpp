// Host harness for the serving kernels of an emitted dcagen Metal kernel set on the CPU emulation:
// the cache append and paged attention (decode + merge, or prefill), run on emulated threadgroups as
// the emitted Swift host dispatches them on a Mac, with the same arguments.
//
// Build (the runner does this, cached by content hash): as runtime/metal/harness.cpp, plus
//   -DDCAGEN_CACHE_APPEND=1 when the set has the cache-append kernel.
//
// usage:
//   serving_harness append k.bin v.bin positions.bin slot_mapping.bin lengths.bin k_cache.bin v_cache.bin
//       k_cache_out.bin v_cache_out.bin tokens key_heads num_blocks block_size rope_theta
//       original_max_position max_position
//     k, v (tokens, key_heads, HEAD_DIM) storage_t; positions, slot_mapping, lengths int32 (tokens);
//     caches (num_blocks, block_size, key_heads, HEAD_DIM) in, the same after the write out.
//     max_position: the largest key position written (ignored when the pattern has POSITION_LIMIT).
//   serving_harness paged q.bin k_cache.bin v_cache.bin block_table.bin seq_lens.bin cu_seqlens_q.bin|-
//       out.bin lse.bin batch queries query_heads key_heads num_blocks block_size max_blocks rope_theta scale
//       original_max_position kind splits repeats
//     kind: decode or prefill; splits: key ranges per sequence (decode), each ceil(max seq_len / splits)
//     keys; scale <= 0 means 1/sqrt(HEAD_DIM); original_max_position <= 0 disables Qwen's temperature.
//     cu_seqlens_q.bin (int32, batch + 1; "-": none) packs q, out as (total_queries, query_heads, HEAD_DIM)
//     and lse as (query_heads, total_queries) (varlen); `queries` is then the largest count.
//     Prints one line per timed repeat: "time_ms <milliseconds>" (emulation time, not GPU time).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// The .metal, compiled as C++: its #include <metal_stdlib> resolves to the emulation header.
#define DCAGEN_STR2(x) #x
#define DCAGEN_STR(x) DCAGEN_STR2(x)
#include DCAGEN_STR(DCAGEN_METAL_SOURCE)

namespace ks = DCAGEN_NS;
using dcagen_emu::msl::Builtins;

#include "host_io.hpp"

static int usage(const char* why) {
  std::fprintf(stderr, "serving_harness: %s\n", why);
  return 2;
}

static int max_position_for(int wanted) { return ks::POSITION_LIMIT >= 0 ? ks::POSITION_LIMIT : wanted; }

static int run_append(int argc, char** argv) {
#if DCAGEN_CACHE_APPEND
  if (argc != 18) return usage("append: expected 16 arguments after the mode");
  const int tokens = std::atoi(argv[11]), key_heads = std::atoi(argv[12]);
  const int num_blocks = std::atoi(argv[13]), block_size = std::atoi(argv[14]);
  const double theta = std::atof(argv[15]);
  const int original_max_position = std::atoi(argv[16]), max_position = std::atoi(argv[17]);
  if (tokens < 1 || key_heads < 1 || num_blocks < 1 || block_size < 1 || max_position < 0) return usage("append: bad shape");
  const size_t rows = (size_t)tokens * key_heads * ks::HEAD_DIM;
  const size_t cells = (size_t)num_blocks * block_size * key_heads * ks::HEAD_DIM;
  const ks::storage_t* k = upload<ks::storage_t>(argv[2], rows);
  const ks::storage_t* v = upload<ks::storage_t>(argv[3], rows);
  const int* positions = upload<int>(argv[4], (size_t)tokens);
  const int* slot_mapping = upload<int>(argv[5], (size_t)tokens);
  const int* lengths = upload<int>(argv[6], (size_t)tokens);
  ks::storage_t* k_cache = upload<ks::storage_t>(argv[7], cells);
  ks::storage_t* v_cache = upload<ks::storage_t>(argv[8], cells);
  const float2* rope = rope_table(theta, max_position_for(max_position));
  const ks::AppendParams params{tokens, key_heads, num_blocks * block_size, original_max_position};
  dcagen_emu::msl::dispatch("cache_append", uint3((unsigned)tokens, (unsigned)key_heads, 1), uint3(ks::SIMD_WIDTH, 1, 1), 0,
                            [&](const Builtins& id, void*) {
                              ks::cache_append(k, v, positions, slot_mapping, lengths, rope, params, k_cache, v_cache,
                                               id.threadgroup_position_in_grid, id.thread_index_in_simdgroup);
                            });
  write_file(argv[9], k_cache, cells * sizeof(ks::storage_t));
  write_file(argv[10], v_cache, cells * sizeof(ks::storage_t));
  return 0;
#else
  (void)argc;
  (void)argv;
  return usage("this kernel set has no cache-append kernel (a region places keys at its own position)");
#endif
}

static int run_paged(int argc, char** argv) {
  if (argc != 23) return usage("paged: expected 21 arguments after the mode");
  const int batch = std::atoi(argv[10]), queries = std::atoi(argv[11]);
  const int query_heads = std::atoi(argv[12]), key_heads = std::atoi(argv[13]);
  const int num_blocks = std::atoi(argv[14]), block_size = std::atoi(argv[15]), max_blocks = std::atoi(argv[16]);
  const double theta = std::atof(argv[17]), scale = std::atof(argv[18]);
  const int original_max_position = std::atoi(argv[19]);
  const std::string kind = argv[20];
  const int splits = std::atoi(argv[21]), repeats = std::atoi(argv[22]);
  if (batch < 1 || queries < 1 || key_heads < 1 || query_heads % key_heads != 0 || num_blocks < 1 || block_size < 1 ||
      max_blocks < 1 || splits < 1 || (kind != "decode" && kind != "prefill"))
    return usage("paged: bad shape");
  if (kind == "decode" && ks::DECODE_MAX_ROWS == 0) return usage("this kernel set has no decode kernel");
  if (kind == "prefill" && splits != 1) return usage("paged prefill does not split keys");
  const int D = ks::HEAD_DIM;
  const size_t cells = (size_t)num_blocks * block_size * key_heads * D;
  const int* block_table = upload<int>(argv[5], (size_t)batch * max_blocks);
  const int* seq_lens = upload<int>(argv[6], (size_t)batch);
  // Varlen: query rows packed by cu_seqlens_q; every sequence's count at most `queries`, the largest.
  const bool packed = std::string(argv[7]) != "-";
  const int* cu_seqlens_q = packed ? upload<int>(argv[7], (size_t)batch + 1) : seq_lens;  // read only when packed
  const int total_queries = packed ? cu_seqlens_q[batch] : 0;
  const size_t rows = packed ? (size_t)total_queries : (size_t)batch * queries;
  int max_keys = 0;
  for (int b = 0; b < batch; ++b) {
    const int count = packed ? cu_seqlens_q[b + 1] - cu_seqlens_q[b] : queries;
    if (count < 0 || count > queries || seq_lens[b] < count || seq_lens[b] > max_blocks * block_size)
      return usage("paged: a sequence's query count or length is outside [0, queries] or [its queries, max_blocks × block_size]");
    max_keys = std::max(max_keys, seq_lens[b]);
  }
  if (packed && (cu_seqlens_q[0] != 0 || total_queries < 1)) return usage("paged: cu_seqlens_q must start at 0 and pack at least one row");
  const ks::storage_t* q = upload<ks::storage_t>(argv[2], rows * query_heads * D);
  const ks::storage_t* k_cache = upload<ks::storage_t>(argv[3], cells);
  const ks::storage_t* v_cache = upload<ks::storage_t>(argv[4], cells);
  const float2* rope = rope_table(theta, max_position_for(max_keys - 1));

  // The decode layout: rows of one KV head, group_rows (a power of two) per threadgroup.
  const int kv_rows = query_heads / key_heads * queries;
  int group_rows = 1;
  while (group_rows < kv_rows && group_rows < ks::DECODE_MAX_ROWS) group_rows *= 2;
  const int row_blocks = (kv_rows + group_rows - 1) / group_rows;
  const int split_keys = (max_keys + splits - 1) / splits;
  const ks::PagedParams params{batch, queries, query_heads, key_heads, block_size, max_blocks,
                               (float)(scale > 0 ? scale : 1.0 / std::sqrt((double)D)), original_max_position,
                               splits, split_keys, group_rows, total_queries};

  const size_t out_elements = rows * query_heads * D;
  const size_t lse_elements = rows * query_heads;
  ks::storage_t* out = dcagen_emu::msl::new_buffer<ks::storage_t>(out_elements);
  float* lse = dcagen_emu::msl::new_buffer<float>(lse_elements);
  // Partials: one slot per split of every (sequence, query, head) the grid covers; packed rows fit in them.
  float* partials = dcagen_emu::msl::new_buffer<float>(splits > 1 ? (size_t)splits * batch * queries * query_heads * (D + 1) : 1);
  const uint3 row_grid((unsigned)((queries + ks::BLOCK_Q - 1) / ks::BLOCK_Q), (unsigned)query_heads, (unsigned)batch);

  for (int r = 0; r < (repeats < 1 ? 1 : repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    if (kind == "decode") {
      dcagen_emu::msl::dispatch("paged_decode", uint3((unsigned)splits, (unsigned)(key_heads * row_blocks), (unsigned)batch),
                                uint3((unsigned)(ks::SIMD_WIDTH * group_rows), 1, 1), sizeof(float) * ks::DECODE_TG_FLOATS,
                                [&](const Builtins& id, void* tg) {
                                  ks::paged_decode(q, k_cache, v_cache, rope, params, out, lse, partials, block_table, seq_lens,
                                                   cu_seqlens_q, static_cast<float*>(tg), id.threadgroup_position_in_grid,
                                                   id.thread_index_in_simdgroup, id.simdgroup_index_in_threadgroup);
                                });
      if (splits > 1) {
        dcagen_emu::msl::dispatch("paged_merge", row_grid, uint3(ks::THREADS, 1, 1), 0, [&](const Builtins& id, void*) {
          ks::paged_merge(partials, params, out, lse, seq_lens, cu_seqlens_q, id.threadgroup_position_in_grid,
                          id.thread_index_in_threadgroup);
        });
      }
    } else {
      dcagen_emu::msl::dispatch("paged_prefill", row_grid, uint3(ks::THREADS, 1, 1), sizeof(float) * ks::TG_MEMORY_FLOATS,
                                [&](const Builtins& id, void* tg) {
                                  ks::paged_prefill(q, k_cache, v_cache, rope, params, out, lse, block_table, seq_lens,
                                                    cu_seqlens_q, static_cast<float*>(tg), id.threadgroup_position_in_grid,
                                                    id.thread_index_in_threadgroup, id.thread_index_in_simdgroup,
                                                    id.simdgroup_index_in_threadgroup);
                                });
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("time_ms %.6f\n", ms);
  }
  write_file(argv[8], out, out_elements * sizeof(ks::storage_t));
  write_file(argv[9], lse, lse_elements * sizeof(float));
  return 0;
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "append") return run_append(argc, argv);
  if (mode == "paged") return run_paged(argc, argv);
  return usage("the first argument is the mode: append or paged");
}
