// The CUDA serving kernels (cache append, paged attention: split-K decode and paged prefill, packed
// varlen rows; split-K decode of contiguous K/V through the forward launcher) on the CPU emulation
// against the serving reference (src/reference/kv-cache.ts) and the dense reference, nvcc's resource
// report for them, and `dcagen run --backend cuda --emulate` over a paged cache. Caches hold sequences of
// different lengths in shuffled physical blocks, with a DCA chunk length (40 − 9 = 31) that no block
// size divides. Each kernel set is compiled once (the runner caches harnesses by content) and
// reused by every case of its dtype and key form.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaKernelConfig, emitCuda } from '../src/backends/cuda/emit.js';
import { ptxasReport } from '../src/backends/cuda/report.js';
import { nativeCudaAvailable, runCudaAttention, runCudaCacheAppend, runCudaPagedAttention } from '../src/backends/cuda/runner.js';
import { compilePattern, type CompiledPattern } from '../src/dsl/instantiate.js';
import { ConfigurationError, ShapeError, UsageError } from '../src/errors.js';
import { runAttention, type PagedAttentionRequest } from '../src/execute.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { preRotateKeys, referenceAttention } from '../src/reference/attention.js';
import { referenceAppendToCache, referencePagedAttention } from '../src/reference/kv-cache.js';
import { roundArray, type StorageDType } from '../src/reference/precision.js';
import { randomTensor, tolerance } from '../src/verify/cases.js';
import { allocatePagedCache, fillPagedCache, type PagedFixture } from '../src/verify/paged-cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';
import { ROOT, dcagen, expectBadInput } from './helpers/cli.js';
import { listDir, makeTempDir } from './helpers/tensors.js';

const dca = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
const rope = { theta: 10000, style: 'half' as const };
const [HQ, HK, D] = [6, 2, 32];   // GQA: three query heads per KV head
const LENS = [100, 57];
const ORIGINAL_MAX_POSITION = 30;  // Qwen factor s(n) > 1 for both sequences

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

interface PagedCase {
  readonly fixture: PagedFixture;
  readonly q: Tensor<Float64Array>;
  /** Raw keys and values per sequence, (1, n, HK, D), rounded to the storage type. */
  readonly ks: Tensor[];
  readonly vs: Tensor[];
  readonly kCache: Tensor<Float64Array>;
  readonly vCache: Tensor<Float64Array>;
}

function pagedCase(queries: number, blockSize: number, dtype: StorageDType, seed: number): PagedCase {
  const fixture = allocatePagedCache(LENS, blockSize, HK, D, seed, 1);
  const round = (t: Tensor<Float64Array>): Tensor => ({ shape: t.shape, data: roundArray(dtype, t.data) });
  const ks = LENS.map((n, b) => round(randomTensor([1, n, HK, D], seed + 10 * b + 1)));
  const vs = LENS.map((n, b) => round(randomTensor([1, n, HK, D], seed + 10 * b + 2)));
  return { fixture, q: randomTensor([LENS.length, queries, HQ, D], seed + 3), ks, vs, kCache: fillPagedCache(fixture, ks), vCache: fillPagedCache(fixture, vs) };
}

function request(c: PagedCase, dtype: StorageDType, extra: Partial<PagedAttentionRequest> = {}, pattern: CompiledPattern = dca): PagedAttentionRequest {
  return { q: c.q, kCache: c.kCache, vCache: c.vCache, layout: c.fixture.layout, pattern, rope, dtype, emulate: true, ...extra };
}

async function pagedError(req: PagedAttentionRequest, options: Parameters<typeof runCudaPagedAttention>[1] = {}): Promise<{ out: number; lse: number; splits: number }> {
  const expected = referencePagedAttention(req.q, req.kCache, req.vCache, req.layout, {
    pattern: req.pattern, rope: req.rope, dtype: req.dtype, preRotatedKeys: req.preRotatedKeys ?? false,
    ...(req.originalMaxPosition !== undefined ? { originalMaxPosition: req.originalMaxPosition } : {}),
    ...(req.cuSeqlensQ !== undefined ? { cuSeqlensQ: req.cuSeqlensQ } : {}),
  });
  const got = await runCudaPagedAttention(req, options);
  return { out: maxAbsDifference(expected.out.data, got.out.data), lse: maxAbsDifference(expected.lse.data, got.lse.data), splits: got.splits };
}

/** Every key of every sequence as append tokens (position j, slot of j, length n), in an interleaved order. */
function appendAll(c: PagedCase): { k: Tensor; v: Tensor; positions: number[]; slots: number[]; lengths: number[] } {
  const tokens: Array<[number, number]> = [];
  for (let j = 0; j < Math.max(...LENS); j++) LENS.forEach((n, b) => { if (j < n) tokens.push([b, j]); });
  const row = HK * D;
  const k = new Float64Array(tokens.length * row);
  const v = new Float64Array(tokens.length * row);
  tokens.forEach(([b, j], t) => {
    k.set(c.ks[b]!.data.subarray(j * row, (j + 1) * row), t * row);
    v.set(c.vs[b]!.data.subarray(j * row, (j + 1) * row), t * row);
  });
  return {
    k: { shape: [tokens.length, HK, D], data: k },
    v: { shape: [tokens.length, HK, D], data: v },
    positions: tokens.map(([, j]) => j),
    slots: tokens.map(([b, j]) => c.fixture.slot(b, j)),
    lengths: tokens.map(([b]) => LENS[b]!),
  };
}

