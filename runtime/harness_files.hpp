// Raw files in and out for the C++ harnesses (runtime/cuda/harness.cu, runtime/metal/*): read a
// whole file, write a buffer; any failure is one line on stderr and exit status 2.
#ifndef DCAGEN_HARNESS_FILES_HPP
#define DCAGEN_HARNESS_FILES_HPP

#include <cstdio>
#include <cstdlib>
#include <vector>

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

#endif
