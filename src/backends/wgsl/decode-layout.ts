// The workgroup layout of the WGSL decode kernel, computed once from the plan and rendered into the
// kernel (constants, array sizes) and the launcher (config.decode). It fits the 16 KiB of workgroup
// memory every WebGPU device offers by default, so the kernel runs on a device created without
// raised limits (a browser page's).

import type { KernelPlan } from '../../plan/kernel-plan.js';

/** Invocations per decode workgroup. */
export const DECODE_WORKGROUP = 64;

/** Most rows (query head × query) one decode workgroup takes: its lanes per row stay ≥ 4. */
export const DECODE_MAX_ROWS = 16;

/** Workgroup memory WebGPU guarantees without raised limits (maxComputeWorkgroupStorageSize). */
export const WORKGROUP_MEMORY_BYTES = 16384;

export interface DecodeLayout {
  /** Invocations per workgroup. */
  readonly workgroup: number;
  /** Rows one workgroup takes at most (a power of two); the launcher picks up to this many per call. */
  readonly maxRows: number;
  /** Regions, i.e. rotated copies of each row's query. */
  readonly regions: number;
  /** Head-dim vec4s the lanes of the workgroup combine per round (their partial outputs, after the key loop). */
  readonly combineChunk: number;
  /** Length (vec4) of the workgroup array holding the rotated queries, then the lanes' partial outputs. */
  readonly rowsMemoryVec4s: number;
  /** Workgroup memory the kernel declares, in bytes. */
  readonly workgroupBytes: number;
}

function layoutFor(plan: KernelPlan, maxRows: number): DecodeLayout {
  const workgroup = DECODE_WORKGROUP;
  const vec4s = plan.config.headDim / 4;
  const regions = plan.regions.length;
  const rotated = maxRows * regions * vec4s;
  const combineChunk = Math.max(1, Math.min(vec4s, Math.floor(rotated / workgroup)));
  const rowsMemoryVec4s = Math.max(rotated, workgroup * combineChunk);
  // rows memory, per-cell maxima and sums (f32 × workgroup each), per-row totals (vec2 × maxRows),
  // the subgroup lane counter (one atomic).
  const workgroupBytes = 16 * rowsMemoryVec4s + 2 * 4 * workgroup + 8 * maxRows + 4;
  return { workgroup, maxRows, regions, combineChunk, rowsMemoryVec4s, workgroupBytes };
}

/**
 * The decode layout with as many rows per workgroup as fit (a power of two ≤ DECODE_MAX_ROWS), or
 * undefined when not even one row's rotated queries fit (many regions at a large head dim): such a
 * kernel set has no decode kernel and every call runs the prefill kernel.
 */
export function decodeLayout(plan: KernelPlan): DecodeLayout | undefined {
  for (let rows = DECODE_MAX_ROWS; rows >= 1; rows /= 2) {
    const layout = layoutFor(plan, rows);
    if (layout.workgroupBytes <= WORKGROUP_MEMORY_BYTES) return layout;
  }
  return undefined;
}
