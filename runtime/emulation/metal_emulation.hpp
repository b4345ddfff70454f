// metal_emulation.hpp: the Metal dialect of the dcagen CPU emulator (tests only).
//
// Lets g++ compile an unmodified .metal file as C++17 and run it on the CPU, the
// threads of a threadgroup as fibers of emu_core.hpp (real barriers, poisoned
// threadgroup memory, simdgroup collectives). The .metal includes <metal_stdlib>
// as usual; the emulation build puts runtime/emulation/metal_include first on the
// include path, whose metal_stdlib is this header:
//
//   g++ -std=c++17 -O1 -fno-strict-aliasing -fstack-clash-protection -Wno-attributes
//       -DDCAGEN_EMULATE -I runtime/emulation/metal_include harness.cpp -o prog -lpthread
//
// (harness.cpp includes the .metal after its own standard headers; the runner also
// -include's a precompiled copy of this header, which is why every standard header
// a host needs is included here before the qualifier macros are defined).
//
// What maps to what:
//  * Address spaces `device`, `constant`, `thread`, `threadgroup` and the `kernel`
//    qualifier are empty macros; `[[buffer(n)]]`, `[[thread_index_in_simdgroup]]`,
//    ... are attributes g++ ignores (-Wno-attributes silences the warning).
//  * g++ cannot bind buffers or builtin ids, so kernels follow one convention:
//    a `kernel` function is a thin entry that declares its threadgroup memory and
//    forwards its buffers and builtin ids, as ordinary trailing parameters, to a
//    body function. Hosts that cannot use Metal's binding call the body: MLX's
//    mx.fast.metal_kernel (whose generated signature has no [[threadgroup(n)]]
//    parameters) and this emulator, through dcagen_emu::msl::dispatch, which runs
//    the body once per emulated thread with that thread's builtins and the
//    threadgroup's memory. (A kernel-scope `threadgroup T x[N];` would become a
//    per-thread local here, so only entries may declare one.)
//  * Types: half and bfloat (round to nearest even; arithmetic on them is done in
//    float and rounded when stored), vec<T, N> with float2/uint3/... aliases.
//  * threadgroup_barrier -> a block barrier of emu_core (matched by call site).
//    simd_* reductions/shuffles/broadcasts and simdgroup_barrier are simdgroup
//    collectives over all lanes of the simdgroup: every existing lane must reach
//    the same kind of call (uniform control flow, as dcagen kernels use them).
//  * simdgroup_matrix<T, 8, 8>: each thread holds only its two elements, in
//    Apple's per-thread layout (see frag_coord below); simdgroup_load, _store,
//    _multiply(_accumulate) are collectives that gather the 32 lanes' elements,
//    so code that reads or writes thread_elements() with a wrong row/column
//    assumption computes wrong results here exactly as on the GPU. Default-
//    constructed matrices hold NaNs (Metal leaves them undefined).
//
// Exact: the simdgroup_matrix element layout, load/store addressing (with a
// transposed load or store, matrix_origin must be 0: the spec does not say in
// which coordinates it applies, so dcagen offsets the pointer instead and this
// header refuses the ambiguous form), shuffle semantics, half/bfloat rounding.
// Checked (exit 86 with a report): simdgroup loads/stores whose 8×8 block leaves
// the threadgroup memory or its device buffer, or whose pointer/stride differs
// between lanes; simdgroup matrix ops in a partial simdgroup; dispatches over
// 1024 threads or 32 KiB of threadgroup memory; and emu_core's deadlock reports
// (divergent barriers, collectives some lanes never reach). Stricter than Metal
// where Metal is undocumented: no thread_elements() on a const matrix.
// Not modelled: fast-math (Metal compiles with it by default; here everything is
// IEEE), multiply-accumulate rounding (products summed in double, rounded once),
// memory-ordering subtleties beyond barriers, timing. Errors exit with status 86
// ("dcagen-emu: ..."), as in emu_core.hpp.
#ifndef DCAGEN_METAL_EMULATION_HPP
#define DCAGEN_METAL_EMULATION_HPP

