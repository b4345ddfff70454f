// The Metal serving kernels on the CPU emulation against the serving reference (src/reference/kv-cache.ts):
// the cache append (rotated keys, Qwen's key factor, padding, untouched slots), paged split-K decode
// (Sq 1, 3, 16 with GQA; block sizes 8, 16, 64 with a chunk length that is no multiple of them;
// shuffled blocks; sequences of different lengths; raw and pre-rotated keys; forced splits 1..8
// agreeing; every thread order), paged prefill, chunked prefill / varlen (query rows packed by
// cu_seqlens_q, on the decode and the prefill kernel), split-K decode over contiguous keys (the same
// kernel body with the other K/V addressing; forced splits 1..8; a Qwen2.5-1M decode over 262 200
// keys), `dcagen run --backend metal --emulate` on a paged cache and with --splits on contiguous keys,
// and the serving entry points of the emitted Swift host and MLX module. Each kernel set is compiled
// once (beforeAll) and reused through the runner's content-addressed cache. Nothing here is skipped;
// the native Metal path needs a Mac and is not run.
import { execa } from 'execa';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitMetal, metalKernelConfig, type MetalKernelSet } from '../src/backends/metal/emit.js';
import { metalCallPlan } from '../src/backends/metal/serving.js';
import { buildEmulation, emulationCompileArgs, METAL_UNAVAILABLE, runMetalAttention, runMetalCacheAppend, runMetalPagedAttention } from '../src/backends/metal/runner.js';
import { main } from '../src/cli/main.js';
import type { CompiledPattern } from '../src/dsl/instantiate.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { ConfigurationError, UsageError } from '../src/errors.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { preRotateKeys, referenceAttention } from '../src/reference/attention.js';
import { referenceAppendToCache, referencePagedAttention } from '../src/reference/kv-cache.js';
import { roundArray, type StorageDType } from '../src/reference/precision.js';
import { randomTensor } from '../src/verify/cases.js';
import { allocatePagedCache, fillPagedCache, type PagedFixture } from '../src/verify/paged-cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';
import { dcagen, expectBadInput } from './helpers/cli.js';
import { listDir, makeTempDir } from './helpers/tensors.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CXX = process.env['CXX'] ?? 'g++';
// Chunk length L = 40 − 9 = 31: no block size divides it, and sequences of 150 keys span five chunks.
const DCA = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
const DCA_FLAGS = ['--pattern', 'dca', '--chunk-size', '40', '--local-window', '9'];
const REROPE = compilePattern(builtinPattern('rerope'), { window: 13 });
const rope = { theta: 10000, style: 'half' as const };
const TOLERANCE: Record<'f32' | 'f16', number> = { f32: 2e-4, f16: 2e-2 };

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

function setFor(pattern: CompiledPattern, headDim: number, dtype: StorageDType, preRotatedKeys: boolean): MetalKernelSet {
  return emitMetal(pattern, metalKernelConfig({ headDim, dtype, ropeStyle: 'half', preRotatedKeys }));
}

// The sets the tests run (what the runner emits for their requests), compiled once up front.
beforeAll(async () => {
  for (const set of [
    setFor(DCA, 48, 'f32', false), setFor(DCA, 48, 'f32', true), setFor(DCA, 64, 'f16', true), setFor(REROPE, 32, 'f32', false),
  ]) await buildEmulation(set, 'serving_harness.cpp');
  // Contiguous keys: the attention harness (prefill passes and split-K decode).
  for (const set of [setFor(DCA, 48, 'f32', false), setFor(DCA, 64, 'f16', true)]) await buildEmulation(set);
}, 600_000);

interface PagedInputs {
  readonly fixture: PagedFixture;
  readonly ks: Tensor<Float64Array>[];
  readonly vs: Tensor<Float64Array>[];
  readonly q: Tensor<Float64Array>;
}

/** Sequences of `lens` random keys and values in a cache of `blockSize` blocks (shuffled), and queries. */
function pagedInputs(lens: readonly number[], queries: number, blockSize: number, heads: [number, number], d: number, seed: number): PagedInputs {
  const [hq, hk] = heads;
  return {
    fixture: allocatePagedCache([...lens], blockSize, hk, d, seed),
    ks: lens.map((n, b) => randomTensor([1, n, hk, d], seed + 10 * b + 1)),
    vs: lens.map((n, b) => randomTensor([1, n, hk, d], seed + 10 * b + 2)),
    q: randomTensor([lens.length, queries, hq, d], seed + 3),
  };
}

/** Writes every key and value of the sequences with the Metal cache append (each key with its sequence's s(n)). */
async function appendSequences(inputs: PagedInputs, dtype: StorageDType, originalMaxPosition?: number): Promise<{ kCache: Tensor; vCache: Tensor }> {
  const { fixture, ks, vs } = inputs;
  const { numBlocks, blockSize, keyHeads: hk, headDim: d } = fixture.cache;
  const empty = { shape: [numBlocks, blockSize, hk, d], data: new Float64Array(numBlocks * blockSize * hk * d) };
  const tokens = ks.flatMap((k, b) => Array.from({ length: k.shape[1]! }, (_, j) => [b, j] as const));
  const gather = (ts: Tensor[]): Tensor => ({ shape: [tokens.length, hk, d], data: Float64Array.from(tokens.flatMap(([b, j]) => Array.from(ts[b]!.data.subarray(j * hk * d, (j + 1) * hk * d)))) });
  return runMetalCacheAppend({
    kCache: empty, vCache: empty, k: gather(ks), v: gather(vs), pattern: DCA, rope, dtype, emulate: true,
    positions: tokens.map(([, j]) => j),
    slotMapping: tokens.map(([b, j]) => fixture.slot(b, j)),
    ...(originalMaxPosition !== undefined ? { originalMaxPosition, lengths: tokens.map(([b]) => ks[b]!.shape[1]!) } : {}),
  });
}

