// Runs attention on a named backend: the float64 reference, or an emitted kernel through its
// runtime (WebGPU, nvcc, Metal, or CPU emulation). Every path takes and returns the same tensors,
// so `dcagen run`, `verify` and the tests treat backends alike.

import { UsageError } from './errors.js';
import type { CompiledPattern } from './dsl/instantiate.js';
import type { Tensor } from './io/tensor.js';
import { referenceAttention } from './reference/attention.js';
import { referencePagedAttention, type PagedLayout } from './reference/kv-cache.js';
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
  /** Force the number of key splits (kernels that split keys across workgroups; the reference is exact either way). */
  readonly splits?: number;
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
  if (request.splits !== undefined && (backend === 'cuda' || backend === 'metal')) {
    throw new UsageError(`--splits: the ${backend} prefill kernel does not split keys across blocks${backend === 'cuda' ? ' (its paged-cache kernel does)' : ''}`);
  }
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

/** Attention of q over a paged KV cache (DESIGN.md §5): the serving form of a call. */
export interface PagedAttentionRequest {
  /** (B, Sq, Hq, D): the last Sq positions of every sequence. */
  readonly q: Tensor;
  /** (num_blocks, block_size, Hk, D) */
  readonly kCache: Tensor;
  readonly vCache: Tensor;
  readonly layout: PagedLayout;
  readonly pattern: CompiledPattern;
  readonly rope: RopeConfig;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
  readonly dtype: StorageDType;
  readonly emulate?: boolean;
  /** Keys in the cache are rotated at the pattern's key position (a cache filled by appendToCache). */
  readonly preRotatedKeys?: boolean;
  /** Force the number of key splits (kernels that split keys across workgroups). */
  readonly splits?: number;
}

export type PagedBackendRunner = (request: PagedAttentionRequest) => Promise<AttentionOutput>;

const pagedRunners = new Map<BackendName, () => Promise<PagedBackendRunner>>([
  ['reference', async () => runPagedReference],
  ['cuda', async () => (await import('./backends/cuda/runner.js')).runCudaPagedAttention],
]);

export async function runPagedAttention(backend: BackendName, request: PagedAttentionRequest): Promise<AttentionOutput> {
  const load = pagedRunners.get(backend);
  if (load === undefined) {
    throw new UsageError(`the ${backend} backend has no paged-cache kernels yet (available: ${[...pagedRunners.keys()].join(', ')}); pass contiguous --k/--v instead`);
  }
  return (await load())(request);
}

async function runPagedReference(request: PagedAttentionRequest): Promise<AttentionOutput> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends, not the reference');
  return referencePagedAttention(request.q, request.kCache, request.vCache, request.layout, {
    pattern: request.pattern,
    rope: request.rope,
    dtype: request.dtype,
    preRotatedKeys: request.preRotatedKeys ?? false,
    ...(request.scale !== undefined ? { scale: request.scale } : {}),
    ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}),
  });
}
