// Paged-cache inputs for verification, tests and benchmarks: sequences of different lengths laid
// into a cache of fixed-size blocks in a shuffled physical order (as a serving engine's allocator
// leaves them), with the block table, lengths and slot mapping that address them.

import type { Tensor } from '../io/tensor.js';
import type { PagedCacheShape, PagedLayout } from '../reference/kv-cache.js';
import { seededRandom } from './cases.js';

export interface PagedFixture {
  readonly cache: PagedCacheShape;
  readonly layout: PagedLayout;
  /** Tensor-shaped block table and lengths, for .npy files and kernel buffers. */
  readonly blockTable: Tensor<Float64Array>;
  readonly seqLens: Tensor<Float64Array>;
  /** slot (block × block_size + row) of key j of sequence b. */
  slot(b: number, j: number): number;
}

/**
 * Allocates blocks for sequences of `seqLens` keys: every sequence gets ceil(n / blockSize)
 * blocks (plus `spareBlocks` per sequence in its table, for appends), physical blocks shuffled by
 * `seed`, and `extraBlocks` unused blocks in the cache so that no sequence owns the last one.
 */
export function allocatePagedCache(seqLens: readonly number[], blockSize: number, keyHeads: number, headDim: number, seed: number, spareBlocks = 0, extraBlocks = 2): PagedFixture {
  const next = seededRandom(seed);
  const batch = seqLens.length;
  const perSequence = seqLens.map((n) => Math.ceil(n / blockSize) + spareBlocks);
  const maxBlocks = Math.max(1, ...perSequence);
  const numBlocks = perSequence.reduce((a, b) => a + b, 0) + extraBlocks;
  const physical = Array.from({ length: numBlocks }, (_, k) => k);
  for (let k = numBlocks - 1; k > 0; k--) {
    const r = Math.floor(next() * (k + 1));
    [physical[k], physical[r]] = [physical[r]!, physical[k]!];
  }
  const table = new Int32Array(batch * maxBlocks);
  let taken = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < maxBlocks; t++) table[b * maxBlocks + t] = t < perSequence[b]! ? physical[taken++]! : 0;
  }
  const lens = Int32Array.from(seqLens);
  const cache: PagedCacheShape = { numBlocks, blockSize, keyHeads, headDim };
  const layout: PagedLayout = { batch, maxBlocks, blockTable: table, seqLens: lens };
  return {
    cache,
    layout,
    blockTable: { shape: [batch, maxBlocks], data: Float64Array.from(table) },
    seqLens: { shape: [batch], data: Float64Array.from(lens) },
    slot: (b, j) => table[b * maxBlocks + Math.floor(j / blockSize)]! * blockSize + (j % blockSize),
  };
}

/** Copies dense per-sequence keys or values (each (1, n_b, Hk, D)) into a cache tensor. */
export function fillPagedCache(fixture: PagedFixture, sequences: readonly Tensor[]): Tensor<Float64Array> {
  const { cache } = fixture;
  const row = cache.keyHeads * cache.headDim;
  const data = new Float64Array(cache.numBlocks * cache.blockSize * row);
  sequences.forEach((seq, b) => {
    const n = seq.shape[1]!;
    for (let j = 0; j < n; j++) data.set(seq.data.subarray(j * row, (j + 1) * row), fixture.slot(b, j) * row);
  });
  return { shape: [cache.numBlocks, cache.blockSize, cache.keyHeads, cache.headDim], data };
}