interface Errors { readonly out: number; readonly lse: number }

async function pagedErrors(q: Tensor, kCache: Tensor, vCache: Tensor, fixture: PagedFixture, options: {
  dtype: StorageDType; pattern?: CompiledPattern; preRotatedKeys?: boolean; originalMaxPosition?: number; splits?: number; kind?: 'decode' | 'prefill'; schedule?: string;
  cuSeqlensQ?: Int32Array;
}): Promise<Errors & { out_: Tensor; lse_: Tensor; splits: number; kind: string }> {
  const common = {
    pattern: options.pattern ?? DCA, rope, dtype: options.dtype, preRotatedKeys: options.preRotatedKeys ?? false,
    ...(options.originalMaxPosition !== undefined ? { originalMaxPosition: options.originalMaxPosition } : {}),
    ...(options.cuSeqlensQ !== undefined ? { cuSeqlensQ: options.cuSeqlensQ } : {}),
  };
  const expected = referencePagedAttention(q, kCache, vCache, fixture.layout, common);
  const got = await runMetalPagedAttention(
    { q, kCache, vCache, layout: fixture.layout, ...common, emulate: true, ...(options.splits !== undefined ? { splits: options.splits } : {}) },
    { ...(options.kind !== undefined ? { kind: options.kind } : {}), ...(options.schedule !== undefined ? { schedule: options.schedule } : {}) },
  );
  return {
    out: maxAbsDifference(expected.out.data, got.out.data),
    lse: maxAbsDifference(expected.lse.data, got.lse.data),
    out_: got.out,
    lse_: got.lse,
    splits: got.plan.splits,
    kind: got.plan.kind,
  };
}

function expectWithin(errors: Errors, dtype: 'f32' | 'f16', label: string): void {
  expect(errors.out, label).toBeLessThanOrEqual(TOLERANCE[dtype]);
  expect(errors.lse, label).toBeLessThanOrEqual(TOLERANCE[dtype]);
}

describe('Metal cache append (emulated)', () => {
  it.each([
    ['f32', undefined, 48],
    ['f32', 20, 48],
    ['f16', 20, 64],
  ] as const)('%s, Qwen factor from c_orig %s, head dim %s: the reference cache, other slots untouched', async (dtype, originalMaxPosition, d) => {
    const [hk, blockSize] = [2, 16];
    const fixture = allocatePagedCache([100, 70], blockSize, hk, d, 11, 1);
    const cells = fixture.cache.numBlocks * blockSize * hk * d;
    // The cache holds older entries: the write must leave every slot it does not name as it was.
    const kCache = { shape: [fixture.cache.numBlocks, blockSize, hk, d], data: roundArray(dtype, randomTensor([cells], 1).data) };
    const vCache = { shape: kCache.shape, data: roundArray(dtype, randomTensor([cells], 2).data) };
    // Tokens of both sequences (positions across chunk boundaries), the last one padding (slot −1).
    const tokens = [[0, 3], [0, 30], [0, 31], [0, 57], [0, 99], [1, 0], [1, 41], [1, 69], [0, 42]] as const;
    const k = { shape: [tokens.length, hk, d], data: roundArray(dtype, randomTensor([tokens.length * hk * d], 3).data) };
    const v = { shape: [tokens.length, hk, d], data: roundArray(dtype, randomTensor([tokens.length * hk * d], 4).data) };
    const positions = tokens.map(([, j]) => j);
    const slotMapping = tokens.map(([b, j], t) => (t === tokens.length - 1 ? -1 : fixture.slot(b, j)));
    const lengths = tokens.map(([b]) => (b === 0 ? 100 : 70));
    const qwen = originalMaxPosition !== undefined ? { originalMaxPosition, lengths } : {};
    const got = await runMetalCacheAppend({ kCache, vCache, k, v, positions, slotMapping, pattern: DCA, rope, dtype, emulate: true, ...qwen });
    const expectedK = { shape: kCache.shape, data: Float64Array.from(kCache.data) };
    const expectedV = { shape: kCache.shape, data: Float64Array.from(vCache.data) };
    referenceAppendToCache(expectedK, expectedV, k, v, positions, slotMapping, { pattern: DCA, rope, ...qwen });
    expect(maxAbsDifference(roundArray(dtype, expectedK.data), got.kCache.data)).toBeLessThanOrEqual(dtype === 'f16' ? 4e-3 : 2e-6);
    expect(maxAbsDifference(expectedV.data, got.vCache.data)).toBe(0);
    // Every slot not in the mapping (the padding token's included) keeps its old bits.
    const written = new Set(slotMapping.filter((s) => s >= 0));
    const row = hk * d;
    for (let slot = 0; slot < fixture.cache.numBlocks * blockSize; slot++) {
      if (written.has(slot)) continue;
      for (let e = slot * row; e < (slot + 1) * row; e++) {
        if (got.kCache.data[e] !== kCache.data[e] || got.vCache.data[e] !== vCache.data[e]) throw new Error(`slot ${slot} changed`);
      }
    }
  });

  it('refuses a pattern whose regions place keys at their own positions (ConfigurationError, exit 2)', async () => {
    const cache = { shape: [2, 8, 1, 32], data: new Float64Array(2 * 8 * 32) };
    const tokens = { shape: [1, 1, 32], data: new Float64Array(32) };
    const request = { kCache: cache, vCache: cache, k: tokens, v: tokens, positions: [0], slotMapping: [0], pattern: REROPE, rope, dtype: 'f32' as const, emulate: true };
    await expect(runMetalCacheAppend(request)).rejects.toThrow(ConfigurationError);
    await expect(runMetalCacheAppend(request)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/rerope cannot use a rotated KV cache: region \w+ places keys at its own position/) });
  });
});

