// The serving property on every kernel backend (WGSL on WebGPU, CUDA and Metal on the CPU
// emulation), through the library's dispatch (appendToCache, pagedAttention) as an engine calls it:
// prefill P tokens into a paged cache with a random block size and physical block order, then
// decode T tokens one at a time, appending each; every step's output and LSE equal the float64
// reference over the whole sequence so far. DCA with L = 11, so P + T crosses 1 to 4 chunk
// boundaries; GQA; both RoPE styles; with and without Qwen's key and logit factors (each key keeps
// the factor of the length it was written at, as an engine's rotated cache does).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePattern } from '../src/dsl/instantiate.js';
import { appendToCache, pagedAttention, type BackendName } from '../src/execute.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { qwenTemperature, referenceAttention } from '../src/reference/attention.js';
import { pagedLayout } from '../src/reference/kv-cache.js';
import { randomTensor } from '../src/verify/cases.js';
import { allocatePagedCache } from '../src/verify/paged-cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';

const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 14, localWindow: 3 });
const [HQ, HK, D] = [4, 2, 16];
const TOLERANCE = 2e-4;   // f32 storage

describe.each(['wgsl', 'cuda', 'metal'] as const satisfies readonly BackendName[])('serving property on %s', (backend) => {
  const emulate = backend !== 'wgsl';
  it('prefill into a paged cache, then decode token by token, appending each, equals the float64 reference over the sequence so far (fast-check)', async () => {
    await fc.assert(fc.asyncProperty(
      fc.record({
        prefill: fc.integer({ min: 5, max: 40 }),
        steps: fc.integer({ min: 2, max: 3 }),
        blockShift: fc.integer({ min: 3, max: 5 }),
        interleaved: fc.boolean(),
        qwen: fc.boolean(),
        seed: fc.integer({ min: 1, max: 1e6 }),
      }),
      async ({ prefill, steps, blockShift, interleaved, qwen, seed }) => {
        const rope = { theta: 10000, style: interleaved ? 'interleaved' as const : 'half' as const };
        const blockSize = 1 << blockShift;
        const originalMaxPosition = qwen ? 8 : undefined;
        const qwenOption = originalMaxPosition !== undefined ? { originalMaxPosition } : {};
        const total = prefill + steps;
        const fixture = allocatePagedCache([total], blockSize, HK, D, seed);
        const k = randomTensor([1, total, HK, D], seed + 1);
        const v = randomTensor([1, total, HK, D], seed + 2);
        const row = HK * D;
        let kCache: Tensor = { shape: [fixture.cache.numBlocks, blockSize, HK, D], data: new Float64Array(fixture.cache.numBlocks * blockSize * row) };
        let vCache: Tensor = { shape: kCache.shape, data: new Float64Array(kCache.data.length) };
        // Tokens [from, to) written while the sequence is `length` long.
        const append = async (from: number, to: number, length: number): Promise<void> => {
          const tokens = to - from;
          const written = await appendToCache(backend, {
            kCache, vCache, pattern, rope, dtype: 'f32', emulate,
            k: { shape: [tokens, HK, D], data: k.data.subarray(from * row, to * row) },
            v: { shape: [tokens, HK, D], data: v.data.subarray(from * row, to * row) },
            positions: Array.from({ length: tokens }, (_, t) => from + t),
            slotMapping: Array.from({ length: tokens }, (_, t) => fixture.slot(0, from + t)),
            ...(originalMaxPosition !== undefined ? { originalMaxPosition, lengths: Array.from({ length: tokens }, () => length) } : {}),
          });
          kCache = written.kCache;
          vCache = written.vCache;
        };
        await append(0, prefill, prefill);
        for (let n = prefill + 1; n <= total; n++) {
          await append(n - 1, n, n);
          const layout = pagedLayout(fixture.blockTable, { shape: [1], data: Float64Array.from([n]) }, fixture.cache, 1);
          const q = randomTensor([1, 1, HQ, D], seed + 100 + n);
          const got = await pagedAttention(backend, { q, kCache, vCache, layout, pattern, rope, dtype: 'f32', emulate, preRotatedKeys: true, ...qwenOption });
          // The whole sequence so far, dense: raw keys times the factor each was written with.
          const scaled = Float64Array.from(k.data.subarray(0, n * row));
          for (let j = 0; j < n; j++) {
            const f = qwenTemperature(j < prefill ? prefill : j + 1, originalMaxPosition);
            for (let e = 0; e < row; e++) scaled[j * row + e]! *= f;
          }
          const expected = referenceAttention(q, { shape: [1, n, HK, D], data: scaled }, { shape: [1, n, HK, D], data: v.data.subarray(0, n * row) }, {
            pattern, rope, scale: qwenTemperature(n, originalMaxPosition) / Math.sqrt(D),
          });
          expect(maxAbsDifference(expected.out.data, got.out.data), `${backend} step ${n}`).toBeLessThanOrEqual(TOLERANCE);
          expect(maxAbsDifference(expected.lse.data, got.lse.data), `${backend} step ${n}`).toBeLessThanOrEqual(TOLERANCE);
        }
      },
    ), { numRuns: 3, seed: 99 });
  }, 600_000);
});
