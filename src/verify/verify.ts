// Checks a backend against the float64 reference on verification cases: max absolute error of the
// output (and of the LSE) within the dtype's tolerance.

import { runAttention, runPagedAttention, type BackendName } from '../execute.js';
import type { Tensor } from '../io/tensor.js';
import { referencePagedAttention } from '../reference/kv-cache.js';
import { preRotateKeys, referenceAttention } from '../reference/attention.js';
import { roundArray } from '../reference/precision.js';
import { casePattern, caseTensors, seededRandom, tolerance, type VerifyCase } from './cases.js';
import { allocatePagedCache, fillPagedCache } from './paged-cases.js';

export interface CaseResult {
  readonly case: VerifyCase;
  readonly outError: number;
  readonly lseError: number;
  readonly tolerance: number;
  readonly ok: boolean;
  readonly milliseconds: number;
  /** Set when the backend failed outright (compile error, crash). */
  readonly failure?: string;
}

export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x === y) continue; // also equal infinities
    const d = Math.abs(x - y);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d;
  }
  return worst;
}

/** LSE error relative to the LSE's magnitude (LSE grows like log Sk). */
function lseDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x === y) continue;
    const d = Math.abs(x - y) / Math.max(1, Math.abs(x));
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst;
}

export async function verifyCase(backend: BackendName, c: VerifyCase, emulate: boolean, paged = false): Promise<CaseResult> {
  if (paged) return verifyPagedCase(backend, c, emulate);
  const pattern = casePattern(c);
  const { q, k, v } = caseTensors(c);
  const common = {
    pattern,
    rope: c.rope,
    ...(c.scale !== undefined ? { scale: c.scale } : {}),
    ...(c.originalMaxPosition !== undefined ? { originalMaxPosition: c.originalMaxPosition } : {}),
  };
  const expected = referenceAttention(q, k, v, { ...common, dtype: c.dtype });
  const kernelKeys = c.preRotatedKeys ? preRotateKeys({ shape: k.shape, data: roundArray(c.dtype, k.data) }, pattern, c.rope) : k;
  const tol = tolerance(c.dtype);
  const start = performance.now();
  try {
    const got = await runAttention(backend, { q, k: kernelKeys, v, ...common, dtype: c.dtype, emulate, preRotatedKeys: c.preRotatedKeys });
    const outError = maxAbsDifference(expected.out.data, got.out.data);
    const lseError = lseDifference(expected.lse.data, got.lse.data);
    return { case: c, outError, lseError, tolerance: tol, ok: outError <= tol && lseError <= tol, milliseconds: performance.now() - start };
  } catch (err) {
    return { case: c, outError: Infinity, lseError: Infinity, tolerance: tol, ok: false, milliseconds: performance.now() - start, failure: (err as Error).message.split('\n')[0]! };
  }
}

/**
 * The case as a serving call: its keys and values laid into a paged cache (block size 8 to 64 and
 * a shuffled block order drawn from the case's seed), batch entry b holding the first
 * Sk − 3b keys of its sequence (never fewer than Sq), q the last Sq positions of each; checked
 * against the paged reference on the same cache.
 */
async function verifyPagedCase(backend: BackendName, c: VerifyCase, emulate: boolean): Promise<CaseResult> {
  const pattern = casePattern(c);
  const { q, k, v } = caseTensors(c);
  const next = seededRandom(c.seed + 17);
  const blockSize = 8 << Math.floor(next() * 4);
  const lens = Array.from({ length: c.batch }, (_, b) => Math.max(c.queries, c.keys - 3 * b));
  const row = c.keyHeads * c.headDim;
  const stored = c.preRotatedKeys ? preRotateKeys({ shape: k.shape, data: roundArray(c.dtype, k.data) }, pattern, c.rope) : k;
  const sequence = (t: Tensor, b: number): Tensor => ({ shape: [1, lens[b]!, c.keyHeads, c.headDim], data: t.data.subarray(b * c.keys * row, (b * c.keys + lens[b]!) * row) });
  const fixture = allocatePagedCache(lens, blockSize, c.keyHeads, c.headDim, c.seed);
  const kCache = fillPagedCache(fixture, lens.map((_, b) => sequence(stored, b)));
  const vCache = fillPagedCache(fixture, lens.map((_, b) => sequence(v, b)));
  const common = {
    pattern,
    rope: c.rope,
    dtype: c.dtype,
    preRotatedKeys: c.preRotatedKeys,
    ...(c.scale !== undefined ? { scale: c.scale } : {}),
    ...(c.originalMaxPosition !== undefined ? { originalMaxPosition: c.originalMaxPosition } : {}),
  };
  const expected = referencePagedAttention(q, kCache, vCache, fixture.layout, common);
  const tol = tolerance(c.dtype);
  const start = performance.now();
  try {
    const got = await runPagedAttention(backend, { q, kCache, vCache, layout: fixture.layout, ...common, emulate });
    const outError = maxAbsDifference(expected.out.data, got.out.data);
    const lseError = lseDifference(expected.lse.data, got.lse.data);
    return { case: c, outError, lseError, tolerance: tol, ok: outError <= tol && lseError <= tol, milliseconds: performance.now() - start };
  } catch (err) {
    return { case: c, outError: Infinity, lseError: Infinity, tolerance: tol, ok: false, milliseconds: performance.now() - start, failure: (err as Error).message.split('\n')[0]! };
  }
}

export function describeCase(c: VerifyCase): string {
  const params = Object.entries(c.params).map(([k, v]) => `${k}=${v}`).join(',');
  const rope = `${c.rope.style}${c.rope.rotaryDim !== undefined ? `/r${c.rope.rotaryDim}` : ''}`;
  return `${c.patternName}(${params}) B${c.batch} Sq${c.queries} Sk${c.keys} H${c.queryHeads}/${c.keyHeads} D${c.headDim} ${c.dtype} ${rope}${c.scale !== undefined ? ' scale' : ''}${c.originalMaxPosition !== undefined ? ' temp' : ''}${c.preRotatedKeys ? ' prerot' : ''}`;
}
