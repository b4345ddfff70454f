// The kernels of the current pattern, as `dcagen emit` writes them: WGSL (what "Run" executes), and
// CUDA and Metal for download. Each backend's emitter is called as its descriptor's emit calls it
// (src/backends/<name>/descriptor.ts), with the same command line in the file headers that the
// equivalent `dcagen emit --pattern-file pattern.ts …` records, so a downloaded file equals the
// CLI's byte for byte. The descriptors themselves are not imported: they also carry the Node runners.

import { cudaKernelConfig, emitCuda } from '../../src/backends/cuda/emit.js';
import type { EmittedFile, KernelVariant } from '../../src/backends/kernel-set.js';
import { emitMetal, metalKernelConfig } from '../../src/backends/metal/emit.js';
import { emitWgsl, wgslKernelConfig } from '../../src/backends/wgsl/emit.js';
import { kebab, type CompiledPattern } from '../../src/dsl/instantiate.js';
import type { KernelConfig } from '../../src/plan/kernel-plan.js';
import { PATTERN_FILE } from './pattern.js';

export type KernelBackend = 'wgsl' | 'cuda' | 'metal';
export const KERNEL_BACKENDS: readonly KernelBackend[] = ['wgsl', 'cuda', 'metal'];

export interface KernelRequest {
  readonly pattern: CompiledPattern;
  readonly headDim: number;
  readonly dtype: 'f32' | 'f16';
  readonly variant?: KernelVariant;
}

/** The output folder the equivalent command names. */
export const OUT_DIR = 'kernels';

/** The `dcagen emit` arguments that write the same files (after `dcagen emit`). */
export function emitArguments(backend: KernelBackend, request: KernelRequest): string[] {
  const params = Object.keys(request.pattern.definition.params).flatMap((name) => [`--${kebab(name)}`, String(request.pattern.params[name])]);
  const variant = request.variant === 'three-pass' ? ['--variant', 'three-pass'] : [];
  return ['--backend', backend, '--pattern-file', PATTERN_FILE, ...params, '--head-dim', String(request.headDim), '--dtype', request.dtype, ...variant, '-o', OUT_DIR];
}

export function emitCommandLine(backend: KernelBackend, request: KernelRequest): string {
  return ['dcagen emit', ...emitArguments(backend, request)].join(' ');
}

export function emitFiles(backend: KernelBackend, request: KernelRequest): readonly EmittedFile[] {
  // As `dcagen emit` builds the configuration: the backend's tiles for this head dim and dtype.
  const config: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'> = { headDim: request.headDim, dtype: request.dtype, ropeStyle: 'half', preRotatedKeys: false };
  const options = { variant: request.variant ?? 'fused', command: emitCommandLine(backend, request) };
  switch (backend) {
    case 'wgsl':
      return emitWgsl(request.pattern, wgslKernelConfig(config), options).files;
    case 'cuda':
      return emitCuda(request.pattern, cudaKernelConfig(config), options).files;
    case 'metal':
      return emitMetal(request.pattern, metalKernelConfig(config), options).files;
  }
}

/** The WGSL launcher module (the .js file) of an emitted set: what a page imports and runs. */
export function wgslLauncher(request: KernelRequest): string {
  const launcher = emitFiles('wgsl', request).find((f) => f.name.endsWith('.js'));
  if (launcher === undefined) throw new Error('the WGSL emitter wrote no launcher module');
  return launcher.contents;
}
