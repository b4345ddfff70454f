// The float64 reference: properties (dca = causal below one chunk, bottom-right alignment, LSE
// merge of per-region partials, GQA = repeated KV heads) and agreement with a second, naive
// formulation written differently here: relative positions straight from each pattern's formulas,
// RoPE as complex numbers (the logit depends only on the distance), a full Sq × Sk logit matrix and
// a masked softmax. Plus the f16/bf16 rounding against known bit patterns.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../src/errors.js';
import { compilePattern, type CompiledPattern } from '../src/dsl/instantiate.js';
import type { PatternDefinition } from '../src/dsl/pattern.js';
import type { Tensor } from '../src/io/tensor.js';
import { causal, dca, dcaPaper, rerope, selfExtend, slidingWindow } from '../src/patterns/index.js';
import { attentionShape, logitScale, mergePartials, qwenTemperature, referenceAttention, type AttentionResult } from '../src/reference/attention.js';
import { fromHalfBits, roundBf16, roundF16, roundTo, toHalfBits, type StorageDType } from '../src/reference/precision.js';
import type { RopeStyle } from '../src/reference/rope.js';
import { maxAbsDiff, randomTensor, repeatHeads, sliceSeq } from './helpers/tensors.js';

// ---------------------------------------------------------------------------------------------
// Random patterns, each with its relative-position formula written independently of src/patterns.

type Relative = (i: number, j: number) => number | null;

interface PatternCase {
  readonly definition: PatternDefinition;
  readonly params: Record<string, number>;
  /** query position − key position for a visible causal pair, null when masked out. */
  readonly relative: Relative;
}

const floor = Math.floor;

/** A case that prints as `dca {"chunkSize":…}` in fast-check counterexamples. */
function patternCase(definition: PatternDefinition, params: Record<string, number>, relative: Relative): PatternCase {
  return { definition, params, relative, [fc.toStringMethod]: () => `${definition.name} ${JSON.stringify(params)}` } as PatternCase;
}

const dcaCase = fc.record({ C: fc.integer({ min: 1, max: 9 }), W: fc.integer({ min: 0, max: 5 }) })
  .filter(({ C, W }) => C - W >= 1)
  .map(({ C, W }): PatternCase => {
    const L = C - W;
    return patternCase(dca, { chunkSize: C, localWindow: W }, (i, j) => {
      const apart = floor(i / L) - floor(j / L);
      const rj = j % L;
      if (apart === 0) return (i % L) - rj;
      if (apart === 1) return Math.min((i % L) + L, C) - rj;
      return Math.min(2 * L - 1, C) - rj;
    });
  });

const dcaPaperCase = fc.record({ c: fc.integer({ min: 2, max: 10 }), s: fc.integer({ min: 1, max: 9 }), w: fc.integer({ min: 1, max: 9 }) })
  .filter(({ c, s, w }) => s < c && w <= c - s)
  .map(({ c, s, w }) => patternCase(dcaPaper, { c, s, w }, (i, j) => {
    const apart = floor(i / s) - floor(j / s);
    const ri = i % s;
    if (apart === 0) return ri - (j % s);
    if (apart === 1) return (ri < w ? s + ri : c - 1) - (j % s);
    return c - 1 - (j % s);
  }));

const reropeCase = fc.integer({ min: 1, max: 8 }).map((W) => patternCase(rerope, { window: W }, (i, j) => (i - j < W ? i - j : W)));

const selfExtendCase = fc.record({ G: fc.integer({ min: 1, max: 4 }), W: fc.integer({ min: 1, max: 8 }) }).map(({ G, W }) =>
  patternCase(selfExtend, { groupSize: G, neighborWindow: W }, (i, j) => (i - j < W ? i - j : floor(i / G) + W - floor(W / G) - floor(j / G))));

const slidingCase = fc.integer({ min: 1, max: 8 }).map((W) => patternCase(slidingWindow, { window: W }, (i, j) => (i - j < W ? i - j : null)));

const causalCase = fc.constant(patternCase(causal, {}, (i, j) => i - j));

const anyPattern = fc.oneof(dcaCase, dcaPaperCase, reropeCase, selfExtendCase, slidingCase, causalCase);

interface ShapeCase {
  readonly B: number;
  readonly Sq: number;
  readonly Sk: number;
  readonly Hk: number;
  readonly groups: number;
  readonly D: number;
}

