// The WGSL split-K decode kernel on a real WebGPU adapter (lavapipe on CI, which has no subgroups:
// this tier runs the module that combines lanes through workgroup memory; the Chromium tier runs the
// subgroup module) against the float64 reference: few query rows, GQA, chunk boundaries among the
// queries, both RoPE styles, pre-rotated keys, every pattern feature, forced splits, and a Qwen2.5-1M
// decode over 262 200 keys.
import { describe, expect, it } from 'vitest';
import { decodeLayout } from '../src/backends/wgsl/decode-layout.js';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { decodeLoopIterationBound, decodeMaxLaneKeys, LLVMPIPE_LOOP_LIMIT } from '../src/backends/wgsl/invocation-bound.js';
import { runWgslAttention, type WgslRunOptions } from '../src/backends/wgsl/runner.js';
import { compilePattern, type CompiledPattern } from '../src/dsl/instantiate.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { preRotateKeys, referenceAttention } from '../src/reference/attention.js';
import { roundArray } from '../src/reference/precision.js';
import type { RopeConfig } from '../src/reference/rope.js';
import { randomTensor, tolerance, verifyCases } from '../src/verify/cases.js';
import { maxAbsDifference, verifyCase } from '../src/verify/verify.js';

interface DecodeCase {
  readonly queries: number;
  readonly keys: number;
  readonly dtype: 'f32' | 'f16';
  readonly rope: RopeConfig;
  readonly preRotatedKeys?: boolean;
}

// DCA with L = 31: chunks start at 0, 31, 62, 93, 124, …
const dca = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });

/** Runs `c` at Hq 8 / Hk 2 on the WGSL backend and returns its errors against the reference and the launcher's plan. */
async function runDecodeCase(pattern: CompiledPattern, c: DecodeCase, seed: number, options: WgslRunOptions = {}) {
  const q = randomTensor([1, c.queries, 8, 32], seed);
  const k = randomTensor([1, c.keys, 2, 32], seed + 1);
  const v = randomTensor([1, c.keys, 2, 32], seed + 2);
  const expected = referenceAttention(q, k, v, { pattern, rope: c.rope, dtype: c.dtype });
  const keys: Tensor = c.preRotatedKeys ? preRotateKeys({ shape: k.shape, data: roundArray(c.dtype, k.data) }, pattern, c.rope) : k;
  const got = await runWgslAttention({ q, k: keys, v, pattern, rope: c.rope, dtype: c.dtype, preRotatedKeys: c.preRotatedKeys ?? false }, options);
  return { got, outError: maxAbsDifference(expected.out.data, got.out.data), lseError: maxAbsDifference(expected.lse.data, got.lse.data) };
}

