// Checks a backend against the float64 reference on verification cases: max absolute error of the
// output (and of the LSE) within the dtype's tolerance.

import { runAttention, type BackendName } from '../execute.js';
import { preRotateKeys, referenceAttention } from '../reference/attention.js';
import { roundArray } from '../reference/precision.js';
import { casePattern, caseTensors, tolerance, type VerifyCase } from './cases.js';

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

export async function verifyCase(backend: BackendName, c: VerifyCase, emulate: boolean): Promise<CaseResult> {
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

export function describeCase(c: VerifyCase): string {
  const params = Object.entries(c.params).map(([k, v]) => `${k}=${v}`).join(',');
  const rope = `${c.rope.style}${c.rope.rotaryDim !== undefined ? `/r${c.rope.rotaryDim}` : ''}`;
  return `${c.patternName}(${params}) B${c.batch} Sq${c.queries} Sk${c.keys} H${c.queryHeads}/${c.keyHeads} D${c.headDim} ${c.dtype} ${rope}${c.scale !== undefined ? ' scale' : ''}${c.originalMaxPosition !== undefined ? ' temp' : ''}${c.preRotatedKeys ? ' prerot' : ''}`;
}