const shapeArb = (maxKeys = 12): fc.Arbitrary<ShapeCase> =>
  fc.record({
    B: fc.integer({ min: 1, max: 2 }),
    Sk: fc.integer({ min: 1, max: maxKeys }),
    sqFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    Hk: fc.integer({ min: 1, max: 2 }),
    groups: fc.integer({ min: 1, max: 3 }),
    D: fc.integer({ min: 2, max: 8 }),
  }).map(({ sqFraction, Sk, ...rest }) => ({ ...rest, Sk, Sq: Math.max(1, Math.ceil(sqFraction * Sk)) }));

interface Inputs {
  readonly q: Tensor<Float64Array>;
  readonly k: Tensor<Float64Array>;
  readonly v: Tensor<Float64Array>;
}

function inputs(s: ShapeCase, seed: number, queries = s.Sq): Inputs {
  return {
    q: randomTensor([s.B, queries, s.Hk * s.groups, s.D], seed),
    k: randomTensor([s.B, s.Sk, s.Hk, s.D], seed + 1),
    v: randomTensor([s.B, s.Sk, s.Hk, s.D], seed + 2),
  };
}

const ropeArb = fc.record({
  theta: fc.constantFrom(10000, 500000, 1e7, 37.5),
  style: fc.constantFrom<RopeStyle>('half', 'interleaved'),
});

// ---------------------------------------------------------------------------------------------
// The naive formulation.

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return e;
}

/** Round to a binary format with `mantissa` fraction bits and smallest normal exponent `minExp`. */
function roundBinary(x: number, mantissa: number, minExp: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  const ulp = 2 ** (Math.max(exponentOf(a), minExp) - mantissa);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

function naiveRound(dtype: StorageDType, x: number): number {
  switch (dtype) {
    case 'f32': return Math.fround(x);
    case 'f16': return roundBinary(x, 10, -14);
    case 'bf16': return roundBinary(Math.fround(x), 7, -126);
  }
}

interface NaiveOptions {
  readonly relative: Relative;
  readonly theta: number;
  readonly style: RopeStyle;
  readonly rotaryDim?: number;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
  readonly dtype?: StorageDType;
}

/**
 * softmax(S) V with S[r][j] = scale · f² · Re(Σ_k z_q[k] · conj(z_k[k]) · e^{i·δ·ω_k}) + pass-through dims,
 * δ = relative(i, j). Complex pairs: (x[k], x[k + R/2]) for rotate-half, (x[2k], x[2k+1]) interleaved.
 */
function naiveAttention({ q, k, v }: Inputs, o: NaiveOptions): { out: Float64Array; lse: Float64Array } {
  const [B, Sq, Hq, D] = q.shape as [number, number, number, number];
  const [, Sk, Hk] = k.shape as [number, number, number, number];
  const R = o.rotaryDim ?? D;
  const dtype = o.dtype ?? 'f32';
  const round = (t: Tensor): Float64Array => Float64Array.from(t.data, (x) => naiveRound(dtype, x));
  const qd = round(q);
  const kd = round(k);
  const vd = round(v);
  const temperature = o.originalMaxPosition === undefined ? 1 : Math.max(1, 0.1 * Math.log(Sk / o.originalMaxPosition) + 1);
  const factor = (o.scale ?? 1 / Math.sqrt(D)) * temperature ** 2;
  const re = (idx: number): number => (o.style === 'half' ? idx : 2 * idx);
  const im = (idx: number): number => (o.style === 'half' ? idx + R / 2 : 2 * idx + 1);
  const rotated = new Set<number>();
  for (let p = 0; p < R / 2; p++) {
    rotated.add(re(p));
    rotated.add(im(p));
  }
  const out = new Float64Array(B * Sq * Hq * D);
  const lse = new Float64Array(B * Hq * Sq);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hk));
      // The full logit matrix, −∞ where masked (above the diagonal or outside the pattern).
      const logits: number[][] = [];
      for (let r = 0; r < Sq; r++) {
        const i = r + (Sk - Sq);
        const row: number[] = [];
        const qo = ((b * Sq + r) * Hq + h) * D;
        for (let j = 0; j < Sk; j++) {
          const delta = j <= i ? o.relative(i, j) : null;
          if (delta === null) {
            row.push(-Infinity);
            continue;
          }
          const ko = ((b * Sk + j) * Hk + hk) * D;
          let s = 0;
          for (let p = 0; p < R / 2; p++) {
            const omega = Math.pow(o.theta, -(2 * p) / R);
            // z_q · conj(z_k) · e^{iδω}: real part.
            const ar = qd[qo + re(p)]!, ai = qd[qo + im(p)]!;
            const br = kd[ko + re(p)]!, bi = -kd[ko + im(p)]!;
            const pr = ar * br - ai * bi;
            const pi = ar * bi + ai * br;
            s += pr * Math.cos(delta * omega) - pi * Math.sin(delta * omega);
          }
          for (let d = 0; d < D; d++) if (!rotated.has(d)) s += qd[qo + d]! * kd[ko + d]!;
          row.push(s * factor);
        }
        logits.push(row);
      }
      for (let r = 0; r < Sq; r++) {
        const row = logits[r]!;
        const m = Math.max(...row);
        const weights = row.map((x) => (x === -Infinity ? 0 : Math.exp(x - m)));
        const total = weights.reduce((a, c) => a + c, 0);
        lse[(b * Hq + h) * Sq + r] = m + Math.log(total);
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let j = 0; j < Sk; j++) acc += weights[j]! * vd[((b * Sk + j) * Hk + hk) * D + d]!;
          out[((b * Sq + r) * Hq + h) * D + d] = acc / total;
        }
      }
    }
  }
  return { out, lse };
}

