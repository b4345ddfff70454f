// Emits a Metal kernel set: the self-contained .metal, a Swift host program that runs it for one
// shape (raw files in and out, like the CUDA harness), and a Python module that runs it through
// MLX's mx.fast.metal_kernel.

import type { CompiledPattern } from '../../dsl/instantiate.js';
import { ConfigurationError } from '../../errors.js';
import { planKernel, type KernelConfig, type KernelPlan } from '../../plan/kernel-plan.js';
import type { EmittedFile, KernelVariant } from '../kernel-set.js';
import { kernelSetName } from '../kernel-set.js';
import { renderMlxModule } from './mlx.js';
import { MAX_THREADGROUP_BYTES, metalPasses, metalThreads, renderMetalSource, threadgroupFloats, type MetalPass } from './render.js';
import { metalServing, type MetalServing } from './serving.js';
import { renderSwiftHost } from './swift.js';

export interface MetalKernelSet {
  readonly name: string;
  /** Namespace of the helpers in the .metal, and prefix of its kernel names. */
  readonly namespace: string;
  readonly plan: KernelPlan;
  readonly variant: KernelVariant;
  /** Kernels in dispatch order. */
  readonly passes: readonly MetalPass[];
  /** The serving kernels (fused sets only): split-K decode over contiguous keys and the paged cache, paged prefill (varlen included), the cache append. */
  readonly serving?: MetalServing;
  readonly threads: number;
  readonly threadgroupBytes: number;
  readonly files: readonly EmittedFile[];
  readonly fileName: string;
  readonly source: string;
  readonly swiftFile: string;
  readonly mlxFile: string;
}

/** Tile sizes that fit an Apple GPU's 32 KiB of threadgroup memory with f32 tiles. */
export function metalKernelConfig(partial: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>): KernelConfig {
  const d = partial.headDim;
  return {
    ropeStyle: 'half',
    blockQ: d > 128 ? 16 : 32,
    blockK: d <= 64 ? 32 : d <= 128 ? 16 : 8,
    preRotatedKeys: false,
    ...partial,
  };
}

function validate(config: KernelConfig): void {
  const { headDim, blockQ, blockK } = config;
  if (headDim % 4 !== 0 || headDim < 4 || headDim > 256) {
    throw new ConfigurationError(`the Metal kernel takes head dims that are multiples of 4 in [4, 256] (zero-padded to 8×8 fragments), got ${headDim}`);
  }
  if (blockQ % 8 !== 0 || blockQ > 256) throw new ConfigurationError(`the Metal kernel needs blockQ a multiple of 8 up to 256 (8 rows per simdgroup), got ${blockQ}`);
  if (blockK % 8 !== 0) throw new ConfigurationError(`the Metal kernel needs blockK a multiple of 8, got ${blockK}`);
}

export function emitMetal(pattern: CompiledPattern, config: KernelConfig, options: { variant?: KernelVariant; command?: string } = {}): MetalKernelSet {
  const variant = options.variant ?? 'fused';
  validate(config);
  const plan = planKernel(pattern, config);
  const threadgroupBytes = threadgroupFloats(plan) * 4;
  if (threadgroupBytes > MAX_THREADGROUP_BYTES) {
    throw new ConfigurationError(`blockQ ${config.blockQ} / blockK ${config.blockK} at head dim ${config.headDim} need ${threadgroupBytes} bytes of threadgroup memory; Apple GPUs give ${MAX_THREADGROUP_BYTES}`);
  }
  const name = kernelSetName(pattern, config, variant);
  const namespace = `dcagen_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
  const fileName = `${name}.metal`;
  const swiftFile = `${name}.swift`;
  const mlxFile = `${name.replace(/-/g, '_')}.py`;
  const command = options.command ?? `dcagen emit --backend metal --pattern ${pattern.name} …`;
  const title = `${name}: ${variant === 'fused' ? 'fused' : 'three-pass'} ${pattern.name} flash attention for Metal`;
  const passes = metalPasses(plan, namespace, variant);
  const serving = variant === 'fused' ? metalServing(plan, namespace) : undefined;
  const withServing = serving !== undefined ? { serving } : {};
  const source = renderMetalSource(plan, { title, command, fileName, namespace, variant, ...withServing });
  const threads = metalThreads(plan);
  const swift = renderSwiftHost(plan, { name, fileName, swiftFile, command, passes, threads, variant, ...withServing });
  const mlx = renderMlxModule(plan, { name, fileName, namespace, command, passes, threads, variant, ...withServing });
  return {
    name,
    namespace,
    plan,
    variant,
    passes,
    ...withServing,
    threads,
    threadgroupBytes,
    fileName,
    source,
    swiftFile,
    mlxFile,
    files: [{ name: fileName, contents: source }, { name: swiftFile, contents: swift }, { name: mlxFile, contents: mlx }],
  };
}
