// The WGSL renderer: the kernel plan rendered into WebGPU shaders through templates/wgsl. It only
// spells things: every decision (regions, key ranges, masks, visit order) comes from the plan.

import type { KernelPlan, RegionPlan } from '../../plan/kernel-plan.js';
import { planNames, renderExpr, type ExprLanguage } from '../expr-render.js';
import { ConfigurationError } from '../../errors.js';
import { renderTemplate } from '../template.js';
import { wgslText } from '../text.js';
import type { DecodeLayout } from './decode-layout.js';

export const wgslLanguage: ExprLanguage = {
  int: (v) => String(v),
  bool: (v) => (v ? 'true' : 'false'),
  min: (a, b) => `imin(${a}, ${b})`,
  max: (a, b) => `imax(${a}, ${b})`,
  floorDiv: (a, b) => `floor_div(${a}, ${b})`,
  mod: (a, b) => `${a} % ${b}`,
  select: (c, t, f) => `select(${f}, ${t}, ${c})`,
};

export function wgslExpr(plan: KernelPlan, e: Parameters<typeof renderExpr>[0]): string {
  return renderExpr(e, wgslLanguage, planNames(plan));
}

/** Which key-position function a region uses: the pattern's shared one or its own. */
export function keyPositionFunction(region: RegionPlan): string {
  return region.sharesKeyPosition ? 'key_position' : `key_position_${region.ident}`;
}

function positionFunctions(plan: KernelPlan): string {
  const out: string[] = [];
  const sharedKey = plan.regions.find((r) => r.sharesKeyPosition);
  if (sharedKey !== undefined) {
    out.push(`// Key position shared by every region (keys may be stored pre-rotated at it).`);
    out.push(`fn key_position(j: i32) -> i32 {\n  return ${wgslExpr(plan, sharedKey.keyPosition)};\n}`);
  }
  for (const r of plan.regions) {
    out.push('');
    out.push(`// Region ${r.name}: ${wgslText.comment(r.summary)}.`);
    out.push(`fn query_position_${r.ident}(i: i32) -> i32 {\n  return ${wgslExpr(plan, r.queryPosition)};\n}`);
    if (!r.sharesKeyPosition) out.push(`fn key_position_${r.ident}(j: i32) -> i32 {\n  return ${wgslExpr(plan, r.keyPosition)};\n}`);
    out.push(`// Whether key j is visible to query i in region ${r.name} (prefill: edge tiles only; decode: every key).`);
    out.push(`fn visible_${r.ident}(i: i32, j: i32) -> bool {\n  return ${wgslExpr(plan, r.elementVisible)};\n}`);
  }
  return out.join('\n');
}

/** Integer helpers, the RoPE table lookup and the rotation layout: one fragment for every kernel. */
function ropeFunctions(plan: KernelPlan): string {
  return renderTemplate('wgsl', 'rope.wgsl', {
    ropeStyleName: plan.rope.style === 'half' ? 'rotate-half (GPT-NeoX / Llama / Qwen)' : 'interleaved (GPT-J)',
    ropeLayout: ropeLayout(plan),
  });
}

function patternConstants(plan: KernelPlan): string {
  return plan.constants.length === 0
    ? '// (none)'
    : plan.constants.map((k) => `const ${k.name}: i32 = ${k.value}; // ${wgslText.comment(k.doc)}`).join('\n');
}

function ropeLayout(plan: KernelPlan): string {
  if (plan.rope.style === 'half') {
    return [
      'fn rope_pair(d: u32) -> u32 { return d % ROPE_PAIRS; }',
      'fn rope_partner(d: u32) -> u32 { return select(d - ROPE_PAIRS, d + ROPE_PAIRS, d < ROPE_PAIRS); }',
      'fn rope_sign(d: u32) -> f32 { return select(1.0, -1.0, d < ROPE_PAIRS); }',
    ].join('\n');
  }
  return [
    'fn rope_pair(d: u32) -> u32 { return d / 2u; }',
    'fn rope_partner(d: u32) -> u32 { return d ^ 1u; }',
    'fn rope_sign(d: u32) -> f32 { return select(1.0, -1.0, (d & 1u) == 0u); }',
  ].join('\n');
}

/**
 * The K/V addressing of a kernel, from the plan's layout: where key j of a (batch, KV head) starts
 * in k and v (kv_row_base), how many keys sequence `batch` has (sequence_keys), its logit scale
 * (sequence_logit_scale: Qwen's factor is per sequence in a paged call) and, for a paged cache,
 * how its keys are read (cache_key4). Every K/V read of the prefill and decode kernels goes through
 * these, so the two layouts differ here only.
 */