function expectClose(actual: AttentionResult, expected: { out: ArrayLike<number>; lse: ArrayLike<number> }, tol: number): void {
  expect(maxAbsDiff(actual.out.data, expected.out)).toBeLessThanOrEqual(tol);
  expect(maxAbsDiff(actual.lse.data, expected.lse)).toBeLessThanOrEqual(tol);
}

function compile(c: PatternCase): CompiledPattern {
  return compilePattern(c.definition, c.params);
}

// ---------------------------------------------------------------------------------------------

describe('reference vs a naive formulation', () => {
  it('agrees for every built-in pattern, both rope styles, partial rotary, scale, Qwen temperature and dtype', () => {
    fc.assert(
      fc.property(
        anyPattern, shapeArb(), ropeArb,
        fc.record({
          rotaryFraction: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { nil: undefined }),
          scale: fc.option(fc.double({ min: 0.05, max: 2, noNaN: true }), { nil: undefined }),
          originalMaxPosition: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
          dtype: fc.constantFrom<StorageDType>('f32', 'f16', 'bf16'),
        }),
        fc.integer({ min: 0, max: 1 << 30 }),
        (pc, shape, rope, extra, seed) => {
          // Partial rotary: an even rotary dim in [2, D]; full rotary needs an even head dim.
          const rotaryDim = extra.rotaryFraction === undefined ? undefined : 2 * Math.max(1, Math.floor((extra.rotaryFraction * shape.D) / 2));
          fc.pre(rotaryDim !== undefined || shape.D % 2 === 0);
          const data = inputs(shape, seed);
          const result = referenceAttention(data.q, data.k, data.v, {
            pattern: compile(pc),
            rope: { ...rope, ...(rotaryDim === undefined ? {} : { rotaryDim }) },
            dtype: extra.dtype,
            ...(extra.scale === undefined ? {} : { scale: extra.scale }),
            ...(extra.originalMaxPosition === undefined ? {} : { originalMaxPosition: extra.originalMaxPosition }),
          });
          const naive = naiveAttention(data, { relative: pc.relative, ...rope, ...extra, ...(rotaryDim === undefined ? {} : { rotaryDim }) });
          expectClose(result, naive, 1e-9);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('a single key returns its value, and the LSE is the scaled logit at distance 0', () => {
    const q = { shape: [1, 1, 1, 4], data: Float64Array.from([0.5, -1, 2, 0.25]) };
    const k = { shape: [1, 1, 1, 4], data: Float64Array.from([1, 0.5, -0.5, 2]) };
    const v = { shape: [1, 1, 1, 4], data: Float64Array.from([3, -2, 0.125, 7]) };
    const r = referenceAttention(q, k, v, { pattern: compilePattern(causal, {}), rope: { theta: 10000, style: 'half' } });
    expect(Array.from(r.out.data)).toEqual([3, -2, 0.125, 7]);
    expect(r.lse.data[0]).toBeCloseTo((0.5 - 0.5 - 1 + 0.5) / 2, 14);
    expect(r.lse.shape).toEqual([1, 1, 1]);
  });

  it('the DCA region choice matters: dca differs from causal once keys span two chunks', () => {
    const data = inputs({ B: 1, Sq: 6, Sk: 6, Hk: 1, groups: 1, D: 4 }, 7);
    const rope = { theta: 10000, style: 'half' as const };
    const a = referenceAttention(data.q, data.k, data.v, { pattern: compilePattern(dca, { chunkSize: 4, localWindow: 1 }), rope });
    const b = referenceAttention(data.q, data.k, data.v, { pattern: compilePattern(causal, {}), rope });
    expect(maxAbsDiff(a.out.data, b.out.data)).toBeGreaterThan(1e-6);
  });
});

describe('reference properties', () => {
  it('dca equals causal when Sk ≤ L', () => {
    fc.assert(
      fc.property(shapeArb(10), fc.integer({ min: 0, max: 6 }), fc.integer({ min: 0, max: 10 }), ropeArb, fc.integer({ min: 0, max: 1 << 30 }), (shape, W, extraL, rope, seed) => {
        fc.pre(shape.D % 2 === 0);
        const L = shape.Sk + extraL;
        const data = inputs(shape, seed);
        const options = { rope, originalMaxPosition: 3 };
        const a = referenceAttention(data.q, data.k, data.v, { ...options, pattern: compilePattern(dca, { chunkSize: L + W, localWindow: W }) });
        const b = referenceAttention(data.q, data.k, data.v, { ...options, pattern: compilePattern(causal, {}) });
        expectClose(a, { out: b.out.data, lse: b.lse.data }, 1e-12);
      }),
      { numRuns: 60 },
    );
  });

  it('running the last Sq queries equals the last Sq rows of the full run (output and LSE)', () => {
    fc.assert(
      fc.property(anyPattern, shapeArb(), ropeArb, fc.integer({ min: 0, max: 1 << 30 }), (pc, shape, rope, seed) => {
        fc.pre(shape.D % 2 === 0);
        const full = inputs(shape, seed, shape.Sk);
        const pattern = compile(pc);
        const all = referenceAttention(full.q, full.k, full.v, { pattern, rope, originalMaxPosition: 2 });
        const tail = referenceAttention(sliceSeq(full.q, shape.Sk - shape.Sq, shape.Sq), full.k, full.v, { pattern, rope, originalMaxPosition: 2 });
        expect(maxAbsDiff(tail.out.data, sliceSeq(all.out, shape.Sk - shape.Sq, shape.Sq).data)).toBeLessThanOrEqual(1e-12);
        const Hq = shape.Hk * shape.groups;
        const lseTail: number[] = [];
        for (let b = 0; b < shape.B; b++) {
          for (let h = 0; h < Hq; h++) {
            for (let r = shape.Sk - shape.Sq; r < shape.Sk; r++) lseTail.push(all.lse.data[(b * Hq + h) * shape.Sk + r]!);
          }
        }
        expect(maxAbsDiff(tail.lse.data, lseTail)).toBeLessThanOrEqual(1e-12);
      }),
      { numRuns: 60 },
    );
  });

  it('LSE merge of per-region partials equals the dense result (the ChunkLlama way)', () => {
    fc.assert(
      fc.property(anyPattern, shapeArb(), ropeArb, fc.integer({ min: 0, max: 1 << 30 }), (pc, shape, rope, seed) => {
        fc.pre(shape.D % 2 === 0);
        const data = inputs(shape, seed);
        const pattern = compile(pc);
        const dense = referenceAttention(data.q, data.k, data.v, { pattern, rope });
        const parts = pattern.regions.map((r) => referenceAttention(data.q, data.k, data.v, { pattern, rope, onlyRegion: r.name }));
        for (const part of parts) {
          // A row that sees no key of a region has LSE −∞ and output 0.
          part.lse.data.forEach((l, idx) => {
            if (l === -Infinity) {
              const [, Hq, Sq] = part.lse.shape as [number, number, number];
              const b = Math.floor(idx / (Hq * Sq));
              const h = Math.floor(idx / Sq) % Hq;
              const r = idx % Sq;
              const o = ((b * Sq + r) * Hq + h) * shape.D;
              expect(Array.from(part.out.data.subarray(o, o + shape.D)).every((x) => x === 0)).toBe(true);
            }
          });
        }
        const merged = mergePartials(parts);
        expectClose(merged, { out: dense.out.data, lse: dense.lse.data }, 1e-10);
      }),
      { numRuns: 60 },
    );
  });

  it('GQA equals repeating the KV heads', () => {
    fc.assert(
      fc.property(anyPattern, shapeArb(), ropeArb, fc.integer({ min: 0, max: 1 << 30 }), (pc, shape, rope, seed) => {
        fc.pre(shape.D % 2 === 0);
        const data = inputs(shape, seed);
        const pattern = compile(pc);
        const gqa = referenceAttention(data.q, data.k, data.v, { pattern, rope });
        const mha = referenceAttention(data.q, repeatHeads(data.k, shape.groups), repeatHeads(data.v, shape.groups), { pattern, rope });
        expectClose(gqa, { out: mha.out.data, lse: mha.lse.data }, 1e-12);
      }),
      { numRuns: 60 },
    );
  });

  it('the dtype option rounds the inputs first (f16 changes results, f32 input is exact in f32)', () => {
    const data = inputs({ B: 1, Sq: 3, Sk: 5, Hk: 1, groups: 2, D: 4 }, 11);
    const pattern = compilePattern(causal, {});
    const rope = { theta: 10000, style: 'half' as const };
    const f32 = referenceAttention(data.q, data.k, data.v, { pattern, rope, dtype: 'f32' });
    const dflt = referenceAttention(data.q, data.k, data.v, { pattern, rope });
    const f16 = referenceAttention(data.q, data.k, data.v, { pattern, rope, dtype: 'f16' });
    expect(maxAbsDiff(f32.out.data, dflt.out.data)).toBe(0);
    expect(maxAbsDiff(f16.out.data, f32.out.data)).toBeGreaterThan(1e-5);
    expect(maxAbsDiff(f16.out.data, f32.out.data)).toBeLessThan(2e-2);
  });

  it('Qwen temperature: f(n) = max(1, 0.1·ln(n/c) + 1) and logits × scale · f²', () => {
    expect(qwenTemperature(100, undefined)).toBe(1);
    expect(qwenTemperature(100, 262144)).toBe(1);
    expect(qwenTemperature(1_000_000, 262144)).toBeCloseTo(0.1 * Math.log(1_000_000 / 262144) + 1, 14);
    expect(logitScale(64, undefined, 1_000_000, 262144)).toBeCloseTo((1 / 8) * (0.1 * Math.log(1_000_000 / 262144) + 1) ** 2, 14);
    expect(logitScale(64, 0.5, 10, undefined)).toBe(0.5);
  });
});

describe('attention shapes', () => {
  const t = (shape: number[]): Tensor => ({ shape, data: new Float64Array(shape.reduce((a, b) => a * b, 1)) });
  const cases: Array<[number[], number[], number[], RegExp]> = [
    [[1, 2, 2, 4], [1, 3, 2, 6], [1, 3, 2, 6], /q has head dim 4 but k has head dim 6/],
    [[2, 2, 2, 4], [1, 3, 2, 4], [1, 3, 2, 4], /q has batch 2 but k has batch 1/],
    [[1, 2, 3, 4], [1, 3, 2, 4], [1, 3, 2, 4], /query heads \(3\) must be a multiple of key heads \(2\)/],
    [[1, 5, 2, 4], [1, 3, 2, 4], [1, 3, 2, 4], /more queries \(5\) than keys \(3\)/],
    [[1, 2, 2, 4], [1, 3, 2, 4], [1, 4, 2, 4], /v shape \[1, 4, 2, 4\] must equal k shape \[1, 3, 2, 4\]/],
    [[2, 2, 4], [1, 3, 2, 4], [1, 3, 2, 4], /q must have rank 4/],
  ];
  for (const [q, k, v, message] of cases) {
    it(`rejects q [${q}] k [${k}] v [${v}]`, () => {
      expect(() => attentionShape(t(q), t(k), t(v))).toThrow(ShapeError);
      expect(() => attentionShape(t(q), t(k), t(v))).toThrow(message);
    });
  }
  it('accepts GQA with fewer queries than keys', () => {
    expect(attentionShape(t([2, 3, 6, 8]), t([2, 5, 2, 8]), t([2, 5, 2, 8]))).toEqual({ batch: 2, queries: 3, keys: 5, queryHeads: 6, keyHeads: 2, headDim: 8 });
  });
});

describe('storage precision', () => {
  it('f16: known bit patterns, round to nearest even, subnormals and overflow', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00],
      [Infinity, 0x7c00], [-Infinity, 0xfc00], [0.1, 0x2e66], [1 / 3, 0x3555], [2 ** -14, 0x0400], [2 ** -24, 0x0001],
      [1023 * 2 ** -24, 0x03ff], [2 ** -25, 0x0000], [3 * 2 ** -26, 0x0001], [1.5 * 2 ** -24, 0x0002],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -10, 0x3c01], [2048 + 1, 0x6800], [2048 + 3, 0x6802],
    ];
    for (const [x, bits] of cases) expect(toHalfBits(x), `toHalfBits(${x})`).toBe(bits);
    expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toHalfBits(NaN) & 0x03ff).not.toBe(0);
  });

  it('f16: decoding bit patterns', () => {
    expect(fromHalfBits(0x3c00)).toBe(1);
    expect(fromHalfBits(0x7bff)).toBe(65504);
    expect(fromHalfBits(0x0001)).toBe(2 ** -24);
    expect(fromHalfBits(0x03ff)).toBe(1023 * 2 ** -24);
    expect(fromHalfBits(0x3555)).toBe(0.333251953125);
    expect(fromHalfBits(0xfc00)).toBe(-Infinity);
    expect(fromHalfBits(0x7c01)).toBeNaN();
    expect(Object.is(fromHalfBits(0x8000), -0)).toBe(true);
    expect(roundF16(0.1)).toBe(0.0999755859375);
  });

  it('f16: every finite half value round-trips through its bits, and rounding matches an independent rounder', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = fromHalfBits(h);
      if (!Number.isFinite(x)) continue;
      expect(toHalfBits(x)).toBe(h);
    }
    fc.assert(
      fc.property(fc.double({ min: -60000, max: 60000, noNaN: true }), (x) => {
        expect(roundF16(x)).toBe(roundBinary(x, 10, -14));
      }),
      { numRuns: 500 },
    );
  });

  it('bf16: known bit patterns and round to nearest even', () => {
    const bits = (x: number): number => new Uint32Array(Float32Array.of(roundBf16(x)).buffer)[0]! >>> 16;
    expect(bits(1)).toBe(0x3f80);
    expect(bits(Math.PI)).toBe(0x4049);
    expect(roundBf16(Math.PI)).toBe(3.140625);
    expect(bits(0.1)).toBe(0x3dcd);
    expect(bits(-2)).toBe(0xc000);
    expect(bits(1 + 2 ** -8)).toBe(0x3f80); // tie, even stays
    expect(bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie, rounds up to even
    expect(bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // above the tie
    expect(roundBf16(65504)).toBe(65536);
    expect(roundBf16(3.4e38)).toBe(Infinity);
    expect(roundBf16(-Infinity)).toBe(-Infinity);
    expect(roundBf16(NaN)).toBeNaN();
    expect(Object.is(roundBf16(-0), -0)).toBe(true);
    fc.assert(
      fc.property(fc.double({ min: -1e30, max: 1e30, noNaN: true }), (x) => {
        expect(roundBf16(x)).toBe(roundBinary(Math.fround(x), 7, -126));
      }),
      { numRuns: 500 },
    );
  });

  it('roundTo dispatches by dtype', () => {
    expect(roundTo('f32', 0.1)).toBe(Math.fround(0.1));
    expect(roundTo('f16', 0.1)).toBe(roundF16(0.1));
    expect(roundTo('bf16', 0.1)).toBe(roundBf16(0.1));
  });
});