#ifndef DCAGEN_EMULATE
#define DCAGEN_EMULATE 1
#endif
// The emulation claims Metal 3.1 (bfloat storage available).
#ifndef __METAL_VERSION__
#define __METAL_VERSION__ 310
#endif

#include "emu_core.hpp"

// Standard headers the hosts use too: all of them before the qualifier macros at the end (a
// precompiled copy of this header may be -include'd ahead of a host's own includes).
#include <cfloat>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

// ---------------------------------------------------------------------------
// Scalar types.

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;

namespace dcagen_emu {
namespace msl {
// A 16-bit float stored as bits; converts to and from float like Metal's half
// (round to nearest even). No arithmetic operators of its own: `a * b` on halves
// is evaluated in float (exact for one product) and rounded when stored.
template <uint16_t (*Encode)(float), float (*Decode)(uint16_t)>
struct Float16 {
  uint16_t bits;
  Float16() = default;
  Float16(float f) : bits(Encode(f)) {}
  Float16(double d) : bits(Encode(f64_to_f32_odd(d))) {}
  Float16(int i) : bits(Encode((float)i)) {}
  Float16(unsigned i) : bits(Encode((float)i)) {}
  operator float() const { return Decode(bits); }
};
}  // namespace msl
}  // namespace dcagen_emu

typedef dcagen_emu::msl::Float16<dcagen_emu::f32_to_f16_rne, dcagen_emu::f16_to_f32> half;
typedef dcagen_emu::msl::Float16<dcagen_emu::f32_to_bf16_rne, dcagen_emu::bf16_to_f32> bfloat;
static_assert(sizeof(half) == 2 && std::is_trivially_copyable<half>::value, "half layout");

// ---------------------------------------------------------------------------
// Vectors: metal::vec<T, N> (N = 2, 3, 4), laid out as Metal lays them out in
// buffers (a 3-vector occupies 4 elements).

namespace metal {

template <class T> struct identity { typedef T type; };

template <class T, int N> struct vec;

#define DCAGEN_MSL_VEC_COMMON(N, PICK)                                                                  \
  T& operator[](int i) { return PICK; }                                                               \
  const T& operator[](int i) const { return PICK; }                                                   \
  static constexpr int size = N;

template <class T>
struct alignas(2 * sizeof(T)) vec<T, 2> {
  T x, y;
  vec() = default;
  vec(T s) : x(s), y(s) {}
  vec(T a, T b) : x(a), y(b) {}
  template <class U> explicit vec(const vec<U, 2>& o) : x(T(o.x)), y(T(o.y)) {}
  DCAGEN_MSL_VEC_COMMON(2, i == 0 ? x : y)
};
template <class T>
struct alignas(4 * sizeof(T)) vec<T, 3> {
  T x, y, z;
  vec() = default;
  vec(T s) : x(s), y(s), z(s) {}
  vec(T a, T b, T c) : x(a), y(b), z(c) {}
  template <class U> explicit vec(const vec<U, 3>& o) : x(T(o.x)), y(T(o.y)), z(T(o.z)) {}
  DCAGEN_MSL_VEC_COMMON(3, i == 0 ? x : i == 1 ? y : z)
};
template <class T>
struct alignas(4 * sizeof(T)) vec<T, 4> {
  T x, y, z, w;
  vec() = default;
  vec(T s) : x(s), y(s), z(s), w(s) {}
  vec(T a, T b, T c, T d) : x(a), y(b), z(c), w(d) {}
  template <class U> explicit vec(const vec<U, 4>& o) : x(T(o.x)), y(T(o.y)), z(T(o.z)), w(T(o.w)) {}
  DCAGEN_MSL_VEC_COMMON(4, i == 0 ? x : i == 1 ? y : i == 2 ? z : w)
};
#undef DCAGEN_MSL_VEC_COMMON

#define DCAGEN_MSL_VEC_OP(OP)                                                                           \
  template <class T, int N> inline vec<T, N> operator OP(const vec<T, N>& a, const vec<T, N>& b) {      \
    vec<T, N> r;                                                                                        \
    for (int i = 0; i < N; ++i) r[i] = a[i] OP b[i];                                                    \
    return r;                                                                                           \
  }                                                                                                     \
  template <class T, int N> inline vec<T, N> operator OP(const vec<T, N>& a, typename identity<T>::type s) { \
    vec<T, N> r;                                                                                        \
    for (int i = 0; i < N; ++i) r[i] = a[i] OP s;                                                       \
    return r;                                                                                           \
  }                                                                                                     \
  template <class T, int N> inline vec<T, N> operator OP(typename identity<T>::type s, const vec<T, N>& a) { \
    vec<T, N> r;                                                                                        \
    for (int i = 0; i < N; ++i) r[i] = s OP a[i];                                                       \
    return r;                                                                                           \
  }                                                                                                     \
  template <class T, int N> inline vec<T, N>& operator OP##=(vec<T, N>& a, const vec<T, N>& b) {         \
    return a = a OP b;                                                                                  \
  }                                                                                                     \
  template <class T, int N> inline vec<T, N>& operator OP##=(vec<T, N>& a, typename identity<T>::type s) { \
    return a = a OP s;                                                                                  \
  }
