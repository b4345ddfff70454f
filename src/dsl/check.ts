// Static checks any pattern must pass, by exhaustive enumeration on small sequence lengths: the
// regions partition the causal triangle (every pair owned by exactly one region), positions and
// distances stay in the declared range, `full` regions never reach the diagonal, and the compiled
// key intervals agree with the region conditions (the plan relies on them).

import { evaluate, evaluateInt } from './expr.js';
import { conditionHolds, type CompiledPattern } from './instantiate.js';

export interface CheckProblem {
  readonly check: 'partition' | 'range' | 'mask' | 'interval' | 'arithmetic';
  readonly message: string;
}

/** Returns every problem found for sequence lengths up to `seqLen` (first few of each kind). */
export function checkPattern(pattern: CompiledPattern, seqLen: number): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const seen = new Map<string, number>();
  const report = (check: CheckProblem['check'], message: string): void => {
    const n = seen.get(check) ?? 0;
    seen.set(check, n + 1);
    if (n < 3) problems.push({ check, message });
  };
  const limit = pattern.positionLimit;
  const p = pattern.params;
  for (let i = 0; i < seqLen; i++) {
    for (const region of pattern.regions) {
      const q = evaluateInt(region.queryPosition, { i });
      if (!Number.isSafeInteger(q)) report('arithmetic', `region ${region.name}: query position at i=${i} is ${q}`);
    }
    for (let j = 0; j <= i; j++) {
      const owners = pattern.regions.filter((r) => conditionHolds(r.definition, p, i, j));
      if (owners.length !== 1) {
        report('partition', owners.length === 0 ? `pair (i=${i}, j=${j}) belongs to no region` : `pair (i=${i}, j=${j}) belongs to ${owners.map((r) => r.name).join(' and ')}`);
      }
      for (const region of pattern.regions) {
        const inInterval = j >= evaluateInt(region.keyFrom, { i }) && j <= evaluateInt(region.keyTo, { i }) &&
          (region.pairTest === undefined || (evaluate(region.pairTest, { i, j }) as boolean));
        const windowOk = region.mask.kind !== 'window' || i - j < region.mask.size;
        const owned = conditionHolds(region.definition, p, i, j) && windowOk;
        if (inInterval !== owned) report('interval', `region ${region.name}: compiled key interval disagrees with its condition at (i=${i}, j=${j})`);
      }
      const owner = owners[0];
      if (owner === undefined) continue;
      if (owner.mask.kind === 'full' && j === i) report('mask', `region ${owner.name} is declared 'full' but owns the diagonal pair (${i}, ${i}); declare it 'causal'`);
      const q = evaluateInt(owner.queryPosition, { i });
      const k = evaluateInt(owner.keyPosition, { j });
      if (q < 0 || k < 0) report('range', `region ${owner.name}: negative position at (i=${i}, j=${j}): query ${q}, key ${k}`);
      if (q - k < 0) report('range', `region ${owner.name}: query − key distance ${q - k} < 0 at (i=${i}, j=${j})`);
      if (limit !== undefined && (q > limit || k > limit || q - k > limit)) {
        report('range', `region ${owner.name}: position outside [0, ${limit}] at (i=${i}, j=${j}): query ${q}, key ${k}`);
      }
      // Without a declared limit, positions may not run ahead of the indices (RoPE tables cover [0, Sk − 1]).
      if (limit === undefined && (q > i || k > j)) {
        report('range', `region ${owner.name}: position beyond its index at (i=${i}, j=${j}): query ${q}, key ${k}; declare positionLimit`);
      }
    }
  }
  return problems;
}

/** A sequence length that exercises every region: a few chunks or windows past the largest parameter. */
export function checkLength(pattern: CompiledPattern): number {
  const largest = Math.max(1, ...Object.values(pattern.params).filter((v) => v > 0));
  return Math.min(3 * largest + 5, 200);
}