describe('CUDA cache append (emulated) against the reference', () => {
  it.each(['f32', 'f16'] as const)('%s: rotated, Qwen-scaled keys and copied values in their slots; padding skipped; other slots untouched', async (dtype) => {
    const fixture = allocatePagedCache([100, 70], 16, HK, D, 11, 1);
    const cells = fixture.cache.numBlocks * 16 * HK * D;
    const shape = [fixture.cache.numBlocks, 16, HK, D];
    // The cache holds older entries: the write must leave every slot it does not name as it was.
    const kCache = { shape, data: Float64Array.from(roundArray(dtype, randomTensor([cells], 1).data)) };
    const vCache = { shape, data: Float64Array.from(roundArray(dtype, randomTensor([cells], 2).data)) };
    const tokens = [[0, 3], [0, 57], [0, 99], [1, 0], [1, 41], [1, 69], [0, 42]] as const;   // the last one is padding
    const k = { shape: [tokens.length, HK, D], data: roundArray(dtype, randomTensor([tokens.length * HK * D], 3).data) };
    const v = { shape: [tokens.length, HK, D], data: roundArray(dtype, randomTensor([tokens.length * HK * D], 4).data) };
    const positions = tokens.map(([, j]) => j);
    const slotMapping = tokens.map(([b, j], t) => (t === tokens.length - 1 ? -1 : fixture.slot(b, j)));
    const lengths = tokens.map(([b]) => (b === 0 ? 100 : 70));
    const got = await runCudaCacheAppend({ kCache, vCache, k, v, positions, slotMapping, lengths, pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, dtype, emulate: true });
    const expectedK = { shape, data: Float64Array.from(kCache.data) };
    const expectedV = { shape, data: Float64Array.from(vCache.data) };
    referenceAppendToCache(expectedK, expectedV, k, v, positions, slotMapping, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, lengths });
    // One rounding of the rotated key to the storage type: a few units in its last place.
    expect(maxAbsDifference(roundArray(dtype, expectedK.data), got.kCache.data)).toBeLessThanOrEqual(dtype === 'f16' ? 4e-3 : 2e-6);
    expect(maxAbsDifference(expectedV.data, got.vCache.data)).toBe(0);
    // Slots no token names are bit-identical to the cache before the write.
    const written = new Set(slotMapping.filter((s) => s >= 0));
    const row = HK * D;
    let untouched = 0;
    for (let slot = 0; slot < cells / row; slot++) {
      if (written.has(slot)) continue;
      expect(maxAbsDifference(kCache.data.subarray(slot * row, (slot + 1) * row), got.kCache.data.subarray(slot * row, (slot + 1) * row))).toBe(0);
      untouched++;
    }
    expect(untouched).toBe(cells / row - written.size);
  });

  it('refuses patterns whose regions place keys at their own positions (ConfigurationError)', async () => {
    const rerope = compilePattern(builtinPattern('rerope'), { window: 16 });
    const cache = { shape: [2, 8, HK, D], data: new Float64Array(2 * 8 * HK * D) };
    const k = { shape: [1, HK, D], data: new Float64Array(HK * D) };
    const call = runCudaCacheAppend({ kCache: cache, vCache: cache, k, v: k, positions: [0], slotMapping: [0], pattern: rerope, rope, dtype: 'f32', emulate: true });
    await expect(call).rejects.toThrow(ConfigurationError);
    await expect(call).rejects.toThrow(/rerope cannot use a rotated KV cache: region clamped places keys at its own position/);
    const paged = runCudaPagedAttention(request(pagedCase(1, 8, 'f32', 5), 'f32', { preRotatedKeys: true }, rerope));
    await expect(paged).rejects.toThrow(ConfigurationError);
  });
});