DCAGEN_MSL_VEC_OP(+)
DCAGEN_MSL_VEC_OP(-)
DCAGEN_MSL_VEC_OP(*)
DCAGEN_MSL_VEC_OP(/)
#undef DCAGEN_MSL_VEC_OP

}  // namespace metal

#define DCAGEN_MSL_VEC_ALIASES(T, NAME)        \
  typedef metal::vec<T, 2> NAME##2;            \
  typedef metal::vec<T, 3> NAME##3;            \
  typedef metal::vec<T, 4> NAME##4;
DCAGEN_MSL_VEC_ALIASES(float, float)
DCAGEN_MSL_VEC_ALIASES(half, half)
DCAGEN_MSL_VEC_ALIASES(int, int)
DCAGEN_MSL_VEC_ALIASES(uint, uint)
DCAGEN_MSL_VEC_ALIASES(short, short)
DCAGEN_MSL_VEC_ALIASES(ushort, ushort)
DCAGEN_MSL_VEC_ALIASES(long, long)
DCAGEN_MSL_VEC_ALIASES(ulong, ulong)
DCAGEN_MSL_VEC_ALIASES(bool, bool)
#undef DCAGEN_MSL_VEC_ALIASES
static_assert(sizeof(float2) == 8 && alignof(float2) == 8 && sizeof(float3) == 16, "Metal vector layout");

// ---------------------------------------------------------------------------
// Host side: dispatching a kernel body over a grid of threadgroups.

