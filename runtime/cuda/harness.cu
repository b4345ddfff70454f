// Host harness for an emitted dcagen CUDA kernel set: reads raw q, k, v (storage dtype) from
// files, builds the RoPE table, launches through the kernel's C ABI, writes out (storage dtype)
// and lse (f32). Compiled by nvcc for a GPU, or by g++ with the emulation header for the CPU.
// DCAGEN_HEADER names the kernel's header and DCAGEN_PREFIX its function prefix.
//
// usage: harness q.bin k.bin v.bin out.bin lse.bin batch queries keys query_heads key_heads head_dim
//                element_bytes rope_theta scale original_max_position repeats [splits]
//   prints one line per timed repeat: "time_ms <milliseconds>". Serving sets run calls of at most 16
//   queries with the split-K decode kernel (through *_launch, or *_decode when `splits` > 0 forces a
//   count) and print "splits <n>" for them first.
// With DCAGEN_SERVING (kernel sets that have the serving entry points), two more forms:
//        harness paged q.bin k_cache.bin v_cache.bin block_table.bin seq_lens.bin out.bin lse.bin
//                batch queries query_heads key_heads head_dim element_bytes num_blocks block_size
//                max_blocks rope_theta scale original_max_position splits repeats [cu_seqlens_q.bin|-]
//   (block_table, seq_lens and cu_seqlens_q int32; splits 0 lets the launcher choose; with cu_seqlens_q,
//   q and out are packed (total_q, query_heads, head_dim), `queries` is the largest count and lse is
//   (query_heads, total_q)) prints "splits <n>" and the times;
//        harness append key.bin value.bin k_cache.bin v_cache.bin slot_mapping.bin positions.bin
//                lengths.bin|- k_cache_out.bin v_cache_out.bin tokens key_heads head_dim element_bytes
//                num_blocks block_size rope_theta original_max_position
//   (slot_mapping, positions, lengths int32; "-": no Qwen key factor) writes the caches after the append.
#ifndef DCAGEN_EMULATE
#include <cuda_runtime.h>
#endif
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define DCAGEN_STR2(x) #x
#define DCAGEN_STR(x) DCAGEN_STR2(x)
#include DCAGEN_STR(DCAGEN_HEADER)
#define DCAGEN_CAT2(a, b) a##b
#define DCAGEN_CAT(a, b) DCAGEN_CAT2(a, b)
#define FN(name) DCAGEN_CAT(DCAGEN_PREFIX, name)

#include "../harness_files.hpp"

static void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "harness: %s: %s\n", what, cudaGetErrorString(err));
    // 35: insufficient driver, 100: no device — "no GPU here", which the runner reports as unavailable.
    std::exit((int)err == 35 || (int)err == 100 ? 3 : 1);
  }
}

