// Host harness for an emitted dcagen CUDA kernel set: reads raw q, k, v (storage dtype) from
// files, builds the RoPE table, launches through the kernel's C ABI, writes out (storage dtype)
// and lse (f32). Compiled by nvcc for a GPU, or by g++ with the emulation header for the CPU.
// DCAGEN_HEADER names the kernel's header and DCAGEN_PREFIX its function prefix.
//
// usage: harness q.bin k.bin v.bin out.bin lse.bin batch queries keys query_heads key_heads head_dim
//                element_bytes rope_theta scale original_max_position repeats
//   prints one line per timed repeat: "time_ms <milliseconds>"
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

static std::vector<unsigned char> read_file(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (!f) { std::fprintf(stderr, "harness: cannot read %s\n", path); std::exit(2); }
  std::fseek(f, 0, SEEK_END);
  const long n = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  std::vector<unsigned char> data((size_t)n);
  if (n > 0 && std::fread(data.data(), 1, (size_t)n, f) != (size_t)n) { std::fprintf(stderr, "harness: short read %s\n", path); std::exit(2); }
  std::fclose(f);
  return data;
}

static void write_file(const char* path, const void* data, size_t bytes) {
  FILE* f = std::fopen(path, "wb");
  if (!f || std::fwrite(data, 1, bytes, f) != bytes) { std::fprintf(stderr, "harness: cannot write %s\n", path); std::exit(2); }
  std::fclose(f);
}

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

int main(int argc, char** argv) {
  if (argc != 17) { std::fprintf(stderr, "harness: expected 16 arguments, got %d\n", argc - 1); return 2; }
  int device_count = 0;
  check(cudaGetDeviceCount(&device_count), "no usable CUDA device");
  if (device_count == 0) { std::fprintf(stderr, "harness: no CUDA device\n"); return 3; }
  const int batch = std::atoi(argv[6]), queries = std::atoi(argv[7]), keys = std::atoi(argv[8]);
  const int query_heads = std::atoi(argv[9]), key_heads = std::atoi(argv[10]), head_dim = std::atoi(argv[11]);
  const int element_bytes = std::atoi(argv[12]);
  const double theta = std::atof(argv[13]), scale = std::atof(argv[14]);
  const int original_max_position = std::atoi(argv[15]), repeats = std::atoi(argv[16]);

  const auto q = read_file(argv[1]), k = read_file(argv[2]), v = read_file(argv[3]);
  const int max_position = FN(_max_position)(keys);
  std::vector<float> table((size_t)FN(_rope_table_floats)(max_position));
  FN(_fill_rope_table)(table.data(), theta, max_position);

  dcagen_attention_params p;
  std::memset(&p, 0, sizeof p);
  p.q = upload(q);
  p.k = upload(k);
  p.v = upload(v);
  const size_t out_bytes = (size_t)batch * queries * query_heads * head_dim * element_bytes;
  const size_t lse_bytes = (size_t)batch * query_heads * queries * 4;
  check(cudaMalloc(&p.out, out_bytes), "cudaMalloc out");
  check(cudaMalloc((void**)&p.lse, lse_bytes), "cudaMalloc lse");
  void* rope = nullptr;
  check(cudaMalloc(&rope, table.size() * 4), "cudaMalloc rope");
  check(cudaMemcpy(rope, table.data(), table.size() * 4, cudaMemcpyHostToDevice), "cudaMemcpy rope");
  p.rope = (const float*)rope;
  const long long workspace = FN(_workspace_bytes)(batch, queries, query_heads);
  if (workspace > 0) check(cudaMalloc(&p.partial_out, (size_t)workspace), "cudaMalloc workspace");
  p.q_head_stride = head_dim; p.q_seq_stride = (long long)query_heads * head_dim; p.q_batch_stride = (long long)queries * p.q_seq_stride;
  p.k_head_stride = head_dim; p.k_seq_stride = (long long)key_heads * head_dim; p.k_batch_stride = (long long)keys * p.k_seq_stride;
  p.v_head_stride = p.k_head_stride; p.v_seq_stride = p.k_seq_stride; p.v_batch_stride = p.k_batch_stride;
  p.out_head_stride = p.q_head_stride; p.out_seq_stride = p.q_seq_stride; p.out_batch_stride = p.q_batch_stride;
  p.batch = batch; p.queries = queries; p.keys = keys; p.query_heads = query_heads; p.key_heads = key_heads;
  p.logit_scale = FN(_logit_scale)(keys, scale, original_max_position);

  for (int r = 0; r < (repeats > 1 ? 1 : 0); ++r) {  // warm-up when timing
    check((cudaError_t)FN(_launch)(&p, nullptr), "launch");
    check(cudaDeviceSynchronize(), "kernel");
  }
  for (int r = 0; r < (repeats < 1 ? 1 : repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    check((cudaError_t)FN(_launch)(&p, nullptr), "launch");
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
