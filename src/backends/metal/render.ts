// The Metal renderer: the kernel plan rendered into one self-contained .metal through
// templates/metal. The skeleton (simdgroup_matrix 8×8 Q·Kᵀ and P·V with f32 accumulation, f32
// threadgroup K/V tiles, one online softmax per row) is fixed; regions become the same small structs
// of static functions as in the CUDA backend (its renderer's helpers are reused), and the passes
// (fused, or the three-pass baseline) are rendered from the plan's visit order.

import type { KernelPlan } from '../../plan/kernel-plan.js';
import { cRopeLayout, patternConstants, regionStruct } from '../cuda/render.js';
import { renderTemplate } from '../template.js';
import { metalText } from '../text.js';
import type { KernelVariant } from '../kernel-set.js';

/** Threads per simdgroup on Apple GPUs; a simdgroup owns 8 query rows (one fragment row). */
export const SIMD_WIDTH = 32;
/** Threadgroup memory an Apple GPU gives one threadgroup (maxTotalThreadgroupMemoryLength). */
export const MAX_THREADGROUP_BYTES = 32768;

export function metalThreads(plan: KernelPlan): number {
  return (plan.config.blockQ / 8) * SIMD_WIDTH;
}

/** The head dim rounded up to whole 8-wide fragments (the tiles are zero-padded past it). */
export function dimTile(headDim: number): number {
  return Math.ceil(headDim / 8) * 8;
}

/** Row pitch of the f32 threadgroup tiles (DIM_TILE + 4: padding staggers banks). */
export function tileStride(headDim: number): number {
  return dimTile(headDim) + 4;
}

/** Floats of threadgroup memory: the query staging and the K + V tiles share it. */
export function threadgroupFloats(plan: KernelPlan): number {
  const { blockQ, blockK, headDim } = plan.config;
  return Math.max(blockQ, 2 * blockK) * tileStride(headDim);
}

export interface MetalPass {
  /** Kernel function name (what a host looks up in the library). */
  readonly kernel: string;
  /** What the pass does, for comments and hosts. */
  readonly summary: string;
}

export interface MetalRenderOptions {
  readonly title: string;
  readonly command: string;
  readonly fileName: string;
  /** Namespace of the helpers; also the prefix of the kernel names. */
  readonly namespace: string;
  readonly variant: KernelVariant;
}

/** The kernels of a set, in dispatch order. */
export function metalPasses(plan: KernelPlan, prefix: string, variant: KernelVariant): MetalPass[] {
  if (variant === 'fused') {
    return [{ kernel: `${prefix}_fused`, summary: `fused attention over regions ${plan.regions.map((r) => r.name).join(', ')}` }];
  }
  return [
    ...plan.regions.map((r) => ({ kernel: `${prefix}_${r.ident}`, summary: `region ${r.name} alone, f32 partial` })),
    { kernel: `${prefix}_merge`, summary: `log-sum-exp merge of ${plan.regions.length} partials` },
  ];
}

const BODY_PARAMS = [
  'device const storage_t* q, device const storage_t* k, device const storage_t* v,',
  '                         device const float2* rope, const AttentionParams p, device storage_t* out, device float* lse,',
  '                         device float* partials, threadgroup float* tg, uint3 group, uint tid, uint lane, uint simd',
].join('\n');

function passBodies(plan: KernelPlan, variant: KernelVariant, passes: readonly MetalPass[]): string {
  const body = (index: number, call: string): string => [
    `// Pass ${index + 1} of ${passes.length}: ${metalText.comment(passes[index]!.summary)}.`,
    'template <>',
    `inline void pass_body<${index}>(${BODY_PARAMS}) {`,
    `  ${call}`,
    '}',
  ].join('\n');
  if (variant === 'fused') return body(0, 'attention_fused(q, k, v, rope, p, out, lse, tg, group, tid, lane, simd);');
  const parts = plan.regions.map((r, slot) => body(slot,
    `attention_region<Region_${r.ident}>(q, k, v, rope, p, partials + ${slot} * partial_slot_floats(p), tg, group, tid, lane, simd);`));
  parts.push(body(plan.regions.length, 'merge_partials(partials, p, out, lse, group, tid);'));
  return parts.join('\n\n');
}