function kvAddressing(plan: KernelPlan): string {
  if ((plan.config.kvLayout ?? 'contiguous') === 'contiguous') {
    return [
      '// Contiguous K/V: (batch, keys, key_heads, HEAD_DIM), one key count for the call.',
      '@group(0) @binding(2) var<storage, read> k: array<STORAGE_TYPE>;        // (batch, keys, key_heads, HEAD_DIM)',
      '@group(0) @binding(3) var<storage, read> v: array<STORAGE_TYPE>;        // (batch, keys, key_heads, HEAD_DIM)',
      '',
      'fn sequence_keys(batch: u32) -> u32 {',
      '  return params.keys;',
      '}',
      '',
      'fn sequence_logit_scale(batch: u32) -> f32 {',
      '  return params.logit_scale;   // the launcher folded in the Qwen temperature for the call',
      '}',
      '',
      '// Query rows: (batch, queries, query_heads, HEAD_DIM), the same count for every sequence.',
      'fn sequence_queries(batch: u32) -> u32 {',
      '  return params.queries;',
      '}',
      '',
      'fn sequence_first_query(batch: u32) -> u32 {',
      '  return batch * params.queries;',
      '}',
      '',
      "// Element index of key j's first element in k and v.",
      'fn kv_row_base(batch: u32, j: u32, kv_head: u32) -> u32 {',
      '  return ((batch * params.keys + j) * params.key_heads + kv_head) * HEAD_DIM;',
      '}',
    ].join('\n').replace(/STORAGE_TYPE/g, storageType(plan));
  }
  return [
    '// Paged K/V (vLLM / FlashInfer layout): k and v are caches of fixed-size blocks; key j of sequence',
    '// b lives in block kv_index[batch + b * max_blocks + j / block_size], row j % block_size.',
    '@group(0) @binding(2) var<storage, read> k: array<STORAGE_TYPE>;        // k cache (num_blocks, block_size, key_heads, HEAD_DIM)',
    '@group(0) @binding(3) var<storage, read> v: array<STORAGE_TYPE>;        // v cache, like k',
    '@group(0) @binding(8) var<storage, read> kv_index: array<u32>;          // seq_lens (batch), block_table (batch, max_blocks), [cu_seqlens_q (batch + 1)]',
    '',
    'fn sequence_keys(batch: u32) -> u32 {',
    '  return kv_index[batch];',
    '}',
    '',
    '// Qwen temperature, engine semantics: s(n) for the query side; raw keys get theirs on load too.',
    'fn sequence_logit_scale(batch: u32) -> f32 {',
    '  if (params.original_max_position == 0u) {',
    '    return params.logit_scale;',
    '  }',
    '  let s = max(1.0, 0.1 * log(f32(sequence_keys(batch)) / f32(params.original_max_position)) + 1.0);',
    '  return params.logit_scale * select(s, s * s, params.raw_keys != 0u);',
    '}',
    '',
    '// Query rows: the last `queries` of every sequence, or packed by cu_seqlens_q (varlen: sequence b',
    '// owns rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1, the last of its positions).',
    'fn sequence_queries(batch: u32) -> u32 {',
    '  if (params.total_queries == 0u) {',
    '    return params.queries;',
    '  }',
    '  let cu = params.batch * (1u + params.max_blocks);',
    '  return kv_index[cu + batch + 1u] - kv_index[cu + batch];',
    '}',
    '',
    'fn sequence_first_query(batch: u32) -> u32 {',
    '  if (params.total_queries == 0u) {',
    '    return batch * params.queries;',
    '  }',
    '  return kv_index[params.batch * (1u + params.max_blocks) + batch];',
    '}',
    '',
    "// Element index of key j's first element in the k and v caches.",
    'fn kv_row_base(batch: u32, j: u32, kv_head: u32) -> u32 {',
    '  let block = kv_index[params.batch + batch * params.max_blocks + (j >> params.block_shift)];',
    '  let row = j & ((1u << params.block_shift) - 1u);',
    '  return (((block << params.block_shift) + row) * params.key_heads + kv_head) * HEAD_DIM;',
    '}',
    '',
    '// A cache of rotated keys (written by the cache-append kernel) is read as it is; a raw one is',
    '// rotated on load. One uniform branch, so one kernel serves both.',
    'fn cache_key4(at: u32, d4: u32, position: i32) -> vec4<f32> {',
    '  if (params.raw_keys != 0u) {',
    '    return rotated_key4(at, d4, position);',
    '  }',
    '  return key4(at, d4);',
    '}',
  ].join('\n').replace(/STORAGE_TYPE/g, storageType(plan));
}

