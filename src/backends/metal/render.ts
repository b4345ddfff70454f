// The Metal renderer: the kernel plan rendered into one self-contained .metal through
// templates/metal. The skeleton (simdgroup_matrix 8×8 Q·Kᵀ and P·V with f32 accumulation, f32
// threadgroup K/V tiles, one online softmax per row) is fixed; regions become the same small structs
// of static functions as in the CUDA backend (its renderer's helpers are reused), and the passes
// (fused, or the three-pass baseline) are rendered from the plan's visit order.

import type { KernelPlan, RegionPlan } from '../../plan/kernel-plan.js';
import { kernelPasses } from '../../plan/passes.js';
import { cRopeLayout, patternConstants, regionStruct } from '../cuda/render.js';
import { renderTemplate } from '../template.js';
import { metalText } from '../text.js';
import type { KernelVariant } from '../kernel-set.js';
import type { MetalServing } from './serving.js';

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
  /** The serving kernels (fused sets). */
  readonly serving?: MetalServing;
}

/** The kernels of a set, in dispatch order. */
export function metalPasses(plan: KernelPlan, prefix: string, variant: KernelVariant): MetalPass[] {
  return kernelPasses(plan, variant).map((pass) => {
    const kernel = pass.role === 'fused' ? 'fused' : pass.role === 'merge' ? 'merge' : pass.region.ident;
    return { kernel: `${prefix}_${kernel}`, summary: pass.summary };
  });
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
    `attention_region<Region_${r.ident}>(q, k, v, rope, p, partials + ${slot} * partial_slot_floats(p.batch, p.queries, p.query_heads), tg, group, tid, lane, simd);`));
  parts.push(body(plan.regions.length, 'merge_partials(partials, REGION_COUNT, p, out, lse, group, tid);'));
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

/** The Metal attribute of each builtin id a kernel entry forwards. */
const ID_ATTRIBUTES: Readonly<Record<string, string>> = {
  group: 'threadgroup_position_in_grid',
  tid: 'thread_index_in_threadgroup',
  lane: 'thread_index_in_simdgroup',
  simd: 'simdgroup_index_in_threadgroup',
};

/** A kernel entry: its buffers and builtin ids as Metal binds them, forwarded to a body of the namespace. */
function kernelEntry(comment: string, name: string, buffers: readonly string[], ids: readonly string[], threadgroup: string | undefined, call: string): string {
  const params = [
    ...buffers.map((b, index) => `${b} [[buffer(${index})]]`),
    ...ids.map((id) => `uint${id === 'group' ? '3' : ''} ${id} [[${ID_ATTRIBUTES[id]}]]`),
  ];
  return [
    `// ${comment}`,
    `kernel void ${name}(${params.join(',\n    ')}) {`,
    ...(threadgroup !== undefined ? [`  threadgroup float tg[${threadgroup}];`] : []),
    `  ${call}`,
    '}',
  ].join('\n');
}