namespace dcagen_emu {
namespace msl {

constexpr unsigned kSimdWidth = 32;                 // Apple GPUs: 32 threads per simdgroup
constexpr size_t kMaxThreadgroupMemory = 32768;     // maxTotalThreadgroupMemoryLength on Apple GPUs
constexpr unsigned kMaxThreadsPerThreadgroup = 1024;

// The builtin ids of the calling emulated thread, named as Metal's attributes.
struct Builtins {
  uint3 threadgroup_position_in_grid;
  uint3 threadgroups_per_grid;
  uint3 thread_position_in_threadgroup;
  uint3 threads_per_threadgroup;
  uint3 thread_position_in_grid;
  uint thread_index_in_threadgroup;
  uint thread_index_in_simdgroup;
  uint simdgroup_index_in_threadgroup;
  uint threads_per_simdgroup;
  uint simdgroups_per_threadgroup;
};

inline Builtins builtins() {
  const Fiber& f = self();
  const Block& b = current_block();
  Builtins r;
  r.threadgroup_position_in_grid = uint3(b.group_id.x, b.group_id.y, b.group_id.z);
  r.threadgroups_per_grid = uint3(b.grid_size.x, b.grid_size.y, b.grid_size.z);
  r.thread_position_in_threadgroup = uint3(f.local_id.x, f.local_id.y, f.local_id.z);
  r.threads_per_threadgroup = uint3(b.group_size.x, b.group_size.y, b.group_size.z);
  r.thread_position_in_grid = uint3(b.group_id.x * b.group_size.x + f.local_id.x, b.group_id.y * b.group_size.y + f.local_id.y,
                                    b.group_id.z * b.group_size.z + f.local_id.z);
  r.thread_index_in_threadgroup = f.linear;
  r.thread_index_in_simdgroup = f.lane;
  r.simdgroup_index_in_threadgroup = f.warp;
  r.threads_per_simdgroup = kSimdWidth;
  r.simdgroups_per_threadgroup = (b.nthreads + kSimdWidth - 1) / kSimdWidth;
  return r;
}

// Runs `body(const Builtins&, void* threadgroup_memory)` once per thread of a
// threadgroups.x × .y × .z grid of threads_per_threadgroup threads (Metal's
// dispatchThreadgroups). threadgroup_memory points at `threadgroup_bytes` bytes
// shared by the threadgroup, filled with 0xFF (NaN) at its start. Synchronous.
template <class Body>
void dispatch(const char* kernel_name, uint3 threadgroups, uint3 threads_per_threadgroup, size_t threadgroup_bytes,
              Body&& body) {
  const unsigned nt = threads_per_threadgroup.x * threads_per_threadgroup.y * threads_per_threadgroup.z;
  if (!threadgroups.x || !threadgroups.y || !threadgroups.z || nt == 0 || nt > kMaxThreadsPerThreadgroup)
    detail::die(detail::format("error: dispatch of '%s': %u×%u×%u threads per threadgroup (Metal allows 1..%u)", kernel_name,
                               threads_per_threadgroup.x, threads_per_threadgroup.y, threads_per_threadgroup.z,
                               kMaxThreadsPerThreadgroup));
  if (threadgroup_bytes > kMaxThreadgroupMemory)
    detail::die(detail::format("error: dispatch of '%s': %zu bytes of threadgroup memory exceed the %zu Apple GPUs allow",
                               kernel_name, threadgroup_bytes, kMaxThreadgroupMemory));
  typedef typename std::decay<Body>::type B;
  B* fn = &body;
  LaunchSpec spec;
  spec.kernel_name = kernel_name;
  spec.barrier_name = "threadgroup_barrier";
  spec.grid = Dim3{threadgroups.x, threadgroups.y, threadgroups.z};
  spec.block = Dim3{threads_per_threadgroup.x, threads_per_threadgroup.y, threads_per_threadgroup.z};
  spec.dyn_smem = threadgroup_bytes;
  spec.lanes_per_warp = kSimdWidth;
  spec.entry = [](void* ctx) {
    const Builtins b = builtins();
    (*static_cast<B*>(ctx))(b, dynamic_smem());
  };
  spec.ctx = fn;
  run_grid(spec);
}

// Buffers for a dispatch: device memory of the emulator (fresh bytes are 0xFF),
// so that simdgroup loads and stores can check their addresses.
template <class T>
T* new_buffer(size_t elements) {
  void* p = device_alloc(elements * sizeof(T));
  if (!p) detail::die("error: out of memory allocating an emulated device buffer");
  return static_cast<T*>(p);
}
inline void free_buffer(void* p) { device_free(p); }

// ---------------------------------------------------------------------------
// Simdgroup collectives.

inline uint32_t simd_members() {
  const Fiber& f = self();
  return current_block().warps[f.warp].exist;
}

inline void nop_combine(const Collective&) {}

enum ShuffleMode : int { kIndex, kXor, kDown, kUp };

template <class T>
struct ShuffleIn {
  T value;
  int mode, arg;
};

template <class T>
void shuffle_combine(const Collective& c) {
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    if (!((c.need >> l) & 1u)) continue;
    const ShuffleIn<T>* in = static_cast<const ShuffleIn<T>*>(c.in[l]);
    int src = (int)l;
    switch (in->mode) {
      case kIndex: src = in->arg; break;
      case kXor: src = (int)l ^ in->arg; break;
      // Metal: lanes whose source would leave the simdgroup keep their own value.
      case kDown: src = (int)l + in->arg < (int)kSimdWidth ? (int)l + in->arg : (int)l; break;
      case kUp: src = (int)l - in->arg >= 0 ? (int)l - in->arg : (int)l; break;
    }
    T* out = static_cast<T*>(c.out[l]);
    if (src >= 0 && src < (int)kMaxLanes && ((c.need >> src) & 1u))
      memcpy(out, &static_cast<const ShuffleIn<T>*>(c.in[src])->value, sizeof(T));
    else
      memset(out, kPoisonByte, sizeof(T));  // source lane absent: undefined
  }
}

template <class T>
T shuffle(const char* name, int mode, T value, int arg, const char* file, int line) {
  static_assert(std::is_trivially_copyable<T>::value, "simd shuffle of a non-trivial type");
  ShuffleIn<T> in{value, mode, arg};
  T out;
  CollectiveDesc d{name, false, file, line, sizeof in, &shuffle_combine<T>};
  collective(d, simd_members(), &in, &out);
  return out;
}

enum ReduceOp : int { kSum, kProduct, kMax, kMin };

template <class T, int Op>
void reduce_combine(const Collective& c) {
  T acc{};
  bool first = true;
  for (unsigned l = 0; l < kMaxLanes; ++l) {  // lane order: deterministic
    if (!((c.need >> l) & 1u)) continue;
    T v = *static_cast<const T*>(c.in[l]);
    if (first) {
      acc = v;
      first = false;
    } else if (Op == kSum) {
      acc = T(acc + v);
    } else if (Op == kProduct) {
      acc = T(acc * v);
    } else if (Op == kMax) {
      acc = v > acc ? v : acc;
    } else {
      acc = v < acc ? v : acc;
    }
  }
  for (unsigned l = 0; l < kMaxLanes; ++l)
    if ((c.need >> l) & 1u) *static_cast<T*>(c.out[l]) = acc;
}

template <int Op, class T>
T reduce(const char* name, T value, const char* file, int line) {
  T out;
  CollectiveDesc d{name, false, file, line, sizeof(T), &reduce_combine<T, Op>};
  collective(d, simd_members(), &value, &out);
  return out;
}

// Apple's simdgroup_matrix<T, 8, 8> layout: lane l holds elements (row, col) and
// (row, col + 1) in thread_elements()[0] and [1], with
//   row = 4·bit4(l) + 2·bit2(l) + bit1(l),   col = 4·bit3(l) + 2·bit0(l).
// (Not in Apple's specification, which calls it implementation-defined; it is the
// layout Apple GPUs use and that MLX and metal-flash-attention rely on.)
inline void frag_coord(unsigned lane, int& row, int& col) {
  row = (int)(((lane >> 4) & 1u) * 4 + ((lane >> 2) & 1u) * 2 + ((lane >> 1) & 1u));
  col = (int)(((lane >> 3) & 1u) * 4 + (lane & 1u) * 2);
}

inline void require_full_simdgroup(const char* name) {
  if (simd_members() != 0xffffffffu)
    fatal("%s needs a full simdgroup of %u threads (threadgroup size %u is not a multiple of it)", name, kSimdWidth,
          current_block().nthreads);
}

// Where the 8×8 block a simdgroup matrix load/store touches lies: all of it in
// this threadgroup's memory, or all of it in one device buffer.
inline void check_block_range(const char* name, const char* lo, const char* hi, size_t elem) {
  if (is_shared_range(lo, 1)) {
    if (!is_shared_range(lo, (size_t)(hi - lo) + elem))
      fatal("%s: the 8x8 block [%p, %p] runs past the threadgroup memory (%zu bytes)", name, (const void*)lo,
            (const void*)hi, dynamic_smem_size());
    return;
  }
  if (!is_device_range(lo, (size_t)(hi - lo) + elem))
    fatal("%s: the 8x8 block [%p, %p] is neither in threadgroup memory nor inside one device buffer", name,
          (const void*)lo, (const void*)hi);
}

struct MatrixAccess {
  char* base;
  size_t elem;
  unsigned long epr, ox, oy;
  bool transpose;
  bool operator!=(const MatrixAccess& o) const {
    return base != o.base || epr != o.epr || ox != o.ox || oy != o.oy || transpose != o.transpose;
  }
  // Address of element (row, col) of the 8×8 matrix.
  char* at(int row, int col) const {
    const unsigned long r = transpose ? (unsigned long)col : (unsigned long)row;
    const unsigned long c = transpose ? (unsigned long)row : (unsigned long)col;
    return base + ((oy + r) * epr + ox + c) * elem;
  }
};

inline void check_uniform_access(const Collective& c, const char* name) {
  const MatrixAccess& first = static_cast<const MatrixAccess*>(c.in[0])[0];
  for (unsigned l = 1; l < kMaxLanes; ++l)
    if (static_cast<const MatrixAccess*>(c.in[l])[0] != first)
      fatal("%s (%s:%d): lanes 0 and %u pass different pointers, strides, origins or transposition (they must be "
            "uniform across the simdgroup)",
            name, c.desc.file, c.desc.line, l);
  check_block_range(name, first.at(0, 0) < first.at(7, 7) ? first.at(0, 0) : first.at(7, 7),
                    first.at(0, 0) < first.at(7, 7) ? first.at(7, 7) : first.at(0, 0), first.elem);
}

template <class T>
void load_combine(const Collective& c) {
  check_uniform_access(c, "simdgroup_load");
  const MatrixAccess& a = static_cast<const MatrixAccess*>(c.in[0])[0];
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    int row, col;
    frag_coord(l, row, col);
    metal::vec<T, 2>* out = static_cast<metal::vec<T, 2>*>(c.out[l]);
    for (int e = 0; e < 2; ++e) memcpy(&(*out)[e], a.at(row, col + e), sizeof(T));
  }
}

