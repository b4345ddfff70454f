// Runs attention on a named backend: the float64 reference, or an emitted kernel through its
// runtime (WebGPU, nvcc, Metal, or CPU emulation). Every path takes and returns the same tensors,
// so `dcagen run`, `verify` and the tests treat backends alike.

import { UsageError } from './errors.js';
import type { CompiledPattern } from './dsl/instantiate.js';
import type { Tensor } from './io/tensor.js';
import { referenceAttention } from './reference/attention.js';
import type { StorageDType } from './reference/precision.js';
import type { RopeConfig } from './reference/rope.js';

export const backendNames = ['reference', 'wgsl', 'cuda', 'metal'] as const;
export type BackendName = (typeof backendNames)[number];

export interface AttentionRequest {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly pattern: CompiledPattern;
  readonly rope: RopeConfig;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
  readonly dtype: StorageDType;
  /** Run the emitted source on the CPU emulation instead of a device (cuda, metal). */
  readonly emulate?: boolean;
  /** Keys arrive already rotated at their key position (a KV cache that stores rotated keys). */
  readonly preRotatedKeys?: boolean;
}

export interface AttentionOutput {
  /** (B, Sq, Hq, D) */
  readonly out: Tensor;
  /** (B, Hq, Sq), natural log */
  readonly lse: Tensor;
}

export type BackendRunner = (request: AttentionRequest) => Promise<AttentionOutput>;

const runners = new Map<BackendName, () => Promise<BackendRunner>>([
  ['reference', async () => runReference],
  ['wgsl', async () => (await import('./backends/wgsl/runner.js')).runWgslAttention],
  ['cuda', async () => (await import('./backends/cuda/runner.js')).runCudaAttention],
  ['metal', async () => (await import('./backends/metal/runner.js')).runMetalAttention],
]);

export async function runAttention(backend: BackendName, request: AttentionRequest): Promise<AttentionOutput> {
  const load = runners.get(backend);
  if (load === undefined) throw new UsageError(`backend ${backend} is not available in this build`);
  return (await load())(request);
}

async function runReference(request: AttentionRequest): Promise<AttentionOutput> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends, not the reference');
  return referenceAttention(request.q, request.k, request.v, {
    pattern: request.pattern,
    rope: request.rope,
    dtype: request.dtype,
    preRotatedKeys: request.preRotatedKeys ?? false,
    ...(request.scale !== undefined ? { scale: request.scale } : {}),
    ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}),
  });
}