function servingEntries(ns: string, serving: MetalServing): string {
  const paged = [
    `device const ${ns}::storage_t* q`, `device const ${ns}::storage_t* k_cache`, `device const ${ns}::storage_t* v_cache`,
    'device const float2* rope', `constant ${ns}::PagedParams& params`, `device ${ns}::storage_t* out`, 'device float* lse',
    'device float* partials', 'device const int* block_table', 'device const int* seq_lens', 'device const int* cu_seqlens_q',
  ];
  // The contiguous decode kernels bind the attention passes' eight buffers, with DecodeParams at buffer 4.
  const contiguous = [
    `device const ${ns}::storage_t* q`, `device const ${ns}::storage_t* k`, `device const ${ns}::storage_t* v`,
    'device const float2* rope', `constant ${ns}::DecodeParams& params`, `device ${ns}::storage_t* out`, 'device float* lse',
    'device float* partials',
  ];
  const ids = ['group', 'tid', 'lane', 'simd'];
  const out: string[] = [];
  if (serving.cacheAppend !== undefined) {
    out.push(kernelEntry('Serving: new keys (rotated) and values into the paged cache. Grid (tokens, key_heads, 1) × SIMD_WIDTH threads.',
      serving.cacheAppend,
      [`device const ${ns}::storage_t* k`, `device const ${ns}::storage_t* v`, 'device const int* positions', 'device const int* slot_mapping',
        'device const int* lengths', 'device const float2* rope', `constant ${ns}::AppendParams& params`, `device ${ns}::storage_t* k_cache`,
        `device ${ns}::storage_t* v_cache`],
      ['group', 'lane'], undefined,
      `${ns}::cache_append(k, v, positions, slot_mapping, lengths, rope, params, k_cache, v_cache, group, lane);`));
  }
  if (serving.decode !== undefined && serving.merge !== undefined) {
    out.push(kernelEntry('Serving: split-K paged decode. Grid (splits, key_heads × row blocks, batch) × SIMD_WIDTH · group_rows threads.',
      serving.decode, paged, ids, `${ns}::DECODE_TG_FLOATS`,
      `${ns}::paged_decode(q, k_cache, v_cache, rope, params, out, lse, partials, block_table, seq_lens, cu_seqlens_q, tg, group, lane, simd);`));
    out.push(kernelEntry('Serving: log-sum-exp merge of the decode splits (when splits > 1). Grid ((queries + BLOCK_Q − 1) / BLOCK_Q, query_heads, batch) × THREADS.',
      serving.merge, paged, ids, undefined,
      `${ns}::paged_merge(partials, params, out, lse, seq_lens, cu_seqlens_q, group, tid);`));
  }
  out.push(kernelEntry('Serving: paged prefill, the fused pass over the cache. Grid ((queries + BLOCK_Q − 1) / BLOCK_Q, query_heads, batch) × THREADS.',
    serving.prefill, paged, ids, `${ns}::TG_MEMORY_FLOATS`,
    `${ns}::paged_prefill(q, k_cache, v_cache, rope, params, out, lse, block_table, seq_lens, cu_seqlens_q, tg, group, tid, lane, simd);`));
  if (serving.contiguousDecode !== undefined && serving.contiguousMerge !== undefined) {
    out.push(kernelEntry('Split-K decode over contiguous keys (calls with few query rows). Grid (splits, key_heads × row blocks, batch) × SIMD_WIDTH · group_rows threads.',
      serving.contiguousDecode, contiguous, ids, `${ns}::DECODE_TG_FLOATS`,
      `${ns}::contiguous_decode(q, k, v, rope, params, out, lse, partials, tg, group, lane, simd);`));
    out.push(kernelEntry('Log-sum-exp merge of the contiguous decode splits (when splits > 1). Grid ((queries + BLOCK_Q − 1) / BLOCK_Q, query_heads, batch) × THREADS.',
      serving.contiguousMerge, contiguous, ids, undefined,
      `${ns}::contiguous_decode_merge(partials, params, out, lse, group, tid);`));
  }
  return out.join('\n\n');
}

/** Region by index (visit order): the owner of a key, its positions, the first key any region shows. */
function regionDispatch(plan: KernelPlan): string {
  const regions = plan.regions;
  const byIndex = (name: string, variable: string, call: (r: RegionPlan) => string): string => [
    `inline int ${name}(int region, int ${variable}) {`,
    ...regions.slice(0, -1).map((r, index) => `  if (region == ${index}) return ${call(r)};`),
    `  return ${call(regions[regions.length - 1]!)};`,
    '}',
  ].join('\n');
  return [
    '// The region in which query i sees key j, REGION_COUNT when none does (regions do not overlap).',
    'inline int key_region(int i, int j) {',
    ...regions.map((r, index) => `  if (Region_${r.ident}::visible(i, j)) return ${index};  // ${metalText.comment(r.name)}`),
    '  return REGION_COUNT;',
    '}',
    '',
    '// Position of query i in region `region`.',
    byIndex('region_query_position', 'i', (r) => `Region_${r.ident}::query_position(i)`),
    '',
    '// Position of key j in region `region` (raw keys are rotated at it).',
    byIndex('region_key_position', 'j', (r) => `Region_${r.ident}::key_position(j)`),
    '',
    '// The first key some region lets query i see: every region\'s keys for i start at or after it.',
    'inline int first_visible_key(int i) {',
    '  int first = i;',
    ...regions.map((r) => `  if (Region_${r.ident}::key_begin(i) <= Region_${r.ident}::key_end(i)) first = imin(first, Region_${r.ident}::key_begin(i));`),
    '  return first;',
    '}',
  ].join('\n');
}

