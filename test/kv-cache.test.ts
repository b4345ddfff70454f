// The serving reference against the dense reference: a paged cache in shuffled block order gives
// the same attention as contiguous keys; a cache filled by the cache write (keys rotated once at
// their key position, Qwen's key factor) read as pre-rotated gives what prefill over the whole
// sequence gives; and the layout checks refuse what a kernel would read out of bounds.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePattern } from '../src/dsl/instantiate.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { qwenTemperature, referenceAttention } from '../src/reference/attention.js';
import { pagedLayout, referenceAppendToCache, referencePagedAttention } from '../src/reference/kv-cache.js';
import { allocatePagedCache, fillPagedCache } from '../src/verify/paged-cases.js';
import { randomTensor } from '../src/verify/cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';

const rope = { theta: 10000, style: 'half' as const };

function slice(t: Tensor, b: number): Tensor<Float64Array> {
  const per = t.data.length / t.shape[0]!;
  return { shape: [1, ...t.shape.slice(1)], data: Float64Array.from(t.data.subarray(b * per, (b + 1) * per)) };
}

describe('paged KV cache reference', () => {
  it('equals dense attention per sequence for any block size and block order (fast-check)', () => {
    fc.assert(fc.property(
      fc.record({
        lens: fc.array(fc.integer({ min: 3, max: 70 }), { minLength: 1, maxLength: 3 }),
        blockShift: fc.integer({ min: 0, max: 5 }),
        queries: fc.integer({ min: 1, max: 3 }),
        seed: fc.integer({ min: 1, max: 1e6 }),
      }),
      ({ lens, blockShift, queries, seed }) => {
        const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 13, localWindow: 4 });
        const [hq, hk, d] = [4, 2, 8];
        const fixture = allocatePagedCache(lens, 1 << blockShift, hk, d, seed);
        const ks = lens.map((n, b) => randomTensor([1, n, hk, d], seed + 10 * b + 1));
        const vs = lens.map((n, b) => randomTensor([1, n, hk, d], seed + 10 * b + 2));
        const q = randomTensor([lens.length, queries, hq, d], seed + 3);
        const got = referencePagedAttention(q, fillPagedCache(fixture, ks), fillPagedCache(fixture, vs), fixture.layout, { pattern, rope });
        lens.forEach((_, b) => {
          const expected = referenceAttention(slice(q, b), ks[b]!, vs[b]!, { pattern, rope });
          expect(maxAbsDifference(expected.out.data, slice(got.out, b).data)).toBeLessThan(1e-12);
        });
      },
    ), { numRuns: 25, seed: 7 });
  });

  it('a cache written by the cache append (rotated keys, Qwen key factor) reads back as prefill over the whole sequence', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 11, localWindow: 3 });
    const [hq, hk, d, n, prefill] = [4, 1, 16, 40, 29];
    const originalMaxPosition = 8; // s(n) > 1 from here on, so the factors matter
    const fixture = allocatePagedCache([n], 8, hk, d, 5);
    const k = randomTensor([1, n, hk, d], 1);
    const v = randomTensor([1, n, hk, d], 2);
    const kCache = { shape: [fixture.cache.numBlocks, 8, hk, d], data: new Float64Array(fixture.cache.numBlocks * 8 * hk * d) };
    const vCache = { shape: kCache.shape, data: new Float64Array(kCache.data.length) };
    const write = (from: number, to: number, length: number): void => {
      const tokens = to - from;
      referenceAppendToCache(kCache, vCache,
        { shape: [tokens, hk, d], data: k.data.subarray(from * hk * d, to * hk * d) },
        { shape: [tokens, hk, d], data: v.data.subarray(from * hk * d, to * hk * d) },
        Array.from({ length: tokens }, (_, t) => from + t),
        Array.from({ length: tokens }, (_, t) => fixture.slot(0, from + t)),
        { pattern, rope, originalMaxPosition, lengths: Array.from({ length: tokens }, () => length) });
    };
    write(0, prefill, prefill); // prefill: every key carries s(prefill)
    for (let t = prefill; t < n; t++) {
      write(t, t + 1, t + 1); // decode: the new key carries s(t + 1)
      const seqLens = { shape: [1], data: Float64Array.from([t + 1]) };
      const layout = pagedLayout(fixture.blockTable, seqLens, fixture.cache, 1);
      const q = randomTensor([1, 1, hq, d], 100 + t);
      const got = referencePagedAttention(q, kCache, vCache, layout, { pattern, rope, originalMaxPosition, preRotatedKeys: true });
      // Expected: raw keys scaled by the factor they were written with, query side s(t + 1).
      const scaled = Float64Array.from(k.data.subarray(0, (t + 1) * hk * d));
      for (let j = 0; j <= t; j++) {
        const f = qwenTemperature(j < prefill ? prefill : j + 1, originalMaxPosition);
        for (let e = 0; e < hk * d; e++) scaled[j * hk * d + e]! *= f;
      }
      const expected = referenceAttention(q, { shape: [1, t + 1, hk, d], data: scaled }, { shape: [1, t + 1, hk, d], data: v.data.subarray(0, (t + 1) * hk * d) }, {
        pattern, rope, scale: qwenTemperature(t + 1, originalMaxPosition) / Math.sqrt(d),
      });
      // Both sides round their inputs to f32 storage, one before rotation and one after: ~1e-8.
      expect(maxAbsDifference(expected.out.data, got.out.data), `step ${t}`).toBeLessThan(1e-6);
      expect(maxAbsDifference(expected.lse.data, got.lse.data), `step ${t}`).toBeLessThan(1e-6);
    }
  });

  it('without the Qwen factor a rotated cache equals prefill semantics exactly, and a raw cache gives prefill’s s(n)²', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 9, localWindow: 3 });
    const [hq, hk, d, n] = [2, 1, 8, 30];
    const fixture = allocatePagedCache([n], 4, hk, d, 9);
    const k = randomTensor([1, n, hk, d], 3);
    const v = randomTensor([1, n, hk, d], 4);
    const q = randomTensor([1, 5, hq, d], 5);
    const expected = referenceAttention(q, k, v, { pattern, rope, originalMaxPosition: 10 });
    const raw = referencePagedAttention(q, fillPagedCache(fixture, [k]), fillPagedCache(fixture, [v]), fixture.layout, { pattern, rope, originalMaxPosition: 10 });
    expect(maxAbsDifference(expected.out.data, raw.out.data)).toBeLessThan(1e-12);
  });

  it('refuses block tables and lengths a kernel would read out of bounds', () => {
    const fixture = allocatePagedCache([10, 20], 8, 1, 4, 3);
    const table = (rows: number[][]): Tensor<Float64Array> => ({ shape: [rows.length, rows[0]!.length], data: Float64Array.from(rows.flat()) });
    const lens = (values: number[]): Tensor<Float64Array> => ({ shape: [values.length], data: Float64Array.from(values) });
    expect(() => pagedLayout(table([[0, 1, 2], [3, 99, 4]]), lens([10, 20]), fixture.cache)).toThrow(/block table \[1\]\[1\] = 99 is outside the cache/);
    expect(() => pagedLayout(table([[0, 1, 2], [3, 4, 5]]), lens([10, 25]), fixture.cache)).toThrow(/sequence 1 has 25 keys, more than its 3 blocks of 8 hold/);
    expect(() => pagedLayout(table([[0, 1, 2], [3, 4, 5]]), lens([2, 20]), fixture.cache, 3)).toThrow(/fewer than the 3 queries/);
    expect(() => pagedLayout(table([[0, 1, 2], [3, 4, 5]]), lens([10.5, 20]), fixture.cache)).toThrow(/not an int32/);
    expect(() => pagedLayout(table([[0, -1, 2], [3, 4, 5]]), lens([10, 20]), fixture.cache)).toThrow(/outside the cache/);
  });

  it('refuses a rotated cache for patterns whose regions place keys at their own positions', () => {
    const pattern = compilePattern(builtinPattern('rerope'), { window: 4 });
    const kCache = { shape: [2, 4, 1, 4], data: new Float64Array(32) };
    const vCache = { shape: [2, 4, 1, 4], data: new Float64Array(32) };
    const k = randomTensor([1, 1, 4], 1);
    expect(() => referenceAppendToCache(kCache, vCache, k, k, [0], [0], { pattern, rope })).toThrow(/cannot use a rotated KV cache/);
  });
});