describe('Metal paged attention (emulated)', () => {
  const lens = [150, 77];

  it.each([
    [1, 8, undefined], [3, 8, 20], [16, 8, undefined],
    [1, 16, 20], [3, 16, undefined], [16, 16, 20],
    [1, 64, undefined], [3, 64, 20], [16, 64, undefined],
  ] as const)('decode, raw keys: Sq %i, block size %i, Qwen c_orig %s, GQA 4/2, two sequences', async (queries, blockSize, originalMaxPosition) => {
    const inputs = pagedInputs(lens, queries, blockSize, [4, 2], 48, 100 + blockSize + queries);
    const { fixture } = inputs;
    const errors = await pagedErrors(inputs.q, fillPagedCache(fixture, inputs.ks), fillPagedCache(fixture, inputs.vs), fixture, {
      dtype: 'f32', ...(originalMaxPosition !== undefined ? { originalMaxPosition } : {}),
    });
    expect(errors.kind).toBe('decode');
    expectWithin(errors, 'f32', `Sq ${queries}, block ${blockSize}`);
  });

  it('decode with forced splits 1..8 (and the prefill kernel on the same call) agrees with itself and the reference', async () => {
    const inputs = pagedInputs(lens, 3, 16, [8, 2], 48, 7);
    const { fixture } = inputs;
    const kCache = fillPagedCache(fixture, inputs.ks);
    const vCache = fillPagedCache(fixture, inputs.vs);
    const runs = [];
    for (const splits of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const r = await pagedErrors(inputs.q, kCache, vCache, fixture, { dtype: 'f32', splits, originalMaxPosition: 30 });
      expect(r.splits).toBe(splits);
      expectWithin(r, 'f32', `splits ${splits}`);
      runs.push(r);
    }
    const prefill = await pagedErrors(inputs.q, kCache, vCache, fixture, { dtype: 'f32', kind: 'prefill', originalMaxPosition: 30 });
    expect(prefill.kind).toBe('prefill');
    expectWithin(prefill, 'f32', 'prefill kernel');
    for (const r of [...runs.slice(1), prefill]) expect(maxAbsDifference(runs[0]!.out_.data, r.out_.data)).toBeLessThanOrEqual(2e-5);
  });

  it('gives the same results under every thread order of the emulation', async () => {
    const inputs = pagedInputs([90, 61], 3, 8, [4, 2], 48, 9);
    const { fixture } = inputs;
    const kCache = fillPagedCache(fixture, inputs.ks);
    const vCache = fillPagedCache(fixture, inputs.vs);
    for (const schedule of ['forward', 'reverse', 'shuffle']) {
      expectWithin(await pagedErrors(inputs.q, kCache, vCache, fixture, { dtype: 'f32', splits: 2, schedule }), 'f32', schedule);
    }
  });

  it.each([
    [1, 8, 'f32', 48], [3, 16, 'f32', 48], [16, 64, 'f32', 48], [1, 16, 'f16', 64], [16, 8, 'f16', 64],
  ] as const)('decode over a cache the Metal append wrote (pre-rotated keys, Qwen factors): Sq %i, block size %i, %s', async (queries, blockSize, dtype, d) => {
    const originalMaxPosition = 25;
    const inputs = pagedInputs(lens, queries, blockSize, [4, 2], d, 200 + blockSize + queries);
    const { kCache, vCache } = await appendSequences(inputs, dtype, originalMaxPosition);
    const errors = await pagedErrors(inputs.q, kCache, vCache, inputs.fixture, { dtype, preRotatedKeys: true, originalMaxPosition, splits: 2 });
    expectWithin(errors, dtype, `Sq ${queries}, block ${blockSize}, ${dtype}`);
  });

  it('decode with a pattern that places keys at their own positions (ReRoPE), raw keys rotated per region', async () => {
    const inputs = pagedInputs([90, 50], 3, 16, [4, 2], 32, 13);
    const { fixture } = inputs;
    const errors = await pagedErrors(inputs.q, fillPagedCache(fixture, inputs.ks), fillPagedCache(fixture, inputs.vs), fixture, { dtype: 'f32', pattern: REROPE, splits: 2 });
    expectWithin(errors, 'f32', 'rerope');
  });

  it.each([
    [20, 16, false], [40, 8, false], [24, 64, true],
  ] as const)('prefill (Sq %i > 16), block size %i, pre-rotated keys %s', async (queries, blockSize, preRotatedKeys) => {
    const originalMaxPosition = 40;
    const inputs = pagedInputs(lens, queries, blockSize, [4, 2], 48, 300 + queries);
    const caches = preRotatedKeys
      ? await appendSequences(inputs, 'f32', originalMaxPosition)
      : { kCache: fillPagedCache(inputs.fixture, inputs.ks), vCache: fillPagedCache(inputs.fixture, inputs.vs) };
    const errors = await pagedErrors(inputs.q, caches.kCache, caches.vCache, inputs.fixture, { dtype: 'f32', preRotatedKeys, originalMaxPosition });
    expect(errors.kind).toBe('prefill');
    expectWithin(errors, 'f32', `prefill Sq ${queries}`);
  });

  it('refuses forced splits on the prefill kernel (UsageError)', async () => {
    const inputs = pagedInputs([40], 20, 8, [2, 2], 48, 5);
    const run = runMetalPagedAttention({
      q: inputs.q, kCache: fillPagedCache(inputs.fixture, inputs.ks), vCache: fillPagedCache(inputs.fixture, inputs.vs), layout: inputs.fixture.layout,
      pattern: DCA, rope, dtype: 'f32', emulate: true, splits: 2,
    });
    await expect(run).rejects.toThrow(UsageError);
  });
});

/** cu_seqlens_q (FlashAttention's convention) from the query rows of each sequence. */
function cuSeqlens(counts: readonly number[]): Int32Array {
  const cu = new Int32Array(counts.length + 1);
  counts.forEach((n, b) => { cu[b + 1] = cu[b]! + n; });
  return cu;
}

