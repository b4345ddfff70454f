// The `wgsl` backend at run time: emits the kernel set into a content-addressed cache folder, sends
// the tensors to a WebGPU implementation (Deno's wgpu; a GPU when there is one, else lavapipe on the
// CPU) through runtime/webgpu, and reads the results back.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWebGpuJob } from '../../../runtime/webgpu/runner.js';
import { ConfigurationError, UsageError } from '../../errors.js';
import type { AttentionOutput, AttentionRequest, CacheAppendRequest, CacheAppendResult, PagedAttentionRequest } from '../../execute.js';
import type { Tensor } from '../../io/tensor.js';
import { checkCacheAppend, pagedCacheShape } from '../../reference/kv-cache.js';
import { attentionShape } from '../../reference/attention.js';
import { decodeStorage, encodeStorage } from '../../io/storage.js';
import { cacheFolder, packageRoot } from '../../io/package-files.js';
import { emitWgsl, wgslKernelConfig, type KernelVariant, type WgslKernelSet } from './emit.js';

export interface WgslRunOptions {
  readonly variant?: KernelVariant;
  /** Tile sizes other than the defaults (tuning, tests). */
  readonly blockQ?: number;
  readonly blockK?: number;
  /** Force the attention kernel (default: the launcher picks decode for calls with at most 16 queries). */
  readonly kind?: WgslKernelKind;
  /** Force the number of key splits (default: the launcher chooses from the work and adapter). */
  readonly splits?: number;
  /** Let the decode kernel use subgroup operations where the adapter has them (default true). */
  readonly subgroups?: boolean;
  readonly repeats?: number;
  readonly warmup?: number;
}

export type WgslKernelKind = 'prefill' | 'decode';

/** How the launcher ran a call: which kernel, and how it split the keys across workgroups. */
export interface WgslSplit {
  readonly kind: WgslKernelKind;
  readonly splitKeys: number;
  readonly splits: number;
  /** Decode: rows (query head × query) per workgroup, and workgroups per KV head. */
  readonly groupRows?: number;
  readonly rowBlocks?: number;
  readonly loopCapped: boolean;
  /** Whether the decode kernel's module with subgroup operations was the one available. */
  readonly subgroups: boolean;
}

export interface WgslRunResult extends AttentionOutput {
  readonly times: readonly number[];
  readonly split: WgslSplit;
  readonly adapter: string;
}


/** Writes the kernel set under the cache, named by a hash of its contents (reused when unchanged). */
export async function materialize(set: WgslKernelSet): Promise<string> {
  const hash = createHash('sha256');
  for (const f of set.files) hash.update(f.name).update(f.contents);
  const dir = join(cacheFolder(), 'wgsl', `${set.name}-${hash.digest('hex').slice(0, 16)}`);
  if (!existsSync(join(dir, set.launcher))) {
    await mkdir(dir, { recursive: true });
    // Write the launcher last: its presence marks a complete folder.
    for (const f of [...set.files.filter((x) => x.name !== set.launcher), ...set.files.filter((x) => x.name === set.launcher)]) {
      await writeFile(join(dir, f.name), f.contents);
    }
  }
  return join(dir, set.launcher);
}



/** Writes q, k, v in the storage type as raw files for the WebGPU job; returns their paths. */
async function writeInputs(work: string, request: Pick<AttentionRequest, 'q' | 'k' | 'v'>, dtype: 'f32' | 'f16'): Promise<{ q: string; k: string; v: string }> {
  const inputs = { q: join(work, 'q.bin'), k: join(work, 'k.bin'), v: join(work, 'v.bin') };
  await Promise.all((['q', 'k', 'v'] as const).map((name) => writeFile(inputs[name], encodeStorage(request[name].data, dtype))));
  return inputs;
}