function kernelEntries(namespace: string, passes: readonly MetalPass[]): string {
  const ns = namespace;
  return passes.map((pass, index) => [
    `// Pass ${index + 1} of ${passes.length}: ${metalText.comment(pass.summary)}.`,
    `kernel void ${pass.kernel}(device const ${ns}::storage_t* q [[buffer(0)]],`,
    `    device const ${ns}::storage_t* k [[buffer(1)]],`,
    `    device const ${ns}::storage_t* v [[buffer(2)]],`,
    `    device const float2* rope [[buffer(3)]],`,
    `    constant ${ns}::AttentionParams& params [[buffer(4)]],`,
    `    device ${ns}::storage_t* out [[buffer(5)]],`,
    `    device float* lse [[buffer(6)]],`,
    `    device float* partials [[buffer(7)]],`,
    `    uint3 group [[threadgroup_position_in_grid]],`,
    `    uint tid [[thread_index_in_threadgroup]],`,
    `    uint lane [[thread_index_in_simdgroup]],`,
    `    uint simd [[simdgroup_index_in_threadgroup]]) {`,
    `  threadgroup float tg[${ns}::TG_MEMORY_FLOATS];`,
    `  ${ns}::pass_body<${index}>(q, k, v, rope, params, out, lse, partials, tg, group, tid, lane, simd);`,
    '}',
  ].join('\n')).join('\n\n');
}

export function renderMetalSource(plan: KernelPlan, options: MetalRenderOptions): string {
  const c = plan.config;
  const passes = metalPasses(plan, options.namespace, options.variant);
  const storageType = c.dtype === 'bf16' ? 'bfloat' : c.dtype === 'f16' ? 'half' : 'float';
  const storageGuard = c.dtype === 'bf16'
    ? '#if __METAL_VERSION__ < 310\n#error "bfloat storage needs Metal 3.1 (macOS 14, iOS 17) or newer"\n#endif\n'
    : '';
  const rotateKey = c.preRotatedKeys
    ? '      // Keys arrive pre-rotated at their key position (a rotated KV cache): no rotation here.'
    : [
      '      if (d < ROTARY_DIM) {',
      '        const float2 cs = rope_cos_sin(rope, Region::key_position(j), rope_pair(d));',
      '        kx = kx * cs.x + rope_sign(d) * float(k_row[rope_partner(d)]) * cs.y;',
      '      }',
    ].join('\n');
  const regionVisits = plan.regions.map((r) => [
    `  // Region ${r.name}: ${metalText.comment(r.summary)}.`,
    `  visit_region<Region_${r.ident}>(t, st, q, k, v, rope, tg, tid, lane, simd);`,
  ].join('\n')).join('\n');
  const baseName = options.fileName.replace(/\.metal$/, '');
  return renderTemplate('metal', 'attention.metal', {
    title: metalText.comment(options.title),
    patternName: plan.pattern.name,
    command: metalText.comment(options.command),
    fileName: options.fileName,
    baseName,
    metalVersion: c.dtype === 'bf16' ? 'Metal 3.1 or newer for bfloat storage' : 'Metal 2.3 or newer: simdgroup_matrix, Apple GPUs',
    pathSummary: `simdgroup_matrix 8×8 Q·Kᵀ and P·V with f32 accumulation; ${storageType} storage; K and V tiles staged in f32 threadgroup memory, keys rotated on load.`,
    kernelList: passes.map((p) => p.kernel).join(', '),
    namespace: options.namespace,
    headDim: c.headDim,
    dimTile: dimTile(c.headDim),
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    positionLimit: plan.rope.positionLimit ?? -1,
    blockQ: c.blockQ,
    blockK: c.blockK,
    tgMemoryFloats: threadgroupFloats(plan),
    regionCount: plan.regions.length,
    passCount: passes.length,
    patternConstants: patternConstants(plan, (name) => `static constant constexpr const int ${name}`),
    storageGuard,
    storageType,
    ropeStyleName: plan.rope.style === 'half' ? 'rotate-half (GPT-NeoX / Llama / Qwen)' : 'interleaved (GPT-J)',
    ropeLayout: cRopeLayout(plan, ''),
    regions: plan.regions.map((r) => regionStruct(plan, r, '')).join('\n\n'),
    rotateKey,
    regionVisits,
    passBodies: passBodies(plan, options.variant, passes),
    kernels: kernelEntries(options.namespace, passes),
  });
}
