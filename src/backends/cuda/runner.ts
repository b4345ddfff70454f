// The `cuda` backend at run time: emits the kernel set, compiles it with the harness (cached by
// content hash), runs it, and reads the results back. Natively that is nvcc and a GPU; with
// `--emulate` the same .cu is compiled by the host C++ compiler with runtime/emulation's CUDA
// header and runs on CPU threads.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { KernelError, ShapeError, UnavailableError, UsageError } from '../../errors.js';
import type { AttentionOutput, AttentionRequest, CacheAppendRequest, CacheAppendResult, PagedAttentionRequest } from '../../execute.js';
import type { Tensor } from '../../io/tensor.js';
import { decodeStorage, encodeStorage } from '../../io/storage.js';
import { attentionShape } from '../../reference/attention.js';
import { checkCacheAppend, pagedCacheShape } from '../../reference/kv-cache.js';
import { checkHarnessExit, harnessTimes, runHarness } from '../harness-run.js';
import { cacheFolder, packageRoot } from '../../io/package-files.js';
import type { KernelVariant } from '../kernel-set.js';
import { cudaKernelConfig, emitCuda, type CudaKernelSet } from './emit.js';

export interface CudaRunOptions {
  readonly variant?: KernelVariant;
  readonly repeats?: number;
  /** Rewrites the emitted source before compiling: mutation tests plant bugs the emulator must catch. */
  readonly transformSource?: (source: string) => string;
}

export interface CudaRunResult extends AttentionOutput {
  readonly times: readonly number[];
  /** Key splits of the split-K decode kernel, which runs calls of at most 16 queries; absent when the prefill kernel ran. */
  readonly splits?: number;
}

/** Calls with at most this many queries run the split-K decode kernel (the launcher's DECODE_MAX_QUERIES). */
export const CUDA_DECODE_MAX_QUERIES = 16;

/** The split count a harness printed ("splits <n>"), if it printed one. */
function harnessSplits(stdout: string | undefined): number | undefined {
  const line = (stdout ?? '').split('\n').find((l) => l.startsWith('splits '));
  return line === undefined ? undefined : Number(line.slice(7));
}

function checkSplits(splits: number | undefined): void {
  if (splits !== undefined && (!Number.isInteger(splits) || splits < 1)) throw new UsageError(`--splits must be at least 1, got ${splits}`);
}

/** Whether this machine can run CUDA natively (an NVIDIA driver is present). */
export async function nativeCudaAvailable(): Promise<boolean> {
  if (!existsSync('/dev/nvidiactl') && !existsSync('/dev/nvidia0')) return false;
  const smi = await execa('nvidia-smi', ['-L'], { reject: false });
  return smi.exitCode === 0;
}

/** Compiles (or reuses) the harness binary for a kernel set. */
export async function buildHarness(set: CudaKernelSet, emulate: boolean): Promise<string> {
  const root = packageRoot();
  const harness = join(root, 'runtime', 'cuda', 'harness.cu');
  const emulation = join(root, 'runtime', 'emulation', 'cuda_emulation.hpp');
  const hash = createHash('sha256').update(set.source).update(set.header).update(await readFile(harness)).update(await readFile(join(root, 'runtime', 'harness_files.hpp')));
  if (emulate) hash.update(await readFile(emulation)).update(await readFile(join(root, 'runtime', 'emulation', 'emu_core.hpp')));
  const dir = join(cacheFolder(), 'cuda', `${set.name}-${emulate ? 'emu' : 'native'}-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(dir, 'harness');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  const cu = join(dir, `${set.name}.cu`);
  await writeFile(cu, set.source);
  await writeFile(join(dir, `${set.name}.h`), set.header);
  const defines = [`-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, ...(set.variant === 'fused' ? ['-DDCAGEN_SERVING'] : []), `-I${dir}`];
  const partial = `${binary}.${process.pid}.partial`;
  const compile = emulate
    ? await execa(process.env['CXX'] ?? 'g++', ['-std=c++17', '-O2', '-fno-strict-aliasing', '-fstack-clash-protection', '-DDCAGEN_EMULATE', '-include', emulation, ...defines, '-x', 'c++', cu, '-x', 'c++', harness, '-o', partial, '-lpthread'], { reject: false, all: true })
    : await execa('nvcc', ['-O3', '-std=c++17', '-arch=native', ...defines, cu, harness, '-o', partial], { reject: false, all: true });
  if (compile.exitCode !== 0) {
    await rm(partial, { force: true });
    if ((compile as { code?: string }).code === 'ENOENT') throw new UnavailableError(emulate ? 'no C++ compiler (g++) found for --emulate' : 'nvcc not found');
    const first = (compile.all ?? '').split('\n').find((l) => /error/.test(l)) ?? (compile.all ?? '').split('\n')[0];
    throw new KernelError(`compiling ${set.name} ${emulate ? 'for the CPU emulation' : 'with nvcc'} failed: ${first}`);
  }
  await rename(partial, binary);
  return binary;
}


