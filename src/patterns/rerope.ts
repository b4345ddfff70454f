// ReRoPE (Su 2023): exact relative positions inside a window W, every farther distance clamped to
// W. Needs a per-region key position: the clamped region puts queries at W and keys at 0.
import { definePattern, distanceAtLeast, distanceBelow } from '../dsl/pattern.js';

export const rerope = definePattern({
  name: 'rerope',
  summary: 'ReRoPE: relative distances clamped at a window W',
  params: {
    window: { description: 'W, the largest relative distance the model sees', min: 1 },
  },
  keyPosition: (j) => j,
  regions: [
    { name: 'exact', when: distanceBelow((p) => p.window), mask: 'causal', queryPosition: (i) => i },
    { name: 'clamped', when: distanceAtLeast((p) => p.window), mask: 'full', queryPosition: (_i, p) => p.window, keyPosition: () => 0 },
  ],
});
