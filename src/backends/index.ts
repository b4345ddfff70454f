// The backends' emitters behind one interface: pattern + kernel configuration in, files out.
// `dcagen emit`, the generated/ drift check and the runtimes all go through here.

import { UsageError } from '../errors.js';
import type { CompiledPattern } from '../dsl/instantiate.js';
import type { KernelConfig } from '../plan/kernel-plan.js';
import { emitCuda, cudaKernelConfig } from './cuda/emit.js';
import { emitMetal, metalKernelConfig } from './metal/emit.js';
import { checkFileName, type EmittedFile, type KernelVariant } from './kernel-set.js';
import { emitWgsl, wgslKernelConfig } from './wgsl/emit.js';

export type { EmittedFile, KernelVariant };

export interface EmitRequest {
  readonly pattern: CompiledPattern;
  readonly config: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>;
  readonly variant: KernelVariant;
  /** The command line that regenerates the files, for their headers. */
  readonly command: string;
}

export interface EmitResult {
  readonly name: string;
  readonly files: readonly EmittedFile[];
}

export type Emitter = (request: EmitRequest) => EmitResult;

const emitters = new Map<string, Emitter>([
  ['wgsl', (r) => {
    if (r.config.dtype === 'bf16') throw new UsageError('WGSL has no bfloat16 storage; use --dtype f32 or f16');
    const set = emitWgsl(r.pattern, wgslKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  }],
  ['cuda', (r) => {
    const set = emitCuda(r.pattern, cudaKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  }],
  ['metal', (r) => {
    const set = emitMetal(r.pattern, metalKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  }],
]);

export function emitKernels(backend: string, request: EmitRequest): EmitResult {
  const emitter = emitters.get(backend);
  if (emitter === undefined) throw new UsageError(`backend ${backend} cannot emit yet (available: ${[...emitters.keys()].join(', ')})`);
  const result = emitter(request);
  for (const file of result.files) checkFileName(file.name);
  return result;
}

export function emitterNames(): string[] {
  return [...emitters.keys()];
}