describe('Metal chunked prefill / varlen over the paged cache (emulated)', () => {
  // L = 31: chunk boundaries at 31, 62, 93, 124. Sequence 0 (150 keys) with 40 queries sees positions
  // 110..149, across 124; sequence 2 (95 keys) with 16 queries sees 79..94, across 93.
  const lens = [150, 77, 95, 40];

  it.each([
    // query rows per sequence, storage, head dim, cache written by the Metal append (else raw keys), block size
    [[3, 1, 16, 2], 'f32', 48, false, 16],
    [[16, 0, 1, 7], 'f16', 64, true, 16],
    [[40, 1, 20, 0], 'f32', 48, true, 8],
    [[1, 33, 16, 17], 'f16', 64, true, 64],
  ] as const)('query rows %j packed by cu_seqlens_q, %s, head dim %i, rotated cache %s, block size %i', async (counts, dtype, d, preRotatedKeys, blockSize) => {
    const originalMaxPosition = 30;
    const inputs = pagedInputs(lens, 1, blockSize, [8, 2], d, 400 + counts[0] + blockSize);
    const caches = preRotatedKeys
      ? await appendSequences(inputs, dtype, originalMaxPosition)
      : { kCache: fillPagedCache(inputs.fixture, inputs.ks), vCache: fillPagedCache(inputs.fixture, inputs.vs) };
    const cuSeqlensQ = cuSeqlens(counts);
    const total = cuSeqlensQ[counts.length]!;
    const q = randomTensor([total, 8, d], 500 + total);
    const r = await pagedErrors(q, caches.kCache, caches.vCache, inputs.fixture, { dtype, preRotatedKeys, originalMaxPosition, cuSeqlensQ });
    expect(r.kind).toBe(Math.max(...counts) <= 16 ? 'decode' : 'prefill');
    expect(r.out_.shape).toEqual([total, 8, d]);
    expect(r.lse_.shape).toEqual([8, total]);
    expectWithin(r, dtype, `counts ${counts.join(',')}`);
  });

  it('varlen decode with forced splits 1, 2, 5, 8 and the prefill kernel on the same packed rows agree', async () => {
    const inputs = pagedInputs(lens, 1, 16, [4, 2], 48, 21);
    const kCache = fillPagedCache(inputs.fixture, inputs.ks);
    const vCache = fillPagedCache(inputs.fixture, inputs.vs);
    const cuSeqlensQ = cuSeqlens([5, 2, 9, 1]);
    const q = randomTensor([17, 4, 48], 22);
    const runs = [];
    for (const splits of [1, 2, 5, 8]) {
      const r = await pagedErrors(q, kCache, vCache, inputs.fixture, { dtype: 'f32', splits, cuSeqlensQ });
      expect(r).toMatchObject({ kind: 'decode', splits });
      expectWithin(r, 'f32', `splits ${splits}`);
      runs.push(r);
    }
    const prefill = await pagedErrors(q, kCache, vCache, inputs.fixture, { dtype: 'f32', kind: 'prefill', cuSeqlensQ });
    expectWithin(prefill, 'f32', 'prefill kernel');
    for (const r of [...runs.slice(1), prefill]) {
      expect(maxAbsDifference(runs[0]!.out_.data, r.out_.data)).toBeLessThanOrEqual(2e-5);
      expect(maxAbsDifference(runs[0]!.lse_.data, r.lse_.data)).toBeLessThanOrEqual(2e-5);
    }
  });

  it('refuses cu_seqlens_q that does not pack q, or gives a sequence more queries than keys (ShapeError)', async () => {
    const inputs = pagedInputs([40, 20], 1, 8, [2, 2], 48, 5);
    const base = {
      kCache: fillPagedCache(inputs.fixture, inputs.ks), vCache: fillPagedCache(inputs.fixture, inputs.vs), layout: inputs.fixture.layout,
      pattern: DCA, rope, dtype: 'f32' as const, emulate: true,
    };
    await expect(runMetalPagedAttention({ ...base, q: randomTensor([5, 2, 48], 1), cuSeqlensQ: Int32Array.from([0, 2, 4]) }))
      .rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/cu_seqlens_q must run from 0 to the 5 packed query rows/) });
    await expect(runMetalPagedAttention({ ...base, q: randomTensor([23, 2, 48], 1), cuSeqlensQ: Int32Array.from([0, 2, 23]) }))
      .rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/sequence 1 has 20 keys, fewer than its 21 queries/) });
  });
});

