// The WGSL serving kernels on WebGPU (lavapipe on CI) against the serving reference: the cache
// append writes the same rotated, Qwen-scaled keys and the same values into the same slots, and
// leaves every other slot alone; attention over a paged cache (shuffled blocks, block sizes that
// do not divide the chunk length, sequences of different lengths, decode and prefill, split
// counts, query rows packed per sequence by cu_seqlens_q) matches the reference. The serving
// property (prefill, then decode token by token) runs on every backend in serving-property.test.ts.
import { describe, expect, it } from 'vitest';
import { runWgslCacheAppend, runWgslPagedAttention } from '../src/backends/wgsl/runner.js';
import { referencePagedAttention } from '../src/reference/kv-cache.js';
import { fillPagedCache } from '../src/verify/paged-cases.js';
import { verifyCases } from '../src/verify/cases.js';
import { verifyCase } from '../src/verify/verify.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { builtinPattern } from '../src/patterns/index.js';
import { roundArray } from '../src/reference/precision.js';
import { referenceAppendToCache } from '../src/reference/kv-cache.js';
import { randomTensor } from '../src/verify/cases.js';
import { allocatePagedCache } from '../src/verify/paged-cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';

describe('WGSL cache append', () => {
  it.each([
    ['f32', 'half', undefined],
    ['f32', 'interleaved', 20],
    ['f16', 'half', 20],
  ] as const)('%s, %s RoPE, Qwen factor from c_orig %s: same cache as the reference', async (dtype, style, originalMaxPosition) => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
    const rope = { theta: 10000, style };
    const [hk, d, blockSize] = [2, 32, 16];
    const fixture = allocatePagedCache([100, 70], blockSize, hk, d, 11, 1);
    const cells = fixture.cache.numBlocks * blockSize * hk * d;
    // The cache holds older entries: the write must leave every slot it does not name untouched.
    const kCache = { shape: [fixture.cache.numBlocks, blockSize, hk, d], data: Float64Array.from(roundArray(dtype, randomTensor([cells], 1).data)) };
    const vCache = { shape: kCache.shape, data: Float64Array.from(roundArray(dtype, randomTensor([cells], 2).data)) };
    // Tokens of both sequences, including one padding token (slot −1).
    const tokens = [[0, 3], [0, 57], [0, 99], [1, 0], [1, 41], [1, 69], [0, 42]] as const;
    const k = { shape: [tokens.length, hk, d], data: roundArray(dtype, randomTensor([tokens.length * hk * d], 3).data) };
    const v = { shape: [tokens.length, hk, d], data: roundArray(dtype, randomTensor([tokens.length * hk * d], 4).data) };
    const positions = tokens.map(([, j]) => j);
    const slotMapping = tokens.map(([b, j], t) => (t === tokens.length - 1 ? -1 : fixture.slot(b, j)));
    const lengths = tokens.map(([b]) => (b === 0 ? 100 : 70));
    const got = await runWgslCacheAppend({
      kCache, vCache, k, v, positions, slotMapping, pattern, rope, dtype,
      ...(originalMaxPosition !== undefined ? { originalMaxPosition, lengths } : {}),
    });
    const expectedK = { shape: kCache.shape, data: Float64Array.from(kCache.data) };
    const expectedV = { shape: kCache.shape, data: Float64Array.from(vCache.data) };
    referenceAppendToCache(expectedK, expectedV, k, v, positions, slotMapping, { pattern, rope, ...(originalMaxPosition !== undefined ? { originalMaxPosition, lengths } : {}) });
    const tolerance = dtype === 'f16' ? 4e-3 : 2e-6;
    expect(maxAbsDifference(roundArray(dtype, expectedK.data), got.kCache.data)).toBeLessThanOrEqual(tolerance);
    expect(maxAbsDifference(expectedV.data, got.vCache.data)).toBe(0);
  });
});