template <class T>
void store_combine(const Collective& c) {
  check_uniform_access(c, "simdgroup_store");
  const MatrixAccess& a = static_cast<const MatrixAccess*>(c.in[0])[0];
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    int row, col;
    frag_coord(l, row, col);
    const metal::vec<T, 2>* in = reinterpret_cast<const metal::vec<T, 2>*>(static_cast<const MatrixAccess*>(c.in[l]) + 1);
    for (int e = 0; e < 2; ++e) memcpy(a.at(row, col + e), &(*in)[e], sizeof(T));
  }
}

template <class T>
struct MmaIn {
  metal::vec<T, 2> a, b, c;
  bool accumulate;
};

// D = A·B + C over the whole simdgroup: the exact products summed in double and
// rounded once to T (hardware rounding differs by a few ulps at most).
template <class T>
void mma_combine(const Collective& c) {
  double A[8][8], B[8][8], C[8][8];
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    int row, col;
    frag_coord(l, row, col);
    const MmaIn<T>* in = static_cast<const MmaIn<T>*>(c.in[l]);
    for (int e = 0; e < 2; ++e) {
      A[row][col + e] = (double)(float)in->a[e];
      B[row][col + e] = (double)(float)in->b[e];
      C[row][col + e] = in->accumulate ? (double)(float)in->c[e] : 0.0;
    }
  }
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    int row, col;
    frag_coord(l, row, col);
    metal::vec<T, 2>* out = static_cast<metal::vec<T, 2>*>(c.out[l]);
    for (int e = 0; e < 2; ++e) {
      double s = C[row][col + e];
      for (int k = 0; k < 8; ++k) s += A[row][k] * B[k][col + e];
      (*out)[e] = T((float)s);
    }
  }
}

}  // namespace msl
}  // namespace dcagen_emu

