// The float64 dense reference: attention straight from the definition. For each query row, every
// causal key is assigned its region by the pattern's own (native) functions, both vectors are
// rotated at that region's positions, and one softmax runs over the whole row. Every kernel is
// checked against this.

import { ShapeError, UsageError } from '../errors.js';

import { maskAllows, owningRegion, type CompiledPattern, type CompiledRegion } from '../dsl/instantiate.js';
import type { Tensor } from '../io/tensor.js';
import { roundArray, type StorageDType } from './precision.js';
import { checkRotaryDim, inverseFrequencies, rotaryPairs, rotate, type RopeConfig } from './rope.js';

export interface AttentionShape {
  readonly batch: number;
  readonly queries: number;
  readonly keys: number;
  readonly queryHeads: number;
  readonly keyHeads: number;
  readonly headDim: number;
}

export interface AttentionOptions {
  readonly pattern: CompiledPattern;
  readonly rope: RopeConfig;
  /** Softmax scale; defaults to 1/√D. */
  readonly scale?: number;
  /** Qwen temperature scaling: logits × f(n)², f(n) = max(1, 0.1·ln(n / c_orig) + 1), n = key count. */
  readonly originalMaxPosition?: number;
  /** Inputs are rounded to this precision first (what a kernel with such storage sees). */
  readonly dtype?: StorageDType;
  /** Restrict attention to one region (a ChunkLlama-style partial; merge partials with mergePartials). */
  readonly onlyRegion?: string;
  /** k arrives already rotated at the pattern's key position (a rotated KV cache): keys are not rotated again. */
  readonly preRotatedKeys?: boolean;
}

export interface AttentionResult {
  /** (B, Sq, Hq, D) */
  readonly out: Tensor<Float64Array>;
  /** (B, Hq, Sq), natural log; −∞ for a row that sees no key. */
  readonly lse: Tensor<Float64Array>;
}

/** Validates q (B, Sq, Hq, D), k and v (B, Sk, Hk, D) and returns the shape. */
export function attentionShape(q: Tensor, k: Tensor, v: Tensor): AttentionShape {
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (t.shape.length !== 4) throw new ShapeError(`${name} must have rank 4 (batch, seq, heads, head_dim), got shape [${t.shape.join(', ')}]`);
  }
  const [batch, queries, queryHeads, headDim] = q.shape as [number, number, number, number];
  const [kb, keys, keyHeads, kd] = k.shape as [number, number, number, number];
  if (v.shape.join(',') !== k.shape.join(',')) throw new ShapeError(`v shape [${v.shape.join(', ')}] must equal k shape [${k.shape.join(', ')}]`);
  if (kb !== batch) throw new ShapeError(`q has batch ${batch} but k has batch ${kb}`);
  if (kd !== headDim) throw new ShapeError(`q has head dim ${headDim} but k has head dim ${kd}`);
  if (keyHeads < 1 || queryHeads % keyHeads !== 0) throw new ShapeError(`query heads (${queryHeads}) must be a multiple of key heads (${keyHeads})`);
  if (queries > keys) throw new ShapeError(`more queries (${queries}) than keys (${keys}); queries are the last Sq positions of the keys`);
  if (queries < 1 || keys < 1 || headDim < 1) throw new ShapeError('every dimension must be at least 1');
  return { batch, queries, keys, queryHeads, keyHeads, headDim };
}

/** Qwen's temperature factor f(n); logits are multiplied by f(n)². */
export function qwenTemperature(keys: number, originalMaxPosition: number | undefined): number {
  if (originalMaxPosition === undefined) return 1;
  return Math.max(1, 0.1 * Math.log(keys / originalMaxPosition) + 1);
}

/** The effective logit multiplier: scale (default 1/√D) times the temperature factor squared. */
export function logitScale(headDim: number, scale: number | undefined, keys: number, originalMaxPosition: number | undefined): number {
  const f = qwenTemperature(keys, originalMaxPosition);
  return (scale ?? 1 / Math.sqrt(headDim)) * f * f;
}

