// The `metal` backend at run time: emits the kernel set, builds it (cached by content hash under
// the cache folder), runs it for the request's shape and reads the results back. On macOS that is
// `xcrun metal` + `metallib` and the emitted Swift host on the GPU; with `--emulate` (anywhere) the
// same .metal is compiled as C++ with runtime/emulation's Metal dialect and runtime/metal/harness.cpp
// (attention over contiguous keys: the set's passes, or split-K decode for few query rows) or
// serving_harness.cpp (the serving kernels: paged attention, varlen included, and the cache append)
// and runs on CPU threads.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { KernelError, ShapeError, UnavailableError } from '../../errors.js';
import type { AttentionOutput, AttentionRequest, CacheAppendRequest, CacheAppendResult, PagedAttentionRequest } from '../../execute.js';
import { decodeStorage, encodeStorage } from '../../io/storage.js';
import type { Tensor } from '../../io/tensor.js';
import { attentionShape } from '../../reference/attention.js';
import { checkCacheAppend, pagedCacheShape } from '../../reference/kv-cache.js';
import { runHarness, type HarnessProcessResult } from '../harness-run.js';
import { cacheFolder, packageRoot } from '../../io/package-files.js';
import type { KernelVariant } from '../kernel-set.js';
import { emitMetal, metalKernelConfig, type MetalKernelSet } from './emit.js';
import { metalCallPlan, type MetalCallKind, type MetalCallPlan } from './serving.js';

export interface MetalRunOptions {
  readonly variant?: KernelVariant;
  /** Force the kernel (default: split-K decode for calls with at most 16 queries in a fused set, else the set's passes). */
  readonly kind?: MetalCallKind;
  readonly repeats?: number;
  /** Emulation only: thread order between switch points (alternate, forward, reverse, shuffle). */
  readonly schedule?: string;
}

export interface MetalRunResult extends AttentionOutput {
  readonly times: readonly number[];
  /** Which kernel ran, and how it split the keys. */
  readonly plan: MetalCallPlan;
}

/** The one line `run --backend metal` prints off macOS. */
export const METAL_UNAVAILABLE = 'Metal runs on macOS only (xcrun metal and an Apple GPU); run the same kernel on the CPU emulation with --emulate';

/** The emulation's files, relative to the package root: part of the build's cache key. */
export const METAL_EMULATION_FILES = [
  'runtime/emulation/emu_core.hpp',
  'runtime/emulation/metal_emulation.hpp',
  'runtime/emulation/metal_include/metal_stdlib',
  'runtime/metal/host_io.hpp',
  'runtime/harness_files.hpp',
];

/** The emulation hosts: the attention passes, and the serving kernels. */
export type MetalEmulationHarness = 'harness.cpp' | 'serving_harness.cpp';

/**
 * Flags of the emulation build (documented in runtime/emulation/metal_emulation.hpp). -O1: the run
 * time is spent switching emulated threads, which -O2 does not speed up, while it compiles slower.
 */
export function emulationCompileArgs(root: string): string[] {
  return ['-std=c++17', '-O1', '-fno-strict-aliasing', '-fstack-clash-protection', '-Wno-attributes', '-DDCAGEN_EMULATE',
    '-I', join(root, 'runtime', 'emulation', 'metal_include')];
}

/**
 * A precompiled copy of the emulation header (cached by content), -include'd ahead of the harness:
 * it saves a third of every kernel's build. Best effort: without it the harness builds as well.
 */
const pchBuilds = new Map<string, Promise<string | undefined>>();

function precompiledHeader(root: string, cxx: string): Promise<string | undefined> {
  const key = `${root}\0${cxx}\0${cacheFolder()}`;
  let build = pchBuilds.get(key);
  if (build === undefined) {
    build = buildPrecompiledHeader(root, cxx);
    pchBuilds.set(key, build);
  }
  return build;
}