static void* upload(const std::vector<unsigned char>& host) {
  void* device = nullptr;
  check(cudaMalloc(&device, host.size() > 0 ? host.size() : 16), "cudaMalloc");
  check(cudaMemcpy(device, host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

static void require_device() {
  int device_count = 0;
  check(cudaGetDeviceCount(&device_count), "no usable CUDA device");
  if (device_count == 0) { std::fprintf(stderr, "harness: no CUDA device\n"); std::exit(3); }
}

static std::vector<float> rope_table_for(int max_position, double theta) {
  std::vector<float> table((size_t)FN(_rope_table_floats)(max_position));
  FN(_fill_rope_table)(table.data(), theta, max_position);
  return table;
}

static void* upload_floats(const std::vector<float>& host) {
  void* device = nullptr;
  check(cudaMalloc(&device, host.size() * 4), "cudaMalloc");
  check(cudaMemcpy(device, host.data(), host.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

static std::vector<int> ints(const std::vector<unsigned char>& bytes) {
  std::vector<int> out(bytes.size() / 4);
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

#ifdef DCAGEN_SERVING
static int run_paged(int argc, char** argv) {
  if (argc != 23 && argc != 24) { std::fprintf(stderr, "harness: paged expects 21 or 22 arguments, got %d\n", argc - 2); return 2; }
  require_device();
  const int batch = std::atoi(argv[9]), queries = std::atoi(argv[10]), query_heads = std::atoi(argv[11]);
  const int key_heads = std::atoi(argv[12]), head_dim = std::atoi(argv[13]), element_bytes = std::atoi(argv[14]);
  const int num_blocks = std::atoi(argv[15]), block_size = std::atoi(argv[16]), max_blocks = std::atoi(argv[17]);
  const double theta = std::atof(argv[18]), scale = std::atof(argv[19]);
  const int original_max_position = std::atoi(argv[20]), splits = std::atoi(argv[21]), repeats = std::atoi(argv[22]);
  const auto seq_lens = ints(read_file(argv[6]));
  int max_seq_len = 1;
  for (int n : seq_lens) max_seq_len = n > max_seq_len ? n : max_seq_len;
  const bool packed = argc == 24 && std::strcmp(argv[23], "-") != 0;
  const auto cu_seqlens_q = packed ? read_file(argv[23]) : std::vector<unsigned char>();
  const long long rows = packed ? ints(cu_seqlens_q).back() : (long long)batch * queries;   // query rows, packed or not

  dcagen_paged_attention_params p;
  std::memset(&p, 0, sizeof p);
  p.q = upload(read_file(argv[2]));
  p.k_cache = upload(read_file(argv[3]));
  p.v_cache = upload(read_file(argv[4]));
  p.block_table = (const int*)upload(read_file(argv[5]));
  p.seq_lens = (const int*)upload(read_file(argv[6]));
  p.cu_seqlens_q = packed ? (const int*)upload(cu_seqlens_q) : nullptr;
  const size_t out_bytes = (size_t)rows * query_heads * head_dim * element_bytes;
  const size_t lse_bytes = (size_t)rows * query_heads * 4;
  check(cudaMalloc(&p.out, out_bytes), "cudaMalloc out");
  check(cudaMalloc((void**)&p.lse, lse_bytes), "cudaMalloc lse");
  p.rope = (const float*)upload_floats(rope_table_for(FN(_max_position)(max_seq_len), theta));
  p.q_head_stride = head_dim; p.q_seq_stride = (long long)query_heads * head_dim; p.q_batch_stride = (long long)queries * p.q_seq_stride;
  p.k_head_stride = head_dim; p.k_row_stride = (long long)key_heads * head_dim; p.k_block_stride = (long long)block_size * p.k_row_stride;
  p.v_head_stride = p.k_head_stride; p.v_row_stride = p.k_row_stride; p.v_block_stride = p.k_block_stride;
  p.out_head_stride = p.q_head_stride; p.out_seq_stride = p.q_seq_stride; p.out_batch_stride = p.q_batch_stride;
  p.block_table_stride = max_blocks;
  p.batch = batch; p.queries = queries; p.query_heads = query_heads; p.key_heads = key_heads;
  p.block_size = block_size; p.max_seq_len = max_seq_len; p.splits = splits;
  p.softmax_scale = (float)scale; p.original_max_position = original_max_position;
  (void)num_blocks;
  const int used_splits = FN(_paged_splits)(&p);
  if (used_splits < 1) { std::fprintf(stderr, "harness: the launcher refused the paged call (%d)\n", -used_splits); return 1; }
  const long long workspace = FN(_paged_workspace_bytes)(&p);
  if (workspace > 0) check(cudaMalloc(&p.workspace, (size_t)workspace), "cudaMalloc workspace");
  std::printf("splits %d\n", used_splits);
  for (int r = 0; r < (repeats > 1 ? 1 : 0); ++r) {  // warm-up when timing
    check((cudaError_t)FN(_paged_attention)(&p, nullptr), "paged attention");
    check(cudaDeviceSynchronize(), "kernel");
  }
  for (int r = 0; r < (repeats < 1 ? 1 : repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    check((cudaError_t)FN(_paged_attention)(&p, nullptr), "paged attention");
    check(cudaDeviceSynchronize(), "kernel");
    std::printf("time_ms %.6f\n", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<unsigned char> out(out_bytes), lse(lse_bytes);
  check(cudaMemcpy(out.data(), p.out, out_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy out");
  check(cudaMemcpy(lse.data(), p.lse, lse_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy lse");
  write_file(argv[7], out.data(), out_bytes);
  write_file(argv[8], lse.data(), lse_bytes);
  return 0;
}

static int run_append(int argc, char** argv) {
  if (argc != 19) { std::fprintf(stderr, "harness: append expects 17 arguments, got %d\n", argc - 2); return 2; }
  require_device();
  const int tokens = std::atoi(argv[11]), key_heads = std::atoi(argv[12]), head_dim = std::atoi(argv[13]);
  const int element_bytes = std::atoi(argv[14]), num_blocks = std::atoi(argv[15]), block_size = std::atoi(argv[16]);
  const double theta = std::atof(argv[17]);
  const int original_max_position = std::atoi(argv[18]);
  const auto slots = ints(read_file(argv[6]));
  const auto positions = read_file(argv[7]);
  std::vector<long long> wide(slots.begin(), slots.end());   // vLLM's slot_mapping is int64
  int max_position = 0;
  for (int n : ints(positions)) max_position = n > max_position ? n : max_position;

  dcagen_cache_append_params p;
  std::memset(&p, 0, sizeof p);
  p.key = upload(read_file(argv[2]));
  p.value = upload(read_file(argv[3]));
  const auto k_cache = read_file(argv[4]);
  void* k_cache_device = upload(k_cache);
  void* v_cache_device = upload(read_file(argv[5]));
  p.k_cache = k_cache_device;
  p.v_cache = v_cache_device;
  std::vector<unsigned char> wide_bytes(wide.size() * 8);
  if (!wide.empty()) std::memcpy(wide_bytes.data(), wide.data(), wide_bytes.size());
  p.slot_mapping = (const long long*)upload(wide_bytes);
  p.positions = (const int*)upload(positions);
  p.lengths = std::strcmp(argv[8], "-") == 0 ? nullptr : (const int*)upload(read_file(argv[8]));
  p.rope = (const float*)upload_floats(rope_table_for(FN(_max_position)(max_position + 1), theta));
  p.key_head_stride = head_dim; p.key_token_stride = (long long)key_heads * head_dim;
  p.value_head_stride = p.key_head_stride; p.value_token_stride = p.key_token_stride;
  p.k_head_stride = head_dim; p.k_row_stride = (long long)key_heads * head_dim; p.k_block_stride = (long long)block_size * p.k_row_stride;
  p.v_head_stride = p.k_head_stride; p.v_row_stride = p.k_row_stride; p.v_block_stride = p.k_block_stride;
  p.tokens = tokens; p.key_heads = key_heads; p.num_blocks = num_blocks; p.block_size = block_size;
  p.original_max_position = original_max_position;
  check((cudaError_t)FN(_append_to_cache)(&p, nullptr), "append to cache");
  check(cudaDeviceSynchronize(), "kernel");
  const size_t cache_bytes = (size_t)num_blocks * block_size * key_heads * head_dim * element_bytes;
  std::vector<unsigned char> k_out(cache_bytes), v_out(cache_bytes);
  check(cudaMemcpy(k_out.data(), k_cache_device, cache_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy k cache");
  check(cudaMemcpy(v_out.data(), v_cache_device, cache_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy v cache");
  write_file(argv[9], k_out.data(), cache_bytes);
  write_file(argv[10], v_out.data(), cache_bytes);
  return 0;
}
#endif

int main(int argc, char** argv) {
#ifdef DCAGEN_SERVING
  if (argc > 1 && std::strcmp(argv[1], "paged") == 0) return run_paged(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "append") == 0) return run_append(argc, argv);
#endif
  if (argc != 17 && argc != 18) { std::fprintf(stderr, "harness: expected 16 or 17 arguments, got %d\n", argc - 1); return 2; }
  require_device();
  const int batch = std::atoi(argv[6]), queries = std::atoi(argv[7]), keys = std::atoi(argv[8]);
  const int query_heads = std::atoi(argv[9]), key_heads = std::atoi(argv[10]), head_dim = std::atoi(argv[11]);
  const int element_bytes = std::atoi(argv[12]);
  const double theta = std::atof(argv[13]), scale = std::atof(argv[14]);
  const int original_max_position = std::atoi(argv[15]), repeats = std::atoi(argv[16]);

  const auto q = read_file(argv[1]), k = read_file(argv[2]), v = read_file(argv[3]);
  const std::vector<float> table = rope_table_for(FN(_max_position)(keys), theta);

  dcagen_attention_params p;
  std::memset(&p, 0, sizeof p);
  p.q = upload(q);
  p.k = upload(k);
  p.v = upload(v);
  const size_t out_bytes = (size_t)batch * queries * query_heads * head_dim * element_bytes;
  const size_t lse_bytes = (size_t)batch * query_heads * queries * 4;
  check(cudaMalloc(&p.out, out_bytes), "cudaMalloc out");
  check(cudaMalloc((void**)&p.lse, lse_bytes), "cudaMalloc lse");
  p.rope = (const float*)upload_floats(table);
  const long long workspace = FN(_workspace_bytes)(batch, queries, query_heads);
  if (workspace > 0) check(cudaMalloc(&p.partial_out, (size_t)workspace), "cudaMalloc workspace");
  p.q_head_stride = head_dim; p.q_seq_stride = (long long)query_heads * head_dim; p.q_batch_stride = (long long)queries * p.q_seq_stride;
  p.k_head_stride = head_dim; p.k_seq_stride = (long long)key_heads * head_dim; p.k_batch_stride = (long long)keys * p.k_seq_stride;
  p.v_head_stride = p.k_head_stride; p.v_seq_stride = p.k_seq_stride; p.v_batch_stride = p.k_batch_stride;
  p.out_head_stride = p.q_head_stride; p.out_seq_stride = p.q_seq_stride; p.out_batch_stride = p.q_batch_stride;
  p.batch = batch; p.queries = queries; p.keys = keys; p.query_heads = query_heads; p.key_heads = key_heads;
  p.logit_scale = FN(_logit_scale)(keys, scale, original_max_position);
  if (const char* why = FN(_check_params)(&p)) {   // the launcher's own reason, rather than "invalid argument"
    std::fprintf(stderr, "harness: the launcher refused the call: %s\n", why);
    return 1;
  }
  const int forced_splits = argc == 18 ? std::atoi(argv[17]) : 0;
  // One launch: *_launch (which routes few-query calls to split-K decode), or *_decode with forced splits.
  auto launch = [&]() -> int {
#ifdef DCAGEN_SERVING
    if (forced_splits > 0) return FN(_decode)(&p, forced_splits, nullptr, nullptr);
#endif
    return FN(_launch)(&p, nullptr);
  };
#ifdef DCAGEN_SERVING
  const int decode_splits = FN(_decode_splits)(&p, forced_splits);
  if (decode_splits < 0) { std::fprintf(stderr, "harness: the launcher refused the decode call (%d)\n", -decode_splits); return 1; }
  if (decode_splits > 0) std::printf("splits %d\n", decode_splits);
#else
  if (forced_splits > 0) { std::fprintf(stderr, "harness: this kernel set does not split keys\n"); return 2; }
#endif

  for (int r = 0; r < (repeats > 1 ? 1 : 0); ++r) {  // warm-up when timing
    check((cudaError_t)launch(), "launch");
    check(cudaDeviceSynchronize(), "kernel");
  }
  for (int r = 0; r < (repeats < 1 ? 1 : repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    check((cudaError_t)launch(), "launch");
    check(cudaDeviceSynchronize(), "kernel");
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("time_ms %.6f\n", ms);
  }
  std::vector<unsigned char> out(out_bytes), lse(lse_bytes);
  check(cudaMemcpy(out.data(), p.out, out_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy out");
  check(cudaMemcpy(lse.data(), p.lse, lse_bytes, cudaMemcpyDeviceToHost), "cudaMemcpy lse");
  write_file(argv[4], out.data(), out_bytes);
  write_file(argv[5], lse.data(), lse_bytes);
  return 0;
}
