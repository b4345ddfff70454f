// The kernel kinds, the passes a kernel set runs, and the one partial-result layout that every pass
// writing partials shares. Backends render these passes; none decides on its own how many passes a
// variant has, where a partial lives, or how large the workspace is.
//
// Partial layout (every language's merge reads it): for P partials over R = batch · queries ·
// query_heads rows, P output blocks of f32 shaped like q — (partial, batch, query, query head,
// HEAD_DIM) — then P LSE blocks (partial, batch, query head, query) in natural log, MASKED_SCORE
// where the partial saw no key. P is regions × key splits for the three-pass baseline and key
// splits for split-K decode; one partial is then P · R · (HEAD_DIM + 1) floats.

import type { KernelPlan, RegionPlan } from './kernel-plan.js';

/**
 * The kernel kinds: fused prefill, the three-pass baseline (region partials + merge), split-K
 * decode of contiguous keys (partials + merge), attention over a paged KV cache (with its own
 * split-K decode for few query rows), the same with packed query rows of different counts per
 * sequence (varlen, cu_seqlens_q), and the cache write.
 */
export type KernelKind = 'prefill' | 'three-pass' | 'decode' | 'paged' | 'varlen' | 'cache-append';

/** A kernel set's variant: the fused kernel (with its decode and serving kinds) or the three-pass baseline. */
export type KernelVariant = 'fused' | 'three-pass';

/** Query rows at or below which a call runs the split-K decode kind instead of prefill tiles. */
export const DECODE_MAX_QUERIES = 16;

/** One pass of a kernel set, in dispatch order. */
export type KernelPass =
  | { readonly role: 'fused'; readonly regions: readonly RegionPlan[]; readonly summary: string }
  | { readonly role: 'region-partial'; readonly region: RegionPlan; readonly slot: number; readonly summary: string }
  | { readonly role: 'merge'; readonly partials: number; readonly summary: string };

/**
 * The passes of a variant: the fused set is one pass over every region (it splits keys into
 * partials and merges them only when a launcher asks for splits); the three-pass baseline is one
 * partial-writing pass per region, in the plan's visit order, then the merge.
 */
export function kernelPasses(plan: KernelPlan, variant: KernelVariant): KernelPass[] {
  const names = plan.regions.map((r) => r.name).join(', ');
  if (variant === 'fused') return [{ role: 'fused', regions: plan.regions, summary: `fused attention over regions ${names}` }];
  return [
    ...plan.regions.map((region, slot) => ({ role: 'region-partial' as const, region, slot, summary: `region ${region.name} alone, f32 partial` })),
    { role: 'merge', partials: plan.regions.length, summary: `log-sum-exp merge of ${plan.regions.length} partials` },
  ];
}

/** Floats one partial takes per query row: HEAD_DIM outputs and one LSE. */
export function partialFloatsPerRow(headDim: number): number {
  return headDim + 1;
}

/** Floats of `partials` partials over `rows` query rows (the layout above). */
export function partialWorkspaceFloats(partials: number, rows: number, headDim: number): number {
  return partials * rows * partialFloatsPerRow(headDim);
}

/**
 * Workspace floats per query row (batch · queries · query_heads) a variant's prefill launcher needs
 * beyond its outputs when keys are not split: the three-pass baseline keeps one partial per region;
 * the fused kernel writes its outputs directly.
 */
export function workspaceFloatsPerRow(plan: KernelPlan, variant: KernelVariant): number {
  return variant === 'three-pass' ? plan.regions.length * partialFloatsPerRow(plan.config.headDim) : 0;
}
