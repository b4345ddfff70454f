// The kernel backends, one descriptor each (src/backends/<name>/descriptor.ts). `dcagen emit`, the
// generated/ drift check, `verify` and the runtimes find a backend and what it can do here.

import { UsageError } from '../errors.js';
import { cudaBackend } from './cuda/descriptor.js';
import type { BackendDescriptor, KernelBackendName } from './descriptor.js';
import type { EmitRequest, EmitResult } from './emit-request.js';
import { checkFileName, type EmittedFile, type KernelVariant } from './kernel-set.js';
import { metalBackend } from './metal/descriptor.js';
import { wgslBackend } from './wgsl/descriptor.js';

export type { EmittedFile, KernelVariant, EmitRequest, EmitResult, BackendDescriptor, KernelBackendName };
export type { KernelKind } from './descriptor.js';

export const kernelBackends: readonly BackendDescriptor[] = [wgslBackend, cudaBackend, metalBackend];

export const kernelBackendNames: readonly KernelBackendName[] = kernelBackends.map((b) => b.name);

/** The descriptor of a kernel backend, or undefined (the reference is no kernel backend). */
export function kernelBackend(name: string): BackendDescriptor | undefined {
  return kernelBackends.find((b) => b.name === name);
}

export function emitKernels(backend: string, request: EmitRequest): EmitResult {
  const descriptor = kernelBackend(backend);
  if (descriptor === undefined) throw new UsageError(`backend ${backend} cannot emit (available: ${kernelBackendNames.join(', ')})`);
  const result = descriptor.emit(request);
  for (const file of result.files) checkFileName(file.name);
  return result;
}

/** Backends that emit kernels (all of them). */
export function emitterNames(): string[] {
  return [...kernelBackendNames];
}