export async function runWgslAttention(request: AttentionRequest, options: WgslRunOptions = {}): Promise<WgslRunResult> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends; wgsl runs on a real WebGPU adapter');
  if (request.dtype === 'bf16') throw new UsageError('the wgsl backend stores f32 or f16 (WGSL has no bfloat16); use --dtype f32 or f16');
  const shape = attentionShape(request.q, request.k, request.v);
  const dtype = request.dtype;
  const config = wgslKernelConfig({
    headDim: shape.headDim,
    dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
    ...(options.blockQ !== undefined ? { blockQ: options.blockQ } : {}),
    ...(options.blockK !== undefined ? { blockK: options.blockK } : {}),
  });
  const set = emitWgsl(request.pattern, config, { variant: options.variant ?? 'fused' });
  const launcher = await materialize(set);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-wgsl-'));
  try {
    const inputs = await writeInputs(work, request, dtype);
    const outputs = { out: join(work, 'out.bin'), lse: join(work, 'lse.bin') };
    const { adapter, result } = await runWebGpuJob<{ times: number[]; split: WgslRunResult['split'] }>({
      module: join(packageRoot(), 'runtime', 'webgpu', 'attention-job.js'),
      entry: 'runAttentionJob',
      args: {
        launcher,
        options: {
          ropeTheta: request.rope.theta,
          ...(request.scale !== undefined ? { scale: request.scale } : {}),
          ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}),
          ...(options.kind !== undefined ? { kind: options.kind } : {}),
          ...(options.splits !== undefined ? { splits: options.splits } : {}),
          ...(options.subgroups !== undefined ? { subgroups: options.subgroups } : {}),
        },
        shape: { batch: shape.batch, queries: shape.queries, keys: shape.keys, queryHeads: shape.queryHeads, keyHeads: shape.keyHeads, headDim: shape.headDim },
        inputs,
        outputs,
        repeats: options.repeats ?? 1,
        warmup: options.warmup ?? 0,
      },
      ...(dtype === 'f16' ? { requiredFeatures: ['shader-f16'] } : {}),
      optionalFeatures: ['subgroups'],
      readPaths: [work, join(launcher, '..')],
      writePaths: [work],
    });
    const out = decodeStorage(await readFile(outputs.out), dtype);
    const lse = decodeStorage(await readFile(outputs.lse), 'f32');
    return {
      out: { shape: [shape.batch, shape.queries, shape.queryHeads, shape.headDim], data: out },
      lse: { shape: [shape.batch, shape.queryHeads, shape.queries], data: lse },
      times: result.times,
      split: result.split,
      adapter: adapter.description || adapter.device || adapter.vendor,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface WgslBenchEntry {
  readonly pattern: AttentionRequest['pattern'];
  readonly variant: KernelVariant;
  /** Force the attention kernel for this entry (default: the launcher's choice). */
  readonly kind?: WgslKernelKind;
}

/** Times several kernel sets on the same tensors in one WebGPU process, runs interleaved. */
export async function benchWgsl(request: Omit<AttentionRequest, 'pattern'>, entries: readonly WgslBenchEntry[], repeats: number): Promise<{ times: number[][]; kinds: WgslKernelKind[]; adapter: string }> {
  if (request.dtype === 'bf16') throw new UsageError('the wgsl backend stores f32 or f16');
  const shape = attentionShape(request.q, request.k, request.v);
  const dtype = request.dtype;
  const config = wgslKernelConfig({ headDim: shape.headDim, dtype, ropeStyle: request.rope.style });
  const launchers = await Promise.all(entries.map((e) => materialize(emitWgsl(e.pattern, config, { variant: e.variant }))));
  const work = await mkdtemp(join(tmpdir(), 'dcagen-wgsl-bench-'));
  try {
    const inputs = await writeInputs(work, request, dtype);
    const { adapter, result } = await runWebGpuJob<{ times: number[][]; plans: Array<{ kind: WgslKernelKind }> }>({
      module: join(packageRoot(), 'runtime', 'webgpu', 'attention-job.js'),
      entry: 'benchAttentionJob',
      args: {
        launchers,
        options: { ropeTheta: request.rope.theta },
        launcherOptions: entries.map((e) => (e.kind !== undefined ? { kind: e.kind } : {})),
        shape: { batch: shape.batch, queries: shape.queries, keys: shape.keys, queryHeads: shape.queryHeads, keyHeads: shape.keyHeads, headDim: shape.headDim },
        inputs,
        repeats,
      },
      ...(dtype === 'f16' ? { requiredFeatures: ['shader-f16'] } : {}),
      optionalFeatures: ['subgroups'],
      readPaths: [work, ...launchers.map((l) => join(l, '..'))],
      timeoutMs: 3_600_000,
    });
    return { times: result.times, kinds: result.plans.map((p) => p.kind), adapter: adapter.description || adapter.device || adapter.vendor };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Runs the emitted cache-append kernel; returns the caches after the write. */
export async function runWgslCacheAppend(request: CacheAppendRequest): Promise<CacheAppendResult> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends; wgsl runs on a real WebGPU adapter');
  if (request.dtype === 'bf16') throw new UsageError('the wgsl backend stores f32 or f16 (WGSL has no bfloat16)');
  const dtype = request.dtype;
  const { cache, tokens, maxKeyPosition } = checkCacheAppend(request);
  const config = wgslKernelConfig({ headDim: cache.headDim, dtype, ropeStyle: request.rope.style, ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}) });
  const set = emitWgsl(request.pattern, config, { variant: 'fused' });
  const launcher = await materialize(set);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-wgsl-append-'));
  try {
    const file = (name: string): string => join(work, name);
    await Promise.all([
      writeFile(file('k.bin'), encodeStorage(request.k.data, dtype)),
      writeFile(file('v.bin'), encodeStorage(request.v.data, dtype)),
      writeFile(file('kc.bin'), encodeStorage(request.kCache.data, dtype)),
      writeFile(file('vc.bin'), encodeStorage(request.vCache.data, dtype)),
      writeFile(file('positions.bin'), Int32Array.from(request.positions)),
      writeFile(file('slots.bin'), Int32Array.from(request.slotMapping)),
      ...(request.lengths !== undefined ? [writeFile(file('lengths.bin'), Uint32Array.from(request.lengths))] : []),
    ]);
    await runWebGpuJob({
      module: join(packageRoot(), 'runtime', 'webgpu', 'serving-job.js'),
      entry: 'runCacheAppendJob',
      args: {
        launcher,
        options: { ropeTheta: request.rope.theta, ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}) },
        shape: { tokens, keyHeads: cache.keyHeads, numBlocks: cache.numBlocks, blockSize: cache.blockSize, maxPosition: maxKeyPosition },
        inputs: {
          k: file('k.bin'), v: file('v.bin'), kCache: file('kc.bin'), vCache: file('vc.bin'),
          positions: file('positions.bin'), slotMapping: file('slots.bin'),
          ...(request.lengths !== undefined ? { lengths: file('lengths.bin') } : {}),
        },
        outputs: { kCache: file('kc-out.bin'), vCache: file('vc-out.bin') },
        cacheBytes: request.kCache.data.length * (dtype === 'f16' ? 2 : 4),
      },
      ...(dtype === 'f16' ? { requiredFeatures: ['shader-f16'] } : {}),
      readPaths: [work, join(launcher, '..')],
      writePaths: [work],
    });
    const decode = async (name: string): Promise<Tensor> => ({ shape: request.kCache.shape, data: decodeStorage(await readFile(file(name)), dtype) });
    return { kCache: await decode('kc-out.bin'), vCache: await decode('vc-out.bin') };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Attention over a paged KV cache on WebGPU, through the emitted launcher's createPagedAttention. */