export function referenceAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): AttentionResult {
  const shape = attentionShape(q, k, v);
  const { batch, queries, keys, queryHeads, keyHeads, headDim } = shape;
  const { pattern } = options;
  const dtype = options.dtype ?? 'f32';
  const qd = roundArray(dtype, q.data);
  const kd = roundArray(dtype, k.data);
  const vd = roundArray(dtype, v.data);
  const rotaryDim = checkRotaryDim(headDim, options.rope.rotaryDim);
  const invFreq = inverseFrequencies(options.rope.theta, rotaryDim);
  const pairs = rotaryPairs(options.rope.style, rotaryDim);
  const multiplier = logitScale(headDim, options.scale, keys, options.originalMaxPosition);
  const groups = queryHeads / keyHeads;
  if (options.preRotatedKeys) {
    const own = pattern.regions.find((r) => !r.sharesKeyPosition);
    if (own !== undefined) throw new UsageError(`pattern ${pattern.name} cannot take pre-rotated keys: region ${own.name} places keys at its own position`);
  }
  const offset = keys - queries; // bottom-right alignment: query row r is absolute index r + offset

  // Per pair, the owning region (or none), computed once and shared by batches and heads.
  const owner: Array<Array<CompiledRegion | undefined>> = [];
  for (let r = 0; r < queries; r++) {
    const i = r + offset;
    const row: Array<CompiledRegion | undefined> = [];
    for (let j = 0; j <= i; j++) {
      const region = owningRegion(pattern, i, j);
      const visible = region !== undefined && maskAllows(region.definition, pattern.params, i, j) &&
        (options.onlyRegion === undefined || region.name === options.onlyRegion);
      row.push(visible ? region : undefined);
    }
    owner.push(row);
  }
  const queryPos = pattern.regions.map((region) => (i: number): number => region.definition.queryPosition(i, pattern.params));
  const keyPosFn = pattern.regions.map((region) => region.definition.keyPosition ?? pattern.definition.keyPosition);

  const out = new Float64Array(batch * queries * queryHeads * headDim);
  const lse = new Float64Array(batch * queryHeads * queries);
  const qRot = pattern.regions.map(() => new Float64Array(headDim));
  const scores = new Float64Array(keys);
  const acc = new Float64Array(headDim);

  for (let b = 0; b < batch; b++) {
    for (let hk = 0; hk < keyHeads; hk++) {
      // Keys rotated at each region's key position, cached per region (most share one function).
      const rotatedKeys = pattern.regions.map(() => new Map<number, Float64Array>());
      const rotatedKey = (region: CompiledRegion, j: number): Float64Array => {
        const cache = rotatedKeys[region.index]!;
        let hit = cache.get(j);
        if (hit === undefined) {
          hit = new Float64Array(headDim);
          const at = ((b * keys + j) * keyHeads + hk) * headDim;
          if (options.preRotatedKeys) hit.set(kd.subarray(at, at + headDim));
          else rotate(kd, at, headDim, keyPosFn[region.index]!(j, pattern.params), invFreq, pairs, hit);
          cache.set(j, hit);
        }
        return hit;
      };
      for (let g = 0; g < groups; g++) {
        const hq = hk * groups + g;
        for (let r = 0; r < queries; r++) {
          const i = r + offset;
          const qOffset = ((b * queries + r) * queryHeads + hq) * headDim;
          for (const region of pattern.regions) rotate(qd, qOffset, headDim, queryPos[region.index]!(i), invFreq, pairs, qRot[region.index]!);
          let rowMax = -Infinity;
          const row = owner[r]!;
          for (let j = 0; j <= i; j++) {
            const region = row[j];
            if (region === undefined) continue;
            const kv = rotatedKey(region, j);
            const qv = qRot[region.index]!;
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += qv[d]! * kv[d]!;
            scores[j] = dot * multiplier;
            if (scores[j]! > rowMax) rowMax = scores[j]!;
          }
          acc.fill(0);
          let sum = 0;
          for (let j = 0; j <= i; j++) {
            if (row[j] === undefined) continue;
            const w = Math.exp(scores[j]! - rowMax);
            sum += w;
            const vOffset = ((b * keys + j) * keyHeads + hk) * headDim;
            for (let d = 0; d < headDim; d++) acc[d]! += w * vd[vOffset + d]!;
          }
          for (let d = 0; d < headDim; d++) out[qOffset + d] = sum > 0 ? acc[d]! / sum : 0;
          lse[(b * queryHeads + hq) * queries + r] = sum > 0 ? rowMax + Math.log(sum) : -Infinity;
        }
      }
    }
  }
  return {
    out: { shape: [batch, queries, queryHeads, headDim], data: out },
    lse: { shape: [batch, queryHeads, queries], data: lse },
  };
}

/**
 * Merges partial attention results over disjoint key sets (e.g. one per region) by log-sum-exp:
 * the way ChunkLlama combines its three flash calls.
 */
export function mergePartials(parts: readonly AttentionResult[]): AttentionResult {
  if (parts.length === 0) throw new Error('nothing to merge');
  const [batch, queries, heads, headDim] = parts[0]!.out.shape as [number, number, number, number];
  const out = new Float64Array(parts[0]!.out.data.length);
  const lse = new Float64Array(parts[0]!.lse.data.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let r = 0; r < queries; r++) {
        const li = (b * heads + h) * queries + r;
        const m = Math.max(...parts.map((p) => p.lse.data[li]!));
        if (m === -Infinity) {
          lse[li] = -Infinity;
          continue;
        }
        const total = parts.reduce((s, p) => s + Math.exp(p.lse.data[li]! - m), 0);
        lse[li] = m + Math.log(total);
        const oi = ((b * queries + r) * heads + h) * headDim;
        for (const p of parts) {
          const w = Math.exp(p.lse.data[li]! - lse[li]!);
          if (w === 0) continue;
          for (let d = 0; d < headDim; d++) out[oi + d]! += w * p.out.data[oi + d]!;
        }
      }
    }
  }
  return { out: { shape: parts[0]!.out.shape, data: out }, lse: { shape: parts[0]!.lse.shape, data: lse } };
}

/**
 * Keys rotated at the pattern's shared key position, as a KV cache that stores rotated keys holds
 * them (vLLM stores DCA keys at j mod L). Inputs for kernels emitted with pre-rotated keys.
 */
export function preRotateKeys(k: Tensor, pattern: CompiledPattern, rope: RopeConfig): Tensor<Float64Array> {
  const [batch, keys, heads, headDim] = k.shape as [number, number, number, number];
  const rotaryDim = checkRotaryDim(headDim, rope.rotaryDim);
  const invFreq = inverseFrequencies(rope.theta, rotaryDim);
  const pairs = rotaryPairs(rope.style, rotaryDim);
  const out = new Float64Array(k.data.length);
  const row = new Float64Array(headDim);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < keys; j++) {
      const position = pattern.definition.keyPosition(j, pattern.params);
      for (let h = 0; h < heads; h++) {
        const at = ((b * keys + j) * heads + h) * headDim;
        rotate(k.data, at, headDim, position, invFreq, pairs, row);
        out.set(row, at);
      }
    }
  }
  return { shape: k.shape, data: out };
}
