// Renders the MLX module of a Metal kernel set (templates/metal/mlx_module.py): a Python function
// over (B, S, H, D) MLX arrays that runs the .metal's pass bodies through mx.fast.metal_kernel, with
// the RoPE table built in float64 by NumPy; fused sets add the serving entry points
// (templates/metal/mlx_serving.py): append_to_cache and paged_attention.

import { kebab } from '../../dsl/instantiate.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { renderTemplate } from '../template.js';
import { pythonText } from '../text.js';
import type { KernelVariant } from '../kernel-set.js';
import type { MetalPass } from './render.js';
import { DECODE_MAX_QUERIES, MIN_SPLIT_KEYS, TARGET_THREADGROUPS, type MetalServing } from './serving.js';

export interface MlxModuleOptions {
  readonly name: string;
  readonly fileName: string;
  readonly namespace: string;
  readonly command: string;
  readonly passes: readonly MetalPass[];
  readonly threads: number;
  readonly variant: KernelVariant;
  readonly serving?: MetalServing;
}

const snake = (name: string): string => kebab(name).replace(/-/g, '_');

/** The Python function a module exposes: dca_attention for the DCA patterns, <pattern>_attention otherwise. */
export function pythonFunctionName(patternName: string): string {
  return patternName === 'dca' || patternName === 'dca-paper' ? 'dca_attention' : `${patternName.replace(/-/g, '_')}_attention`;
}

export function renderMlxModule(plan: KernelPlan, options: MlxModuleOptions): string {
  const pattern = plan.pattern;
  const base = Object.keys(pattern.definition.params);
  const mlxDtype = plan.config.dtype === 'bf16' ? 'mx.bfloat16' : plan.config.dtype === 'f16' ? 'mx.float16' : 'mx.float32';
  const keywordParams = base.map((p) => `${snake(p)}, `).join('');
  const paramChecks = base.length === 0
    ? '    pass'
    : base.map((p) => `    if ${snake(p)} != PARAMS["${snake(p)}"]:\n        raise ValueError(f"this kernel was compiled for ${snake(p)}={PARAMS['${snake(p)}']}, got {${snake(p)}}")`).join('\n');
  const serving = options.serving;
  return renderTemplate('metal', 'mlx_module.py', {
    title: pythonText.comment(`${options.name}: MLX entry point (${options.variant} ${pattern.name} attention on Metal)`),
    command: pythonText.comment(options.command),
    fileName: options.fileName,
    kernelList: options.passes.map((p) => p.kernel).join(', '),
    moduleName: options.name.replace(/-/g, '_'),
    functionName: pythonFunctionName(pattern.name),
    headDim: plan.config.headDim,
    mlxDtype,
    exampleArgs: base.map((p) => `, ${snake(p)}=${pattern.params[p]}`).join(''),
    patternName: pythonText.stringLiteral(pattern.name),
    paramsDict: `{${base.map((p) => `"${snake(p)}": ${pattern.params[p]}`).join(', ')}}`,
    rotaryDim: plan.rope.rotaryDim,
    ropeFineBits: plan.rope.fineBits,
    positionLimit: plan.rope.positionLimit ?? 'None',
    blockQ: plan.config.blockQ,
    threads: options.threads,
    variant: options.variant,
    namespace: options.namespace,
    regionStructs: plan.regions.map((r) => JSON.stringify(`Region_${r.ident}`)).join(', '),
    keywordParams,
    summary: pythonText.comment(options.variant === 'fused'
      ? `${pattern.definition.summary}, fused into one flash-attention pass.`
      : `${pattern.definition.summary}, as the three-pass baseline (one kernel per region, then a log-sum-exp merge).`),
    paramsText: base.length === 0 ? 'the plain pattern' : base.map((p) => `${snake(p)}=${pattern.params[p]}`).join(', '),
    paramChecks,
    servingDoc: serving === undefined
      ? 'Serving entry points (append_to_cache, paged_attention) are in the fused kernel set\'s module.'
      : `Serving over a paged KV cache: ${serving.cacheAppend !== undefined ? 'append_to_cache(key, value, key_cache, value_cache, slot_mapping, positions, ...) and ' : ''}paged_attention(q, key_cache, value_cache, block_table, seq_lens, ...).`,
    servingFunctions: serving === undefined ? '' : renderTemplate('metal', 'mlx_serving.py', {
      cacheKeys: plan.config.preRotatedKeys ? 'pre-rotated at the pattern\'s key position (written by append_to_cache)' : 'raw: paged_attention rotates them as it reads them',
      keysPreRotated: plan.config.preRotatedKeys ? 'True' : 'False',
      hasCacheAppend: serving.cacheAppend !== undefined ? 'True' : 'False',
      decodeMaxQueries: DECODE_MAX_QUERIES,
      decodeMaxRows: serving.decodeMaxRows,
      targetThreadgroups: TARGET_THREADGROUPS,
      minSplitKeys: MIN_SPLIT_KEYS,
      fileName: options.fileName,
      keywordParams,
      paramChecks,
      headDim: plan.config.headDim,
    }),
  });
}