describe('WGSL attention over a paged KV cache', () => {
  const rope = { theta: 10000, style: 'half' as const };
  it.each([
    // lens, queries, block size, Qwen c_orig, cache holds rotated keys, dtype, forced splits
    [[45, 70], 1, 8, undefined, false, 'f32', undefined],
    [[45, 70], 3, 16, 20, false, 'f32', 3],
    [[60, 100], 20, 8, 20, false, 'f32', undefined],
    [[60, 100], 2, 64, 30, true, 'f16', undefined],
    [[33, 90, 51], 16, 32, undefined, true, 'f32', 4],
  ] as const)('sequences %j, Sq %i, block %i, c_orig %s, rotated cache %s, %s, splits %s', async (lens, queries, blockSize, originalMaxPosition, preRotatedKeys, dtype, splits) => {
    // Chunk length 19 is a multiple of no block size here.
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 26, localWindow: 7 });
    const [hq, hk, d] = [8, 2, 32];
    const fixture = allocatePagedCache([...lens], blockSize, hk, d, 3);
    const ks = lens.map((n, b) => randomTensor([1, n, hk, d], 10 + b));
    const vs = lens.map((n, b) => randomTensor([1, n, hk, d], 20 + b));
    const q = randomTensor([lens.length, queries, hq, d], 5);
    const kCache = fillPagedCache(fixture, ks);
    const vCache = fillPagedCache(fixture, vs);
    const options = { pattern, rope, dtype, preRotatedKeys, ...(originalMaxPosition !== undefined ? { originalMaxPosition } : {}) };
    const expected = referencePagedAttention(q, kCache, vCache, fixture.layout, options);
    const got = await runWgslPagedAttention({ q, kCache, vCache, layout: fixture.layout, ...options, ...(splits !== undefined ? { splits } : {}) });
    expect(got.split.kind).toBe(queries <= 16 ? 'decode' : 'prefill');
    if (splits !== undefined) expect(got.split.splits).toBe(splits);
    const tolerance = dtype === 'f16' ? 2e-2 : 2e-4;
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(tolerance);
    expect(maxAbsDifference(expected.lse.data, got.lse.data)).toBeLessThanOrEqual(tolerance);
  });

  it.each([
    // query rows per sequence (packed by cu_seqlens_q), rotated cache: decode kernel (all ≤ 16) and prefill kernel
    [[3, 1, 2], true],
    [[4, 0, 2], false],
    [[5, 1, 20], false],
    [[17, 9, 30], true],
  ] as const)('chunked prefill / varlen: query rows %j packed by cu_seqlens_q, rotated cache %s', async (counts, preRotatedKeys) => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 26, localWindow: 7 });
    const lens = [40, 30, 61];
    const [hq, hk, d] = [4, 2, 32];
    const fixture = allocatePagedCache(lens, 16, hk, d, 8);
    const kCache = fillPagedCache(fixture, lens.map((n, b) => randomTensor([1, n, hk, d], 50 + b)));
    const vCache = fillPagedCache(fixture, lens.map((n, b) => randomTensor([1, n, hk, d], 60 + b)));
    const cuSeqlensQ = Int32Array.from([0, ...counts.map((_, b) => counts.slice(0, b + 1).reduce((x: number, y: number) => x + y, 0))]);
    const total = cuSeqlensQ[counts.length]!;
    const q = randomTensor([total, hq, d], 9);
    const options = { pattern, rope, dtype: 'f32' as const, preRotatedKeys, originalMaxPosition: 20 };
    const expected = referencePagedAttention(q, kCache, vCache, fixture.layout, { ...options, cuSeqlensQ });
    const got = await runWgslPagedAttention({ q, kCache, vCache, layout: fixture.layout, ...options, cuSeqlensQ });
    expect(got.split.kind).toBe(Math.max(...counts) <= 16 ? 'decode' : 'prefill');
    expect(got.lse.shape).toEqual([hq, total]);
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(expected.lse.data, got.lse.data)).toBeLessThanOrEqual(2e-4);
  });

  it('reads a raw cache for a pattern whose regions place keys at their own positions (rerope)', async () => {
    const pattern = compilePattern(builtinPattern('rerope'), { window: 9 });
    const fixture = allocatePagedCache([40, 25], 8, 1, 16, 4);
    const ks = [40, 25].map((n, b) => randomTensor([1, n, 1, 16], 30 + b));
    const vs = [40, 25].map((n, b) => randomTensor([1, n, 1, 16], 40 + b));
    const q = randomTensor([2, 2, 2, 16], 6);
    const kCache = fillPagedCache(fixture, ks);
    const vCache = fillPagedCache(fixture, vs);
    const expected = referencePagedAttention(q, kCache, vCache, fixture.layout, { pattern, rope });
    const got = await runWgslPagedAttention({ q, kCache, vCache, layout: fixture.layout, pattern, rope, dtype: 'f32' });
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(2e-4);
  });
});

describe('dcagen verify --paged on WGSL', () => {
  // The verification edge cases as serving calls: decode, GQA with Sq < Sk, batch 2 with
  // different lengths, interleaved partial rotary, per-region key positions.
  const edge = verifyCases(11, 7, { dtypes: ['f32', 'f16'], headDims: [64] }).filter((c) => /decode|GQA|batch 2|rerope/.test(c.label));
  it.each(edge.map((c) => [c.label, c] as const))('%s through a paged cache', async (_label, c) => {
    const result = await verifyCase('wgsl', c, false, true);
    expect(result.failure).toBeUndefined();
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });
});
