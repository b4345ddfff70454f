// Dual Chunk Attention as the paper writes it (An et al. 2024, §3) with its own parameters: c the
// pretraining window, s the chunk size, w the local window. It differs from the code semantics
// only in the successive region when w < c − s: the query position jumps from s + w − 1 straight
// to c − 1, and the inter region sits at c − 1.
import { chunksApart, chunksApartAtLeast, definePattern, sameChunk, type ParamFn } from '../dsl/pattern.js';

const chunk: ParamFn = (p) => p.s;

export const dcaPaper = definePattern({
  name: 'dca-paper',
  summary: "Dual Chunk Attention, the paper's formula (parameters c, s, w)",
  params: {
    c: { description: 'pretraining length; the largest position is c − 1', min: 2 },
    s: { description: 'chunk size (the code calls it chunk length L)', min: 1 },
    w: { description: 'local window', min: 1 },
  },
  constraints: [
    (p) => (p.s < p.c ? undefined : `s must be smaller than c (got s = ${p.s}, c = ${p.c})`),
    (p) => (p.w <= p.c - p.s ? undefined : `w must be at most c − s (got w = ${p.w}, c − s = ${p.c - p.s})`),
  ],
  positionLimit: (p) => p.c - 1,
  keyPosition: (j, p) => j % p.s,
  regions: [
    { name: 'intra', when: sameChunk(chunk), mask: 'causal', queryPosition: (i, p) => i % p.s },
    {
      name: 'successive',
      when: chunksApart(chunk, 1),
      mask: 'full',
      queryPosition: (i, p) => (i % p.s < p.w ? p.s + (i % p.s) : p.c - 1),
    },
    { name: 'inter', when: chunksApartAtLeast(chunk, 2), mask: 'full', queryPosition: (_i, p) => p.c - 1 },
  ],
});