describe('Metal split-K decode over contiguous keys (emulated)', () => {
  /** Contiguous q (batch, Sq, 8, d) over k, v (batch, keys, 2, d): the reference and the Metal run. */
  async function contiguousErrors(shape: { batch: number; queries: number; keys: number; d: number; seed: number }, options: {
    dtype: StorageDType; preRotatedKeys?: boolean; originalMaxPosition?: number; splits?: number; kind?: 'decode' | 'prefill';
  }) {
    const { batch, queries, keys, d, seed } = shape;
    const q = randomTensor([batch, queries, 8, d], seed);
    const k = randomTensor([batch, keys, 2, d], seed + 1);
    const v = randomTensor([batch, keys, 2, d], seed + 2);
    const common = { pattern: DCA, rope, ...(options.originalMaxPosition !== undefined ? { originalMaxPosition: options.originalMaxPosition } : {}) };
    const expected = referenceAttention(q, k, v, { ...common, dtype: options.dtype });
    const keysIn = options.preRotatedKeys ? preRotateKeys({ shape: k.shape, data: roundArray(options.dtype, k.data) }, DCA, rope) : k;
    const got = await runMetalAttention(
      { q, k: keysIn, v, ...common, dtype: options.dtype, emulate: true, preRotatedKeys: options.preRotatedKeys ?? false, ...(options.splits !== undefined ? { splits: options.splits } : {}) },
      options.kind !== undefined ? { kind: options.kind } : {},
    );
    return { got, out: maxAbsDifference(expected.out.data, got.out.data), lse: maxAbsDifference(expected.lse.data, got.lse.data) };
  }

  it('forced splits 1..8 agree with each other, with the prefill kernel and with the reference (batch 2, GQA 8/2, Qwen temperature)', async () => {
    const shape = { batch: 2, queries: 3, keys: 150, d: 48, seed: 31 };
    const runs = [];
    for (let splits = 1; splits <= 8; splits++) {
      const r = await contiguousErrors(shape, { dtype: 'f32', splits, originalMaxPosition: 30 });
      expect(r.got.plan).toMatchObject({ kind: 'decode', splits, splitKeys: Math.ceil(150 / splits) });
      expectWithin(r, 'f32', `splits ${splits}`);
      runs.push(r);
    }
    const prefill = await contiguousErrors(shape, { dtype: 'f32', kind: 'prefill', originalMaxPosition: 30 });
    expect(prefill.got.plan.kind).toBe('prefill');
    expectWithin(prefill, 'f32', 'prefill kernel');
    for (const r of [...runs.slice(1), prefill]) {
      expect(maxAbsDifference(runs[0]!.got.out.data, r.got.out.data)).toBeLessThanOrEqual(2e-5);
      expect(maxAbsDifference(runs[0]!.got.lse.data, r.got.lse.data)).toBeLessThanOrEqual(2e-5);
    }
  });

  it.each([
    // Sq, storage, head dim, pre-rotated keys, keys (Sq 16 over 130 keys: queries 114..129 cross the chunk boundary at 124)
    [1, 'f32', 48, false, 90],
    [16, 'f32', 48, false, 130],
    [5, 'f16', 64, true, 130],
    [16, 'f16', 64, true, 200],
  ] as const)('runs decode by default: Sq %i, %s, head dim %i, pre-rotated keys %s, %i keys', async (queries, dtype, d, preRotatedKeys, keys) => {
    const r = await contiguousErrors({ batch: 2, queries, keys, d, seed: 600 + queries }, { dtype, preRotatedKeys });
    expect(r.got.plan.kind).toBe('decode');
    // The rows of one KV head (4 query heads × Sq) share threadgroups, at most 16 rows each.
    expect(r.got.plan.groupRows).toBe(Math.min(16, 2 ** Math.ceil(Math.log2(4 * queries))));
    expectWithin(r, dtype, `Sq ${queries}`);
  });

  it('runs the prefill passes for more than 16 queries, and refuses --splits there (UsageError)', async () => {
    const r = await contiguousErrors({ batch: 1, queries: 17, keys: 60, d: 48, seed: 41 }, { dtype: 'f32' });
    expect(r.got.plan.kind).toBe('prefill');
    expectWithin(r, 'f32', 'Sq 17');
    await expect(contiguousErrors({ batch: 1, queries: 17, keys: 60, d: 48, seed: 41 }, { dtype: 'f32', splits: 2 })).rejects.toThrow(UsageError);
  });

  it('dcagen run --backend metal --emulate --splits 3 on contiguous keys writes the reference result', async () => {
    const dir = await makeTempDir('dcagen-metal-decode-');
    temps.push(dir);
    const f32 = (t: Tensor): Tensor<Float64Array> => ({ shape: t.shape, data: Float64Array.from(Float32Array.from(t.data)) });
    const q = f32(randomTensor([1, 2, 4, 48], 51));
    const k = f32(randomTensor([1, 70, 2, 48], 52));
    const v = f32(randomTensor([1, 70, 2, 48], 53));
    await Promise.all([['q', q], ['k', k], ['v', v]].map(([name, t]) => writeFile(join(dir, `${name as string}.npy`), encodeNpy(t as Tensor))));
    const at = (name: string): string => join(dir, name);
    const err: string[] = [];
    const code = await main(['run', '--backend', 'metal', '--emulate', ...DCA_FLAGS, '--q', at('q.npy'), '--k', at('k.npy'), '--v', at('v.npy'),
      '--out', at('o.npy'), '--lse', at('l.npy'), '--splits', '3'], { stdout: () => undefined, stderr: (l) => err.push(l), interactive: false });
    expect(code, err.join('\n')).toBe(0);
    const expected = referenceAttention(q, k, v, { pattern: DCA, rope });
    expect(maxAbsDifference(expected.out.data, decodeNpy(await readFile(at('o.npy'))).data)).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(expected.lse.data, decodeNpy(await readFile(at('l.npy'))).data)).toBeLessThanOrEqual(2e-4);
  });

  it('decodes at Qwen2.5-1M parameters over 262 200 keys (chunk 262144, window 8192, θ = 1e7, f16), contiguous and paged', async () => {
    // As the WGSL decode test: queries at positions 262197..262199 see the intra region (chunk 1) and
    // the successive region, whose query position is capped at C = 262144; keys rotate at up to
    // r(j) = 253951, in f16. The queries are larger than there (amplitude 6, logits of spread ~4), so
    // attention is peaked on a few keys among 262 200 and the output is far from zero: an error in a
    // rotation angle at these positions moves it.
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 262144, localWindow: 8192 });
    const qwenRope = { theta: 1e7, style: 'half' } as const;
    const keys = 262200;
    const q = randomTensor([1, 3, 4, 128], 91, 6);
    const k = randomTensor([1, keys, 1, 128], 92, 2);
    const v = randomTensor([1, keys, 1, 128], 93);
    const expected = referenceAttention(q, k, v, { pattern, rope: qwenRope, dtype: 'f16' });
    expect(Math.max(...expected.out.data.map(Math.abs))).toBeGreaterThan(0.2);
    const contiguous = await runMetalAttention({ q, k, v, pattern, rope: qwenRope, dtype: 'f16', emulate: true });
    expect(contiguous.plan).toMatchObject({ kind: 'decode', splits: 128, groupRows: 16 });
    expect(maxAbsDifference(expected.out.data, contiguous.out.data), 'contiguous').toBeLessThanOrEqual(2e-2);
    expect(maxAbsDifference(expected.lse.data, contiguous.lse.data), 'contiguous').toBeLessThanOrEqual(2e-2);

    // Sq 1 (the last query of the three: queries are bottom-right aligned) over the same keys in a
    // paged cache of 64-key blocks in shuffled order.
    const fixture = allocatePagedCache([keys], 64, 1, 128, 94);
    const lastQuery = { shape: [1, 1, 4, 128], data: q.data.slice(2 * 4 * 128) };
    const paged = await runMetalPagedAttention({
      q: lastQuery, kCache: fillPagedCache(fixture, [k]), vCache: fillPagedCache(fixture, [v]), layout: fixture.layout,
      pattern, rope: qwenRope, dtype: 'f16', emulate: true,
    });
    expect(paged.plan.kind).toBe('decode');
    expect(maxAbsDifference(expected.out.data.slice(2 * 4 * 128), paged.out.data), 'paged').toBeLessThanOrEqual(2e-2);
    expect(maxAbsDifference(expected.lse.data.filter((_, n) => n % 3 === 2), paged.lse.data), 'paged').toBeLessThanOrEqual(2e-2);
  }, 600_000);
});