describe('CUDA paged attention (emulated) against the reference', () => {
  it.each([
    [1, 8], [1, 16], [1, 64],
    [3, 8], [3, 16], [3, 64],
    [16, 8], [16, 16], [16, 64],
  ] as const)('decode, raw keys rotated on load, f32: Sq %i, block size %i', async (queries, blockSize) => {
    const e = await pagedError(request(pagedCase(queries, blockSize, 'f32', 100 + queries + blockSize), 'f32', { originalMaxPosition: ORIGINAL_MAX_POSITION }));
    expect(e.out).toBeLessThanOrEqual(2e-4);
    expect(e.lse).toBeLessThanOrEqual(2e-4);
  });

  it('forced splits 1..8 agree with each other and with the reference (partials + LSE merge)', async () => {
    const c = pagedCase(3, 16, 'f32', 31);
    const outs: Float32Array[] = [];
    for (const splits of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const req = request(c, 'f32', { splits });
      const got = await runCudaPagedAttention(req);
      expect(got.splits).toBe(splits);
      outs.push(got.out.data as Float32Array);
      const e = await pagedError(req);
      expect(e.out, `${splits} splits`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `${splits} splits`).toBeLessThanOrEqual(2e-4);
    }
    for (const out of outs.slice(1)) expect(maxAbsDifference(outs[0]!, out)).toBeLessThanOrEqual(1e-6);
  });

  it('chooses splits from the work: a short decode call runs unsplit, a long one splits its keys (at least 512 keys each)', async () => {
    // 2 sequences × 2 KV heads = 4 blocks: below the GPU's fill target, but no split under 512 keys.
    const small = await runCudaPagedAttention(request(pagedCase(1, 16, 'f32', 41), 'f32'));
    expect(small.splits).toBe(1);
    const fixture = allocatePagedCache([1500, 1100], 64, HK, D, 43);
    const ks = [1500, 1100].map((n, b) => randomTensor([1, n, HK, D], 44 + b));
    const vs = [1500, 1100].map((n, b) => randomTensor([1, n, HK, D], 46 + b));
    const req: PagedAttentionRequest = {
      q: randomTensor([2, 1, HQ, D], 48), kCache: fillPagedCache(fixture, ks), vCache: fillPagedCache(fixture, vs),
      layout: fixture.layout, pattern: dca, rope, dtype: 'f32', emulate: true,
    };
    const e = await pagedError(req);
    expect(e.splits).toBe(3);   // ⌈1500 / 512⌉ splits of 512 keys
    expect(e.out).toBeLessThanOrEqual(2e-4);
  });

  it('pre-rotated keys written by the CUDA cache append, Qwen factor: decode Sq 1 and 3, block size 8 (f32)', async () => {
    for (const queries of [1, 3]) {
      const c = pagedCase(queries, 8, 'f32', 51 + queries);
      const tokens = appendAll(c);
      const empty = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
      const appended = await runCudaCacheAppend({
        kCache: empty, vCache: empty, k: tokens.k, v: tokens.v, positions: tokens.positions, slotMapping: tokens.slots, lengths: tokens.lengths,
        pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, dtype: 'f32', emulate: true,
      });
      const kCache = { shape: c.kCache.shape, data: Float64Array.from(appended.kCache.data) };
      const vCache = { shape: c.kCache.shape, data: Float64Array.from(appended.vCache.data) };
      // The reference reads the same cache as pre-rotated; and it equals its own append of the raw keys.
      const e = await pagedError(request({ ...c, kCache, vCache }, 'f32', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(e.out, `Sq ${queries}`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `Sq ${queries}`).toBeLessThanOrEqual(2e-4);
      const raw = referencePagedAttention(c.q, c.kCache, c.vCache, c.fixture.layout, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION });
      const viaAppend = await runCudaPagedAttention(request({ ...c, kCache, vCache }, 'f32', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(maxAbsDifference(raw.out.data, viaAppend.out.data), 'pre-rotated cache = raw cache').toBeLessThanOrEqual(2e-4);
    }
  });

  it('f16, pre-rotated cache, Qwen factor: decode Sq 16, block size 16, 2 splits', async () => {
    const c = pagedCase(16, 16, 'f16', 61);
    const tokens = appendAll(c);
    const kCache = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    const vCache = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    referenceAppendToCache(kCache, vCache, tokens.k, tokens.v, tokens.positions, tokens.slots, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, lengths: tokens.lengths });
    const rounded = { shape: kCache.shape, data: Float64Array.from(roundArray('f16', kCache.data)) };
    const e = await pagedError(request({ ...c, kCache: rounded, vCache }, 'f16', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION, splits: 2 }));
    expect(e.out).toBeLessThanOrEqual(tolerance('f16'));
    expect(e.lse).toBeLessThanOrEqual(tolerance('f16'));
  });

  it('bf16, raw keys of a pattern with per-region key positions (ReRoPE): Sq 3, block size 64, 2 splits', async () => {
    const rerope = compilePattern(builtinPattern('rerope'), { window: 20 });
    const e = await pagedError(request(pagedCase(3, 64, 'bf16', 71), 'bf16', { splits: 2 }, rerope));
    expect(e.out).toBeLessThanOrEqual(tolerance('bf16'));
    expect(e.lse).toBeLessThanOrEqual(tolerance('bf16'));
  });

  it('paged prefill (Sq 40 > the rows of a block: query blocks of one head), f32, block size 16, unsplit and 2 splits', async () => {
    const c = pagedCase(40, 16, 'f32', 81);
    for (const splits of [1, 2]) {
      const e = await pagedError(request(c, 'f32', { splits, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(e.out, `${splits} splits`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `${splits} splits`).toBeLessThanOrEqual(2e-4);
    }
  });

  it('gathers K/V element by element where rows are not whole 16-byte pieces (f16, d 36): paged and contiguous decode, raw keys', async () => {
    // 36 f16 elements are 72 bytes: the kernel compiles only its element-wise gather (and rotation on load).
    const d36 = 36;
    const fixture = allocatePagedCache(LENS, 16, HK, d36, 401);
    const ks = LENS.map((n, b) => ({ shape: [1, n, HK, d36], data: roundArray('f16', randomTensor([1, n, HK, d36], 402 + b).data) }));
    const vs = LENS.map((n, b) => randomTensor([1, n, HK, d36], 404 + b));
    const req: PagedAttentionRequest = {
      q: randomTensor([LENS.length, 3, HQ, d36], 406), kCache: fillPagedCache(fixture, ks), vCache: fillPagedCache(fixture, vs),
      layout: fixture.layout, pattern: dca, rope, dtype: 'f16', emulate: true, splits: 2,
    };
    const e = await pagedError(req);
    expect(e.out).toBeLessThanOrEqual(tolerance('f16'));
    expect(e.lse).toBeLessThanOrEqual(tolerance('f16'));
    const q = randomTensor([1, 3, HQ, d36], 407);
    const got = await runCudaAttention({ q, k: ks[1]!, v: vs[1]!, pattern: dca, rope, dtype: 'f16', emulate: true, splits: 2 });
    const expected = referenceAttention(q, ks[1]!, vs[1]!, { pattern: dca, rope, dtype: 'f16' });
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(tolerance('f16'));
  });

  it('is independent of the order the emulator runs threads in (forward, reverse, shuffle)', async () => {
    const req = request(pagedCase(3, 8, 'f32', 91), 'f32', { splits: 2 });
    for (const schedule of ['forward', 'reverse', 'shuffle'] as const) {
      const e = await pagedError(req, { schedule });
      expect(e.out, schedule).toBeLessThanOrEqual(2e-4);
    }
  });
});

describe('CUDA chunked prefill / varlen over the paged cache (emulated): cu_seqlens_q', () => {
  // Three sequences in shuffled blocks of 16; DCA chunk length 31. Sequence 2's rows 35..74 (a chunk
  // of a chunked prefill) cross the chunk boundary at 62; sequence 0 decodes one token.
  const lens = [100, 57, 75];
  const [hq, hk, d] = [8, 2, 32];   // GQA: four query heads per KV head; MAX_ROWS = 32 at d 32
  const fixture = allocatePagedCache(lens, 16, hk, d, 201, 1);
  const ks = lens.map((n, b) => randomTensor([1, n, hk, d], 210 + b));
  const vs = lens.map((n, b) => randomTensor([1, n, hk, d], 220 + b));
  const kCache = fillPagedCache(fixture, ks);
  const vCache = fillPagedCache(fixture, vs);
  const packedRequest = (counts: readonly number[], extra: Partial<PagedAttentionRequest> = {}): PagedAttentionRequest => {
    const cuSeqlensQ = Int32Array.from([0, ...counts.map((_, b) => counts.slice(0, b + 1).reduce((x: number, y: number) => x + y, 0))]);
    const q = randomTensor([cuSeqlensQ[counts.length]!, hq, d], 230 + counts.length);
    return { q, kCache, vCache, layout: fixture.layout, pattern: dca, rope, dtype: 'f32', emulate: true, cuSeqlensQ, originalMaxPosition: ORIGINAL_MAX_POSITION, ...extra };
  };

  it.each([
    [[1, 12, 40], 1], [[1, 12, 40], 3],   // prefill-sized blocks (40 > 32 rows), unsplit and split
    [[1, 3, 16], 0], [[16, 0, 5], 2],     // decode-sized blocks; a sequence with no rows
  ] as const)('query rows %j, splits %i (0: chosen)', async (counts, splits) => {
    const req = packedRequest(counts, splits > 0 ? { splits } : {});
    const got = await runCudaPagedAttention(req);
    const total = counts.reduce((x: number, y: number) => x + y, 0);
    expect(got.out.shape).toEqual([total, hq, d]);
    expect(got.lse.shape).toEqual([hq, total]);
    if (splits > 0) expect(got.splits).toBe(splits);
    const e = await pagedError(req);
    expect(e.out).toBeLessThanOrEqual(2e-4);
    expect(e.lse).toBeLessThanOrEqual(2e-4);
  });

  it('equals fixed-row paged attention when every sequence has the same count (pre-rotated cache, f16)', async () => {
    const c = pagedCase(5, 8, 'f16', 241);
    const tokens = appendAll(c);
    const rotatedK = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    const rotatedV = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    referenceAppendToCache(rotatedK, rotatedV, tokens.k, tokens.v, tokens.positions, tokens.slots, { pattern: dca, rope });
    const fixed = request({ ...c, kCache: { shape: rotatedK.shape, data: Float64Array.from(roundArray('f16', rotatedK.data)) }, vCache: rotatedV }, 'f16', { preRotatedKeys: true, splits: 2 });
    const packed = { ...fixed, q: { shape: [LENS.length * 5, HQ, D], data: c.q.data }, cuSeqlensQ: Int32Array.from([0, 5, 10]) };
    const [a, b] = [await runCudaPagedAttention(fixed), await runCudaPagedAttention(packed)];
    expect(maxAbsDifference(a.out.data, b.out.data)).toBe(0);
    // (B, Hq, Sq) and (Hq, total_q) hold the same values in a different order.
    const lseFixed = (bIndex: number, h: number, r: number): number => a.lse.data[(bIndex * HQ + h) * 5 + r]!;
    for (let bIndex = 0; bIndex < LENS.length; bIndex++) {
      for (let h = 0; h < HQ; h++) for (let r = 0; r < 5; r++) expect(b.lse.data[h * 10 + bIndex * 5 + r]).toBe(lseFixed(bIndex, h, r));
    }
    const e = await pagedError(packed);
    expect(e.out).toBeLessThanOrEqual(tolerance('f16'));
  });

  it('refuses inconsistent cu_seqlens_q with one-line shape errors', async () => {
    const req = packedRequest([1, 12, 40]);
    await expect(runCudaPagedAttention({ ...req, cuSeqlensQ: Int32Array.from([0, 1, 13]) })).rejects.toThrow(ShapeError);
    await expect(runCudaPagedAttention({ ...req, cuSeqlensQ: Int32Array.from([0, 13, 1, 53]) })).rejects.toThrow(/decreases at sequence 1/);
    const long = [0, 1, 60, 53 + 6];   // sequence 1 (57 keys) given 59 queries
    await expect(runCudaPagedAttention({ ...req, q: randomTensor([59, hq, d], 1), cuSeqlensQ: Int32Array.from(long) })).rejects.toThrow(/sequence 1 has 57 keys, fewer than its 59 queries/);
  });
});

describe('CUDA split-K decode of contiguous K/V (emulated): the forward launcher routes Sq <= 16 to it', () => {
  const half = { theta: 10000, style: 'half' as const };
  const contiguous = (queries: number, keys: number, seed: number) => ({
    q: randomTensor([2, queries, 8, 32], seed), k: randomTensor([2, keys, 2, 32], seed + 1), v: randomTensor([2, keys, 2, 32], seed + 2),
  });

  it('forced splits 1..8 agree with each other, with the prefill kernel and with the reference (Sq 3 across the chunk boundary at 124, GQA 8/2, batch 2)', async () => {
    const t = contiguous(3, 125, 301);
    const call = { ...t, pattern: dca, rope: half, dtype: 'f32' as const, emulate: true, originalMaxPosition: ORIGINAL_MAX_POSITION };
    const expected = referenceAttention(t.q, t.k, t.v, { pattern: dca, rope: half, dtype: 'f32', originalMaxPosition: ORIGINAL_MAX_POSITION });
    // The prefill kernel over a call of 20 queries whose last 3 are these (queries are bottom-right aligned).
    const q20 = randomTensor([2, 20, 8, 32], 305);
    for (let b = 0; b < 2; b++) q20.data.set(t.q.data.subarray(b * 3 * 8 * 32, (b + 1) * 3 * 8 * 32), (b * 20 + 17) * 8 * 32);
    const prefill = await runCudaAttention({ ...call, q: q20 });
    expect(prefill.splits).toBeUndefined();
    const prefillLast3 = new Float64Array(t.q.data.length);
    for (let b = 0; b < 2; b++) prefillLast3.set(prefill.out.data.subarray((b * 20 + 17) * 8 * 32, (b + 1) * 20 * 8 * 32), b * 3 * 8 * 32);
    const runs = [];
    for (let splits = 1; splits <= 8; splits++) runs.push(await runCudaAttention({ ...call, splits }));
    for (const [n, run] of runs.entries()) {
      expect(run.splits, `splits ${n + 1}`).toBe(n + 1);
      expect(maxAbsDifference(expected.out.data, run.out.data), `splits ${n + 1}`).toBeLessThanOrEqual(2e-4);
      expect(maxAbsDifference(expected.lse.data, run.lse.data), `splits ${n + 1}`).toBeLessThanOrEqual(2e-4);
      expect(maxAbsDifference(runs[0]!.out.data, run.out.data), `splits ${n + 1} vs 1`).toBeLessThanOrEqual(1e-6);
      expect(maxAbsDifference(prefillLast3, run.out.data), `splits ${n + 1} vs prefill`).toBeLessThanOrEqual(1e-5);
    }
    // Through runAttention (the library and CLI path), --splits is accepted for Sq <= 16.
    const viaLibrary = await runAttention('cuda', { ...call, splits: 4 });
    expect(maxAbsDifference(runs[3]!.out.data, viaLibrary.out.data)).toBe(0);
  });

  it('runs Sq 1 and 16 through *_launch (split count chosen by the launcher), f16, pre-rotated and raw keys; Sq 17 runs the prefill kernel', async () => {
    for (const [queries, preRotatedKeys] of [[1, false], [16, true]] as const) {
      const t = contiguous(queries, 140, 310 + queries);
      const k = preRotatedKeys ? preRotateKeys({ shape: t.k.shape, data: roundArray('f16', t.k.data) }, dca, half) : t.k;
      const got = await runCudaAttention({ ...t, k, pattern: dca, rope: half, dtype: 'f16', emulate: true, preRotatedKeys });
      expect(got.splits, `Sq ${queries}`).toBe(1);   // 2 × 2 row blocks × 140 keys: under 512 keys per split
      const expected = referenceAttention(t.q, t.k, t.v, { pattern: dca, rope: half, dtype: 'f16' });
      expect(maxAbsDifference(expected.out.data, got.out.data), `Sq ${queries}`).toBeLessThanOrEqual(tolerance('f16'));
      expect(maxAbsDifference(expected.lse.data, got.lse.data), `Sq ${queries}`).toBeLessThanOrEqual(tolerance('f16'));
    }
    const prefill = await runCudaAttention({ ...contiguous(17, 140, 330), pattern: dca, rope: half, dtype: 'f32', emulate: true });
    expect(prefill.splits).toBeUndefined();
    await expect(runAttention('cuda', { ...contiguous(17, 140, 330), pattern: dca, rope: half, dtype: 'f32', emulate: true, splits: 2 })).rejects.toThrow(UsageError);
  });

  it('decodes at Qwen2.5-1M parameters over 262 200 keys (chunk 262144, window 8192, θ = 1e7, f16): contiguous and paged', async () => {
    // Queries at positions 262197..262199: the intra region (chunk 1) and the successive region,
    // whose query position is capped at C = 262144. Keys rotate at up to r(j) = 253951.
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 262144, localWindow: 8192 });
    const qwenRope = { theta: 1e7, style: 'half' } as const;
    const keys = 262200;
    const q = randomTensor([1, 3, 4, 128], 91, 2);
    const k = { shape: [1, keys, 1, 128], data: roundArray('f16', randomTensor([1, keys, 1, 128], 92, 2).data) };
    const v = { shape: [1, keys, 1, 128], data: roundArray('f16', randomTensor([1, keys, 1, 128], 93).data) };
    const expected = referenceAttention(q, k, v, { pattern, rope: qwenRope, dtype: 'f16' });
    const contiguousRun = await runCudaAttention({ q, k, v, pattern, rope: qwenRope, dtype: 'f16', emulate: true });
    expect(contiguousRun.splits).toBeGreaterThan(1);
    expect(maxAbsDifference(expected.out.data, contiguousRun.out.data)).toBeLessThanOrEqual(tolerance('f16'));
    expect(maxAbsDifference(expected.lse.data, contiguousRun.lse.data)).toBeLessThanOrEqual(tolerance('f16'));
    // Sq 1 over the same keys in a paged cache of 256-key blocks (the last query of Sq 3).
    const fixture = allocatePagedCache([keys], 256, 1, 128, 94);
    const paged = await runCudaPagedAttention({
      q: { shape: [1, 1, 4, 128], data: q.data.slice(2 * 4 * 128) }, kCache: fillPagedCache(fixture, [k]), vCache: fillPagedCache(fixture, [v]),
      layout: fixture.layout, pattern, rope: qwenRope, dtype: 'f16', emulate: true,
    });
    expect(paged.splits).toBeGreaterThan(1);
    expect(maxAbsDifference(expected.out.data.slice(2 * 4 * 128), paged.out.data)).toBeLessThanOrEqual(tolerance('f16'));
    expect(maxAbsDifference(Array.from(expected.lse.data).filter((_, n) => n % 3 === 2), paged.lse.data)).toBeLessThanOrEqual(tolerance('f16'));
  });
});

describe('the emulator catches bugs planted in the paged kernel', () => {
  const req = request(pagedCase(3, 8, 'f32', 95), 'f32', { splits: 2 });
  const plant = async (from: string, to: string): Promise<number> => {
    try {
      const e = await pagedError(req, {
        transformSource: (source) => {
          expect(source).toContain(from);
          return source.replace(from, to);
        },
      });
      return e.out;
    } catch (err) {
      // The emulator aborting (deadlock, bad access) is a catch too; a compile error is not.
      expect((err as Error).message).not.toMatch(/compiling/);
      return Infinity;
    }
  };

  it('a missing barrier between gathering a K/V tile and scoring it', async () => {
    expect(await plant('    __syncthreads();\n\n    // Scores: lane = key', '\n    // Scores: lane = key')).toBeGreaterThan(1e-2);
  });

  it('a missing barrier between staging raw keys and rotating them in shared memory', async () => {
    expect(await plant('__syncthreads();\n        for (int e = tid; e < TILE_KEYS * ROPE_PAIRS;', 'for (int e = tid; e < TILE_KEYS * ROPE_PAIRS;')).toBeGreaterThan(1e-2);
  });

  it('keys past the end of the region or split left unmasked in the last tile', async () => {
    expect(await plant('if (j > key_end || !Region::visible', 'if (!Region::visible')).toBeGreaterThan(1e-2);
  });
});

describe('CUDA serving kernels under nvcc', () => {
  it('compile for sm_80 and sm_90 with zero spills (Qwen2.5-1M DCA, bf16, d 128, pre-rotated cache; paged and contiguous split-K); the native harness links them', async () => {
    const dir = await makeTempDir('dcagen-serving-nvcc-');
    temps.push(dir);
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 262144, localWindow: 8192 });
    const set = emitCuda(pattern, cudaKernelConfig({ headDim: 128, dtype: 'bf16', preRotatedKeys: true }), { command: 'test' });
    for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
    const rows = await ptxasReport(join(dir, `${set.name}.cu`), dir);
    for (const arch of ['sm_80', 'sm_90']) {
      const kernels = rows.filter((r) => r.arch === arch).map((r) => r.kernel);
      for (const name of ['paged::attention_kernel', 'paged::append_kernel', 'merge_kernel']) {
        expect(kernels.some((k) => k.includes(name)), `${arch} ${name}`).toBe(true);
      }
      // The split-K kernel in both K/V forms: the paged cache, and contiguous K/V (decode through *_launch).
      for (const form of ['PagedKv', 'ContiguousKv']) {
        expect(kernels.some((k) => k.includes('paged::attention_kernel') && k.includes(form)), `${arch} ${form}`).toBe(true);
      }
    }
    for (const r of rows) expect({ kernel: r.kernel, arch: r.arch, spills: r.spillStores + r.spillLoads }).toMatchObject({ spills: 0 });
    // The native harness links the serving entry points; without a GPU each form exits 3 ("no device").
    const build = await execa('nvcc', ['-O2', '-std=c++17', '-arch=sm_80', `-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, '-DDCAGEN_SERVING', `-I${dir}`,
      join(dir, `${set.name}.cu`), join(ROOT, 'runtime', 'cuda', 'harness.cu'), '-o', join(dir, 'harness')], { reject: false, all: true });
    expect(build.all).not.toMatch(/error/);
    expect(build.exitCode).toBe(0);
    const expected = (await nativeCudaAvailable()) ? 2 : 3;   // with a GPU it gets as far as its (missing) input files
    const paged = await execa(join(dir, 'harness'), ['paged', 'q', 'kc', 'vc', 'bt', 'sl', 'o', 'l', '1', '1', '1', '1', '128', '2', '1', '16', '1', '10000', '0', '0', '0', '1'], { reject: false });
    expect(paged.exitCode).toBe(expected);
    const append = await execa(join(dir, 'harness'), ['append', 'k', 'v', 'kc', 'vc', 's', 'p', '-', 'ko', 'vo', '1', '1', '128', '2', '1', '16', '10000', '0'], { reject: false });
    expect(append.exitCode).toBe(expected);
  });
});

describe('the PyTorch module of a CUDA kernel set', () => {
  it('offers append_to_cache and paged_attention, fixed or packed (varlen) rows (valid Python; the binding calls only functions the header declares)', async () => {
    const dir = await makeTempDir('dcagen-serving-py-');
    temps.push(dir);
    const sets = [
      emitCuda(dca, cudaKernelConfig({ headDim: 128, dtype: 'bf16', preRotatedKeys: true }), { command: 'test' }),
      emitCuda(compilePattern(builtinPattern('rerope'), { window: 16 }), cudaKernelConfig({ headDim: 64, dtype: 'f16' }), { command: 'test' }),
    ];
    const files: string[] = [];
    for (const set of sets) {
      const py = set.files.find((f) => f.name.endsWith('.py'))!;
      expect(py.contents).toContain('def append_to_cache(key, value, k_cache, v_cache, slot_mapping, positions, *,');
      expect(py.contents).toContain('def paged_attention(q, k_cache, v_cache, block_table, seq_lens, *,');
      // Chunked prefill / varlen: flash_attn_varlen_func's cu_seqlens_q and max_seqlen_q reach the C ABI.
      expect(py.contents).toMatch(/def paged_attention\([^)]*cu_seqlens_q=None, max_seqlen_q=None\):/);
      expect(py.contents).toContain('p.cu_seqlens_q = cu_seqlens_q.data_ptr<int>();');
      const called = py.contents.match(new RegExp(`${set.prefix}_[a-z_]+(?=\\()`, 'g')) ?? [];
      expect(new Set(called)).toEqual(new Set(['check_params', 'launch', 'paged_workspace_bytes', 'paged_attention', 'append_to_cache'].map((f) => `${set.prefix}_${f}`)));
      for (const name of called) expect(set.header, name).toContain(`${name}(`);
      files.push(join(dir, py.name));
      await writeFile(files[files.length - 1]!, py.contents);
    }
    expect(sets[0]!.files.find((f) => f.name.endsWith('.py'))!.contents).toMatch(/PRE_ROTATED_KEYS = True[^\n]*\nAPPEND_SUPPORTED = True/);
    expect(sets[1]!.files.find((f) => f.name.endsWith('.py'))!.contents).toMatch(/PRE_ROTATED_KEYS = False[^\n]*\nAPPEND_SUPPORTED = False/);
    const parsed = await execa('python3', ['-c', 'import ast, sys\nfor f in sys.argv[1:]: ast.parse(open(f).read())', ...files], { reject: false, all: true });
    expect(parsed.exitCode, parsed.all).toBe(0);
  });
});

describe('dcagen run --backend cuda --emulate --splits on contiguous keys (split-K decode)', () => {
  it('matches the reference backend for Sq 3 in 3 splits; --splits on a prefill-sized call is one line, exit 2', async () => {
    const dir = await makeTempDir('dcagen-cuda-decode-');
    temps.push(dir);
    const at = (name: string): string => join(dir, name);
    const f32 = (t: Tensor<Float64Array>): Tensor => ({ shape: t.shape, data: Float64Array.from(t.data, Math.fround) });
    await Promise.all([
      writeFile(at('q.npy'), encodeNpy(f32(randomTensor([1, 3, HQ, D], 501)))),
      writeFile(at('q20.npy'), encodeNpy(f32(randomTensor([1, 20, HQ, D], 502)))),
      writeFile(at('k.npy'), encodeNpy(f32(randomTensor([1, 90, HK, D], 503)))),
      writeFile(at('v.npy'), encodeNpy(f32(randomTensor([1, 90, HK, D], 504)))),
    ]);
    const common = ['--pattern', 'dca', '--chunk-size', '40', '--local-window', '9', '--k', at('k.npy'), '--v', at('v.npy')];
    for (const [backend, extra] of [['cuda', ['--emulate', '--splits', '3']], ['reference', []]] as const) {
      const r = await dcagen(['run', '--backend', backend, ...extra, ...common, '--q', at('q.npy'), '--out', at(`${backend}.npy`), '--lse', at(`${backend}-lse.npy`)]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    const read = async (name: string): Promise<Float64Array> => decodeNpy(await readFile(at(`${name}.npy`))).data as Float64Array;
    expect(maxAbsDifference(await read('reference'), await read('cuda'))).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(await read('reference-lse'), await read('cuda-lse'))).toBeLessThanOrEqual(2e-4);
    expectBadInput(
      await dcagen(['run', '--backend', 'cuda', '--emulate', '--splits', '3', ...common, '--q', at('q20.npy'), '--out', at('bad.npy')]),
      /--splits: the cuda prefill kernel does not split keys across blocks/,
    );
  });
});

describe('dcagen run --backend cuda --emulate over a paged cache', () => {
  it('matches the reference backend on the same files, and refuses an out-of-range block table with one line, exit 2', async () => {
    const dir = await makeTempDir('dcagen-cuda-serving-');
    temps.push(dir);
    const c = pagedCase(3, 16, 'f32', 101);
    const at = (name: string): string => join(dir, name);
    await Promise.all([
      writeFile(at('q.npy'), encodeNpy({ shape: c.q.shape, data: Float64Array.from(c.q.data, Math.fround) })),
      writeFile(at('kc.npy'), encodeNpy(c.kCache)),
      writeFile(at('vc.npy'), encodeNpy(c.vCache)),
      writeFile(at('bt.npy'), encodeNpy(c.fixture.blockTable, '<i4')),
      writeFile(at('sl.npy'), encodeNpy(c.fixture.seqLens, '<i4')),
    ]);
    const common = ['--pattern', 'dca', '--chunk-size', '40', '--local-window', '9', '--q', at('q.npy'), '--k-cache', at('kc.npy'), '--v-cache', at('vc.npy'), '--seq-lens', at('sl.npy')];
    const run = async (backend: string, out: string, extra: string[]): Promise<void> => {
      const r = await dcagen(['run', '--backend', backend, ...(backend === 'cuda' ? ['--emulate'] : []), ...common, '--block-table', at('bt.npy'), '--out', at(`${out}.npy`), '--lse', at(`${out}-lse.npy`), ...extra]);
      expect(r.exitCode, r.stderr).toBe(0);
    };
    await run('cuda', 'cuda', ['--splits', '2']);
    await run('reference', 'reference', []);
    const read = async (name: string): Promise<Float64Array> => decodeNpy(await readFile(at(`${name}.npy`))).data as Float64Array;
    expect(maxAbsDifference(await read('reference'), await read('cuda'))).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(await read('reference-lse'), await read('cuda-lse'))).toBeLessThanOrEqual(2e-4);

    const bad = Float64Array.from(c.fixture.blockTable.data);
    bad[c.fixture.layout.maxBlocks + 1] = 1000;
    await writeFile(at('bad-bt.npy'), encodeNpy({ shape: c.fixture.blockTable.shape, data: bad }, '<i4'));
    const before = await listDir(dir);
    expectBadInput(
      await dcagen(['run', '--backend', 'cuda', '--emulate', ...common, '--block-table', at('bad-bt.npy'), '--out', at('bad.npy')]),
      /block table \[1\]\[1\] = 1000 is outside the cache's \d+ blocks/,
    );
    expect(await listDir(dir)).toEqual(before);
  });
});
