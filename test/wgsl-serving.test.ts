// The WGSL serving kernels on WebGPU (lavapipe on CI) against the serving reference: the cache
// append writes the same rotated, Qwen-scaled keys and the same values into the same slots, and
// leaves every other slot alone.
import { describe, expect, it } from 'vitest';
import { runWgslCacheAppend } from '../src/backends/wgsl/runner.js';
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
