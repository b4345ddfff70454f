// Runs attention on a named backend: the float64 reference, or an emitted kernel through its
// runtime (WebGPU, nvcc, Metal, or CPU emulation). Every path takes and returns the same tensors,
// so `dcagen run`, `verify` and the tests treat backends alike.

import { kernelBackend, kernelBackends } from './backends/index.js';
import { UsageError } from './errors.js';
import { DECODE_MAX_QUERIES } from './plan/passes.js';
import type { CompiledPattern } from './dsl/instantiate.js';
import type { Tensor } from './io/tensor.js';
import { referenceAttention, type AttentionOptions } from './reference/attention.js';
import { referenceAppendToCache, referencePagedAttention, type CacheAppendInput, type PagedLayout } from './reference/kv-cache.js';
import type { StorageDType } from './reference/precision.js';
import type { RopeConfig } from './reference/rope.js';

export const backendNames = ['reference', 'wgsl', 'cuda', 'metal'] as const;
export type BackendName = (typeof backendNames)[number];

/** What every attention call names besides its tensors: pattern, RoPE, scale, storage, how it runs. */
export interface AttentionCall {
  readonly pattern: CompiledPattern;
  readonly rope: RopeConfig;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
  readonly dtype: StorageDType;
  /** Run the emitted source on the CPU emulation instead of a device (cuda, metal). */
  readonly emulate?: boolean;
  /** Keys arrive already rotated at their key position (a KV cache that stores rotated keys, e.g. one filled by appendToCache). */
  readonly preRotatedKeys?: boolean;
  /** Force the number of key splits (kernels that split keys across workgroups; the reference is exact either way). */
  readonly splits?: number;
}

export interface AttentionRequest extends AttentionCall {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
}

export interface AttentionOutput {
  /** (B, Sq, Hq, D) */
  readonly out: Tensor;
  /** (B, Hq, Sq), natural log */
  readonly lse: Tensor;
}

export type BackendRunner = (request: AttentionRequest) => Promise<AttentionOutput>;

export async function runAttention(backend: BackendName, request: AttentionRequest): Promise<AttentionOutput> {
  if (backend === 'reference') return runReference(request);
  const descriptor = kernelBackend(backend);
  if (descriptor === undefined) throw new UsageError(`backend ${backend} is not available in this build`);
  // Few query rows run a decode kernel where the backend has one; it splits keys too.
  const splitting = descriptor.splitsPrefill || (descriptor.kinds.includes('decode') && request.q.shape[1]! <= DECODE_MAX_QUERIES);
  if (request.splits !== undefined && !splitting) {
    throw new UsageError(`--splits: the ${backend} prefill kernel does not split keys across blocks`);
  }
  return (await descriptor.run())(request);
}

/** The reference's options from a request, contiguous or paged (the reference ignores splits). */
function referenceOptions(request: AttentionCall): AttentionOptions {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends, not the reference');
  return {
    pattern: request.pattern,
    rope: request.rope,
    dtype: request.dtype,
    preRotatedKeys: request.preRotatedKeys ?? false,
    ...(request.scale !== undefined ? { scale: request.scale } : {}),
    ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}),
  };
}

async function runReference(request: AttentionRequest): Promise<AttentionOutput> {
  return referenceAttention(request.q, request.k, request.v, referenceOptions(request));
}

/** Attention of q over a paged KV cache (DESIGN.md §5): the serving form of a call. */
export interface PagedAttentionRequest extends AttentionCall {
  /** (B, Sq, Hq, D): the last Sq positions of every sequence. */
  readonly q: Tensor;
  /** (num_blocks, block_size, Hk, D) */
  readonly kCache: Tensor;
  readonly vCache: Tensor;
  readonly layout: PagedLayout;
  /**
   * Chunked prefill / varlen: q packed (total_q, Hq, D), sequence b owning rows cu_seqlens_q[b] ..
   * cu_seqlens_q[b + 1] - 1 (its last positions); the output is packed like q, the LSE (Hq, total_q).
   */
  readonly cuSeqlensQ?: Int32Array;
}

export type PagedBackendRunner = (request: PagedAttentionRequest) => Promise<AttentionOutput>;

export async function runPagedAttention(backend: BackendName, request: PagedAttentionRequest): Promise<AttentionOutput> {
  if (backend === 'reference') return runPagedReference(request);
  if (request.cuSeqlensQ !== undefined && !(kernelBackend(backend)?.kinds.includes('varlen') ?? false)) {
    throw new UsageError(`the ${backend} backend has no varlen (cu_seqlens_q) paged kernels yet (available: reference, ${kernelBackends.filter((b) => b.kinds.includes('varlen')).map((b) => b.name).join(', ')})`);
  }
  const load = kernelBackend(backend)?.runPaged;
  if (load === undefined) {
    const available = ['reference', ...kernelBackends.filter((b) => b.runPaged !== undefined).map((b) => b.name)];
    throw new UsageError(`the ${backend} backend has no paged-cache kernels yet (available: ${available.join(', ')}); pass contiguous --k/--v instead`);
  }
  return (await load())(request);
}

async function runPagedReference(request: PagedAttentionRequest): Promise<AttentionOutput> {
  return referencePagedAttention(request.q, request.kCache, request.vCache, request.layout, { ...referenceOptions(request), ...(request.cuSeqlensQ !== undefined ? { cuSeqlensQ: request.cuSeqlensQ } : {}) });
}

/**
 * New tokens written into a paged KV cache: keys rotated once at the pattern's key position. The
 * caches, tokens, positions, slots (negative: padding) and Qwen lengths as CacheAppendInput names them.
 */
export interface CacheAppendRequest extends CacheAppendInput {
  readonly rope: RopeConfig;
  readonly dtype: StorageDType;
  readonly emulate?: boolean;
}

/** The caches after the write. */
export interface CacheAppendResult {
  readonly kCache: Tensor;
  readonly vCache: Tensor;
}

export type CacheAppendRunner = (request: CacheAppendRequest) => Promise<CacheAppendResult>;

/** Writes new tokens into a paged KV cache on a backend (vLLM's reshape_and_cache, with the rotation). */
export async function appendToCache(backend: BackendName, request: CacheAppendRequest): Promise<CacheAppendResult> {
  if (backend === 'reference') return appendReference(request);
  const load = kernelBackend(backend)?.appendToCache;
  if (load === undefined) {
    const available = ['reference', ...kernelBackends.filter((b) => b.appendToCache !== undefined).map((b) => b.name)];
    throw new UsageError(`the ${backend} backend has no cache-append kernel yet (available: ${available.join(', ')})`);
  }
  return (await load())(request);
}

/** Attention over a paged KV cache on a backend (the library name for runPagedAttention). */
export const pagedAttention = runPagedAttention;

async function appendReference(request: CacheAppendRequest): Promise<CacheAppendResult> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends, not the reference');
  const kCache = { shape: request.kCache.shape, data: Float64Array.from(request.kCache.data) };
  const vCache = { shape: request.vCache.shape, data: Float64Array.from(request.vCache.data) };
  referenceAppendToCache(kCache, vCache, request.k, request.v, request.positions, request.slotMapping, {
    pattern: request.pattern,
    rope: request.rope,
    ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition, ...(request.lengths !== undefined ? { lengths: request.lengths } : {}) } : {}),
  });
  return { kCache, vCache };
}
