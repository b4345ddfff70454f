// Renders the MLX module of a Metal kernel set (templates/metal/mlx_module.py): a Python function
// over (B, S, H, D) MLX arrays that runs the .metal's pass bodies through mx.fast.metal_kernel, with
// the RoPE table built in float64 by NumPy.

import { kebab } from '../../dsl/instantiate.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { renderTemplate } from '../template.js';
import { pythonText } from '../text.js';
import type { KernelVariant } from '../kernel-set.js';
import type { MetalPass } from './render.js';

export interface MlxModuleOptions {
  readonly name: string;
  readonly fileName: string;
  readonly namespace: string;
  readonly command: string;
  readonly passes: readonly MetalPass[];
  readonly threads: number;
  readonly variant: KernelVariant;
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
    keywordParams: base.map((p) => `${snake(p)}, `).join(''),
    summary: pythonText.comment(options.variant === 'fused'
      ? `${pattern.definition.summary}, fused into one flash-attention pass.`
      : `${pattern.definition.summary}, as the three-pass baseline (one kernel per region, then a log-sum-exp merge).`),
    paramsText: base.length === 0 ? 'the plain pattern' : base.map((p) => `${snake(p)}=${pattern.params[p]}`).join(', '),
    paramChecks: base.length === 0
      ? '    pass'
      : base.map((p) => `    if ${snake(p)} != PARAMS["${snake(p)}"]:\n        raise ValueError(f"this kernel was compiled for ${snake(p)}={PARAMS['${snake(p)}']}, got {${snake(p)}}")`).join('\n'),
  });
}
