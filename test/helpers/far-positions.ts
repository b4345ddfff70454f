// RoPE precision at Qwen-1M positions, for every backend: queries at the top of Qwen's position
// range (262144 − 63 + r) and keys spread below it, θ = 1e7, peaked attention. Every angle is
// large, where f32 position × frequency is off by ~1e-2 rad; kernels must still match float64.
import { compilePattern } from '../../src/dsl/instantiate.js';
import { definePattern, everyPair } from '../../src/dsl/pattern.js';
import type { AttentionOutput, AttentionRequest } from '../../src/execute.js';
import { referenceAttention } from '../../src/reference/attention.js';
import { randomTensor } from '../../src/verify/cases.js';
import { maxAbsDifference } from '../../src/verify/verify.js';

const farPositions = definePattern({
  name: 'far-positions',
  summary: 'test pattern: queries at 262144 − 63 + r, keys spread over [0, 262144]',
  params: {},
  positionLimit: () => 262144,
  keyPosition: (j) => j * 4000,
  regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => 262144 - 63 + i }],
});

/** Runs the far-positions case in f32 on `run` and returns the max abs error against float64. */
export async function farPositionsError(run: (request: AttentionRequest) => Promise<AttentionOutput>, emulate = false): Promise<number> {
  const pattern = compilePattern(farPositions, {});
  const q = randomTensor([1, 64, 1, 128], 21, 4);
  const k = randomTensor([1, 64, 1, 128], 22, 4);
  const v = randomTensor([1, 64, 1, 128], 23);
  const rope = { theta: 1e7, style: 'half' as const };
  const expected = referenceAttention(q, k, v, { pattern, rope });
  const got = await run({ q, k, v, pattern, rope, dtype: 'f32', emulate });
  return maxAbsDifference(expected.out.data, got.out.data);
}