describe('dcagen run --backend metal on a paged cache', () => {
  async function files(): Promise<{ dir: string; args: string[]; q: Tensor; kCache: Tensor; vCache: Tensor; fixture: PagedFixture }> {
    const dir = await makeTempDir('dcagen-metal-serving-');
    temps.push(dir);
    const inputs = pagedInputs([70, 33], 2, 8, [4, 2], 48, 17);
    const f32 = (t: Tensor): Tensor<Float64Array> => ({ shape: t.shape, data: Float64Array.from(Float32Array.from(t.data)) });
    const q = f32(inputs.q);
    const kCache = f32(fillPagedCache(inputs.fixture, inputs.ks));
    const vCache = f32(fillPagedCache(inputs.fixture, inputs.vs));
    await Promise.all([
      writeFile(join(dir, 'q.npy'), encodeNpy(q)), writeFile(join(dir, 'kc.npy'), encodeNpy(kCache)), writeFile(join(dir, 'vc.npy'), encodeNpy(vCache)),
      writeFile(join(dir, 'bt.npy'), encodeNpy(inputs.fixture.blockTable, '<i4')), writeFile(join(dir, 'sl.npy'), encodeNpy(inputs.fixture.seqLens, '<i4')),
    ]);
    const at = (name: string): string => join(dir, name);
    return {
      dir, q, kCache, vCache, fixture: inputs.fixture,
      args: ['--q', at('q.npy'), '--k-cache', at('kc.npy'), '--v-cache', at('vc.npy'), '--block-table', at('bt.npy'), '--seq-lens', at('sl.npy'), '--out', at('o.npy'), '--lse', at('l.npy')],
    };
  }

  it('runs decode with --emulate --splits 2 and writes the reference result', async () => {
    const f = await files();
    const r = await dcagen(['run', '--backend', 'metal', '--emulate', ...DCA_FLAGS, ...f.args, '--splits', '2']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/dcagen run: metal dca paged B=2 Sq=2 seq_lens=33\.\.70 block=8 Hq=4 Hk=2 D=48/);
    const expected = referencePagedAttention(f.q, f.kCache, f.vCache, f.fixture.layout, { pattern: DCA, rope });
    const out = decodeNpy(await readFile(join(f.dir, 'o.npy')));
    const lse = decodeNpy(await readFile(join(f.dir, 'l.npy')));
    expect(maxAbsDifference(expected.out.data, out.data)).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(expected.lse.data, lse.data)).toBeLessThanOrEqual(2e-4);
  });

  it('refuses a block table entry outside the cache with one line and exit 2, leaving no file', async () => {
    const f = await files();
    const bad = join(f.dir, 'bad-bt.npy');
    await writeFile(bad, encodeNpy({ shape: [2, 9], data: Float64Array.from([...Array(9).keys(), 0, 1000, 0, 0, 0, 0, 0, 0, 0]) }, '<i4'));
    const before = await listDir(f.dir);
    const args = f.args.map((a, k) => (f.args[k - 1] === '--block-table' ? bad : a));
    expectBadInput(await dcagen(['run', '--backend', 'metal', '--emulate', ...DCA_FLAGS, ...args]), /block table \[1\]\[1\] = 1000 is outside the cache's \d+ blocks/);
    expect(await listDir(f.dir)).toEqual(before);
  });

  it('without --emulate runs natively on macOS; elsewhere exits 2 with one line pointing to --emulate', async () => {
    const f = await files();
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['run', '--backend', 'metal', ...DCA_FLAGS, ...f.args], { stdout: (l) => out.push(l), stderr: (l) => err.push(l), interactive: false });
    if (process.platform === 'darwin') {
      expect(code, err.join('\n')).toBe(0);
      return;
    }
    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain(METAL_UNAVAILABLE);
  });
});

