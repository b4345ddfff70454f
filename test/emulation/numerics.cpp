// numerics.cpp: checks the emulator's 16-bit float types against a reference
// built from first principles (value tables and nearest-value search), not from
// the emulator's bit manipulation. Emulation only: no kernels, no GPU.
// Prints PASS (exit 0) or MISMATCH (exit 1).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

int bad = 0;
void fail(const char* what, double in, unsigned got, unsigned want) {
  if (bad++ < 10) printf("%s(%.17g) = 0x%04x, expected 0x%04x\n", what, in, got, want);
}

// Value of a 16-bit pattern with `mbits` mantissa bits and exponent bias `bias`.
double decode(uint16_t u, int mbits, int bias) {
  int ebits = 15 - mbits;
  int e = (u >> mbits) & ((1 << ebits) - 1);
  double m = u & ((1 << mbits) - 1);
  double s = (u & 0x8000) ? -1.0 : 1.0;
  if (e == (1 << ebits) - 1) return m ? NAN : s * INFINITY;
  if (e == 0) return s * std::ldexp(m, 1 - bias - mbits);
  return s * std::ldexp(1.0 + m / (1 << mbits), e - bias);
}

struct Format {
  int mbits, bias;
  std::vector<double> vals;  // positive finite values ascending, then the first overflow value
  std::vector<uint16_t> pats;
  Format(int mb, int b) : mbits(mb), bias(b) {
    uint16_t inf = (uint16_t)(((1 << (15 - mb)) - 1) << mb);
    for (uint32_t u = 0; u < inf; ++u) vals.push_back(decode((uint16_t)u, mb, b)), pats.push_back((uint16_t)u);
    vals.push_back(std::ldexp(1.0, (1 << (15 - mb)) - 1 - b));  // 2^(emax+1) rounds to infinity
    pats.push_back(inf);
  }
  // Round to nearest, ties to the even pattern. 2a and the sum of two
  // neighbouring values are exact in long double, so ties are found exactly.
  uint16_t round(long double v) const {
    uint16_t sign = std::signbit(v) ? 0x8000 : 0;
    long double a = std::fabs(v);
    size_t i = std::lower_bound(vals.begin(), vals.end(), a) - vals.begin();
    uint16_t p;
    if (i == vals.size()) p = pats.back();
    else if (vals[i] == a || i == 0) p = pats[i];
    else {
      long double twice = 2 * a, mid = (long double)vals[i - 1] + vals[i];
      p = twice < mid ? pats[i - 1] : twice > mid ? pats[i] : ((pats[i - 1] & 1) ? pats[i] : pats[i - 1]);
    }
    return sign | p;
  }
};

uint16_t bits(__half h) { uint16_t u; memcpy(&u, &h, 2); return u; }
uint16_t bits(__nv_bfloat16 h) { uint16_t u; memcpy(&u, &h, 2); return u; }

uint32_t rng = 2463534242u;
uint32_t next() { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

template <class T, class To, class From>
void check_format(const char* name, const Format& f, To to16, From from16) {
  // Every pattern decodes to its value and survives a round trip.
  for (uint32_t u = 0; u < 65536; ++u) {
    double want = decode((uint16_t)u, f.mbits, f.bias);
    float got = from16((uint16_t)u);
    if (std::isnan(want) != std::isnan(got) || (!std::isnan(want) && got != want)) fail(name, u, (unsigned)got, 0);
    if (!std::isnan(want) && to16(got) != u) fail(name, got, to16(got), u);
  }
  // Random floats of every exponent, and values at and next to each midpoint.
  for (int i = 0; i < 2000000; ++i) {
    uint32_t x = next();
    float v;
    memcpy(&v, &x, 4);
    if (std::isnan(v)) continue;
    if (to16(v) != f.round(v)) fail(name, v, to16(v), f.round(v));
  }
  for (size_t i = 0; i + 1 < f.vals.size(); ++i) {
    float mid = (float)((f.vals[i] + f.vals[i + 1]) / 2);  // exact in float
    for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), -mid}) {
      if (std::isinf(v)) continue;
      if (to16(v) != f.round(v)) fail(name, v, to16(v), f.round(v));
    }
  }
  (void)sizeof(T);
}

}  // namespace

int main() {
  Format f16(10, 15), bf16(7, 127);
  check_format<__half>(
      "__float2half_rn", f16, [](float v) { return bits(__float2half_rn(v)); },
      [](uint16_t u) { return __half2float(__ushort_as_half(u)); });
  check_format<__nv_bfloat16>(
      "__float2bfloat16_rn", bf16, [](float v) { return bits(__float2bfloat16_rn(v)); },
      [](uint16_t u) { return __bfloat162float(__ushort_as_bfloat16(u)); });
  int after_tables = bad;

  // NaN stays NaN; double inputs round once (1 + 2^-11 + 2^-40 is above the
  // midpoint, although the nearest float is the midpoint itself).
  if (!std::isnan(__half2float(__float2half_rn(NAN)))) fail("__float2half_rn", NAN, 0, 0x7fff);
  if (!std::isnan(__bfloat162float(__float2bfloat16_rn(NAN)))) fail("__float2bfloat16_rn", NAN, 0, 0x7fff);
  double d = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  if (bits(__double2half(d)) != f16.round(d)) fail("__double2half", d, bits(__double2half(d)), f16.round(d));
  d = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  if (bits(__double2bfloat16(d)) != bf16.round(d)) fail("__double2bfloat16", d, bits(__double2bfloat16(d)), bf16.round(d));
  // __hfma rounds a*b+c once; compared where a*b+c is exact in long double.
  int fma_checked = 0;
  for (int i = 0; i < 400000; ++i) {
    __half a = __ushort_as_half((uint16_t)(next() & 0x7bff)), b = __ushort_as_half((uint16_t)(next() & 0xfbff)),
           c = __ushort_as_half((uint16_t)(next() & 0xfbff));
    long double p = (long double)__half2float(a) * __half2float(b), cc = __half2float(c), sum = p + cc;
    long double bb = sum - p;
    if ((p - (sum - bb)) + (cc - bb) != 0) continue;  // not exact: no trustworthy reference
    ++fma_checked;
    uint16_t want = f16.round(sum), got = bits(__hfma(a, b, c));
    if (got != want) fail("__hfma", (double)sum, got, want);
  }
  if (fma_checked < 100000) fail("__hfma (too few exact cases)", fma_checked, 0, 0);
  // Packing: __floats2half2_rn puts the first value in the low 16 bits.
  __half2 h2 = __floats2half2_rn(1.0f, -2.0f);
  uint32_t packed;
  memcpy(&packed, &h2, 4);
  if (packed != 0xc0003c00u) fail("__floats2half2_rn packing", 0, packed, 0xc0003c00u);
  __nv_bfloat162 b2 = __floats2bfloat162_rn(1.0f, -2.0f);
  memcpy(&packed, &b2, 4);
  if (packed != 0xc0003f80u) fail("__floats2bfloat162_rn packing", 0, packed, 0xc0003f80u);

  printf("conversion tables: %d wrong; other checks: %d wrong\n%s\n", after_tables, bad - after_tables,
         bad ? "MISMATCH" : "PASS");
  return bad ? 1 : 0;
}
