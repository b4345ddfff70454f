// Random verification cases: pattern, parameters and shapes drawn from a seeded generator, with
// the edge cases the kernels must get right placed first (decode, Sq < Sk, tails, GQA, chunk
// boundaries off tile boundaries, partial rotary, interleaved RoPE, temperature, pre-rotated keys).
// `dcagen verify` and the property tests draw from here.

import { compilePattern, type CompiledPattern } from '../dsl/instantiate.js';
import { builtinPattern } from '../patterns/index.js';
import type { StorageDType } from '../reference/precision.js';
import type { RopeConfig } from '../reference/rope.js';
import type { Tensor } from '../io/tensor.js';

export interface VerifyCase {
  readonly label: string;
  readonly patternName: string;
  readonly params: Readonly<Record<string, number>>;
  readonly batch: number;
  readonly queries: number;
  readonly keys: number;
  readonly queryHeads: number;
  readonly keyHeads: number;
  readonly headDim: number;
  readonly dtype: StorageDType;
  readonly rope: RopeConfig;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
  readonly preRotatedKeys: boolean;
  readonly seed: number;
}

/** Deterministic 32-bit generator (mulberry32): verification runs are reproducible from --seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomTensor(shape: readonly number[], seed: number, amplitude = 1): Tensor<Float64Array> {
  const next = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  for (let k = 0; k < n; k++) data[k] = (next() * 2 - 1) * amplitude;
  return { shape: [...shape], data };
}

export interface CaseOptions {
  readonly dtypes: readonly StorageDType[];
  /** Head dims the backend supports. */
  readonly headDims: readonly number[];
  /** Upper bound on keys, to keep CPU adapters and emulators fast. */
  readonly maxKeys?: number;
}

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
const between = (next: () => number, lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));

/** The fixed edge cases first, then random ones, `count` in all. */
export function verifyCases(count: number, seed: number, options: CaseOptions): VerifyCase[] {
  const next = seededRandom(seed);
  const maxKeys = options.maxKeys ?? 160;
  const dtype0 = options.dtypes[0]!;
  const d0 = options.headDims.includes(64) ? 64 : options.headDims[0]!;
  const base = { batch: 1, queryHeads: 2, keyHeads: 1, headDim: d0, dtype: dtype0, rope: { theta: 10000, style: 'half' as const }, preRotatedKeys: false };
  const edge: Omit<VerifyCase, 'seed'>[] = [
    { ...base, label: 'dca, chunks off tile boundaries, tails', patternName: 'dca', params: { chunkSize: 29, localWindow: 6 }, queries: 97, keys: 97 },
    { ...base, label: 'dca decode (Sq = 1)', patternName: 'dca', params: { chunkSize: 20, localWindow: 4 }, queries: 1, keys: 83 },
    { ...base, label: 'dca Sq < Sk, GQA 4:1', patternName: 'dca', params: { chunkSize: 24, localWindow: 8 }, queries: 37, keys: 120, queryHeads: 4, keyHeads: 1 },
    { ...base, label: 'dca interleaved RoPE, partial rotary, batch 2', patternName: 'dca', params: { chunkSize: 16, localWindow: 3 }, queries: 50, keys: 50, batch: 2, rope: { theta: 500, style: 'interleaved', rotaryDim: d0 / 2 } },
    { ...base, label: 'dca Qwen temperature and scale', patternName: 'dca', params: { chunkSize: 18, localWindow: 2 }, queries: 64, keys: 90, scale: 0.2, originalMaxPosition: 30 },
    { ...base, label: 'dca pre-rotated keys', patternName: 'dca', params: { chunkSize: 21, localWindow: 5 }, queries: 70, keys: 70, preRotatedKeys: true },
    { ...base, label: 'causal', patternName: 'causal', params: {}, queries: 65, keys: 65 },
    { ...base, label: 'rerope (per-region key position)', patternName: 'rerope', params: { window: 13 }, queries: 40, keys: 75 },
    { ...base, label: 'self-extend', patternName: 'self-extend', params: { groupSize: 3, neighborWindow: 10 }, queries: 60, keys: 60 },
    { ...base, label: 'dca-paper (w < c − s)', patternName: 'dca-paper', params: { c: 24, s: 14, w: 5 }, queries: 66, keys: 66 },
    { ...base, label: 'sliding window', patternName: 'sliding-window', params: { window: 19 }, queries: 48, keys: 48 },
  ];
  const cases: VerifyCase[] = [];
  for (let n = 0; n < count; n++) {
    const caseSeed = Math.floor(next() * 2 ** 31);
    if (n < edge.length) {
      const e = edge[n]!;
      const dtype = options.dtypes[n % options.dtypes.length]!;
      cases.push({ ...e, dtype, keys: Math.min(e.keys, maxKeys), queries: Math.min(e.queries, maxKeys), seed: caseSeed });
      continue;
    }
    const patternName = pick(next, ['dca', 'dca', 'dca', 'causal', 'rerope', 'self-extend', 'dca-paper']);
    let params: Record<string, number> = {};
    if (patternName === 'dca') {
      const chunkSize = between(next, 4, 48);
      params = { chunkSize, localWindow: between(next, 0, chunkSize - 1) };
    } else if (patternName === 'rerope') params = { window: between(next, 1, 40) };
    else if (patternName === 'self-extend') params = { groupSize: between(next, 1, 6), neighborWindow: between(next, 1, 30) };
    else if (patternName === 'dca-paper') {
      const c = between(next, 6, 40);
      const s = between(next, 1, c - 1);
      params = { c, s, w: between(next, 1, c - s) };
    }
    const keys = between(next, 1, maxKeys);
    const keyHeads = between(next, 1, 2);
    const headDim = pick(next, options.headDims);
    const style = next() < 0.5 ? 'half' : 'interleaved';
    const partial = next() < 0.25;
    const rotaryDim = partial ? 2 * between(next, 1, headDim / 2) : undefined;
    const shared = patternName !== 'rerope' && patternName !== 'self-extend';
    cases.push({
      label: `random ${patternName}`,
      patternName,
      params,
      batch: between(next, 1, 2),
      queries: next() < 0.3 ? between(next, 1, keys) : keys,
      keys,
      queryHeads: keyHeads * between(next, 1, 3),
      keyHeads,
      headDim,
      dtype: pick(next, options.dtypes),
      rope: { theta: pick(next, [10000, 1e6, 500]), style, ...(rotaryDim !== undefined ? { rotaryDim } : {}) },
      ...(next() < 0.3 ? { scale: 0.05 + next() * 0.3 } : {}),
      ...(next() < 0.2 ? { originalMaxPosition: between(next, 1, Math.max(1, keys)) } : {}),
      preRotatedKeys: shared && next() < 0.2,
      seed: caseSeed,
    });
  }
  return cases;
}

export function casePattern(c: VerifyCase): CompiledPattern {
  return compilePattern(builtinPattern(c.patternName), c.params);
}

export function caseTensors(c: VerifyCase): { q: Tensor<Float64Array>; k: Tensor<Float64Array>; v: Tensor<Float64Array> } {
  return {
    q: randomTensor([c.batch, c.queries, c.queryHeads, c.headDim], c.seed + 1),
    k: randomTensor([c.batch, c.keys, c.keyHeads, c.headDim], c.seed + 2),
    v: randomTensor([c.batch, c.keys, c.keyHeads, c.headDim], c.seed + 3),
  };
}

/** Max absolute error allowed against the float64 reference (DESIGN.md §3). */
export function tolerance(dtype: StorageDType): number {
  return dtype === 'f32' ? 2e-4 : dtype === 'f16' ? 2e-2 : 6e-2;
}
