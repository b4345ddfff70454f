// Self-Extend (Jin et al. 2024, "LLM Maybe LongLM"): exact positions inside a neighbour window W;
// beyond it, grouped positions ⌊pos/G⌋ shifted so the two meet at the window edge.
import { definePattern, distanceAtLeast, distanceBelow } from '../dsl/pattern.js';

export const selfExtend = definePattern({
  name: 'self-extend',
  summary: 'Self-Extend: neighbour window plus grouped positions ⌊pos/G⌋',
  params: {
    groupSize: { description: 'G, how many positions share one grouped position', min: 1 },
    neighborWindow: { description: 'W, distances below W keep exact positions', min: 1 },
  },
  keyPosition: (j) => j,
  regions: [
    { name: 'neighbor', when: distanceBelow((p) => p.neighborWindow), mask: 'causal', queryPosition: (i) => i },
    {
      name: 'grouped',
      when: distanceAtLeast((p) => p.neighborWindow),
      mask: 'full',
      queryPosition: (i, p) => Math.floor(i / p.groupSize) + p.neighborWindow - Math.floor(p.neighborWindow / p.groupSize),
      keyPosition: (j, p) => Math.floor(j / p.groupSize),
    },
  ],
});
