// Renders the PyTorch module that builds an emitted .cu with torch.utils.cpp_extension and wraps
// it as a Python function over (B, S, H, D) CUDA tensors.

import { kebab } from '../../dsl/instantiate.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { renderTemplate } from '../template.js';
import { pythonText } from '../text.js';

export interface TorchModuleOptions {
  readonly name: string;
  readonly prefix: string;
  readonly fileName: string;
  readonly headerName: string;
  readonly command: string;
  readonly variant: 'fused' | 'three-pass';
}

const snake = (name: string): string => kebab(name).replace(/-/g, '_');

export function renderTorchModule(plan: KernelPlan, options: TorchModuleOptions): string {
  const pattern = plan.pattern;
  const base = Object.keys(pattern.definition.params);
  const functionName = pattern.name === 'dca' || pattern.name === 'dca-paper' ? 'dca_attention' : `${pattern.name.replace(/-/g, '_')}_attention`;
  const torchDtype = plan.config.dtype === 'bf16' ? 'torch.bfloat16' : plan.config.dtype === 'f16' ? 'torch.float16' : 'torch.float32';
  const paramsText = base.length === 0 ? 'the plain pattern' : base.map((p) => `${snake(p)}=${pattern.params[p]}`).join(', ');
  return renderTemplate('cuda', 'torch_module.py', {
    title: pythonText.comment(`${options.name}: PyTorch entry point (${options.variant} ${pattern.name} attention)`),
    command: pythonText.comment(options.command),
    fileName: options.fileName,
    headerName: options.headerName,
    prefix: options.prefix,
    moduleName: options.name.replace(/-/g, '_'),
    functionName,
    headDim: plan.config.headDim,
    torchDtype,
    exampleArgs: base.map((p) => `, ${snake(p)}=${pattern.params[p]}`).join(''),
    patternName: pythonText.stringLiteral(pattern.name),
    paramsDict: `{${base.map((p) => `"${snake(p)}": ${pattern.params[p]}`).join(', ')}}`,
    rotaryDim: plan.rope.rotaryDim,
    ropeStyle: plan.rope.style,
    ropeFineBits: plan.rope.fineBits,
    positionLimit: plan.rope.positionLimit ?? 'None',
    workspaceFloats: options.variant === 'three-pass' ? plan.regions.length * (plan.config.headDim + 1) : 0,
    keywordParams: base.map((p) => `${snake(p)}, `).join(''),
    summary: pythonText.comment(`${pattern.definition.summary}, fused into one flash-attention pass.`),
    paramsText,
    paramChecks: base.length === 0
      ? '    pass'
      : base.map((p) => `    if ${snake(p)} != PARAMS["${snake(p)}"]:\n        raise ValueError(f"this kernel was compiled for ${snake(p)}={PARAMS['${snake(p)}']}, got {${snake(p)}}")`).join('\n'),
  });
}