describe('WGSL decode kernel on WebGPU', () => {
  const half = { theta: 10000, style: 'half' } as const;
  const interleaved = { theta: 10000, style: 'interleaved' } as const;
  const cases: Array<[string, DecodeCase]> = [
    ['Sq 1, f32, rotate-half', { queries: 1, keys: 150, dtype: 'f32', rope: half }],
    ['Sq 3 across a chunk boundary, f32, interleaved', { queries: 3, keys: 125, dtype: 'f32', rope: interleaved }],
    ['Sq 16 across a chunk boundary, f16, rotate-half', { queries: 16, keys: 130, dtype: 'f16', rope: half }],
    ['Sq 3, pre-rotated keys, f16, interleaved', { queries: 3, keys: 100, dtype: 'f16', rope: interleaved, preRotatedKeys: true }],
    ['Sq 16, pre-rotated keys, f32, rotate-half', { queries: 16, keys: 200, dtype: 'f32', rope: half, preRotatedKeys: true }],
  ];
  it.each(cases)('dca GQA 8/2: %s', async (_label, c) => {
    const { got, outError, lseError } = await runDecodeCase(dca, c, 100 + c.queries);
    expect(got.split.kind).toBe('decode');
    // The rows of one KV head (4 query heads × Sq) share workgroups: 4, 12 → 16, 64 → 4 blocks of 16.
    expect(got.split.groupRows).toBe(Math.min(16, 2 ** Math.ceil(Math.log2(4 * c.queries))));
    expect(outError).toBeLessThanOrEqual(tolerance(c.dtype));
    expect(lseError).toBeLessThanOrEqual(tolerance(c.dtype));
  });

  it('gives the same result for every forced split count 1..8, and matches the prefill kernel', async () => {
    const c: DecodeCase = { queries: 3, keys: 150, dtype: 'f32', rope: half };
    const runs = [];
    for (let splits = 1; splits <= 8; splits++) runs.push(await runDecodeCase(dca, c, 7, { splits }));
    const prefill = await runDecodeCase(dca, c, 7, { kind: 'prefill' });
    expect(prefill.got.split.kind).toBe('prefill');
    for (const [n, run] of runs.entries()) {
      expect(run.got.split, `splits ${n + 1}`).toMatchObject({ kind: 'decode', splits: n + 1 });
      expect(run.outError, `splits ${n + 1}`).toBeLessThanOrEqual(2e-4);
      expect(run.lseError, `splits ${n + 1}`).toBeLessThanOrEqual(2e-4);
      expect(maxAbsDifference(run.got.out.data, runs[0]!.got.out.data), `splits ${n + 1} vs 1`).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDifference(run.got.out.data, prefill.got.out.data), `splits ${n + 1} vs prefill`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('covers every pattern feature at Sq ≤ 16: own key positions, pair masks, temperature, partial rotary, batch 2', async () => {
    // The fixed verification edge cases (rerope, self-extend, dca-paper, sliding window, Qwen
    // temperature and scale, interleaved partial rotary with batch 2), cut to their last few queries.
    const edge = verifyCases(11, 7, { dtypes: ['f32', 'f16'], headDims: [32] });
    const labels = ['rerope', 'self-extend', 'dca-paper', 'sliding window', 'temperature', 'partial rotary'];
    const picked = edge.filter((c) => labels.some((l) => c.label.includes(l)));
    expect(picked).toHaveLength(labels.length);
    for (const c of picked) {
      const result = await verifyCase('wgsl', { ...c, queries: Math.min(c.queries, 5) }, false);
      expect(result.failure, c.label).toBeUndefined();
      expect(result.outError, c.label).toBeLessThanOrEqual(tolerance(c.dtype));
      expect(result.lseError, c.label).toBeLessThanOrEqual(tolerance(c.dtype));
    }
  });

  it('bounds the keys of one lane by the loop limit of llvmpipe, from the plan', () => {
    for (const [pattern, headDim] of [[dca, 128], [dca, 32], [compilePattern(builtinPattern('causal'), {}), 256]] as const) {
      const plan = emitWgsl(pattern, wgslKernelConfig({ headDim, dtype: 'f16' })).plan;
      const lane = decodeMaxLaneKeys(plan);
      expect(decodeLoopIterationBound(plan, lane)).toBeLessThanOrEqual(LLVMPIPE_LOOP_LIMIT);
      expect(decodeLoopIterationBound(plan, lane + 1)).toBeGreaterThan(LLVMPIPE_LOOP_LIMIT);
      // Workgroup memory stays within what WebGPU guarantees without raised limits.
      expect(decodeLayout(plan)!.workgroupBytes).toBeLessThanOrEqual(16384);
    }
  });

  it('decodes at Qwen2.5-1M parameters over 262 200 keys (chunk 262144, window 8192, θ = 1e7, f16)', async () => {
    // Queries at positions 262197..262199: the intra region (chunk 1) and the successive region,
    // whose query position is capped at C = 262144. Keys rotate at up to r(j) = 253951.
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 262144, localWindow: 8192 });
    const rope = { theta: 1e7, style: 'half' } as const;
    const keys = 262200;
    const q = randomTensor([1, 3, 4, 128], 91, 2);
    const k = randomTensor([1, keys, 1, 128], 92, 2);
    const v = randomTensor([1, keys, 1, 128], 93);
    const expected = referenceAttention(q, k, v, { pattern, rope, dtype: 'f16' });
    // Sq 1 is the last query of Sq 3 (queries are bottom-right aligned): one reference serves both.
    const lastQuery = { shape: [1, 1, 4, 128], data: q.data.slice(2 * 4 * 128) };
    const lastOut = (data: ArrayLike<number>) => Array.from(data).slice(2 * 4 * 128);
    const lastLse = (data: ArrayLike<number>) => Array.from(data).filter((_, n) => n % 3 === 2);
    const plan = emitWgsl(pattern, wgslKernelConfig({ headDim: 128, dtype: 'f16' })).plan;
    for (const [queries, query] of [[3, q], [1, lastQuery]] as const) {
      const got = await runWgslAttention({ q: query, k, v, pattern, rope, dtype: 'f16' });
      const want = queries === 3 ? expected : { out: { data: lastOut(expected.out.data) }, lse: { data: lastLse(expected.lse.data) } };
      expect(got.split.kind, `Sq ${queries}`).toBe('decode');
      expect(got.split.loopCapped).toBe(true);
      const rowLanes = 64 / got.split.groupRows!;
      expect(got.split.splitKeys / rowLanes, `Sq ${queries}: keys per lane`).toBeLessThanOrEqual(decodeMaxLaneKeys(plan));
      expect(maxAbsDifference(want.out.data, got.out.data), `Sq ${queries}`).toBeLessThanOrEqual(2e-2);
      expect(maxAbsDifference(want.lse.data, got.lse.data), `Sq ${queries}`).toBeLessThanOrEqual(2e-2);
    }
  });
});
