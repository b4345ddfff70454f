// The Metal serving kernels as a plan: which kernels a fused set carries (cache append, split-K
// decode + merge over contiguous keys and over the paged cache, paged prefill), the decode kernel's
// threadgroup layout, and how a call runs (decode or prefill, key splits, rows per threadgroup), paged
// or contiguous alike. The emulation runner decides with metalCallPlan; the emitted hosts (Swift, MLX)
// derive the same numbers from the same rules.

import { ConfigurationError, UsageError } from '../../errors.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { DECODE_MAX_QUERIES } from '../../plan/passes.js';
import { MAX_THREADGROUP_BYTES, SIMD_WIDTH } from './render.js';

/** Calls with at most this many query rows per sequence run the decode kernel (the plan's threshold). */
export { DECODE_MAX_QUERIES } from '../../plan/passes.js';
/** Most decode rows (one simdgroup each) per threadgroup: 512 threads. */
export const DECODE_ROW_LIMIT = 16;
/** A decode call with fewer threadgroups than this splits its keys until it has about this many… */
export const TARGET_THREADGROUPS = 128;
/** …but never below this many keys per split. */
export const MIN_SPLIT_KEYS = 256;

export interface MetalServing {
  /** Kernel names. The cache append exists when every region places keys at one position. */
  readonly cacheAppend?: string;
  /** The decode kernel and its merge exist when one row's rotated queries fit threadgroup memory. */
  readonly decode?: string;
  readonly merge?: string;
  /** The same split-K decode and merge over contiguous keys (the attention passes' buffers). */
  readonly contiguousDecode?: string;
  readonly contiguousMerge?: string;
  readonly prefill: string;
  /** Rows per decode threadgroup at most (0: no decode kernel). */
  readonly decodeMaxRows: number;
  /** Floats of threadgroup memory the decode kernel declares. */
  readonly decodeThreadgroupFloats: number;
}

/** Threadgroup floats of a decode threadgroup of `rows` rows: rotated queries, then a step's probabilities. */
export function decodeThreadgroupFloats(plan: KernelPlan, rows: number): number {
  return rows * (plan.regions.length * plan.config.headDim + SIMD_WIDTH);
}

/** The largest power of two ≤ DECODE_ROW_LIMIT rows whose threadgroup memory fits an Apple GPU, or 0. */
export function decodeMaxRows(plan: KernelPlan): number {
  for (let rows = DECODE_ROW_LIMIT; rows >= 1; rows /= 2) {
    if (decodeThreadgroupFloats(plan, rows) * 4 <= MAX_THREADGROUP_BYTES) return rows;
  }
  return 0;
}

export function metalServing(plan: KernelPlan, prefix: string): MetalServing {
  const rows = decodeMaxRows(plan);
  return {
    ...(plan.regions.every((r) => r.sharesKeyPosition) ? { cacheAppend: `${prefix}_cache_append` } : {}),
    ...(rows > 0 ? {
      decode: `${prefix}_paged_decode`, merge: `${prefix}_paged_merge`,
      contiguousDecode: `${prefix}_decode`, contiguousMerge: `${prefix}_decode_merge`,
    } : {}),
    prefill: `${prefix}_paged_prefill`,
    decodeMaxRows: rows,
    decodeThreadgroupFloats: Math.max(1, decodeThreadgroupFloats(plan, rows)),
  };
}

export interface CallShape {
  readonly batch: number;
  /** Query rows per sequence (varlen: the largest count). */
  readonly queries: number;
  readonly queryHeads: number;
  readonly keyHeads: number;
  /** The longest sequence's length (contiguous calls: the key count). */
  readonly maxKeys: number;
}

/** decode: the split-K kernel (+ merge); prefill: the set's attention passes (paged prefill for a paged call). */
export type MetalCallKind = 'decode' | 'prefill';

export interface MetalCallPlan {
  readonly kind: MetalCallKind;
  /** Key splits per sequence (decode; 1 for prefill) and keys per split, ceil(maxKeys / splits). */
  readonly splits: number;
  readonly splitKeys: number;
  /** Decode: rows (query head × query) per threadgroup, one simdgroup each, and threadgroups per KV head. */
  readonly groupRows: number;
  readonly rowBlocks: number;
}

/**
 * Rows of one KV head (its query heads × the queries), `groupRows` per threadgroup: that count
 * rounded up to a power of two, at most `maxRows`.
 */
export function decodeRows(shape: CallShape, maxRows: number): { groupRows: number; rowBlocks: number } {
  const rows = (shape.queryHeads / shape.keyHeads) * shape.queries;
  let groupRows = 1;
  while (groupRows < rows && groupRows < maxRows) groupRows *= 2;
  return { groupRows, rowBlocks: Math.ceil(rows / groupRows) };
}

/**
 * How a call runs, paged or contiguous: the decode kernel for calls with at most DECODE_MAX_QUERIES
 * queries per sequence (when the set has one), else prefill; `kind` forces one. Decode splits each
 * sequence's keys into `splits` ranges of ceil(maxKeys / splits) keys: forced by `splits`, else enough
 * for about TARGET_THREADGROUPS threadgroups with at least MIN_SPLIT_KEYS keys each. Prefill does not split.
 */
export function metalCallPlan(serving: MetalServing | undefined, shape: CallShape, options: { kind?: MetalCallKind; splits?: number } = {}): MetalCallPlan {
  const kind = options.kind ?? (serving?.decode !== undefined && shape.queries <= DECODE_MAX_QUERIES ? 'decode' : 'prefill');
  if (options.splits !== undefined && (!Number.isInteger(options.splits) || options.splits < 1)) throw new UsageError(`--splits must be a positive integer, got ${options.splits}`);
  if (kind === 'prefill') {
    if (options.splits !== undefined && options.splits !== 1) {
      throw new UsageError(`--splits: the Metal prefill kernels (calls with more than ${DECODE_MAX_QUERIES} queries) do not split keys`);
    }
    return { kind, splits: 1, splitKeys: shape.maxKeys, groupRows: 0, rowBlocks: 0 };
  }
  if (serving?.decode === undefined) throw new ConfigurationError('this kernel set has no decode kernel: one row\'s rotated queries do not fit threadgroup memory');
  const { groupRows, rowBlocks } = decodeRows(shape, serving.decodeMaxRows);
  let splits = options.splits;
  if (splits === undefined) {
    const threadgroups = rowBlocks * shape.keyHeads * shape.batch;
    const wanted = threadgroups >= TARGET_THREADGROUPS ? 1 : Math.ceil(TARGET_THREADGROUPS / threadgroups);
    splits = Math.max(1, Math.min(wanted, Math.floor(shape.maxKeys / MIN_SPLIT_KEYS)));
  }
  splits = Math.min(splits, shape.maxKeys);
  return { kind, splits, splitKeys: Math.ceil(shape.maxKeys / splits), groupRows, rowBlocks };
}