async function buildPrecompiledHeader(root: string, cxx: string): Promise<string | undefined> {
  const headers = ['emu_core.hpp', 'metal_emulation.hpp'];
  const hash = createHash('sha256').update(cxx).update(emulationCompileArgs('').join(' '));
  for (const h of headers) hash.update(await readFile(join(root, 'runtime', 'emulation', h)));
  const dir = join(cacheFolder(), 'metal', `pch-${hash.digest('hex').slice(0, 16)}`);
  const header = join(dir, 'metal_emulation.hpp');
  if (existsSync(`${header}.gch`)) return header;
  // Built in a private folder and renamed into place, so concurrent builds never see half a copy.
  const temp = `${dir}.${process.pid}.partial`;
  try {
    await mkdir(temp, { recursive: true });
    for (const h of headers) await writeFile(join(temp, h), await readFile(join(root, 'runtime', 'emulation', h)));
    const r = await execa(cxx, [...emulationCompileArgs(root), '-x', 'c++-header', join(temp, 'metal_emulation.hpp'), '-o', join(temp, 'metal_emulation.hpp.gch')], { reject: false });
    if (r.exitCode !== 0) return undefined;
    await rename(temp, dir).catch(() => undefined);  // another build may have won the race: use its copy
    return existsSync(`${header}.gch`) ? header : undefined;
  } catch {
    return undefined;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function compileOrThrow(file: string, args: readonly string[], what: string, missing: string): Promise<void> {
  const run = await execa(file, args, { reject: false, all: true });
  if (run.exitCode === 0) return;
  if ((run as { code?: string }).code === 'ENOENT') throw new UnavailableError(missing);
  const lines = (run.all ?? '').split('\n');
  const first = lines.find((l) => /error/.test(l)) ?? lines[0];
  throw new KernelError(`${what} failed: ${first}`);
}

/** Compiles (or reuses) the emulation binary of a kernel set, with one of the emulation hosts. */
export async function buildEmulation(set: MetalKernelSet, harness: MetalEmulationHarness = 'harness.cpp'): Promise<string> {
  const root = packageRoot();
  const defines = harness === 'serving_harness.cpp'
    ? [`-DDCAGEN_CACHE_APPEND=${set.serving?.cacheAppend !== undefined ? 1 : 0}`]
    : [`-DDCAGEN_DECODE=${set.serving?.contiguousDecode !== undefined ? 1 : 0}`];
  const hash = createHash('sha256').update(set.source).update(set.namespace).update(defines.join(' '));
  for (const f of [...METAL_EMULATION_FILES, `runtime/metal/${harness}`]) hash.update(await readFile(join(root, f)));
  const kind = harness === 'harness.cpp' ? 'emu' : 'serving-emu';
  const dir = join(cacheFolder(), 'metal', `${set.name}-${kind}-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(dir, 'harness');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, set.fileName), set.source);
  const partial = `${binary}.${process.pid}.partial`;
  const cxx = process.env['CXX'] ?? 'g++';
  const pch = await precompiledHeader(root, cxx);
  try {
    await compileOrThrow(cxx, [
      ...emulationCompileArgs(root), ...(pch !== undefined ? ['-include', pch] : []), '-I', dir,
      `-DDCAGEN_METAL_SOURCE=${set.fileName}`, `-DDCAGEN_NS=${set.namespace}`, ...defines,
      join(root, 'runtime', 'metal', harness), '-o', partial, '-lpthread',
    ], `compiling ${set.name} for the CPU emulation`, 'no C++ compiler (g++) found for --emulate');
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, binary);
  return binary;
}

/** Compiles (or reuses) the metallib and the Swift host of a kernel set (macOS). */
export async function buildNative(set: MetalKernelSet): Promise<{ host: string; library: string }> {
  const swift = set.files.find((f) => f.name === set.swiftFile)!.contents;
  const hash = createHash('sha256').update(set.source).update(swift);
  const dir = join(cacheFolder(), 'metal', `${set.name}-native-${hash.digest('hex').slice(0, 16)}`);
  const host = join(dir, 'host');
  const library = join(dir, `${set.name}.metallib`);
  if (existsSync(host) && existsSync(library)) return { host, library };
  await mkdir(dir, { recursive: true });
  const metal = join(dir, set.fileName);
  await writeFile(metal, set.source);
  await writeFile(join(dir, set.swiftFile), swift);
  const missing = 'xcrun not found: install the Xcode command-line tools (xcode-select --install)';
  const air = join(dir, `${set.name}.air`);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'metal', '-c', metal, '-o', air], `compiling ${set.fileName} with xcrun metal`, missing);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'metallib', air, '-o', `${library}.partial`], 'metallib', missing);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'swiftc', '-O', join(dir, set.swiftFile), '-o', `${host}.partial`], `compiling ${set.swiftFile}`, missing);
  await rename(`${library}.partial`, library);
  await rename(`${host}.partial`, host);
  return { host, library };
}

export async function runMetalAttention(request: AttentionRequest, options: MetalRunOptions = {}): Promise<MetalRunResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && process.platform !== 'darwin') throw new UnavailableError(METAL_UNAVAILABLE);
  const shape = attentionShape(request.q, request.k, request.v);
  const config = metalKernelConfig({
    headDim: shape.headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  const set: MetalKernelSet = emitMetal(request.pattern, config, { variant: options.variant ?? 'fused' });
  // Few query rows run the split-K decode kernel (fused sets), as the emitted hosts decide.
  const plan = metalCallPlan(set.serving, { batch: shape.batch, queries: shape.queries, queryHeads: shape.queryHeads, keyHeads: shape.keyHeads, maxKeys: shape.keys }, {
    ...(options.kind !== undefined ? { kind: options.kind } : {}),
    ...(request.splits !== undefined ? { splits: request.splits } : {}),
  });
  const shapeArgs = [shape.batch, shape.queries, shape.keys, shape.queryHeads, shape.keyHeads,
    request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, plan.kind, plan.splits, options.repeats ?? 1].map(String);
  const result = await runHarness({
    label: set.name,
    request,
    shape,
    invoke: async (files) => {
      if (emulate) {
        const binary = await buildEmulation(set);
        const schedule = options.schedule ?? process.env['DCAGEN_EMU_SCHEDULE'] ?? 'alternate';
        // Threadgroups are independent: spread them over the cores unless told otherwise.
        const workers = process.env['DCAGEN_EMU_WORKERS'] ?? String(availableParallelism());
        return execa(binary, [...files, ...shapeArgs], { reject: false, all: true, env: { DCAGEN_EMU_SCHEDULE: schedule, DCAGEN_EMU_WORKERS: workers } });
      }
      const { host, library } = await buildNative(set);
      return execa(host, [library, ...files, ...shapeArgs], { reject: false, all: true });
    },
    noDevice: 'no Metal device on this Mac; run the same kernel on the CPU emulation with --emulate',
  });
  return { ...result, plan };
}

export interface MetalPagedRunOptions {
  /** Force the kernel (default: decode for calls with at most 16 queries per sequence, else prefill). */
  readonly kind?: MetalCallKind;
  readonly repeats?: number;
  /** Emulation only: thread order between switch points (alternate, forward, reverse, shuffle). */
  readonly schedule?: string;
}

export type MetalPagedRunResult = MetalRunResult;

/** Runs a serving host (the emulation's serving_harness, or the Swift host on a Mac) with `args`. */
async function runServingHost(set: MetalKernelSet, emulate: boolean, args: readonly string[], schedule: string | undefined): Promise<HarnessProcessResult> {
  const label = `${set.name}${emulate ? ' (emulated)' : ''}`;
  let result: HarnessProcessResult;
  if (emulate) {
    const binary = await buildEmulation(set, 'serving_harness.cpp');
    const env = {
      DCAGEN_EMU_SCHEDULE: schedule ?? process.env['DCAGEN_EMU_SCHEDULE'] ?? 'alternate',
      DCAGEN_EMU_WORKERS: process.env['DCAGEN_EMU_WORKERS'] ?? String(availableParallelism()),
    };
    result = await execa(binary, args, { reject: false, all: true, env });
  } else {
    const { host, library } = await buildNative(set);
    result = await execa(host, [library, ...args], { reject: false, all: true });
  }
  if (result.exitCode === 3) throw new UnavailableError('no Metal device on this Mac; run the same kernel on the CPU emulation with --emulate');
  if (result.exitCode !== 0) {
    const lines = (result.all ?? '').split('\n').filter((l) => l.trim().length > 0);
    throw new KernelError(`${label} failed: ${lines.slice(-3).join(' | ') || `exit ${result.exitCode}`}`);
  }
  return result;
}

/**
 * The query rows of a paged call: (batch, Sq, Hq, D), every sequence's last Sq positions; or packed
 * (total_q, Hq, D) by cu_seqlens_q (varlen), sequence b owning rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] − 1.
 */
export interface PagedQueryRows {
  readonly queryHeads: number;
  readonly headDim: number;
  /** Query rows per sequence, the largest count when packed: what sizes the grids and partials. */
  readonly queries: number;
  /** Packed rows (varlen), 0 otherwise. */
  readonly totalQueries: number;
}

/** Validates q (and cu_seqlens_q) against the block table and sequence lengths. */
export function pagedQueryRows(request: Pick<PagedAttentionRequest, 'q' | 'layout' | 'cuSeqlensQ'>): PagedQueryRows {
  const { q, layout, cuSeqlensQ } = request;
  const packed = cuSeqlensQ !== undefined;
  if (q.shape.length !== (packed ? 3 : 4)) {
    throw new ShapeError(packed ? `packed q must have rank 3 (total_q, Hq, D), got shape [${q.shape.join(', ')}]` : `q must have rank 4 (batch, Sq, Hq, D), got shape [${q.shape.join(', ')}]`);
  }
  const [queryHeads, headDim] = q.shape.slice(-2) as [number, number];
  if (!packed) {
    const [batch, queries] = q.shape as [number, number];
    if (layout.batch !== batch) throw new ShapeError(`q has batch ${batch} but the block table has ${layout.batch} rows`);
    if (Math.min(...layout.seqLens) < queries) throw new ShapeError(`every sequence needs at least the ${queries} queries of the call as keys`);
    return { queryHeads, headDim, queries, totalQueries: 0 };
  }
  const total = q.shape[0]!;
  if (cuSeqlensQ.length !== layout.batch + 1) throw new ShapeError(`cu_seqlens_q needs batch + 1 = ${layout.batch + 1} entries, got ${cuSeqlensQ.length}`);
  if (cuSeqlensQ[0] !== 0 || cuSeqlensQ[layout.batch] !== total) throw new ShapeError(`cu_seqlens_q must run from 0 to the ${total} packed query rows`);
  let queries = 0;
  for (let b = 0; b < layout.batch; b++) {
    const count = cuSeqlensQ[b + 1]! - cuSeqlensQ[b]!;
    if (count < 0) throw new ShapeError(`cu_seqlens_q decreases at sequence ${b}`);
    if (count > layout.seqLens[b]!) throw new ShapeError(`sequence ${b} has ${layout.seqLens[b]} keys, fewer than its ${count} queries`);
    queries = Math.max(queries, count);
  }
  if (total < 1) throw new ShapeError('cu_seqlens_q packs no query rows');
  return { queryHeads, headDim, queries, totalQueries: total };
}

/**
 * Attention over a paged KV cache on the Metal serving kernels: split-K decode (+ merge) for calls
 * with at most 16 queries per sequence, paged prefill otherwise; `request.splits` forces the decode
 * split count; `request.cuSeqlensQ` packs query rows of different counts per sequence (varlen).
 */
export async function runMetalPagedAttention(request: PagedAttentionRequest, options: MetalPagedRunOptions = {}): Promise<MetalPagedRunResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && process.platform !== 'darwin') throw new UnavailableError(METAL_UNAVAILABLE);
  const cache = pagedCacheShape(request.kCache, request.vCache);
  const { q, layout } = request;
  const { queryHeads, headDim, queries, totalQueries } = pagedQueryRows(request);
  const batch = layout.batch;
  if (headDim !== cache.headDim) throw new ShapeError(`q has head dim ${headDim} but the cache has ${cache.headDim}`);
  if (queryHeads % cache.keyHeads !== 0) throw new ShapeError(`query heads (${queryHeads}) must be a multiple of the cache's key heads (${cache.keyHeads})`);
  const maxKeys = Math.max(...layout.seqLens);
  const config = metalKernelConfig({
    headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  const set = emitMetal(request.pattern, config);
  const plan = metalCallPlan(set.serving, { batch, queries, queryHeads, keyHeads: cache.keyHeads, maxKeys }, {
    ...(options.kind !== undefined ? { kind: options.kind } : {}),
    ...(request.splits !== undefined ? { splits: request.splits } : {}),
  });
  const work = await mkdtemp(join(tmpdir(), 'dcagen-metal-paged-'));
  try {
    const file = (name: string): string => join(work, `${name}.bin`);
    await Promise.all([
      writeFile(file('q'), encodeStorage(q.data, request.dtype)),
      writeFile(file('k-cache'), encodeStorage(request.kCache.data, request.dtype)),
      writeFile(file('v-cache'), encodeStorage(request.vCache.data, request.dtype)),
      writeFile(file('block-table'), layout.blockTable),
      writeFile(file('seq-lens'), layout.seqLens),
      ...(request.cuSeqlensQ !== undefined ? [writeFile(file('cu-seqlens-q'), Int32Array.from(request.cuSeqlensQ))] : []),
    ]);
    const cu = request.cuSeqlensQ !== undefined ? file('cu-seqlens-q') : '-';
    const args = ['paged', ...['q', 'k-cache', 'v-cache', 'block-table', 'seq-lens'].map(file), cu, ...['out', 'lse'].map(file),
      ...[batch, queries, queryHeads, cache.keyHeads, cache.numBlocks, cache.blockSize, layout.maxBlocks,
        request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, plan.kind, plan.splits, options.repeats ?? 1].map(String)];
    const result = await runServingHost(set, emulate, args, options.schedule);
    const rows = totalQueries > 0 ? totalQueries : batch * queries;
    return {
      out: { shape: [...q.shape], data: decodeStorage(await readFile(file('out')), request.dtype) },
      lse: { shape: totalQueries > 0 ? [queryHeads, rows] : [batch, queryHeads, queries], data: decodeStorage(await readFile(file('lse')), 'f32') },
      times: (result.stdout ?? '').split('\n').filter((l) => l.startsWith('time_ms ')).map((l) => Number(l.slice(8))),
      plan,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What runMetalCacheAppend takes: the library's cache-append request. */
export type MetalCacheAppendRequest = CacheAppendRequest;

/** Runs the emitted cache-append kernel; returns the caches after the write. */
export async function runMetalCacheAppend(request: MetalCacheAppendRequest): Promise<CacheAppendResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && process.platform !== 'darwin') throw new UnavailableError(METAL_UNAVAILABLE);
  const { pattern } = request;
  const { cache, tokens, maxKeyPosition: maxPosition } = checkCacheAppend(request);
  const { k, v } = request;
  const headDim = cache.headDim;
  // The append belongs to the set that reads the cache it writes: the pre-rotated one.
  const config = metalKernelConfig({
    headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: true,
  });
  const set = emitMetal(pattern, config);
  const work = await mkdtemp(join(tmpdir(), 'dcagen-metal-append-'));
  try {
    const file = (name: string): string => join(work, `${name}.bin`);
    await Promise.all([
      writeFile(file('k'), encodeStorage(k.data, request.dtype)),
      writeFile(file('v'), encodeStorage(v.data, request.dtype)),
      writeFile(file('positions'), Int32Array.from(request.positions)),
      writeFile(file('slot-mapping'), Int32Array.from(request.slotMapping)),
      writeFile(file('lengths'), request.lengths !== undefined ? Int32Array.from(request.lengths) : new Int32Array(tokens)),
      writeFile(file('k-cache'), encodeStorage(request.kCache.data, request.dtype)),
      writeFile(file('v-cache'), encodeStorage(request.vCache.data, request.dtype)),
    ]);
    const args = ['append', ...['k', 'v', 'positions', 'slot-mapping', 'lengths', 'k-cache', 'v-cache', 'k-cache-out', 'v-cache-out'].map(file),
      ...[tokens, cache.keyHeads, cache.numBlocks, cache.blockSize, request.rope.theta, request.originalMaxPosition ?? 0, maxPosition].map(String)];
    await runServingHost(set, emulate, args, undefined);
    const decode = async (name: string): Promise<Tensor> => ({ shape: request.kCache.shape, data: decodeStorage(await readFile(file(name)), request.dtype) });
    return { kCache: await decode('k-cache-out'), vCache: await decode('v-cache-out') };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