/** Bindings, RoPE and K/V helpers and the position functions: the same text in both attention kernels. */
function attentionInputs(plan: KernelPlan): string {
  return renderTemplate('wgsl', 'attention-inputs.wgsl', {
    patternConstants: patternConstants(plan),
    storage: storageType(plan),
    ropeFunctions: ropeFunctions(plan),
    kvAddressing: kvAddressing(plan),
    positionFunctions: positionFunctions(plan),
  });
}

/** The key vector's d4-th vec4 at element index `at`, as a kernel reads it: pre-rotated, or rotated at `position`. */
function keyValue(plan: KernelPlan, position: string): string {
  if (plan.config.kvLayout === 'paged') return `cache_key4(at, d4, ${position})`;
  return plan.config.preRotatedKeys ? 'key4(at, d4)  /* keys arrive pre-rotated */' : `rotated_key4(at, d4, ${position})`;
}

function regionVisit(plan: KernelPlan, r: RegionPlan): string {
  return renderTemplate('wgsl', 'region-visit.wgsl', {
    regionName: r.name,
    regionIdent: r.ident,
    regionSummary: wgslText.comment(r.summary),
    tileKeyBegin: wgslExpr(plan, r.tileKeyBegin),
    tileKeyEnd: wgslExpr(plan, r.tileKeyEnd),
    queryPosition: `query_position_${r.ident}(i)`,
    keyValue: keyValue(plan, `${keyPositionFunction(r)}(j)`),
    tileUnmasked: wgslExpr(plan, r.tileUnmasked),
  });
}

export interface WgslKernelOptions {
  readonly title: string;
  readonly command: string;
  readonly entryPoint: string;
  /** 0 for the fused kernel; the pass's index for a three-pass region kernel. */
  readonly passIndex: number;
  /** The fused kernel writes the output itself when a call has one split; pass kernels never do. */
  readonly directOutput: boolean;
}

export function storageType(plan: KernelPlan): string {
  return plan.config.dtype === 'f16' ? 'f16' : 'f32';
}

export function renderAttentionWgsl(plan: KernelPlan, options: WgslKernelOptions): string {
  const c = plan.config;
  if (c.dtype === 'bf16') throw new Error('WGSL has no bfloat16 storage; use f32 or f16');
  const storage = storageType(plan);
  return renderTemplate('wgsl', 'attention.wgsl', {
    title: options.title,
    patternName: plan.pattern.name,
    command: options.command,
    enables: storage === 'f16' ? 'enable f16;\n' : '',
    headDim: c.headDim,
    headVec4: c.headDim / 4,
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    blockQ: c.blockQ,
    blockK: c.blockK,
    passIndex: options.passIndex,
    directOutput: options.directOutput ? 'true' : 'false',
    common: renderTemplate('wgsl', 'common.wgsl', {}),
    attentionInputs: attentionInputs(plan),
    storage,
    tileVec4: c.blockK * (c.headDim / 4),
    entryPoint: options.entryPoint,
    regionVisits: plan.regions.map((r) => regionVisit(plan, r)).join('\n'),
  }).replace(/\n{3,}/g, '\n\n');
}

/**
 * The decode kernel's view of the regions by index (visit order): each region's query position, the
 * region that owns a key (from the plan's element masks), and, for patterns whose regions place keys
 * at their own positions, each region's key position.
 */
function regionDispatch(plan: KernelPlan): string {
  const byIndex = (fn: string, param: string, call: (r: RegionPlan) => string): string => {
    if (plan.regions.length === 1) return `fn ${fn}(region: u32, ${param}: i32) -> i32 {\n  return ${call(plan.regions[0]!)};\n}`;
    const cases = plan.regions.map((r, n) => (n === plan.regions.length - 1
      ? `    default: { return ${call(r)}; }`
      : `    case ${n}u: { return ${call(r)}; }`));
    return `fn ${fn}(region: u32, ${param}: i32) -> i32 {\n  switch region {\n${cases.join('\n')}\n  }\n}`;
  };
  const out: string[] = [];
  out.push(`// Regions: ${plan.regions.map((r, n) => `${n} = ${r.name}`).join(', ')}.`);
  out.push(byIndex('region_query_position', 'i', (r) => `query_position_${r.ident}(i)`));
  out.push('');
  out.push('// The region that owns key j for query i (the regions partition the causal keys), or REGIONS');
  out.push('// when no region lets query i see key j.');
  out.push('fn key_region(i: i32, j: i32) -> u32 {');
  plan.regions.forEach((r, n) => out.push(`  if (visible_${r.ident}(i, j)) {\n    return ${n}u;\n  }`));
  out.push('  return REGIONS;');
  out.push('}');
  if (!plan.config.preRotatedKeys && plan.regions.some((r) => !r.sharesKeyPosition)) {
    out.push('');
    out.push('// The regions place keys at their own positions: a key is rotated for the region that owns it.');
    out.push(byIndex('region_key_position', 'j', (r) => `${keyPositionFunction(r)}(j)`));
  }
  return out.join('\n');
}

