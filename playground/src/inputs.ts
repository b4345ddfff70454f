// What "Run" computes on: the shape the user chose and seeded random Q/K/V, generated the same way
// (src/verify/cases.ts randomTensor) on the page, for the GPU, and in the reference worker.

import type { Tensor } from '../../src/io/tensor.js';
import type { StorageDType } from '../../src/reference/precision.js';
import { randomTensor } from '../../src/verify/cases.js';

export interface RunShape {
  readonly batch: number;
  readonly queries: number;
  readonly keys: number;
  readonly queryHeads: number;
  readonly keyHeads: number;
  readonly headDim: number;
}

export interface RunSettings {
  readonly shape: RunShape;
  readonly seed: number;
  readonly dtype: Extract<StorageDType, 'f32' | 'f16'>;
  readonly ropeTheta: number;
}

export function runInputs(settings: RunSettings): { q: Tensor<Float64Array>; k: Tensor<Float64Array>; v: Tensor<Float64Array> } {
  const { batch, queries, keys, queryHeads, keyHeads, headDim } = settings.shape;
  return {
    q: randomTensor([batch, queries, queryHeads, headDim], settings.seed),
    k: randomTensor([batch, keys, keyHeads, headDim], settings.seed + 1),
    v: randomTensor([batch, keys, keyHeads, headDim], settings.seed + 2),
  };
}

/** Request to the reference worker and its answer. */
export interface ReferenceRequest {
  readonly text: string;
  readonly params: Readonly<Record<string, number>>;
  readonly settings: RunSettings;
}

export type ReferenceReply =
  | { readonly ok: true; readonly out: Float64Array; readonly lse: Float64Array; readonly ms: number }
  | { readonly ok: false; readonly message: string };