function keyScore(plan: KernelPlan): string {
  if (plan.config.preRotatedKeys) {
    return [
      '  // Keys in the cache are already rotated at their key position.',
      '  float s = 0.0f;',
      '  for (int d = 0; d < HEAD_DIM; ++d) s += query[d] * float(k_row[d]);',
      '  return s;',
    ].join('\n');
  }
  return [
    '  // Raw keys: rotated as they are read, at the region\'s key position.',
    '  const int position = region_key_position(region, j);',
    '  float s = 0.0f;',
    '  for (int d = 0; d < HEAD_DIM; ++d) {',
    '    float kx = float(k_row[d]);',
    '    if (d < ROTARY_DIM) {',
    '      const float2 cs = rope_cos_sin(rope, position, rope_pair(d));',
    '      kx = kx * cs.x + rope_sign(d) * float(k_row[rope_partner(d)]) * cs.y;',
    '    }',
    '    s += query[d] * kx;',
    '  }',
    '  return s;',
  ].join('\n');
}

function servingSection(plan: KernelPlan, serving: MetalServing): string {
  const shared = plan.regions.find((r) => r.sharesKeyPosition);
  return renderTemplate('metal', 'serving.metal', {
    cacheKeys: plan.config.preRotatedKeys
      ? 'pre-rotated at the pattern\'s key position (written by cache_append): attention never rotates them'
      : 'raw (as projected): attention rotates them as it reads them',
    keysPreRotated: plan.config.preRotatedKeys ? 'true' : 'false',
    decodeMaxRows: serving.decodeMaxRows,
    decodeMaxRowsNote: serving.decodeMaxRows === 0 ? ' (0: one row does not fit, no decode kernel)' : '',
    decodeTgFloats: serving.decodeThreadgroupFloats,
    regionDispatch: regionDispatch(plan),
    cacheAppendBodies: serving.cacheAppend !== undefined && shared !== undefined
      ? renderTemplate('metal', 'cache-append.metal', { keyRegion: shared.ident })
      : `// No cache append: a region of ${metalText.comment(plan.pattern.name)} places keys at its own position, so the cache holds raw keys.`,
    keyScore: keyScore(plan),
  });
}

function servingInterface(ns: string, serving: MetalServing | undefined): string {
  if (serving === undefined) return '// Serving kernels (paged KV cache) come with the fused kernel set of the pattern.';
  return [
    '// Serving kernels (paged KV cache; see "Serving" below for layouts and grids):',
    ...(serving.cacheAppend !== undefined ? [`//   ${serving.cacheAppend}: new keys and values into the cache, buffers k, v, positions, slot_mapping,`, '//     lengths, rope, AppendParams, k_cache, v_cache.'] : []),
    ...(serving.decode !== undefined ? [`//   ${serving.decode}, then ${serving.merge} when splits > 1: calls with few query rows.`] : []),
    `//   ${serving.prefill}: calls with more query rows.`,
    '//   The paged kernels take buffers q, k_cache, v_cache, rope, PagedParams, out, lse, partials, block_table,',
    `//   seq_lens, cu_seqlens_q (0 .. 10; cu_seqlens_q is read only when PagedParams.total_queries > 0). ${ns}:`,
    '//   namespace of their bodies.',
    ...(serving.contiguousDecode !== undefined ? [
      `// Split-K decode over contiguous keys: ${serving.contiguousDecode}, then ${serving.contiguousMerge} when splits > 1, for`,
      '// calls with few query rows; the attention passes\' eight buffers, with DecodeParams (AttentionParams, then',
      '// splits, split_keys, group_rows) at buffer 4.',
    ] : []),
  ].join('\n');
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
    `  visit_region<Region_${r.ident}>(t, rows, st, q, k, v, rope, tg, tid, lane, simd);`,
  ].join('\n')).join('\n');
  const baseName = options.fileName.replace(/\.metal$/, '');
  return renderTemplate('metal', 'attention.metal', {
    title: metalText.comment(options.title),
    patternName: plan.pattern.name,
    command: metalText.comment(options.command),
    fileName: options.fileName,
    baseName,
    metalVersion: c.dtype === 'bf16' ? 'Metal 3.1 or newer for bfloat storage' : 'Metal 2.3 or newer: simdgroup_matrix, Apple GPUs',
    pathSummary: `simdgroup_matrix 8×8 Q·Kᵀ and P·V with f32 accumulation; ${storageType} storage; K and V tiles staged in f32 threadgroup memory, keys ${c.preRotatedKeys ? 'arriving pre-rotated' : 'rotated on load'}.`,
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
    servingInterface: servingInterface(options.namespace, options.serving),
    serving: options.serving !== undefined ? servingSection(plan, options.serving) : '// (No serving kernels in this set.)',
    kernels: [kernelEntries(options.namespace, passes), ...(options.serving !== undefined ? [servingEntries(options.namespace, options.serving)] : [])].join('\n\n'),
  });
}