// ---------------------------------------------------------------------------
// The metal namespace: math, synchronisation, simd functions, simdgroup_matrix.

namespace metal {

// Math (IEEE results; Metal's fast-math variants are approximations of these).
inline float exp(float x) { return std::exp(x); }
inline float exp2(float x) { return std::exp2(x); }
inline float log(float x) { return std::log(x); }
inline float log2(float x) { return std::log2(x); }
inline float sqrt(float x) { return std::sqrt(x); }
inline float rsqrt(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline float cos(float x) { return std::cos(x); }
inline float sin(float x) { return std::sin(x); }
inline float floor(float x) { return std::floor(x); }
inline float ceil(float x) { return std::ceil(x); }
inline float abs(float x) { return std::fabs(x); }
inline float fabs(float x) { return std::fabs(x); }
inline float fmax(float a, float b) { return std::fmax(a, b); }
inline float fmin(float a, float b) { return std::fmin(a, b); }
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline bool isinf(float x) { return std::isinf(x); }
inline bool isnan(float x) { return std::isnan(x); }
template <class T> inline T max(T a, T b) { return a > b ? a : b; }
template <class T> inline T min(T a, T b) { return a < b ? a : b; }
template <class T> inline T clamp(T x, T lo, T hi) { return min(max(x, lo), hi); }
template <class T> inline T select(T a, T b, bool c) { return c ? b : a; }
template <class To, class From>
inline To as_type(From v) {
  static_assert(sizeof(To) == sizeof(From), "as_type between types of different sizes");
  To r;
  memcpy(&r, &v, sizeof r);
  return r;
}
namespace fast {
using metal::exp;
using metal::exp2;
using metal::log;
using metal::log2;
using metal::rsqrt;
using metal::sqrt;
}  // namespace fast
namespace precise {
using metal::exp;
using metal::exp2;
using metal::log;
using metal::log2;
using metal::rsqrt;
using metal::sqrt;
}  // namespace precise

enum class mem_flags : unsigned { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags((unsigned)a | (unsigned)b); }

// Execution and memory barrier for the threadgroup: every thread must reach the
// same call (a missing one shows up as poisoned or stale threadgroup memory).
inline void threadgroup_barrier(mem_flags, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::dcagen_emu::barrier("threadgroup_barrier", file, line);
}
inline void simdgroup_barrier(mem_flags, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::dcagen_emu::CollectiveDesc d{"simdgroup_barrier", false, file, line, 0, &::dcagen_emu::msl::nop_combine};
  ::dcagen_emu::collective(d, ::dcagen_emu::msl::simd_members(), nullptr, nullptr);
}

#define DCAGEN_MSL_SHUFFLE(NAME, MODE)                                                                       \
  template <class T>                                                                                         \
  inline T NAME(T value, ushort arg, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {      \
    return ::dcagen_emu::msl::shuffle(#NAME, ::dcagen_emu::msl::MODE, value, (int)arg, file, line);            \
  }
DCAGEN_MSL_SHUFFLE(simd_shuffle, kIndex)
DCAGEN_MSL_SHUFFLE(simd_broadcast, kIndex)
DCAGEN_MSL_SHUFFLE(simd_shuffle_xor, kXor)
DCAGEN_MSL_SHUFFLE(simd_shuffle_down, kDown)
DCAGEN_MSL_SHUFFLE(simd_shuffle_up, kUp)
#undef DCAGEN_MSL_SHUFFLE

#define DCAGEN_MSL_REDUCE(NAME, OP)                                                                          \
  template <class T>                                                                                         \
  inline T NAME(T value, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {                  \
    return ::dcagen_emu::msl::reduce<::dcagen_emu::msl::OP>(#NAME, value, file, line);                         \
  }
DCAGEN_MSL_REDUCE(simd_sum, kSum)
DCAGEN_MSL_REDUCE(simd_product, kProduct)
DCAGEN_MSL_REDUCE(simd_max, kMax)
DCAGEN_MSL_REDUCE(simd_min, kMin)
#undef DCAGEN_MSL_REDUCE

// --- simdgroup_matrix ---

template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the emulation supports 8x8 simdgroup matrices (what Apple GPUs have)");
  static_assert(std::is_same<T, float>::value || std::is_same<T, half>::value || std::is_same<T, bfloat>::value,
                "simdgroup_matrix element types are float, half and bfloat");
  vec<T, 2> elements;  // this thread's two elements, at frag_coord(lane)

  // Undefined contents in Metal: NaN here, so reading them shows.
  simdgroup_matrix() { memset(&elements, ::dcagen_emu::kPoisonByte, sizeof elements); }
  // A diagonal matrix with `diagonal` on its diagonal.
  explicit simdgroup_matrix(T diagonal) {
    int row, col;
    ::dcagen_emu::msl::frag_coord(::dcagen_emu::self().lane, row, col);
    for (int e = 0; e < 2; ++e) elements[e] = row == col + e ? diagonal : T(0.0f);
  }
  // Non-const only: whether Metal offers thread_elements() on a const matrix is not documented, so
  // code checked here must not rely on it.
  vec<T, 2>& thread_elements() { return elements; }
};

typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <class T, int Cols, int Rows>
inline simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.elements = vec<T, 2>(value, value);
  return m;
}

namespace detail_msl {
inline ::dcagen_emu::msl::MatrixAccess access(const void* p, size_t elem, ulong epr, ulong2 origin, bool transpose,
                                              const char* name, const char* file, int line) {
  if (transpose && (origin.x != 0 || origin.y != 0))
    ::dcagen_emu::fatal("%s (%s:%d) with transpose_matrix and a non-zero matrix_origin: the Metal specification leaves "
                        "open in which coordinates the origin applies; offset the pointer instead",
                        name, file, line);
  return ::dcagen_emu::msl::MatrixAccess{const_cast<char*>(static_cast<const char*>(p)), elem, epr, origin.x, origin.y,
                                         transpose};
}
}  // namespace detail_msl

// Loads an 8×8 matrix whose element (r, c) is src[(origin.y + r)·elements_per_row
// + origin.x + c], or with transpose_matrix src[c·elements_per_row + r].
template <class T, int Cols, int Rows>
inline void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, const T* src, ulong elements_per_row = Cols,
                           ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false,
                           const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu;
  msl::require_full_simdgroup("simdgroup_load");
  msl::MatrixAccess in =
      detail_msl::access(src, sizeof(T), elements_per_row, matrix_origin, transpose_matrix, "simdgroup_load", file, line);
  CollectiveDesc desc{"simdgroup_load", true, file, line, sizeof in, &msl::load_combine<T>};
  collective(desc, 0xffffffffu, &in, &d.elements);
}

template <class T, int Cols, int Rows>
inline void simdgroup_store(const simdgroup_matrix<T, Cols, Rows>& a, T* dst, ulong elements_per_row = Cols,
                            ulong2 matrix_origin = ulong2(0, 0), bool transpose_matrix = false,
                            const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu;
  msl::require_full_simdgroup("simdgroup_store");
  struct {
    msl::MatrixAccess access;
    vec<T, 2> elements;
  } in{detail_msl::access(dst, sizeof(T), elements_per_row, matrix_origin, transpose_matrix, "simdgroup_store", file,
                          line),
       a.elements};
  static_assert(offsetof(decltype(in), elements) == sizeof(msl::MatrixAccess), "store input layout");
  CollectiveDesc desc{"simdgroup_store", true, file, line, sizeof in, &msl::store_combine<T>};
  collective(desc, 0xffffffffu, &in, nullptr);
}

// d = a·b + c (d may be any of a, b, c).
template <class T, int N>
inline void simdgroup_multiply_accumulate(simdgroup_matrix<T, N, N>& d, const simdgroup_matrix<T, N, N>& a,
                                          const simdgroup_matrix<T, N, N>& b, const simdgroup_matrix<T, N, N>& c,
                                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu;
  msl::require_full_simdgroup("simdgroup_multiply_accumulate");
  msl::MmaIn<T> in{a.elements, b.elements, c.elements, true};
  CollectiveDesc desc{"simdgroup_multiply_accumulate", true, file, line, sizeof in, &msl::mma_combine<T>};
  collective(desc, 0xffffffffu, &in, &d.elements);
}

// d = a·b.
template <class T, int N>
inline void simdgroup_multiply(simdgroup_matrix<T, N, N>& d, const simdgroup_matrix<T, N, N>& a,
                               const simdgroup_matrix<T, N, N>& b, const char* file = __builtin_FILE(),
                               int line = __builtin_LINE()) {
  using namespace ::dcagen_emu;
  msl::require_full_simdgroup("simdgroup_multiply");
  msl::MmaIn<T> in{a.elements, b.elements, b.elements, false};
  CollectiveDesc desc{"simdgroup_multiply", true, file, line, sizeof in, &msl::mma_combine<T>};
  collective(desc, 0xffffffffu, &in, &d.elements);
}

}  // namespace metal

// ---------------------------------------------------------------------------
// Qualifiers last, so that no header above sees them.

#define kernel
#define device
#define constant
#define thread
#define threadgroup

#endif  // DCAGEN_METAL_EMULATION_HPP
