// How much one invocation of the WGSL attention kernel may walk. Mesa's llvmpipe (the CPU adapter
// CI and many headless machines run) silently ends a shader invocation after 65535 loop iterations
// in total, so the launcher caps the keys of one split there; this module computes the cap from
// the plan, once, and the emitter writes it into the launcher's config.

import type { KernelPlan } from '../../plan/kernel-plan.js';

/** Mesa's llvmpipe ends every shader invocation after this many loop iterations in total. */
export const LLVMPIPE_LOOP_LIMIT = 65535;

/**
 * An upper bound on the loop iterations one invocation of the attention kernel runs when its
 * split holds `splitKeys` keys (a multiple of blockK): per region the query rotation and at most
 * splitKeys / blockK key tiles (regions of one query tile may overlap, so each is counted whole);
 * per tile the tile load, the score loop, the probability loop and the value loop; then the store.
 */
export function loopIterationBound(plan: KernelPlan, splitKeys: number): number {
  const { blockK, blockQ, headDim } = plan.config;
  const vec4s = headDim / 4;
  const perTile = Math.ceil((blockK * vec4s) / blockQ) + blockK * (vec4s + 1) + blockK + vec4s * (blockK + 1) + 1;
  const tiles = Math.ceil(splitKeys / blockK);
  return plan.regions.length * (vec4s + tiles * perTile) + vec4s;
}

/** The most keys (a multiple of blockK) one split may hold and stay under llvmpipe's loop limit. */
export function maxSplitKeys(plan: KernelPlan): number {
  const { blockK } = plan.config;
  let keys = blockK;
  while (loopIterationBound(plan, keys + blockK) <= LLVMPIPE_LOOP_LIMIT) keys += blockK;
  return keys;
}

/** Loop iterations of one merge invocation over `partials` partial results. */
export function mergeIterationBound(partials: number): number {
  return 3 * partials + 8;
}
