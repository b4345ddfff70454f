// Rounding to storage precisions, so the reference sees what a kernel with f16 or bf16 inputs sees.

export type StorageDType = 'f32' | 'f16' | 'bf16';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds to the nearest bfloat16 (round to nearest even), returned as a number. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000) return f32[0]!; // inf / nan unchanged
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  u32[0] = rounded >>> 0;
  return f32[0]!;
}

/** float → IEEE half bits, round to nearest even (subnormals included). */
export function toHalfBits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -24 * 0.5) return sign;
  if (a < 2 ** -14) {
    // subnormal: units of 2^-24
    const units = roundHalfEven(a / 2 ** -24);
    return sign | units;
  }
  let exp = Math.floor(Math.log2(a));
  if (2 ** exp > a) exp -= 1;
  if (2 ** (exp + 1) <= a) exp += 1;
  let mant = roundHalfEven((a / 2 ** exp - 1) * 1024);
  if (mant === 1024) {
    mant = 0;
    exp += 1;
  }
  if (exp > 15) return sign | 0x7c00;
  return sign | ((exp + 15) << 10) | mant;
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function roundF16(x: number): number {
  return fromHalfBits(toHalfBits(x));
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function roundTo(dtype: StorageDType, x: number): number {
  switch (dtype) {
    case 'f32': return Math.fround(x);
    case 'f16': return roundF16(x);
    case 'bf16': return roundBf16(x);
  }
}

export function roundArray(dtype: StorageDType, data: ArrayLike<number>): Float64Array {
  const out = new Float64Array(data.length);
  for (let k = 0; k < data.length; k++) out[k] = roundTo(dtype, data[k]!);
  return out;
}
