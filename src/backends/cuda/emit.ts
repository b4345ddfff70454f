// Emits a CUDA kernel set: the self-contained .cu, its C header, and a PyTorch module that builds
// it with torch.utils.cpp_extension. A fused set also carries the serving kernels: cache append and
// paged attention (split-K decode, and the same kernel over more query rows for paged prefill),
// with the LSE merge that the three-pass baseline uses too.

import type { CompiledPattern } from '../../dsl/instantiate.js';
import { planKernel, type KernelConfig, type KernelPlan } from '../../plan/kernel-plan.js';
import { ConfigurationError } from '../../errors.js';
import type { EmittedFile, KernelVariant } from '../kernel-set.js';
import { kernelSetName } from '../kernel-set.js';
import { renderCudaHeader, renderCudaSource, tensorCoresFit } from './render.js';
import { renderTorchModule } from './torch.js';

export interface CudaKernelSet {
  readonly name: string;
  readonly prefix: string;
  readonly plan: KernelPlan;
  readonly files: readonly EmittedFile[];
  readonly source: string;
  readonly header: string;
  /** Fused sets also carry the serving kernels (cache append, paged attention) and their entry points. */
  readonly variant: KernelVariant;
}

export function cudaKernelConfig(partial: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>): KernelConfig {
  const tensorCores = tensorCoresFit(partial.dtype, partial.headDim);
  // Tensor cores, d ≤ 128: 4 warps × 32 query rows (each K and V fragment feeds two MMAs) and one
  // Q, K and V tile in shared memory (≤ 52 KiB: two blocks per SM on sm_80 and sm_90). Key tiles of
  // 64 at d ≤ 64; at d 128, 32-key tiles keep the 128 f32 output accumulators and the scores within
  // 255 registers without spilling (64-key tiles spill, as FlashAttention-2's 128×64 d-128 kernel
  // does). d 256: 4 warps × 16 rows (the accumulators alone are 128 registers) and 32-key tiles,
  // 66 KiB of shared memory.
  const blockQ = tensorCores ? (partial.headDim > 128 ? 64 : 128) : 32;
  const blockK = tensorCores ? (partial.headDim >= 128 ? 32 : 64) : (partial.headDim > 128 ? 16 : 32);
  return { ropeStyle: 'half', blockQ, blockK, preRotatedKeys: false, ...partial };
}

export function emitCuda(pattern: CompiledPattern, config: KernelConfig, options: { variant?: KernelVariant; command?: string } = {}): CudaKernelSet {
  const variant = options.variant ?? 'fused';
  const rowChoices = config.headDim > 128 ? [64] : [64, 128];   // 16 rows per warp at d 256: its accumulators fill the registers
  if (tensorCoresFit(config.dtype, config.headDim) && (!rowChoices.includes(config.blockQ) || config.blockK % 16 !== 0)) {
    throw new ConfigurationError(`the tensor-core CUDA kernel at head dim ${config.headDim} uses ${rowChoices.join(' or ')} query rows per block (4 warps × 16 or 32 rows) and key tiles of a multiple of 16`);
  }
  const plan = planKernel(pattern, config);
  const name = kernelSetName(pattern, config, variant);
  const prefix = `dcagen_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
  const fileName = `${name}.cu`;
  const headerName = `${name}.h`;
  const command = options.command ?? `dcagen emit --backend cuda --pattern ${pattern.name} …`;
  const title = `${name}: ${variant === 'fused' ? 'fused' : 'three-pass'} ${pattern.name} flash attention for CUDA`;
  const renderOptions = { title, command, fileName, headerName, prefix, variant };
  const source = renderCudaSource(plan, renderOptions);
  const header = renderCudaHeader(renderOptions);
  const torch = renderTorchModule(plan, { name, prefix, fileName, headerName, command, variant });
  return {
    name,
    prefix,
    plan,
    source,
    header,
    variant,
    files: [{ name: fileName, contents: source }, { name: headerName, contents: header }, { name: `${name.replace(/-/g, '_')}.py`, contents: torch }],
  };
}
