// Renders the PyTorch module that builds an emitted .cu with torch.utils.cpp_extension and wraps
// it as a Python function over (B, S, H, D) CUDA tensors.

import { kebab } from '../../dsl/instantiate.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { workspaceFloatsPerRow } from '../../plan/passes.js';
import { renderTemplate } from '../template.js';
import { cudaLoadBytes, usesTensorCores } from './render.js';
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
  const paramChecks = base.length === 0
    ? '    pass'
    : base.map((p) => `    if ${snake(p)} != PARAMS["${snake(p)}"]:\n        raise ValueError(f"this kernel was compiled for ${snake(p)}={PARAMS['${snake(p)}']}, got {${snake(p)}}")`).join('\n');
  const keywordParams = base.map((p) => `${snake(p)}, `).join('');
  const serving = options.variant === 'fused';
  const preRotated = plan.config.preRotatedKeys;
  const servingFunctions = serving
    ? [
      renderTemplate('cuda', 'torch_serving.py', {
        keywordParams,
        headDim: plan.config.headDim,
        torchDtype,
        paramChecks,
        cacheKeys: preRotated ? 'rotated at their key position (written by append_to_cache)' : 'raw (rotated as they are read)',
        qwenNote: preRotated ? ' (keys carry the factor they were written with)' : ' (logits x s(n)^2: query and key)',
      }).trimEnd(),
      '',
    ].join('\n')
    : '';
  const servingConstants = serving
    ? [
      '',
      `PRE_ROTATED_KEYS = ${preRotated ? 'True' : 'False'}  # paged_attention: the cache holds keys as append_to_cache writes them (True) or raw keys (False)`,
      `APPEND_SUPPORTED = ${plan.regions.every((r) => r.sharesKeyPosition) ? 'True' : 'False'}  # whether the pattern's regions share one key position (a rotated cache)`,
    ].join('\n')
    : '';
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
    workspaceFloats: workspaceFloatsPerRow(plan, options.variant),
    loadBytes: cudaLoadBytes(plan),
    loadNote: usesTensorCores(plan) ? 'cp.async on the tensor-core path' : 'one element at a time on the SIMT path',
    keywordParams,
    summary: pythonText.comment(`${pattern.definition.summary}, fused into one flash-attention pass.`),
    paramsText,
    paramChecks,
    servingSummary: serving
      ? `\nServing over a paged KV cache (vLLM / FlashInfer layout): append_to_cache(key, value, k_cache, v_cache,\nslot_mapping, positions, ...) and paged_attention(q, k_cache, v_cache, block_table, seq_lens, ...).`
      : '',
    servingBinding: serving ? `${renderTemplate('cuda', 'torch_serving_binding.cpp', { prefix: options.prefix })}\n` : '',
    servingDefs: serving
      ? '\n  m.def("paged", &paged, "dcagen paged attention");\n  m.def("append", &append, "dcagen cache append");'
      : '',
    servingFunctions,
    servingConstants,
  });
}
