// Shared by the Metal emulation harnesses (harness.cpp, serving_harness.cpp): raw files in and out,
// emulated device buffers, and the RoPE table as the emitted Swift host builds it. Included after the
// .metal, inside no namespace; `ks` is the .metal's namespace. The standard headers it needs
// (<cmath>, <cstdio>, <cstdlib>, <cstring>, <vector>) are the includer's to include before the .metal:
// after it, Metal's address-space words are macros.
#ifndef DCAGEN_METAL_HOST_IO_HPP
#define DCAGEN_METAL_HOST_IO_HPP

#include "../harness_files.hpp"

// An emulated device buffer holding a file's bytes (checked against the expected size).
template <class T>
static T* upload(const char* path, size_t elements) {
  const std::vector<unsigned char> bytes = read_file(path);
  if (bytes.size() != elements * sizeof(T)) {
    std::fprintf(stderr, "harness: %s has %zu bytes, expected %zu\n", path, bytes.size(), elements * sizeof(T));
    std::exit(2);
  }
  T* buffer = dcagen_emu::msl::new_buffer<T>(elements > 0 ? elements : 1);
  if (!bytes.empty()) std::memcpy(buffer, bytes.data(), bytes.size());
  return buffer;
}

// RoPE table, as the Swift host builds it: float64 angles rounded once to f32; fine rows for
// positions [0, 2^ROPE_FINE_BITS), then coarse rows up to max_position.
static float2* rope_table(double theta, int max_position) {
  const int fine_rows = 1 << ks::ROPE_FINE_BITS;
  const int rope_rows = fine_rows + (max_position >> ks::ROPE_FINE_BITS) + 1;
  float2* rope = dcagen_emu::msl::new_buffer<float2>((size_t)rope_rows * ks::ROPE_PAIRS);
  for (int row = 0; row < rope_rows; ++row) {
    const double position = row < fine_rows ? (double)row : (double)(row - fine_rows) * fine_rows;
    for (int pair = 0; pair < ks::ROPE_PAIRS; ++pair) {
      const double angle = position * std::pow(theta, -2.0 * pair / ks::ROTARY_DIM);
      rope[(size_t)row * ks::ROPE_PAIRS + pair] = float2((float)std::cos(angle), (float)std::sin(angle));
    }
  }
  return rope;
}

#endif  // DCAGEN_METAL_HOST_IO_HPP