export async function runWgslPagedAttention(request: PagedAttentionRequest): Promise<WgslRunResult> {
  if (request.emulate) throw new UsageError('--emulate applies to the cuda and metal backends; wgsl runs on a real WebGPU adapter');
  if (request.dtype === 'bf16') throw new UsageError('the wgsl backend stores f32 or f16 (WGSL has no bfloat16); use --dtype f32 or f16');
  const cache = pagedCacheShape(request.kCache, request.vCache);
  const packed = request.cuSeqlensQ;
  const batch = request.layout.batch;
  const [queryHeads, headDim] = request.q.shape.slice(-2) as [number, number];
  const rows = packed !== undefined ? request.q.shape[0]! : batch * request.q.shape[1]!;
  // With packed (varlen) queries the kernels size their grids by the largest count.
  const queries = packed !== undefined ? Math.max(...Array.from({ length: batch }, (_, b) => packed[b + 1]! - packed[b]!)) : request.q.shape[1]!;
  if ((cache.blockSize & (cache.blockSize - 1)) !== 0) throw new ConfigurationError(`the wgsl paged kernels need a power-of-two block size, got ${cache.blockSize}`);
  const dtype = request.dtype;
  const config = wgslKernelConfig({ headDim, dtype, ropeStyle: request.rope.style, ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}) });
  const set = emitWgsl(request.pattern, config, { variant: 'fused' });
  const launcher = await materialize(set);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-wgsl-paged-'));
  try {
    const file = (name: string): string => join(work, name);
    await Promise.all([
      writeFile(file('q.bin'), encodeStorage(request.q.data, dtype)),
      writeFile(file('kc.bin'), encodeStorage(request.kCache.data, dtype)),
      writeFile(file('vc.bin'), encodeStorage(request.vCache.data, dtype)),
      writeFile(file('bt.bin'), request.layout.blockTable),
      writeFile(file('sl.bin'), request.layout.seqLens),
      ...(packed !== undefined ? [writeFile(file('cu.bin'), packed)] : []),
    ]);
    const { adapter, result } = await runWebGpuJob<{ split: WgslRunResult['split'] }>({
      module: join(packageRoot(), 'runtime', 'webgpu', 'serving-job.js'),
      entry: 'runPagedAttentionJob',
      args: {
        launcher,
        options: {
          ropeTheta: request.rope.theta,
          rawKeys: !(request.preRotatedKeys ?? false),
          ...(request.scale !== undefined ? { scale: request.scale } : {}),
          ...(request.originalMaxPosition !== undefined ? { originalMaxPosition: request.originalMaxPosition } : {}),
          ...(request.splits !== undefined ? { splits: request.splits } : {}),
        },
        shape: { batch, queries, queryHeads, keyHeads: cache.keyHeads, blockSize: cache.blockSize, maxBlocks: request.layout.maxBlocks, maxSeqLen: Math.max(...request.layout.seqLens), ...(packed !== undefined ? { totalQueries: rows } : {}) },
        headDim,
        rows,
        inputs: { q: file('q.bin'), kCache: file('kc.bin'), vCache: file('vc.bin'), blockTable: file('bt.bin'), seqLens: file('sl.bin'), ...(packed !== undefined ? { cuSeqlensQ: file('cu.bin') } : {}) },
        outputs: { out: file('out.bin'), lse: file('lse.bin') },
      },
      ...(dtype === 'f16' ? { requiredFeatures: ['shader-f16'] } : {}),
      readPaths: [work, join(launcher, '..')],
      writePaths: [work],
    });
    return {
      out: { shape: [...request.q.shape], data: decodeStorage(await readFile(file('out.bin')), dtype) },
      lse: { shape: packed !== undefined ? [queryHeads, rows] : [batch, queryHeads, queries], data: decodeStorage(await readFile(file('lse.bin')), 'f32') },
      times: [],
      split: result.split,
      adapter: adapter.description || adapter.device || adapter.vendor,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
