// cuda_emulation.hpp: the CUDA dialect of the dcagen CPU emulator (tests only).
//
// Lets g++ compile an unmodified dcagen .cu file and run it on the CPU, with
// the threads of a block as fibers (see emu_core.hpp for the execution model):
//
//   g++ -std=c++17 -O2 -fno-strict-aliasing -fstack-clash-protection -DDCAGEN_EMULATE
//       -include runtime/emulation/cuda_emulation.hpp
//       -x c++ kernel.cu -x none harness.cpp -o prog -lpthread
//
// Conventions the .cu follows so that the same source builds with nvcc:
//  * CUDA headers only under `#ifndef DCAGEN_EMULATE`; this header supplies
//    cuda_fp16.h / cuda_bf16.h / cuda_runtime.h equivalents when emulating.
//  * Launch through DCAGEN_LAUNCH(kernel, grid, block, smemBytes, stream)(args...),
//    defined natively as `kernel<<<grid, block, smemBytes, stream>>>`. Wrap a
//    template-id in parentheses: DCAGEN_LAUNCH((attn<64, true>), ...).
//  * Dynamic shared memory via DCAGEN_DYNAMIC_SMEM(T, name); inside the kernel,
//    defined natively as `extern __shared__ __align__(16) T name[]`. Static
//    `__shared__` declarations work unchanged (they become thread_local statics,
//    one copy per emulation OS thread, poisoned at every block start).
//  * PTX lives only in small __device__ __forceinline__ wrappers whose body is
//    `#ifdef DCAGEN_EMULATE dcagen_emu::<op>(...) #else asm volatile(...) #endif`.
//    The dcagen_emu:: ops below take generic pointers or 32-bit shared addresses
//    (as __cvta_generic_to_shared returns them here).
#ifndef DCAGEN_CUDA_EMULATION_HPP
#define DCAGEN_CUDA_EMULATION_HPP

#ifndef DCAGEN_EMULATE
#define DCAGEN_EMULATE 1
#endif

#include "emu_core.hpp"

#include <cassert>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <math.h>

// ---------------------------------------------------------------------------
// Qualifiers and builtin variables.

#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// One copy per OS thread that runs blocks; blocks on one thread run in sequence.
#define __shared__ static thread_local

using uint3 = ::dcagen_emu::Dim3;

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define threadIdx (::dcagen_emu::self().local_id)
#define blockIdx (::dcagen_emu::current_block().group_id)
#define blockDim (::dcagen_emu::current_block().group_size)
#define gridDim (::dcagen_emu::current_block().grid_size)
static constexpr int warpSize = 32;