export async function runCudaAttention(request: AttentionRequest, options: CudaRunOptions = {}): Promise<CudaRunResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && !(await nativeCudaAvailable())) {
    throw new UnavailableError('no NVIDIA GPU or driver on this machine; run the same kernel on the CPU emulation with --emulate');
  }
  const shape = attentionShape(request.q, request.k, request.v);
  const config = cudaKernelConfig({
    headDim: shape.headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  const variant = options.variant ?? 'fused';
  checkSplits(request.splits);
  // Only fused sets carry the split-K decode kernel, and it runs calls of at most 16 queries.
  if (request.splits !== undefined && (variant !== 'fused' || shape.queries > CUDA_DECODE_MAX_QUERIES)) {
    throw new UsageError(`--splits: the cuda ${variant === 'fused' ? 'prefill' : 'three-pass'} kernel does not split keys across blocks (split-K decode runs fused calls of at most ${CUDA_DECODE_MAX_QUERIES} queries)`);
  }
  let set: CudaKernelSet = emitCuda(request.pattern, config, { variant });
  if (options.transformSource !== undefined) set = { ...set, source: options.transformSource(set.source) };
  const binary = await buildHarness(set, emulate);
  const elementBytes = request.dtype === 'f32' ? 4 : 2;
  const shapeArgs = [shape.batch, shape.queries, shape.keys, shape.queryHeads, shape.keyHeads, shape.headDim, elementBytes,
    request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, options.repeats ?? 1, request.splits ?? 0].map(String);
  let stdout: string | undefined;
  const result = await runHarness({
    label: set.name,
    request,
    shape,
    invoke: async (files) => {
      const run = await execa(binary, [...files, ...shapeArgs], { reject: false, all: true });
      stdout = run.stdout;
      return run;
    },
    noDevice: 'no usable CUDA device; run the same kernel on the CPU emulation with --emulate',
  });
  const splits = harnessSplits(stdout);
  return splits === undefined ? result : { ...result, splits };
}

const NO_DEVICE = 'no usable CUDA device; run the same kernel on the CPU emulation with --emulate';

async function requireBackend(emulate: boolean): Promise<void> {
  if (!emulate && !(await nativeCudaAvailable())) {
    throw new UnavailableError('no NVIDIA GPU or driver on this machine; run the same kernel on the CPU emulation with --emulate');
  }
}

export interface CudaPagedRunOptions {
  readonly repeats?: number;
  /** Emulation only: the order the emulator runs a block's threads in (runtime/emulation/README.md). */
  readonly schedule?: 'alternate' | 'forward' | 'reverse' | 'shuffle';
  /** Rewrites the emitted source before compiling (mutation tests). */
  readonly transformSource?: (source: string) => string;
}

export interface CudaPagedRunResult extends AttentionOutput {
  readonly times: readonly number[];
  /** Key splits the launcher used (forced by request.splits, else chosen from the work). */
  readonly splits: number;
}

/** Checks cu_seqlens_q against the packed rows and the sequences' lengths; returns the largest query count. */
function checkCuSeqlens(cu: Int32Array, rows: number, seqLens: ArrayLike<number>): number {
  const batch = seqLens.length;
  if (cu.length !== batch + 1) throw new ShapeError(`cu_seqlens_q must have ${batch + 1} entries (one more than the sequences), got ${cu.length}`);
  if (cu[0] !== 0 || cu[batch] !== rows) throw new ShapeError(`cu_seqlens_q must run from 0 to the ${rows} packed query rows`);
  let largest = 0;
  for (let b = 0; b < batch; b++) {
    const count = cu[b + 1]! - cu[b]!;
    if (count < 0) throw new ShapeError(`cu_seqlens_q decreases at sequence ${b}`);
    if (seqLens[b]! < count) throw new ShapeError(`sequence ${b} has ${seqLens[b]} keys, fewer than its ${count} queries`);
    largest = Math.max(largest, count);
  }
  if (largest === 0) throw new ShapeError('cu_seqlens_q gives no sequence a query row');
  return largest;
}

/**
 * Attention of q over a paged KV cache with the emitted paged kernel (split-K decode for few query
 * rows, the same kernel over more rows for paged prefill; packed rows of different counts per
 * sequence with cuSeqlensQ), natively or on the CPU emulation.
 */
export async function runCudaPagedAttention(request: PagedAttentionRequest, options: CudaPagedRunOptions = {}): Promise<CudaPagedRunResult> {
  const emulate = request.emulate ?? false;
  await requireBackend(emulate);
  const cache = pagedCacheShape(request.kCache, request.vCache);
  const { q, layout } = request;
  const packed = request.cuSeqlensQ;
  if (packed !== undefined && q.shape.length !== 3) throw new ShapeError(`packed q must have rank 3 (total_q, Hq, D), got shape [${q.shape.join(', ')}]`);
  if (packed === undefined && q.shape.length !== 4) throw new ShapeError(`q must have rank 4 (batch, Sq, Hq, D), got shape [${q.shape.join(', ')}]`);
  const [queryHeads, headDim] = q.shape.slice(-2) as [number, number];
  const batch = packed !== undefined ? packed.length - 1 : q.shape[0]!;
  const rows = packed !== undefined ? q.shape[0]! : batch * q.shape[1]!;   // query rows of the call
  if (batch !== layout.batch) throw new ShapeError(`q has ${batch} sequences but the block table has ${layout.batch} rows`);
  if (headDim !== cache.headDim) throw new ShapeError(`q has head dim ${headDim} but the cache has ${cache.headDim}`);
  if (queryHeads % cache.keyHeads !== 0) throw new ShapeError(`query heads (${queryHeads}) must be a multiple of the cache's key heads (${cache.keyHeads})`);
  if ((cache.blockSize & (cache.blockSize - 1)) !== 0) throw new ShapeError(`the cuda paged kernel takes cache blocks of a power-of-two size, got ${cache.blockSize}`);
  // The launcher sizes its grid by the largest query count of a sequence (packed) or the call's Sq.
  let queries: number;
  if (packed !== undefined) {
    queries = checkCuSeqlens(packed, rows, layout.seqLens);
  } else {
    queries = q.shape[1]!;
    for (let b = 0; b < batch; b++) {
      if (layout.seqLens[b]! < queries) throw new ShapeError(`sequence ${b} has ${layout.seqLens[b]} keys, fewer than the ${queries} queries`);
    }
  }
  checkSplits(request.splits);
  const config = cudaKernelConfig({
    headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  let set: CudaKernelSet = emitCuda(request.pattern, config, { variant: 'fused' });
  if (options.transformSource !== undefined) set = { ...set, source: options.transformSource(set.source) };
  const binary = await buildHarness(set, emulate);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-cuda-paged-'));
  try {
    const file = (name: string): string => join(work, name);
    await Promise.all([
      writeFile(file('q.bin'), encodeStorage(q.data, request.dtype)),
      writeFile(file('kc.bin'), encodeStorage(request.kCache.data, request.dtype)),
      writeFile(file('vc.bin'), encodeStorage(request.vCache.data, request.dtype)),
      writeFile(file('bt.bin'), new Uint8Array(Int32Array.from(layout.blockTable).buffer)),
      writeFile(file('sl.bin'), new Uint8Array(Int32Array.from(layout.seqLens).buffer)),
      ...(packed !== undefined ? [writeFile(file('cu.bin'), new Uint8Array(Int32Array.from(packed).buffer))] : []),
    ]);
    const args = ['paged', file('q.bin'), file('kc.bin'), file('vc.bin'), file('bt.bin'), file('sl.bin'), file('out.bin'), file('lse.bin'),
      ...[batch, queries, queryHeads, cache.keyHeads, headDim, request.dtype === 'f32' ? 4 : 2, cache.numBlocks, cache.blockSize, layout.maxBlocks,
        request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, request.splits ?? 0, options.repeats ?? 1].map(String),
      packed !== undefined ? file('cu.bin') : '-'];
    const env = emulate && options.schedule !== undefined ? { DCAGEN_EMU_SCHEDULE: options.schedule } : {};
    const result = await execa(binary, args, { reject: false, all: true, env });
    checkHarnessExit(result, `${set.name}${emulate ? ' (emulated)' : ''} paged attention`, NO_DEVICE);
    return {
      out: { shape: [...q.shape], data: decodeStorage(await readFile(file('out.bin')), request.dtype) },
      lse: { shape: packed !== undefined ? [queryHeads, rows] : [batch, queryHeads, queries], data: decodeStorage(await readFile(file('lse.bin')), 'f32') },
      times: harnessTimes(result),
      splits: harnessSplits(result.stdout) ?? NaN,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What runCudaCacheAppend takes: the library's cache-append request. */
export type CudaCacheAppendRequest = CacheAppendRequest;

/**
 * Runs the emitted cache-append kernel (of the pre-rotated kernel set, whose attention reads what it
 * writes); returns the caches after the write. Patterns whose regions place keys at their own
 * positions cannot store keys rotated once: ConfigurationError.
 */
export async function runCudaCacheAppend(request: CudaCacheAppendRequest): Promise<CacheAppendResult> {
  const emulate = request.emulate ?? false;
  await requireBackend(emulate);
  const { cache, tokens } = checkCacheAppend(request);
  const headDim = cache.headDim;
  const config = cudaKernelConfig({
    headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: true,
  });
  const set = emitCuda(request.pattern, config, { variant: 'fused' });
  const binary = await buildHarness(set, emulate);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-cuda-append-'));
  try {
    const file = (name: string): string => join(work, name);
    const qwen = request.originalMaxPosition !== undefined;
    await Promise.all([
      writeFile(file('k.bin'), encodeStorage(request.k.data, request.dtype)),
      writeFile(file('v.bin'), encodeStorage(request.v.data, request.dtype)),
      writeFile(file('kc.bin'), encodeStorage(request.kCache.data, request.dtype)),
      writeFile(file('vc.bin'), encodeStorage(request.vCache.data, request.dtype)),
      writeFile(file('slots.bin'), new Uint8Array(Int32Array.from(request.slotMapping).buffer)),
      writeFile(file('positions.bin'), new Uint8Array(Int32Array.from(request.positions).buffer)),
      ...(qwen ? [writeFile(file('lengths.bin'), new Uint8Array(Int32Array.from(request.lengths!).buffer))] : []),
    ]);
    const args = ['append', file('k.bin'), file('v.bin'), file('kc.bin'), file('vc.bin'), file('slots.bin'), file('positions.bin'),
      qwen ? file('lengths.bin') : '-', file('kc-out.bin'), file('vc-out.bin'),
      ...[tokens, cache.keyHeads, headDim, request.dtype === 'f32' ? 4 : 2, cache.numBlocks, cache.blockSize, request.rope.theta, request.originalMaxPosition ?? 0].map(String)];
    const result = await execa(binary, args, { reject: false, all: true });
    checkHarnessExit(result, `${set.name}${emulate ? ' (emulated)' : ''} cache append`, NO_DEVICE);
    const decode = async (name: string): Promise<Tensor> => ({ shape: request.kCache.shape, data: decodeStorage(await readFile(file(name)), request.dtype) });
    return { kCache: await decode('kc-out.bin'), vCache: await decode('vc-out.bin') };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
