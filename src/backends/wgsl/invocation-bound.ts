// How much one invocation of the WGSL attention kernels may walk. Mesa's llvmpipe (the CPU adapter
// CI and many headless machines run) silently ends a shader invocation after 65535 loop iterations
// in total, so the launcher caps the keys of one split there; this module computes the caps from
// the plan, once (prefill: keys per split; decode: keys per lane), and the emitter writes them into
// the launcher's config.

import type { KernelPlan } from '../../plan/kernel-plan.js';
import { decodeLayout } from './decode-layout.js';

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

/**
 * An upper bound on the loop iterations one invocation of the decode kernel runs when its lane
 * walks `laneKeys` keys, without subgroups (the loop-capped adapters have none): its share of the
 * query rotation (maxRows × regions × HEAD_VEC4 over the workgroup); per key the key loop, the score
 * loop and the value loop; then the combine: two gathers over a row's cells (at most one per
 * invocation), and per round of COMBINE_CHUNK vec4s the chunk loop and, for each output element the
 * invocation writes, a gather over the row's cells.
 */
export function decodeLoopIterationBound(plan: KernelPlan, laneKeys: number): number {
  const layout = decodeLayout(plan);
  if (layout === undefined) throw new Error(`pattern ${plan.pattern.name} at head dim ${plan.config.headDim} has no decode kernel`);
  const { workgroup, maxRows, regions, combineChunk } = layout;
  const vec4s = plan.config.headDim / 4;
  const rotation = Math.ceil((maxRows * regions * vec4s) / workgroup);
  const perKey = 1 + 2 * vec4s;
  const rounds = Math.ceil(vec4s / combineChunk);
  const perRound = combineChunk + Math.ceil((maxRows * combineChunk) / workgroup) * (1 + workgroup);
  return rotation + laneKeys * perKey + 2 * workgroup + rounds * (1 + perRound);
}

/** The most keys one decode lane may walk and stay under llvmpipe's loop limit. */
export function decodeMaxLaneKeys(plan: KernelPlan): number {
  const fixed = decodeLoopIterationBound(plan, 0);
  const perKey = decodeLoopIterationBound(plan, 1) - fixed;
  return Math.floor((LLVMPIPE_LOOP_LIMIT - fixed) / perKey);
}

/** Loop iterations of one merge invocation over `partials` partial results. */
export function mergeIterationBound(partials: number): number {
  return 3 * partials + 8;
}