#define DCAGEN_DYNAMIC_SMEM(T, name) T* const name = reinterpret_cast<T*>(::dcagen_emu::dynamic_smem())
#define DCAGEN_LAUNCH(kernel, grid, block, smem, stream) \
  ::dcagen_emu::cuda::launch_config(kernel, grid, block, smem, stream, #kernel)

// ---------------------------------------------------------------------------
// Vector types.

struct __align__(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(16) double2 { double x, y; };
struct __align__(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned x, y; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
struct __align__(4) short2 { short x, y; };
struct __align__(4) ushort2 { unsigned short x, y; };
struct __align__(4) char4 { signed char x, y, z, w; };
struct __align__(4) uchar4 { unsigned char x, y, z, w; };
struct __align__(16) longlong2 { long long x, y; };
struct __align__(16) ulonglong2 { unsigned long long x, y; };

inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// ---------------------------------------------------------------------------
// Half and bfloat16 (the cuda_fp16.h / cuda_bf16.h subset dcagen uses).
// Conversions round to nearest even; arithmetic is correctly rounded.

struct __half_raw { unsigned short x; };
struct __half2_raw { unsigned short x, y; };
struct __nv_bfloat16_raw { unsigned short x; };
struct __nv_bfloat162_raw { unsigned short x, y; };

namespace dcagen_emu {
inline uint16_t f64_to_f16(double d) { return f32_to_f16_rne(f64_to_f32_odd(d)); }
inline uint16_t f64_to_bf16(double d) { return f32_to_bf16_rne(f64_to_f32_odd(d)); }
// x + y rounded to odd, so that a later rounding to <= 51 bits is correct.
inline double add_round_to_odd(double x, double y) {
  double s = x + y;
  if (!std::isfinite(s)) return s;
  double bb = s - x;
  double err = (x - (s - bb)) + (y - bb);
  if (err != 0.0) {
    uint64_t u;
    memcpy(&u, &s, 8);
    if (!(u & 1u)) s = std::nextafter(s, err > 0 ? INFINITY : -INFINITY);
  }
  return s;
}
}  // namespace dcagen_emu

#define DCAGEN_EMU_FP16_TYPE(T, RAW, TO16, FROM16)                                                       \
  struct T {                                                                                             \
    unsigned short __x;                                                                                  \
    T() = default;                                                                                       \
    constexpr T(const RAW& r) : __x(r.x) {}                                                              \
    T(float f) : __x(::dcagen_emu::TO16(f)) {}                                                           \
    T(double d) : __x(::dcagen_emu::f64_to_##FROM16(d)) {}                                               \
    T(int i) : T((double)i) {}                                                                           \
    T(unsigned i) : T((double)i) {}                                                                      \
    T(long i) : T((double)i) {}                                                                          \
    T(unsigned long i) : T((double)i) {}                                                                 \
    T(long long i) : T((double)i) {}                                                                     \
    T(unsigned long long i) : T((double)i) {}                                                            \
    T(short i) : T((double)i) {}                                                                         \
    T(unsigned short i) : T((double)i) {}                                                                \
    operator float() const { return ::dcagen_emu::FROM16##_to_f32(__x); }                               \
    operator RAW() const { return RAW{__x}; }                                                            \
  };                                                                                                     \
  inline T operator+(const T& a, const T& b) { return T(float(a) + float(b)); }                          \
  inline T operator-(const T& a, const T& b) { return T(float(a) - float(b)); }                          \
  inline T operator*(const T& a, const T& b) { return T(float(a) * float(b)); }                          \
  inline T operator/(const T& a, const T& b) { return T(float(a) / float(b)); }                          \
  inline T operator-(const T& a) { return T(RAW{(unsigned short)(a.__x ^ 0x8000u)}); }                   \
  inline T operator+(const T& a) { return a; }                                                           \
  inline T& operator+=(T& a, const T& b) { return a = a + b; }                                           \
  inline T& operator-=(T& a, const T& b) { return a = a - b; }                                           \
  inline T& operator*=(T& a, const T& b) { return a = a * b; }                                           \
  inline T& operator/=(T& a, const T& b) { return a = a / b; }                                           \
  inline bool operator==(const T& a, const T& b) { return float(a) == float(b); }                        \
  inline bool operator!=(const T& a, const T& b) { return float(a) != float(b); }                        \
  inline bool operator<(const T& a, const T& b) { return float(a) < float(b); }                          \
  inline bool operator>(const T& a, const T& b) { return float(a) > float(b); }                          \
  inline bool operator<=(const T& a, const T& b) { return float(a) <= float(b); }                        \
  inline bool operator>=(const T& a, const T& b) { return float(a) >= float(b); }

DCAGEN_EMU_FP16_TYPE(__half, __half_raw, f32_to_f16_rne, f16)
DCAGEN_EMU_FP16_TYPE(__nv_bfloat16, __nv_bfloat16_raw, f32_to_bf16_rne, bf16)
#undef DCAGEN_EMU_FP16_TYPE

#define DCAGEN_EMU_FP16X2_TYPE(T2, T, RAW, RAW2)                                                      \
  struct __align__(4) T2 {                                                                            \
    T x, y;                                                                                           \
    T2() = default;                                                                                   \
    constexpr T2(const T& a, const T& b) : x(a), y(b) {}                                              \
    constexpr T2(const RAW2& r) : x(RAW{r.x}), y(RAW{r.y}) {}                                         \
    operator RAW2() const { return RAW2{x.__x, y.__x}; }                                              \
  };                                                                                                  \
  inline T2 operator+(const T2& a, const T2& b) { return T2(a.x + b.x, a.y + b.y); }                  \
  inline T2 operator-(const T2& a, const T2& b) { return T2(a.x - b.x, a.y - b.y); }                  \
  inline T2 operator*(const T2& a, const T2& b) { return T2(a.x * b.x, a.y * b.y); }                  \
  inline T2 operator/(const T2& a, const T2& b) { return T2(a.x / b.x, a.y / b.y); }                  \
  inline T2& operator+=(T2& a, const T2& b) { return a = a + b; }                                     \
  inline T2& operator-=(T2& a, const T2& b) { return a = a - b; }                                     \
  inline T2& operator*=(T2& a, const T2& b) { return a = a * b; }                                     \
  inline T2 operator-(const T2& a) { return T2(-a.x, -a.y); }

DCAGEN_EMU_FP16X2_TYPE(__half2, __half, __half_raw, __half2_raw)
DCAGEN_EMU_FP16X2_TYPE(__nv_bfloat162, __nv_bfloat16, __nv_bfloat16_raw, __nv_bfloat162_raw)
#undef DCAGEN_EMU_FP16X2_TYPE

typedef __half half;
typedef __half2 half2;
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

static_assert(sizeof(__half) == 2 && sizeof(__half2) == 4 && alignof(__half2) == 4, "half layout");
static_assert(sizeof(__nv_bfloat16) == 2 && sizeof(__nv_bfloat162) == 4, "bfloat16 layout");
static_assert(std::is_trivially_copyable<__half2>::value && std::is_trivially_default_constructible<__half2>::value,
              "half2 must be trivial (it may live in __shared__)");

// Conversions.
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __double2half(double d) { return __half(d); }
inline float __half2float(__half h) { return float(h); }
inline __half __int2half_rn(int i) { return __half(i); }
inline __half2 __float2half2_rn(float f) { return __half2(__half(f), __half(f)); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2(__half(a), __half(b)); }
inline __half2 __float22half2_rn(float2 f) { return __half2(__half(f.x), __half(f.y)); }
inline float2 __half22float2(__half2 h) { return float2{float(h.x), float(h.y)}; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
inline __half2 __half2half2(__half a) { return __half2(a, a); }
inline __half2 __lows2half2(__half2 a, __half2 b) { return __half2(a.x, b.x); }
inline __half2 __highs2half2(__half2 a, __half2 b) { return __half2(a.y, b.y); }
inline __half2 __lowhigh2highlow(__half2 a) { return __half2(a.y, a.x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline short __half_as_short(__half h) { return (short)h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline __half __short_as_half(short s) { return __half(__half_raw{(unsigned short)s}); }

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat162 __float2bfloat162_rn(float f) { return __nv_bfloat162(__nv_bfloat16(f), __nv_bfloat16(f)); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162(__nv_bfloat16(a), __nv_bfloat16(b));
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) {
  return __nv_bfloat162(__nv_bfloat16(f.x), __nv_bfloat16(f.y));
}
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{float(h.x), float(h.y)}; }
inline float __low2float(__nv_bfloat162 h) { return float(h.x); }
inline float __high2float(__nv_bfloat162 h) { return float(h.y); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 h) { return h.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 h) { return h.y; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162(a, a); }
inline __nv_bfloat162 __lows2bfloat162(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(a.x, b.x); }
inline __nv_bfloat162 __highs2bfloat162(__nv_bfloat162 a, __nv_bfloat162 b) { return __nv_bfloat162(a.y, b.y); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline short __bfloat16_as_short(__nv_bfloat16 h) { return (short)h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __nv_bfloat16 __short_as_bfloat16(short s) { return __nv_bfloat16(__nv_bfloat16_raw{(unsigned short)s}); }

// Arithmetic, for both 16-bit types.
#define DCAGEN_EMU_FP16_OPS(T, T2, RAW, FROM16)                                                                 \
  inline T __hadd(T a, T b) { return a + b; }                                                              \
  inline T __hsub(T a, T b) { return a - b; }                                                              \
  inline T __hmul(T a, T b) { return a * b; }                                                              \
  inline T __hdiv(T a, T b) { return a / b; }                                                              \
  inline T __hneg(T a) { return -a; }                                                                      \
  inline T __habs(T a) { return T(RAW{(unsigned short)(a.__x & 0x7fffu)}); }                       \
  inline T __hfma(T a, T b, T c) {                                                                         \
    /* a*b is exact in double; one rounding-to-odd keeps the final rounding correct */                     \
    return T(RAW{::dcagen_emu::f64_to_##FROM16(                                                     \
        ::dcagen_emu::add_round_to_odd((double)float(a) * (double)float(b), (double)float(c)))});          \
  }                                                                                                        \
  inline T __hmax(T a, T b) { return T(fmaxf(float(a), float(b))); }                                       \
  inline T __hmin(T a, T b) { return T(fminf(float(a), float(b))); }                                       \
  inline bool __heq(T a, T b) { return a == b; }                                                           \
  inline bool __hne(T a, T b) { return a != b; }                                                           \
  inline bool __hlt(T a, T b) { return a < b; }                                                            \
  inline bool __hle(T a, T b) { return a <= b; }                                                           \
  inline bool __hgt(T a, T b) { return a > b; }                                                            \
  inline bool __hge(T a, T b) { return a >= b; }                                                           \
  inline bool __hisnan(T a) { return std::isnan(float(a)); }                                               \
  inline int __hisinf(T a) { return std::isinf(float(a)) ? (float(a) > 0 ? 1 : -1) : 0; }                  \
  inline T2 __hadd2(T2 a, T2 b) { return a + b; }                                                          \
  inline T2 __hsub2(T2 a, T2 b) { return a - b; }                                                          \
  inline T2 __hmul2(T2 a, T2 b) { return a * b; }                                                          \
  inline T2 __h2div(T2 a, T2 b) { return a / b; }                                                          \
  inline T2 __hneg2(T2 a) { return -a; }                                                                   \
  inline T2 __habs2(T2 a) { return T2(__habs(a.x), __habs(a.y)); }                                         \
  inline T2 __hfma2(T2 a, T2 b, T2 c) { return T2(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)); }         \
  inline T2 __hmax2(T2 a, T2 b) { return T2(__hmax(a.x, b.x), __hmax(a.y, b.y)); }                         \
  inline T2 __hmin2(T2 a, T2 b) { return T2(__hmin(a.x, b.x), __hmin(a.y, b.y)); }

DCAGEN_EMU_FP16_OPS(__half, __half2, __half_raw, f16)
DCAGEN_EMU_FP16_OPS(__nv_bfloat16, __nv_bfloat162, __nv_bfloat16_raw, bf16)
#undef DCAGEN_EMU_FP16_OPS

// ---------------------------------------------------------------------------
// Math and bit intrinsics. Fast-math intrinsics are computed accurately (the
// hardware's approximations are not reproduced bit for bit).

inline float __expf(float x) { return exp2f(x * 1.4426950408889634f); }  // ex2.approx(x * log2 e)
inline float __exp10f(float x) { return exp2f(x * 3.3219280948873623f); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __frsqrt_rn(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline float rsqrtf(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline unsigned __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
inline unsigned __float2uint_rz(float x) { return (unsigned)x; }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline float __int2float_rn(int i) { return (float)i; }
inline float __uint2float_rn(unsigned i) { return (float)i; }
inline float __ll2float_rn(long long i) { return (float)i; }
inline int __float_as_int(float f) { return (int)::dcagen_emu::f32_bits(f); }
inline unsigned __float_as_uint(float f) { return ::dcagen_emu::f32_bits(f); }
inline float __int_as_float(int i) { return ::dcagen_emu::bits_f32((uint32_t)i); }
inline float __uint_as_float(unsigned u) { return ::dcagen_emu::bits_f32(u); }
inline long long __double_as_longlong(double d) { long long r; memcpy(&r, &d, 8); return r; }
inline double __longlong_as_double(long long l) { double r; memcpy(&r, &l, 8); return r; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  uint64_t v = ((uint64_t)y << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) r |= (unsigned)((v >> (((s >> (4 * i)) & 7u) * 8)) & 0xffu) << (8 * i);
  return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned sh) {
  return (unsigned)((((uint64_t)hi << 32 | lo) << (sh & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned sh) {
  return (unsigned)(((uint64_t)hi << 32 | lo) >> (sh & 31));
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((int64_t)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline int __mul24(int a, int b) { return (int)((int64_t)(a << 8 >> 8) * (b << 8 >> 8)); }

// CUDA's overloaded min/max for device code.
#define DCAGEN_EMU_MINMAX(T) \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
DCAGEN_EMU_MINMAX(int)
DCAGEN_EMU_MINMAX(unsigned)
DCAGEN_EMU_MINMAX(long)
DCAGEN_EMU_MINMAX(unsigned long)
DCAGEN_EMU_MINMAX(long long)
DCAGEN_EMU_MINMAX(unsigned long long)
#undef DCAGEN_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// Cache-hinted loads and stores are plain accesses.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}
inline long long clock64() {
  return (long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
[[noreturn]] inline void __trap() { ::dcagen_emu::fatal("__trap() executed"); }
[[noreturn]] inline void __brkpt() { ::dcagen_emu::fatal("__brkpt() executed"); }

// Shared-address conversions: the 32-bit value is an offset in the emulator's
// shared window, so kernels may do arithmetic on it and hand it to the ops.
inline size_t __cvta_generic_to_shared(const void* p) { return ::dcagen_emu::shared_addr(p); }
inline void* __cvta_shared_to_generic(size_t a) { return ::dcagen_emu::shared_ptr((uint32_t)a); }
inline unsigned __isShared(const void* p) { return ::dcagen_emu::is_shared_range(p, 1); }
inline unsigned __isGlobal(const void* p) { return ::dcagen_emu::is_device_range(p, 1); }
inline unsigned __isLocal(const void* p) { return ::dcagen_emu::is_local(p); }

// ---------------------------------------------------------------------------
// Atomics (real atomics: blocks may run on several OS threads).

#define DCAGEN_EMU_ATOMIC_INT(T)                                                                     \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }              \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }              \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }            \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }              \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }              \
  inline T atomicCAS(T* p, T cmp, T v) {                                                            \
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);             \
    return cmp;                                                                                     \
  }                                                                                                 \
  inline T atomicMax(T* p, T v) {                                                                   \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                   \
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
    }                                                                                               \
    return old;                                                                                     \
  }                                                                                                 \
  inline T atomicMin(T* p, T v) {                                                                   \
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);                                                   \
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) { \
    }                                                                                               \
    return old;                                                                                     \
  }
DCAGEN_EMU_ATOMIC_INT(int)
DCAGEN_EMU_ATOMIC_INT(unsigned)
DCAGEN_EMU_ATOMIC_INT(unsigned long long)
DCAGEN_EMU_ATOMIC_INT(long long)
#undef DCAGEN_EMU_ATOMIC_INT

#define DCAGEN_EMU_ATOMIC_FLOAT(T, U)                                                                \
  inline T atomicAdd(T* p, T v) {                                                                   \
    U* q = reinterpret_cast<U*>(p);                                                                 \
    U old = __atomic_load_n(q, __ATOMIC_RELAXED), nw;                                               \
    do {                                                                                            \
      T f;                                                                                          \
      memcpy(&f, &old, sizeof f);                                                                   \
      f += v;                                                                                       \
      memcpy(&nw, &f, sizeof f);                                                                    \
    } while (!__atomic_compare_exchange_n(q, &old, nw, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));  \
    T r;                                                                                            \
    memcpy(&r, &old, sizeof r);                                                                     \
    return r;                                                                                       \
  }                                                                                                 \
  inline T atomicExch(T* p, T v) {                                                                  \
    U nw, old;                                                                                      \
    memcpy(&nw, &v, sizeof v);                                                                      \
    old = __atomic_exchange_n(reinterpret_cast<U*>(p), nw, __ATOMIC_RELAXED);                       \
    T r;                                                                                            \
    memcpy(&r, &old, sizeof r);                                                                     \
    return r;                                                                                       \
  }
DCAGEN_EMU_ATOMIC_FLOAT(float, uint32_t)
DCAGEN_EMU_ATOMIC_FLOAT(double, uint64_t)
#undef DCAGEN_EMU_ATOMIC_FLOAT

inline unsigned atomicInc(unsigned* p, unsigned limit) {
  unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, old >= limit ? 0u : old + 1u, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  unsigned old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, (old == 0 || old > limit) ? limit : old - 1u, true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}

// ---------------------------------------------------------------------------
// Barriers and warp collectives. The trailing file/line parameters default to
// the call site; they identify barriers and appear in diagnostics.

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::dcagen_emu::barrier("__syncthreads", file, line);
}
inline int __syncthreads_count(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::barrier("__syncthreads_count", file, line, pred != 0);
}
inline int __syncthreads_and(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::barrier("__syncthreads_and", file, line, pred != 0) ==
         (int)::dcagen_emu::current_block().nthreads;
}
inline int __syncthreads_or(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::barrier("__syncthreads_or", file, line, pred != 0) != 0;
}

namespace dcagen_emu {
namespace cuda {

inline void nop_combine(const Collective&) {}

enum ShflMode : int { kIdx, kUp, kDown, kXor };

template <class T>
struct ShflIn {
  T val;
  int mode, arg, width;
};

// Source lane as PTX shfl.sync computes it (5-bit operands, segments of
// `width` lanes); an out-of-segment source returns the lane's own value.
inline unsigned shfl_source(unsigned lane, int mode, int arg, int width) {
  int b = arg & 31, l = (int)lane, seg = l & ~(width - 1), j = l;
  switch (mode) {
    case kIdx: j = seg + (b & (width - 1)); break;
    case kUp: j = l - b; if (j < seg) j = l; break;
    case kDown: j = l + b; if (j >= seg + width) j = l; break;
    default: j = l ^ b; if (j >= seg + width) j = l; break;
  }
  return (unsigned)j;
}

template <class T>
void shfl_combine(const Collective& c) {
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    if (!((c.need >> l) & 1u)) continue;
    const ShflIn<T>* in = static_cast<const ShflIn<T>*>(c.in[l]);
    unsigned src = shfl_source(l, in->mode, in->arg, in->width);
    T* out = static_cast<T*>(c.out[l]);
    if ((c.need >> src) & 1u)
      memcpy(out, &static_cast<const ShflIn<T>*>(c.in[src])->val, sizeof(T));
    else
      memset(out, kPoisonByte, sizeof(T));  // source lane not in the member mask: undefined
  }
}

template <class T>
inline T shfl(const char* name, int mode, unsigned mask, T var, int arg, int width, const char* file, int line) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of an unsupported type");
  if (width < 1 || width > 32 || (width & (width - 1)))
    fatal("%s (%s:%d): width %d is not a power of two in [1, 32]", name, file, line, width);
  ShflIn<T> in{var, mode, arg, width};
  T out;
  CollectiveDesc d{name, false, file, line, sizeof in, &shfl_combine<T>};
  collective(d, mask, &in, &out);
  return out;
}

struct VoteIn {
  uint64_t value;
  int pred;
};
struct VoteOut {
  uint64_t value;
  int pred;
};
enum VoteOp : int { kBallot, kAll, kAny, kUni, kMatchAny, kMatchAll, kRedAdd, kRedMin, kRedMax, kRedAnd, kRedOr,
                    kRedXor };

template <int Op, bool Signed>
void vote_combine(const Collective& c) {
  uint32_t ballot = 0;
  uint64_t acc = 0;
  bool first = true;
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    if (!((c.need >> l) & 1u)) continue;
    const VoteIn* in = static_cast<const VoteIn*>(c.in[l]);
    if (in->pred) ballot |= 1u << l;
    uint64_t v = in->value;
    if (first) {
      acc = v;
      first = false;
      continue;
    }
    switch (Op) {
      case kRedAdd: acc = (uint32_t)(acc + v); break;
      case kRedMin: acc = (Signed ? (int32_t)v < (int32_t)acc : (uint32_t)v < (uint32_t)acc) ? v : acc; break;
      case kRedMax: acc = (Signed ? (int32_t)v > (int32_t)acc : (uint32_t)v > (uint32_t)acc) ? v : acc; break;
      case kRedAnd: acc &= v; break;
      case kRedOr: acc |= v; break;
      case kRedXor: acc ^= v; break;
      default: break;
    }
  }
  for (unsigned l = 0; l < kMaxLanes; ++l) {
    if (!((c.need >> l) & 1u)) continue;
    const VoteIn* in = static_cast<const VoteIn*>(c.in[l]);
    VoteOut* out = static_cast<VoteOut*>(c.out[l]);
    out->pred = 0;
    switch (Op) {
      case kBallot: out->value = ballot; break;
      case kAll: out->value = ballot == c.need; break;
      case kAny: out->value = ballot != 0; break;
      case kUni: out->value = ballot == 0 || ballot == c.need; break;
      case kMatchAny:
      case kMatchAll: {
        uint32_t same = 0;
        for (unsigned k = 0; k < kMaxLanes; ++k)
          if (((c.need >> k) & 1u) && static_cast<const VoteIn*>(c.in[k])->value == in->value) same |= 1u << k;
        if (Op == kMatchAny) {
          out->value = same;
        } else {
          out->pred = same == c.need;
          out->value = same == c.need ? c.need : 0;
        }
        break;
      }
      default: out->value = acc; break;
    }
  }
}

template <int Op, bool Signed = false>
inline VoteOut vote(const char* name, unsigned mask, uint64_t value, int pred, const char* file, int line) {
  VoteIn in{value, pred};
  VoteOut out{0, 0};
  CollectiveDesc d{name, false, file, line, sizeof in, &vote_combine<Op, Signed>};
  collective(d, mask, &in, &out);
  return out;
}

template <class T>
inline uint64_t match_key(T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_*_sync takes 32- or 64-bit values");
  uint64_t k = 0;
  memcpy(&k, &v, sizeof v);
  return k;
}

}  // namespace cuda
}  // namespace dcagen_emu

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::dcagen_emu::CollectiveDesc d{"__syncwarp", false, file, line, 0, &::dcagen_emu::cuda::nop_combine};
  ::dcagen_emu::collective(d, mask, nullptr, nullptr);
}

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
  return ::dcagen_emu::cuda::shfl("__shfl_sync", ::dcagen_emu::cuda::kIdx, mask, var, srcLane, width, file, line);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::cuda::shfl("__shfl_up_sync", ::dcagen_emu::cuda::kUp, mask, var, (int)delta, width, file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::cuda::shfl("__shfl_down_sync", ::dcagen_emu::cuda::kDown, mask, var, (int)delta, width, file,
                                  line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::dcagen_emu::cuda::shfl("__shfl_xor_sync", ::dcagen_emu::cuda::kXor, mask, var, laneMask, width, file,
                                  line);
}

inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  return (unsigned)vote<kBallot>("__ballot_sync", mask, 0, pred, file, line).value;
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  return (int)vote<kAll>("__all_sync", mask, 0, pred, file, line).value;
}
inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  return (int)vote<kAny>("__any_sync", mask, 0, pred, file, line).value;
}
inline int __uni_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  return (int)vote<kUni>("__uni_sync", mask, 0, pred, file, line).value;
}
template <class T>
inline unsigned __match_any_sync(unsigned mask, T value, const char* file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  return (unsigned)vote<kMatchAny>("__match_any_sync", mask, match_key(value), 0, file, line).value;
}
template <class T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred, const char* file = __builtin_FILE(),
                                 int line = __builtin_LINE()) {
  using namespace ::dcagen_emu::cuda;
  VoteOut o = vote<kMatchAll>("__match_all_sync", mask, match_key(value), 0, file, line);
  *pred = o.pred;
  return (unsigned)o.value;
}
#define DCAGEN_EMU_REDUCE(NAME, OP)                                                                            \
  inline unsigned NAME(unsigned mask, unsigned v, const char* file = __builtin_FILE(), int line = __builtin_LINE()) { \
    using namespace ::dcagen_emu::cuda;                                                                        \
    return (unsigned)vote<OP, false>(#NAME, mask, v, 0, file, line).value;                                     \
  }                                                                                                            \
  inline int NAME(unsigned mask, int v, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {    \
    using namespace ::dcagen_emu::cuda;                                                                        \
    return (int)(uint32_t)vote<OP, true>(#NAME, mask, (uint32_t)v, 0, file, line).value;                       \
  }
DCAGEN_EMU_REDUCE(__reduce_add_sync, kRedAdd)
DCAGEN_EMU_REDUCE(__reduce_min_sync, kRedMin)
DCAGEN_EMU_REDUCE(__reduce_max_sync, kRedMax)
DCAGEN_EMU_REDUCE(__reduce_and_sync, kRedAnd)
DCAGEN_EMU_REDUCE(__reduce_or_sync, kRedOr)
DCAGEN_EMU_REDUCE(__reduce_xor_sync, kRedXor)
#undef DCAGEN_EMU_REDUCE

// Lanes of the caller's warp that have not exited (the emulator cannot see
// which lanes are converged, so this over-approximates).
inline unsigned __activemask() {
  const ::dcagen_emu::Block& b = ::dcagen_emu::current_block();
  const ::dcagen_emu::Fiber& f = ::dcagen_emu::self();
  unsigned m = 0, base = f.warp * b.lanes_per_warp;
  for (unsigned l = 0; l < b.lanes_per_warp && base + l < b.nthreads; ++l)
    if (b.fibers[base + l].state != ::dcagen_emu::FState::Exited) m |= 1u << l;
  return m;
}

// ---------------------------------------------------------------------------
// PTX instructions, emulated per the PTX ISA fragment layouts. Each is a warp
// collective: every lane of the warp must call it (the same call site).

namespace dcagen_emu {

inline unsigned lane_id() { return self().lane; }
inline unsigned warp_id() { return self().warp; }

namespace cuda {

enum MmaKind : int { kF16K16, kBf16K16, kF16K8, kBf16K8, kTf32K8 };

struct MmaIn {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

inline float lo16(uint32_t r, bool bf) { return bf ? bf16_to_f32((uint16_t)r) : f16_to_f32((uint16_t)r); }
inline float hi16(uint32_t r, bool bf) { return lo16(r >> 16, bf); }

// D = C + A*B for one m16n8k{8,16} tile. g = lane / 4, t = lane % 4 as in the
// PTX ISA ("groupID", "threadID_in_group"). Products of the 16-bit and tf32
// inputs are exact in double; the sum is rounded once to f32.
template <int Kind>
void mma_combine(const Collective& c) {
  constexpr bool bf = Kind == kBf16K16 || Kind == kBf16K8;
  constexpr int K = (Kind == kF16K16 || Kind == kBf16K16) ? 16 : 8;
  float A[16][16], B[16][8], C[16][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const MmaIn& in = *static_cast<const MmaIn*>(c.in[lane]);
    unsigned g = lane >> 2, t = lane & 3;
    if (Kind == kTf32K8) {
      for (unsigned i = 0; i < 4; ++i)  // a_i: row g + 8*(i&1), col t + 4*(i>>1)
        A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = tf32_truncate(bits_f32(in.a[i]));
      for (unsigned i = 0; i < 2; ++i)  // b_i: row t + 4*i, col g
        B[t + 4 * i][g] = tf32_truncate(bits_f32(in.b[i]));
    } else if (K == 16) {
      for (unsigned r = 0; r < 4; ++r) {  // reg r holds a_{2r}, a_{2r+1}: row g + 8*(r&1), cols 2t + 8*(r>>1) + {0,1}
        unsigned row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
        A[row][col] = lo16(in.a[r], bf);
        A[row][col + 1] = hi16(in.a[r], bf);
      }
      for (unsigned r = 0; r < 2; ++r) {  // reg r holds b_{2r}, b_{2r+1}: rows 2t + 8r + {0,1}, col g
        B[2 * t + 8 * r][g] = lo16(in.b[r], bf);
        B[2 * t + 8 * r + 1][g] = hi16(in.b[r], bf);
      }
    } else {
      for (unsigned r = 0; r < 2; ++r) {  // reg r holds a_{2r}, a_{2r+1}: row g + 8r, cols 2t + {0,1}
        A[g + 8 * r][2 * t] = lo16(in.a[r], bf);
        A[g + 8 * r][2 * t + 1] = hi16(in.a[r], bf);
      }
      B[2 * t][g] = lo16(in.b[0], bf);
      B[2 * t + 1][g] = hi16(in.b[0], bf);
    }
    for (unsigned i = 0; i < 4; ++i)  // c_i: row g + 8*(i>>1), col 2t + (i&1)
      C[g + 8 * (i >> 1)][2 * t + (i & 1)] = in.c[i];
  }
  for (unsigned lane = 0; lane < 32; ++lane) {
    unsigned g = lane >> 2, t = lane & 3;
    float* d = static_cast<float*>(c.out[lane]);
    for (unsigned i = 0; i < 4; ++i) {
      unsigned row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
      double s = C[row][col];
      for (int k = 0; k < K; ++k) s += (double)A[row][k] * (double)B[k][col];
      d[i] = (float)s;
    }
  }
}

template <int Kind>
inline void mma(const char* name, float* d, const uint32_t* a, const uint32_t* b, const float* c, const char* file,
                int line) {
  Block& blk = current_block();
  const Fiber& f = self();
  if (blk.warps[f.warp].exist != 0xffffffffu)
    fatal("%s (%s:%d) needs a full warp of 32 threads", name, file, line);
  constexpr int na = (Kind == kF16K16 || Kind == kBf16K16 || Kind == kTf32K8) ? 4 : 2;
  constexpr int nb = (Kind == kF16K8 || Kind == kBf16K8) ? 1 : 2;
  MmaIn in{};
  for (int i = 0; i < na; ++i) in.a[i] = a[i];
  for (int i = 0; i < nb; ++i) in.b[i] = b[i];
  for (int i = 0; i < 4; ++i) in.c[i] = c[i];
  float out[4];
  CollectiveDesc desc{name, true, file, line, sizeof in, &mma_combine<Kind>};
  collective(desc, 0xffffffffu, &in, out);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

struct LdmIn {
  const unsigned char* addr;
};

// ldmatrix.m8n8.x{N}{.trans}.b16: lanes 8i..8i+7 give the row addresses of
// matrix i; lane l receives, for each matrix, row l/4 elements 2(l%4), 2(l%4)+1
// (with .trans: column l/4, rows 2(l%4), 2(l%4)+1), lower element in bits 0-15.
template <int N, bool Trans>
void ldmatrix_combine(const Collective& c) {
  const char* name = c.desc.name;
  for (unsigned i = 0; i < 8u * N; ++i) {
    const unsigned char* p = static_cast<const LdmIn*>(c.in[i])->addr;
    if ((uintptr_t)p % 16)
      fatal("%s (%s:%d): row address %p from lane %u, thread %s, is not 16-byte aligned", name, c.desc.file,
            c.desc.line, (const void*)p, i, collective_thread(c, i).c_str());
    if (!is_shared_range(p, 16))
      fatal("%s (%s:%d): row address %p from lane %u, thread %s, is not inside shared memory", name, c.desc.file,
            c.desc.line, (const void*)p, i, collective_thread(c, i).c_str());
  }
  for (unsigned l = 0; l < 32; ++l) {
    uint32_t* out = static_cast<uint32_t*>(c.out[l]);
    for (unsigned m = 0; m < (unsigned)N; ++m) {
      auto row = [&](unsigned r) { return static_cast<const LdmIn*>(c.in[8 * m + r])->addr; };
      uint32_t v;
      if (!Trans) {
        memcpy(&v, row(l / 4) + 4 * (l % 4), 4);
      } else {
        uint16_t lo, hi;
        memcpy(&lo, row(2 * (l % 4)) + 2 * (l / 4), 2);
        memcpy(&hi, row(2 * (l % 4) + 1) + 2 * (l / 4), 2);
        v = (uint32_t)lo | ((uint32_t)hi << 16);
      }
      out[m] = v;
    }
  }
}

template <int N, bool Trans>
inline void ldmatrix(const char* name, uint32_t* r, const void* row_addr, const char* file, int line) {
  Block& blk = current_block();
  const Fiber& f = self();
  if (blk.warps[f.warp].exist != 0xffffffffu)
    fatal("%s (%s:%d) needs a full warp of 32 threads", name, file, line);
  LdmIn in{static_cast<const unsigned char*>(row_addr)};
  uint32_t out[4];
  CollectiveDesc desc{name, true, file, line, sizeof in, &ldmatrix_combine<N, Trans>};
  collective(desc, 0xffffffffu, &in, out);
  for (int i = 0; i < N; ++i) r[i] = out[i];
}

inline void cp_async(const char* name, void* dst, const void* src, int bytes, int src_bytes, const char* file,
                     int line) {
  if (src_bytes < 0 || src_bytes > bytes)
    fatal("%s (%s:%d): source size %d outside [0, %d]", name, file, line, src_bytes, bytes);
  if ((uintptr_t)dst % (unsigned)bytes || !is_shared_range(dst, (size_t)bytes))
    fatal("%s (%s:%d): destination %p is not %d-byte aligned shared memory", name, file, line, dst, bytes);
  if (src_bytes > 0) {
    if ((uintptr_t)src % (unsigned)bytes)
      fatal("%s (%s:%d): source %p is not %d-byte aligned", name, file, line, src, bytes);
    if (!is_device_range(src, (size_t)src_bytes))
      fatal("%s (%s:%d): source %p..+%d is not inside a cudaMalloc allocation", name, file, line, src, src_bytes);
  }
  async_copy(dst, src, (unsigned)bytes, (unsigned)src_bytes);
}

}  // namespace cuda

#define DCAGEN_EMU_SITE const char *file = __builtin_FILE(), int line = __builtin_LINE()

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32: a[4], b[2], c[4] -> d[4].
inline void mma_m16n8k16_f32_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c, DCAGEN_EMU_SITE) {
  cuda::mma<cuda::kF16K16>("mma.m16n8k16.f32.f16", d, a, b, c, file, line);
}
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: a[4], b[2], c[4] -> d[4].
inline void mma_m16n8k16_f32_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c, DCAGEN_EMU_SITE) {
  cuda::mma<cuda::kBf16K16>("mma.m16n8k16.f32.bf16", d, a, b, c, file, line);
}
// mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32: a[2], b[1], c[4] -> d[4].
inline void mma_m16n8k8_f32_f16(float* d, const uint32_t* a, const uint32_t* b, const float* c, DCAGEN_EMU_SITE) {
  cuda::mma<cuda::kF16K8>("mma.m16n8k8.f32.f16", d, a, b, c, file, line);
}
// mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32: a[2], b[1], c[4] -> d[4].
inline void mma_m16n8k8_f32_bf16(float* d, const uint32_t* a, const uint32_t* b, const float* c, DCAGEN_EMU_SITE) {
  cuda::mma<cuda::kBf16K8>("mma.m16n8k8.f32.bf16", d, a, b, c, file, line);
}
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: a[4], b[2] (f32 bit
// patterns; the low 13 mantissa bits are ignored), c[4] -> d[4].
inline void mma_m16n8k8_f32_tf32(float* d, const uint32_t* a, const uint32_t* b, const float* c, DCAGEN_EMU_SITE) {
  cuda::mma<cuda::kTf32K8>("mma.m16n8k8.f32.tf32", d, a, b, c, file, line);
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{,.trans}.shared.b16: r[N] receives the
// fragments; row_addr is this lane's row address (generic or 32-bit shared).
#define DCAGEN_EMU_LDMATRIX(FN, N, TRANS, NAME)                                                     \
  inline void FN(uint32_t* r, const void* row_addr, DCAGEN_EMU_SITE) {                              \
    cuda::ldmatrix<N, TRANS>(NAME, r, row_addr, file, line);                                        \
  }                                                                                                 \
  inline void FN(uint32_t* r, uint32_t smem_addr, DCAGEN_EMU_SITE) {                                \
    cuda::ldmatrix<N, TRANS>(NAME, r, shared_ptr(smem_addr), file, line);                           \
  }
DCAGEN_EMU_LDMATRIX(ldmatrix_x1, 1, false, "ldmatrix.m8n8.x1.b16")
DCAGEN_EMU_LDMATRIX(ldmatrix_x2, 2, false, "ldmatrix.m8n8.x2.b16")
DCAGEN_EMU_LDMATRIX(ldmatrix_x4, 4, false, "ldmatrix.m8n8.x4.b16")
DCAGEN_EMU_LDMATRIX(ldmatrix_x1_trans, 1, true, "ldmatrix.m8n8.x1.trans.b16")
DCAGEN_EMU_LDMATRIX(ldmatrix_x2_trans, 2, true, "ldmatrix.m8n8.x2.trans.b16")
DCAGEN_EMU_LDMATRIX(ldmatrix_x4_trans, 4, true, "ldmatrix.m8n8.x4.trans.b16")
#undef DCAGEN_EMU_LDMATRIX

// cp.async.cg.shared.global [dst], [src], 16{, src_bytes}: bytes past
// src_bytes are zero-filled. Lands at the cp_async_wait_* that covers it.
inline void cp_async_cg_16(void* smem_dst, const void* gmem_src, int src_bytes = 16, DCAGEN_EMU_SITE) {
  cuda::cp_async("cp.async.cg.shared.global", smem_dst, gmem_src, 16, src_bytes, file, line);
}
inline void cp_async_cg_16(uint32_t smem_dst, const void* gmem_src, int src_bytes = 16, DCAGEN_EMU_SITE) {
  cuda::cp_async("cp.async.cg.shared.global", shared_ptr(smem_dst), gmem_src, 16, src_bytes, file, line);
}
// cp.async.ca.shared.global [dst], [src], bytes{, src_bytes}; bytes is 4, 8 or 16.
inline void cp_async_ca(void* smem_dst, const void* gmem_src, int bytes, int src_bytes = -1, DCAGEN_EMU_SITE) {
  if (bytes != 4 && bytes != 8 && bytes != 16)
    fatal("cp.async.ca (%s:%d): size %d is not 4, 8 or 16", file, line, bytes);
  cuda::cp_async("cp.async.ca.shared.global", smem_dst, gmem_src, bytes, src_bytes < 0 ? bytes : src_bytes, file,
                 line);
}
inline void cp_async_ca(uint32_t smem_dst, const void* gmem_src, int bytes, int src_bytes = -1, DCAGEN_EMU_SITE) {
  cp_async_ca(shared_ptr(smem_dst), gmem_src, bytes, src_bytes, file, line);
}
// cp.async.commit_group / cp.async.wait_group n / cp.async.wait_all.
inline void cp_async_commit_group() { async_commit(); }
inline void cp_async_wait_group(int n) { async_wait(n < 0 ? 0u : (unsigned)n); }
inline void cp_async_wait_all() {
  async_commit();
  async_wait(0);
}

#undef DCAGEN_EMU_SITE
}  // namespace dcagen_emu

// ---------------------------------------------------------------------------
// Host runtime API subset over host memory. Launches run synchronously.

enum cudaError : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
};
typedef cudaError cudaError_t;

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute : int {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

enum cudaDeviceAttr : int {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

struct CUstream_st {
  int unused;
};
typedef CUstream_st* cudaStream_t;
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};
typedef CUevent_st* cudaEvent_t;

#define cudaStreamNonBlocking 0x01u
#define cudaStreamDefault 0x00u

namespace dcagen_emu {
namespace cuda {

struct HostState {
  std::mutex m;
  cudaError_t last = cudaSuccess;
  std::map<const void*, int> max_dyn_smem;  // per kernel, from cudaFuncSetAttribute
};
inline HostState& host() {
  static HostState h;
  return h;
}

inline cudaError_t set_error(cudaError_t e, const std::string& why) {
  if (e != cudaSuccess) {
    fprintf(stderr, "dcagen-emu: warning: %s\n", why.c_str());
    std::lock_guard<std::mutex> g(host().m);
    host().last = e;
  }
  return e;
}

// The emulated device: compute capability from DCAGEN_EMU_SM (80 or 90, default 80).
inline int device_sm() {
  static const int sm = [] {
    const char* s = getenv("DCAGEN_EMU_SM");
    int v = s && *s ? atoi(s) : 80;
    return v >= 90 ? 90 : 80;
  }();
  return sm;
}
inline int max_smem_optin() { return device_sm() >= 90 ? 232448 : 166912; }
constexpr int kDefaultSmem = 48 * 1024;

const char* error_string(cudaError_t e);

template <class T>
inline T implicit_arg(T v) {
  return v;
}

template <class T>
inline void check_pointer_arg(const char* kernel, int i, T* p) {
  if (p && !is_device_range(p, 0))
    fatal("argument %d (from 0) of kernel '%s' is %p, which is not device memory (cudaMalloc or a symbol)", i,
          kernel, (const void*)p);
}
template <class T>
inline void check_pointer_arg(const char*, int, const T&) {}

template <class... P>
struct LaunchConfig {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  const char* name;

  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "DCAGEN_LAUNCH: wrong number of kernel arguments");
    using Params = std::tuple<typename std::decay<P>::type...>;
    Params params{implicit_arg<typename std::decay<P>::type>(std::forward<A>(args))...};
    unsigned nt = block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z || block.x > 1024 || block.y > 1024 ||
        block.z > 64 || nt > 1024 || grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu) {
      set_error(cudaErrorInvalidConfiguration,
                detail::format("launch of '%s' failed: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)", name,
                               grid.x, grid.y, grid.z, block.x, block.y, block.z));
      return;
    }
    int allowed = kDefaultSmem;
    {
      std::lock_guard<std::mutex> g(host().m);
      auto it = host().max_dyn_smem.find(reinterpret_cast<const void*>(kernel));
      if (it != host().max_dyn_smem.end()) allowed = std::max(allowed, it->second);
    }
    if (smem > (size_t)allowed) {
      set_error(cudaErrorInvalidValue,
                detail::format("launch of '%s' failed: %zu bytes of dynamic shared memory exceed the %d allowed "
                               "(cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) raises it up to "
                               "%d on sm_%d)",
                               name, smem, allowed, max_smem_optin(), device_sm()));
      return;
    }
    int idx = 0;
    std::apply([&](const auto&... p) { (check_pointer_arg(name, idx++, p), ...); }, params);

    struct Ctx {
      void (*kernel)(P...);
      Params* params;
    } ctx{kernel, &params};
    LaunchSpec spec;
    spec.kernel_name = name;
    spec.barrier_name = "__syncthreads";
    spec.grid = Dim3{grid.x, grid.y, grid.z};
    spec.block = Dim3{block.x, block.y, block.z};
    spec.dyn_smem = smem;
    spec.lanes_per_warp = 32;
    spec.entry = [](void* c) {
      Ctx* x = static_cast<Ctx*>(c);
      std::apply(x->kernel, *x->params);  // each thread gets its own copy of the arguments
    };
    spec.ctx = &ctx;
    run_grid(spec);
  }
};

template <class... P>
inline LaunchConfig<P...> launch_config(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t,
                                        const char* name) {
  return LaunchConfig<P...>{kernel, grid, block, smem, name};
}

inline const char* error_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
  }
  return "unknown error";
}

inline cudaError_t copy(void* dst, const void* src, size_t n, cudaMemcpyKind kind, const char* fn) {
  bool dd = is_device_range(dst, n), sd = is_device_range(src, n);
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = dd && !sd; break;
    case cudaMemcpyDeviceToHost: ok = sd && !dd; break;
    case cudaMemcpyDeviceToDevice: ok = sd && dd; break;
    case cudaMemcpyHostToHost: ok = !sd && !dd; break;
    case cudaMemcpyDefault: break;
    default: return set_error(cudaErrorInvalidMemcpyDirection, detail::format("%s: bad copy kind %d", fn, (int)kind));
  }
  if (!ok)
    return set_error(cudaErrorInvalidValue,
                     detail::format("%s(%p, %p, %zu, kind %d): the pointers do not match the copy kind (device "
                                    "memory must come from cudaMalloc and cover all %zu bytes)",
                                    fn, dst, src, n, (int)kind, n));
  if (n) memmove(dst, src, n);
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace dcagen_emu

inline const char* cudaGetErrorString(cudaError_t e) { return ::dcagen_emu::cuda::error_string(e); }
inline const char* cudaGetErrorName(cudaError_t e) { return ::dcagen_emu::cuda::error_string(e); }
inline cudaError_t cudaGetLastError() {
  auto& h = ::dcagen_emu::cuda::host();
  std::lock_guard<std::mutex> g(h.m);
  cudaError_t e = h.last;
  h.last = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() {
  auto& h = ::dcagen_emu::cuda::host();
  std::lock_guard<std::mutex> g(h.m);
  return h.last;
}
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaDeviceReset() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device) {
  using namespace ::dcagen_emu::cuda;
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = kDefaultSmem; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = device_sm() >= 90 ? 132 : 108; break;
    case cudaDevAttrComputeCapabilityMajor: *v = device_sm() / 10; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = max_smem_optin(); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = ::dcagen_emu::device_alloc(n);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t n) {
  return cudaMalloc(reinterpret_cast<void**>(p), n);
}
inline cudaError_t cudaFree(void* p) {
  if (!p || ::dcagen_emu::device_free(p)) return cudaSuccess;
  return ::dcagen_emu::cuda::set_error(cudaErrorInvalidDevicePointer,
                                       ::dcagen_emu::detail::format("cudaFree(%p): not a cudaMalloc pointer", p));
}
inline cudaError_t cudaMallocHost(void** p, size_t n) { return cudaMalloc(p, n); }
template <class T>
inline cudaError_t cudaMallocHost(T** p, size_t n) {
  return cudaMalloc(reinterpret_cast<void**>(p), n);
}
inline cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
// Stream-ordered allocation: the emulator runs launches synchronously, so plain allocation suffices.
inline cudaError_t cudaMallocAsync(void** p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  return ::dcagen_emu::cuda::copy(dst, src, n, kind, "cudaMemcpy");
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t = nullptr) {
  return ::dcagen_emu::cuda::copy(dst, src, n, kind, "cudaMemcpyAsync");
}
inline cudaError_t cudaMemset(void* p, int v, size_t n) {
  if (!::dcagen_emu::is_device_range(p, n))
    return ::dcagen_emu::cuda::set_error(
        cudaErrorInvalidValue, ::dcagen_emu::detail::format("cudaMemset(%p, %d, %zu): not device memory", p, v, n));
  memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t = nullptr) { return cudaMemset(p, v, n); }
template <class T>
inline cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t n, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
  if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
  memcpy(reinterpret_cast<char*>(&symbol) + offset, src, n);
  return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, size_t n, size_t offset = 0,
                                        cudaMemcpyKind = cudaMemcpyDeviceToHost) {
  if (offset + n > sizeof(T)) return cudaErrorInvalidValue;
  memcpy(dst, reinterpret_cast<const char*>(&symbol) + offset, n);
  return cudaSuccess;
}
// A __device__/__constant__ variable's address; registered as device memory so
// it may be passed to kernels.
template <class T>
inline cudaError_t cudaGetSymbolAddress(void** p, T& symbol) {
  auto& h = ::dcagen_emu::detail::heap();
  std::lock_guard<std::mutex> g(h.m);
  h.blocks[(uintptr_t)&symbol] = sizeof(T);
  *p = &symbol;
  return cudaSuccess;
}

inline cudaError_t cudaStreamCreate(cudaStream_t* s) { *s = new CUstream_st{0}; return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) { delete s; return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new CUevent_st{}; return cudaSuccess; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t = nullptr) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}

inline cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  using namespace ::dcagen_emu::cuda;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > max_smem_optin())
      return set_error(cudaErrorInvalidValue,
                       ::dcagen_emu::detail::format("cudaFuncSetAttribute: %d bytes of dynamic shared memory exceed "
                                                    "the sm_%d maximum of %d",
                                                    value, device_sm(), max_smem_optin()));
    std::lock_guard<std::mutex> g(host().m);
    host().max_dyn_smem[kernel] = value;
  }
  return cudaSuccess;
}
template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

#endif  // DCAGEN_CUDA_EMULATION_HPP
