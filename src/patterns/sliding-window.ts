// Sliding-window causal attention (Mistral-style): each query sees the last W keys at true positions.
import { definePattern, everyPair, windowMask } from '../dsl/pattern.js';

export const slidingWindow = definePattern({
  name: 'sliding-window',
  summary: 'causal attention over the last W keys',
  params: { window: { description: 'W, how many keys (including itself) each query sees', min: 1 } },
  keyPosition: (j) => j,
  regions: [{ name: 'window', when: everyPair, mask: windowMask((p) => p.window), queryPosition: (i) => i }],
});