export interface WgslDecodeOptions {
  readonly title: string;
  readonly command: string;
  readonly entryPoint: string;
  /** Combine a row's lanes with subgroup operations (a separate module, for devices with `subgroups`). */
  readonly subgroups: boolean;
}

/**
 * The split-K decode kernel. Both of its forms come from one template; only the combine of a row's
 * lanes differs (the decode-lanes-* and decode-cells-* fragments): subgroup operations, or workgroup
 * memory alone.
 */
export function renderDecodeWgsl(plan: KernelPlan, layout: DecodeLayout, options: WgslDecodeOptions): string {
  const c = plan.config;
  if (c.dtype === 'bf16') throw new Error('WGSL has no bfloat16 storage; use f32 or f16');
  const storage = storageType(plan);
  const ownKeyPositions = plan.regions.some((r) => !r.sharesKeyPosition);
  const keyPosition = c.preRotatedKeys
    ? '    // (keys arrive rotated at their key position)'
    : `    let key_at = ${ownKeyPositions ? 'region_key_position(region, j)' : 'key_position(j)'};   // the key's RoPE position`;
  const path = options.subgroups ? 'subgroups' : 'workgroup';
  return renderTemplate('wgsl', 'decode.wgsl', {
    title: options.title,
    patternName: plan.pattern.name,
    command: options.command,
    combineSummary: options.subgroups
      ? 'Within a subgroup the lanes of\n// a row combine with subgroupMax / subgroupAdd; subgroups meet through workgroup memory.'
      : 'The lanes meet through\n// workgroup memory alone (a second module of this kernel uses subgroup operations where the device\n// has them).',
    enables: [storage === 'f16' ? 'enable f16;\n' : '', options.subgroups ? 'enable subgroups;\n' : ''].join(''),
    headDim: c.headDim,
    headVec4: c.headDim / 4,
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    workgroup: layout.workgroup,
    maxRows: layout.maxRows,
    regionCount: layout.regions,
    combineChunk: layout.combineChunk,
    common: renderTemplate('wgsl', 'common.wgsl', {}),
    attentionInputs: attentionInputs(plan),
    regionDispatch: regionDispatch(plan),
    rowsMemoryVec4: layout.rowsMemoryVec4s,
    cellReduction: renderTemplate('wgsl', `decode-cells-${path}.wgsl`, {}).trimEnd(),
    entryPoint: options.entryPoint,
    laneBuiltins: options.subgroups ? ', @builtin(subgroup_size) subgroup_size: u32' : '',
    laneOrder: renderTemplate('wgsl', `decode-lanes-${path}.wgsl`, {}).trimEnd(),
    keyPosition,
    keyValue: keyValue(plan, 'key_at'),
    storage,
  }).replace(/\n{3,}/g, '\n\n');
}

export function renderMergeWgsl(plan: KernelPlan, title: string, command: string, entryPoint: string): string {
  const storage = storageType(plan);
  return renderTemplate('wgsl', 'merge.wgsl', {
    title,
    command,
    enables: storage === 'f16' ? 'enable f16;\n' : '',
    headDim: plan.config.headDim,
    headVec4: plan.config.headDim / 4,
    common: renderTemplate('wgsl', 'common.wgsl', {}),
    storage,
    entryPoint,
  });
}

/** The cache-append kernel: new keys rotated at the pattern's key position into the paged cache. */
export function renderCacheAppendWgsl(plan: KernelPlan, title: string, command: string, entryPoint: string): string {
  const sharedKey = plan.regions.find((r) => r.sharesKeyPosition);
  if (sharedKey === undefined || plan.regions.some((r) => !r.sharesKeyPosition)) {
    throw new ConfigurationError(`pattern ${plan.pattern.name} cannot use a rotated KV cache: a region places keys at its own position`);
  }
  const storage = storageType(plan);
  return renderTemplate('wgsl', 'cache-append.wgsl', {
    title,
    command,
    patternName: plan.pattern.name,
    enables: storage === 'f16' ? 'enable f16;\n' : '',
    headDim: plan.config.headDim,
    headVec4: plan.config.headDim / 4,
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    patternConstants: patternConstants(plan),
    storage,
    ropeFunctions: ropeFunctions(plan),
    keyPosition: wgslExpr(plan, sharedKey.keyPosition),
    entryPoint,
  });
}
