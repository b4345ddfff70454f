// The emitted WGSL executed for real on a WebGPU adapter (lavapipe on CI) against the float64
// reference: the fixed edge cases, random configurations from fast-check, the three-pass baseline,
// and RoPE precision at Qwen-1M positions. A missing adapter fails these tests; nothing is skipped.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { farPositionsError } from './helpers/far-positions.js';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { LLVMPIPE_LOOP_LIMIT, loopIterationBound, maxSplitKeys } from '../src/backends/wgsl/invocation-bound.js';
import { runWgslAttention } from '../src/backends/wgsl/runner.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomTensor, tolerance, verifyCases, type VerifyCase } from '../src/verify/cases.js';
import { maxAbsDifference, verifyCase } from '../src/verify/verify.js';

const capabilities = { dtypes: ['f32', 'f16'] as const, headDims: [32, 64, 128] };

describe('WGSL kernels on WebGPU', () => {
  const edge = verifyCases(11, 7, { dtypes: ['f32', 'f16'], headDims: [64] });
  it.each(edge.map((c) => [c.label, c] as const))('edge case: %s', async (_label, c) => {
    const result = await verifyCase('wgsl', c, false);
    expect(result.failure).toBeUndefined();
    expect(result.outError).toBeLessThanOrEqual(tolerance(c.dtype));
    expect(result.lseError).toBeLessThanOrEqual(tolerance(c.dtype));
  });

  it('matches the reference on random patterns and shapes (fast-check)', async () => {
    const caseArb = fc.record({ seed: fc.integer({ min: 1, max: 2 ** 30 }), pick: fc.nat(1000) });
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ seed, pick }) => {
        // Draw past the fixed edge cases into the random ones.
        const cases = verifyCases(12 + (pick % 4), seed, { dtypes: [...capabilities.dtypes], headDims: capabilities.headDims, maxKeys: 120 });
        const c: VerifyCase = cases[cases.length - 1]!;
        const result = await verifyCase('wgsl', c, false);
        expect(result.failure, JSON.stringify(c)).toBeUndefined();
        expect(result.outError, JSON.stringify(c)).toBeLessThanOrEqual(tolerance(c.dtype));
      }),
      { numRuns: 6, seed: 2024 },
    );
  });

  it('runs head dims 32, 128 and 256, and the three-pass baseline agrees with the fused kernel', async () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 26, localWindow: 7 });
    for (const headDim of [32, 128, 256]) {
      const q = randomTensor([1, 45, 2, headDim], 11);
      const k = randomTensor([1, 45, 1, headDim], 12);
      const v = randomTensor([1, 45, 1, headDim], 13);
      const rope = { theta: 10000, style: 'half' as const };
      const expected = referenceAttention(q, k, v, { pattern, rope });
      const fused = await runWgslAttention({ q, k, v, pattern, rope, dtype: 'f32' });
      expect(maxAbsDifference(expected.out.data, fused.out.data), `fused D=${headDim}`).toBeLessThanOrEqual(2e-4);
      if (headDim === 128) {
        const threePass = await runWgslAttention({ q, k, v, pattern, rope, dtype: 'f32' }, { variant: 'three-pass' });
        expect(maxAbsDifference(expected.out.data, threePass.out.data)).toBeLessThanOrEqual(2e-4);
        expect(maxAbsDifference(expected.lse.data, threePass.lse.data)).toBeLessThanOrEqual(2e-4);
      }
    }
  });

  it('stays exact over thousands of keys: each invocation walks one bounded split (llvmpipe stops shaders after 65535 loop iterations)', async () => {
    // Two query rows over 20000 keys at d 128 through the prefill kernel (forced: so few rows would
    // go to the decode kernel, whose lanes have their own bound, test/wgsl-decode.test.ts). Without
    // splits one invocation would walk every key and llvmpipe would silently cut its loops short; the
    // launcher caps the keys of a split there.
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 1100, localWindow: 100 });
    const q = randomTensor([1, 2, 1, 128], 61, 2);
    const k = randomTensor([1, 20000, 1, 128], 62, 2);
    const v = randomTensor([1, 20000, 1, 128], 63);
    const rope = { theta: 10000, style: 'half' as const };
    const expected = referenceAttention(q, k, v, { pattern, rope });
    const got = await runWgslAttention({ q, k, v, pattern, rope, dtype: 'f32' }, { kind: 'prefill' });
    expect(got.split.kind).toBe('prefill');
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(expected.lse.data, got.lse.data)).toBeLessThanOrEqual(2e-4);
    const plan = emitWgsl(pattern, wgslKernelConfig({ headDim: 128, dtype: 'f32' })).plan;
    expect(got.split.loopCapped).toBe(true);
    expect(got.split.splitKeys).toBeLessThanOrEqual(maxSplitKeys(plan));
    expect(got.split.splits).toBe(Math.ceil(20000 / got.split.splitKeys));
    expect(loopIterationBound(plan, maxSplitKeys(plan))).toBeLessThanOrEqual(LLVMPIPE_LOOP_LIMIT);
    expect(loopIterationBound(plan, maxSplitKeys(plan) + plan.config.blockK)).toBeGreaterThan(LLVMPIPE_LOOP_LIMIT);
  });

  it('gives the same result for every forced split count, fused and three-pass', async () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
    const q = randomTensor([1, 37, 4, 32], 71);
    const k = randomTensor([1, 150, 2, 32], 72);
    const v = randomTensor([1, 150, 2, 32], 73);
    const rope = { theta: 10000, style: 'half' as const };
    const expected = referenceAttention(q, k, v, { pattern, rope });
    for (const [variant, splits] of [['fused', 1], ['fused', 2], ['fused', 5], ['three-pass', 1], ['three-pass', 3]] as const) {
      const got = await runWgslAttention({ q, k, v, pattern, rope, dtype: 'f32' }, { variant, splits });
      expect(got.split.splits, `${variant} ${splits}`).toBe(splits);
      expect(maxAbsDifference(expected.out.data, got.out.data), `${variant} ${splits}`).toBeLessThanOrEqual(2e-4);
      expect(maxAbsDifference(expected.lse.data, got.lse.data), `${variant} ${splits}`).toBeLessThanOrEqual(2e-4);
    }
  });

  it('keeps RoPE exact at Qwen-1M positions (θ = 1e7, positions near 262144, peaked attention)', async () => {
    // Queries sit at the top of Qwen's position range and keys spread below it: every angle is
    // large, where f32 position × frequency would be off by ~1e-2 rad.
    expect(await farPositionsError(runWgslAttention)).toBeLessThanOrEqual(2e-4);
  });
});
