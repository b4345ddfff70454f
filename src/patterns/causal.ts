// Plain causal attention with RoPE at the true positions: the baseline every other pattern is
// measured against.
import { definePattern, everyPair } from '../dsl/pattern.js';

export const causal = definePattern({
  name: 'causal',
  summary: 'plain causal attention, RoPE at positions i and j',
  params: {},
  keyPosition: (j) => j,
  regions: [{ name: 'causal', when: everyPair, queryPosition: (i) => i, mask: 'causal' }],
});
