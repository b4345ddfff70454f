// Dual Chunk Attention, code semantics (ChunkLlama, Qwen 1M, DESIGN.md §1): chunk length
// L = C − W; keys sit at j mod L; queries sit at i mod L (same chunk), min(i mod L + L, C) (the
// chunk before), min(2L − 1, C) (any earlier chunk). Every distance lies in [0, C].
import { chunksApart, chunksApartAtLeast, definePattern, sameChunk, type ParamFn } from '../dsl/pattern.js';

const chunkLength: ParamFn = (p) => p.chunkLength;

export const dca = definePattern({
  name: 'dca',
  summary: 'Dual Chunk Attention (ChunkLlama / Qwen code semantics)',
  params: {
    chunkSize: { description: 'C, the largest query position ever used (Qwen chunk_size)', min: 1, hfKey: 'chunk_size' },
    localWindow: { description: 'W, positions that keep exact distances across a chunk boundary (Qwen local_size)', min: 0, hfKey: 'local_size' },
  },
  presets: {
    pretrainingLength: {
      description: 'c, the pretraining length: sets C = ⌊3c/4⌋ and W = ⌊c/8⌋ (ChunkLlama defaults)',
      expand: (c) => ({ chunkSize: Math.floor((3 * c) / 4), localWindow: Math.floor(c / 8) }),
    },
  },
  derive: (p) => ({ chunkLength: p.chunkSize - p.localWindow }),
  constraints: [
    (p) => (p.chunkLength >= 1 ? undefined : `chunk length L = chunk-size − local-window must be at least 1 (got ${p.chunkSize} − ${p.localWindow} = ${p.chunkLength})`),
  ],
  positionLimit: (p) => p.chunkSize,
  keyPosition: (j, p) => j % p.chunkLength,
  regions: [
    { name: 'intra', when: sameChunk(chunkLength), mask: 'causal', queryPosition: (i, p) => i % p.chunkLength },
    {
      name: 'successive',
      when: chunksApart(chunkLength, 1),
      mask: 'full',
      queryPosition: (i, p) => Math.min((i % p.chunkLength) + p.chunkLength, p.chunkSize),
    },
    {
      name: 'inter',
      when: chunksApartAtLeast(chunkLength, 2),
      mask: 'full',
      queryPosition: (_i, p) => Math.min(2 * p.chunkLength - 1, p.chunkSize),
    },
  ],
});
