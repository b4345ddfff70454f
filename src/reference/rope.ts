// Rotary position embedding in float64: the exact angles every kernel is checked against.

export type RopeStyle = 'half' | 'interleaved';

export interface RopeConfig {
  /** Base θ of the frequencies (10000 for Llama-2, 1e7 for Qwen 1M). */
  readonly theta: number;
  /** `half`: dimension k pairs with k + r/2 (GPT-NeoX, HF Llama, Qwen). `interleaved`: 2k with 2k + 1 (GPT-J). */
  readonly style: RopeStyle;
  /** Leading dimensions that rotate (partial rotary); the rest pass through. Defaults to the head dim. */
  readonly rotaryDim?: number;
}

/** θ^(−2k/r) for k in [0, r/2). */
export function inverseFrequencies(theta: number, rotaryDim: number): Float64Array {
  const half = rotaryDim / 2;
  const out = new Float64Array(half);
  for (let k = 0; k < half; k++) out[k] = theta ** ((-2 * k) / rotaryDim);
  return out;
}

/** The partner index pairs (a, b) rotated together, in frequency order. */
export function rotaryPairs(style: RopeStyle, rotaryDim: number): Array<[number, number]> {
  const half = rotaryDim / 2;
  return Array.from({ length: half }, (_, k) => (style === 'half' ? [k, k + half] : [2 * k, 2 * k + 1]));
}

/** Rotates one head vector `x` (length D, at `offset` in `src`) to `position`, writing into `out`. */
export function rotate(
  src: ArrayLike<number>, offset: number, headDim: number, position: number,
  invFreq: Float64Array, pairs: ReadonlyArray<[number, number]>, out: Float64Array,
): void {
  for (let d = 0; d < headDim; d++) out[d] = src[offset + d]!;
  for (let k = 0; k < pairs.length; k++) {
    const [a, b] = pairs[k]!;
    const angle = position * invFreq[k]!;
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const xa = src[offset + a]!;
    const xb = src[offset + b]!;
    out[a] = xa * c - xb * s;
    out[b] = xb * c + xa * s;
  }
}

export function checkRotaryDim(headDim: number, rotaryDim: number | undefined): number {
  const r = rotaryDim ?? headDim;
  if (!Number.isInteger(r) || r < 2 || r % 2 !== 0 || r > headDim) {
    throw new RangeError(`rotary dim must be an even integer in [2, ${headDim}], got ${r}`);
  }
  return r;
}