describe('emitted Metal serving entry points', () => {
  it('the fused set has the serving kernels, the Swift host their modes, the MLX module append_to_cache and paged_attention', () => {
    const set = setFor(DCA, 64, 'f16', true);
    const serving = set.serving!;
    const [metal, swift, mlx] = set.files.map((f) => f.contents) as [string, string, string];
    for (const [role, kernel] of [
      ['cache_append', serving.cacheAppend], ['paged_decode', serving.decode], ['paged_merge', serving.merge], ['paged_prefill', serving.prefill],
      ['decode', serving.contiguousDecode], ['decode_merge', serving.contiguousMerge],
    ] as const) {
      expect(metal).toContain(`kernel void ${kernel!}(`);
      expect(swift).toContain(`"${role}": "${kernel!}"`);
    }
    expect(metal).toContain('static constant constexpr const bool KEYS_PRE_ROTATED = true;');
    expect(metal).toContain('simd_max(score)');
    // One split-K body, instantiated for both K/V layouts; one merge of a row.
    expect(metal).toContain('template <class Rows>\ninline void decode_split(');
    expect(metal).toContain('decode_split(g, s, r, rows, q, k_cache, v_cache,');
    expect(metal).toContain('decode_split(g, s, r, rows, q, k, v,');
    expect(metal.match(/inline void merge_row\(/g)).toHaveLength(1);
    expect(swift).toMatch(/if mode == "paged" \{ runPaged\(\) \}/);
    expect(swift).toContain('let kind = requestedKind == "auto" ? (hasDecode && queries <= decodeMaxQueries ? "decode" : "prefill") : requestedKind');
    expect(mlx).toContain('def append_to_cache(key, value, key_cache, value_cache, slot_mapping, positions, *, chunk_size, local_window,');
    expect(mlx).toContain('def paged_attention(q, key_cache, value_cache, block_table, seq_lens, *, chunk_size, local_window,');
    expect(mlx).toContain('original_max_position=None, splits=None, cu_seqlens_q=None):');
    expect(mlx).toContain('return decode_attention(q, k, v, rope, attention_params, splits)');
    const threePass = emitMetal(DCA, metalKernelConfig({ headDim: 64, dtype: 'f16' }), { variant: 'three-pass' });
    expect(threePass.serving).toBeUndefined();
    expect(threePass.source).not.toContain('paged_decode');
    // No cache append where keys sit at region-specific positions; paged attention on raw keys remains.
    const rerope = setFor(REROPE, 32, 'f32', false);
    expect(rerope.serving?.cacheAppend).toBeUndefined();
    expect(rerope.source).not.toContain('cache_append(');
    expect(rerope.serving?.decode).toBeDefined();
  });

  it('gives an MLX module that routes calls and sizes launches as the runner plans them (mlx stubbed, recording launches)', async () => {
    const dir = await makeTempDir('dcagen-metal-mlx-routing-');
    temps.push(dir);
    await mkdir(join(dir, 'stubs', 'mlx'), { recursive: true });
    await writeFile(join(dir, 'stubs', 'mlx', '__init__.py'), '');
    // A stand-in for mlx.core over NumPy: metal_kernel returns a callable that records its launch and
    // returns zero outputs of the requested shapes.
    await writeFile(join(dir, 'stubs', 'mlx', 'core.py'), [
      'import numpy as np',
      'float16, float32, bfloat16, int32 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float32), np.dtype(np.int32)',
      'launches = []',
      'def array(x, dtype=None):',
      '    return np.array(x, dtype=dtype)',
      'class _Kernel:',
      '    def __init__(self, name, input_names, output_names, source, header):',
      '        self.name, self.inputs = name, input_names',
      '    def __call__(self, inputs, output_shapes, output_dtypes, grid, threadgroup):',
      '        params = np.asarray(inputs[self.inputs.index("params")]).reshape(-1)',
      '        launches.append({"kernel": self.name.split("_mlx_")[1], "grid": list(grid), "threadgroup": list(threadgroup),',
      '                         "params": [int(x) for x in params], "shapes": [list(s) for s in output_shapes]})',
      '        return [np.zeros(s, dtype=d) for s, d in zip(output_shapes, output_dtypes)]',
      'class fast:',
      '    metal_kernel = _Kernel',
      '',
    ].join('\n'));
    const set = setFor(DCA, 64, 'f16', true);
    for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
    const module = set.mlxFile.replace(/\.py$/, '');
    const script = [
      'import json, sys',
      `sys.path[:0] = [${JSON.stringify(join(dir, 'stubs'))}, ${JSON.stringify(dir)}]`,
      'import numpy as np',
      'import mlx.core as mx',
      `import ${module} as m`,
      'h = lambda *shape: np.zeros(shape, dtype=np.float16)',
      'calls = {}',
      'def record(label, run):',
      '    mx.launches.clear()',
      '    run()',
      '    calls[label] = list(mx.launches)',
      'p = dict(chunk_size=40, local_window=9)',
      'record("contiguous auto", lambda: m.dca_attention(h(2, 3, 8, 64), h(2, 150, 2, 64), h(2, 150, 2, 64), **p))',
      'record("contiguous splits 5", lambda: m.dca_attention(h(2, 3, 8, 64), h(2, 150, 2, 64), h(2, 150, 2, 64), splits=5, **p))',
      'record("contiguous Sq 17", lambda: m.dca_attention(h(1, 17, 8, 64), h(1, 60, 2, 64), h(1, 60, 2, 64), **p))',
      'cache, table, lens = h(40, 16, 2, 64), np.arange(40, dtype=np.int32).reshape(4, 10), np.array([150, 77, 95, 40], dtype=np.int32)',
      'cu = np.array([0, 3, 4, 20, 22], dtype=np.int32)',
      'record("varlen splits 3", lambda: m.paged_attention(h(22, 8, 64), cache, cache, table, lens, cu_seqlens_q=cu, splits=3, **p))',
      'record("paged Sq 20", lambda: m.paged_attention(h(4, 20, 8, 64), cache, cache, table, lens, **p))',
      'print(json.dumps(calls))',
    ].join('\n');
    const py = await execa('python3', ['-c', script], { reject: false, all: true });
    expect(py.exitCode, py.all).toBe(0);
    type Launch = { kernel: string; grid: number[]; threadgroup: number[]; params: number[]; shapes: number[][] };
    const calls = JSON.parse(py.stdout) as Record<string, Launch[]>;
    const serving = set.serving!;
    const decodeLaunch = (plan: { splits: number; groupRows: number; rowBlocks: number }, keyHeads: number, batch: number) => ({
      grid: [plan.splits * 32 * plan.groupRows, keyHeads * plan.rowBlocks, batch], threadgroup: [32 * plan.groupRows, 1, 1],
    });
    // Contiguous, Sq 3: split-K decode as the runner plans it (one split: no merge), then forced 5 splits + the merge.
    const auto = metalCallPlan(serving, { batch: 2, queries: 3, queryHeads: 8, keyHeads: 2, maxKeys: 150 });
    expect(calls['contiguous auto']!.map((l) => l.kernel)).toEqual(auto.splits > 1 ? ['decode', 'decode_merge'] : ['decode']);
    expect(calls['contiguous auto']![0]).toMatchObject({ ...decodeLaunch(auto, 2, 2), params: expect.arrayContaining([auto.splits, auto.splitKeys, auto.groupRows]) });
    const five = metalCallPlan(serving, { batch: 2, queries: 3, queryHeads: 8, keyHeads: 2, maxKeys: 150 }, { splits: 5 });
    expect(calls['contiguous splits 5']!.map((l) => l.kernel)).toEqual(['decode', 'decode_merge']);
    expect(calls['contiguous splits 5']![0]).toMatchObject(decodeLaunch(five, 2, 2));
    expect(calls['contiguous splits 5']![0]!.params.slice(6)).toEqual([5, five.splitKeys, five.groupRows]);
    expect(calls['contiguous Sq 17']!.map((l) => l.kernel)).toEqual(['fused']);
    // Varlen: the largest count (16) sizes the grid; total_queries (22) packs out and lse.
    const varlen = metalCallPlan(serving, { batch: 4, queries: 16, queryHeads: 8, keyHeads: 2, maxKeys: 150 }, { splits: 3 });
    expect(calls['varlen splits 3']!.map((l) => l.kernel)).toEqual(['paged_decode', 'paged_merge']);
    expect(calls['varlen splits 3']![0]).toMatchObject({ ...decodeLaunch(varlen, 2, 4), shapes: [[22, 8, 64], [8, 22], [3 * 4 * 16 * 8 * 65]] });
    expect(calls['varlen splits 3']![0]!.params.slice(8)).toEqual([3, varlen.splitKeys, varlen.groupRows, 22]);
    expect(calls['paged Sq 20']!.map((l) => l.kernel)).toEqual(['paged_prefill']);
    expect(calls['paged Sq 20']![0]!.params[11]).toBe(0);
  });

  it('gives MLX serving bodies that compile against the .metal with the signatures MLX generates, in a module that compiles', async () => {
    const dir = await makeTempDir('dcagen-metal-mlx-serving-');
    temps.push(dir);
    await mkdir(join(dir, 'stubs', 'mlx'), { recursive: true });
    await mkdir(join(dir, 'stubs', 'numpy'), { recursive: true });
    await writeFile(join(dir, 'stubs', 'mlx', '__init__.py'), '');
    await writeFile(join(dir, 'stubs', 'mlx', 'core.py'), 'float16 = "float16_t"\nbfloat16 = "bfloat16_t"\nfloat32 = "float"\nint32 = "int32_t"\nfast = None\n');
    await writeFile(join(dir, 'stubs', 'numpy', '__init__.py'), '');
    const attributes = ['simdgroup_index_in_threadgroup', 'thread_index_in_simdgroup', 'thread_index_in_threadgroup', 'threadgroup_position_in_grid'];
    for (const set of [setFor(DCA, 64, 'f16', true), setFor(REROPE, 32, 'f32', false)]) {
      for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
      const file = join(dir, set.mlxFile);
      const compiled = await execa('python3', ['-m', 'py_compile', file], { reject: false, all: true });
      expect(compiled.exitCode, compiled.all).toBe(0);
      const module = set.mlxFile.replace(/\.py$/, '');
      const py = await execa('python3', ['-c', `import json, sys\nsys.path[:0] = [${JSON.stringify(join(dir, 'stubs'))}, ${JSON.stringify(dir)}]\nimport ${module} as m\nprint(json.dumps([m.DTYPE, m.serving_kernel_sources()]))`], { reject: false, all: true });
      expect(py.exitCode, py.all).toBe(0);
      const [typeName, sources] = JSON.parse(py.stdout) as [string, Record<string, [string[], string[], string]>];
      const labels = ['decode', 'decode_merge', 'paged_decode', 'paged_merge', 'paged_prefill'];
      expect(Object.keys(sources).sort()).toEqual(set.serving!.cacheAppend !== undefined ? [...labels, 'rotate_new_keys'] : labels);
      const element = (name: string): string => (['q', 'k', 'v', 'k_cache', 'v_cache', 'out', 'rotated'].includes(name) ? typeName
        : ['params', 'block_table', 'seq_lens', 'cu_seqlens_q', 'positions', 'lengths'].includes(name) ? 'int32_t' : 'float');
      const kernels = Object.entries(sources).map(([label, [inputs, outputs, body]]) => {
        const params = [
          ...inputs.map((n, i) => `  const ${n === 'params' ? 'constant' : 'device'} ${element(n)}* ${n} [[buffer(${i})]]`),
          ...outputs.map((n, i) => `  device ${element(n)}* ${n} [[buffer(${inputs.length + i})]]`),
          ...attributes.filter((a) => body.includes(a)).map((a) => `  uint${a === 'threadgroup_position_in_grid' ? '3' : ''} ${a} [[${a}]]`),
        ];
        return `[[kernel]] void custom_kernel_${label}(\n${params.join(',\n')}) {\n${body}}\n`;
      });
      const cpp = join(dir, `${set.name}-mlx-serving.cpp`);
      await writeFile(cpp, `#include <metal_stdlib>\nusing namespace metal;\ntypedef half float16_t;\ntypedef bfloat bfloat16_t;\n#include "${set.fileName}"\n${kernels.join('\n')}`);
      const cc = await execa(CXX, [...emulationCompileArgs(ROOT), '-fsyntax-only', '-I', dir, cpp], { reject: false, all: true });
      expect(cc.exitCode, cc.all).toBe(0);
    }
  });
});