describe('pre-rotated keys', () => {
  it('attention over keys pre-rotated at the key position equals attention over raw keys', async () => {
    const { preRotateKeys } = await import('../src/reference/attention.js');
    const { compilePattern: compile } = await import('../src/dsl/instantiate.js');
    const { dca: dcaPattern, rerope: reropePattern } = await import('../src/patterns/index.js');
    const { randomTensor: random } = await import('../src/verify/cases.js');
    const pattern = compile(dcaPattern, { chunkSize: 12, localWindow: 3 });
    const rope = { theta: 10000, style: 'half' as const, rotaryDim: 6 };
    const q = random([1, 20, 2, 8], 1);
    const k = random([1, 30, 1, 8], 2);
    const v = random([1, 30, 1, 8], 3);
    const raw = referenceAttention(q, k, v, { pattern, rope });
    const rotated = referenceAttention(q, preRotateKeys(k, pattern, rope), v, { pattern, rope, preRotatedKeys: true });
    // Equal up to the f32 rounding the reference applies to its inputs (here: to the rotated keys).
    for (let x = 0; x < raw.out.data.length; x++) expect(Math.abs(raw.out.data[x]! - rotated.out.data[x]!)).toBeLessThan(1e-6);
    expect(() => referenceAttention(q, k, v, { pattern: compile(reropePattern, { window: 4 }), rope, preRotatedKeys: true })).toThrow(/own position/);
  });
});
