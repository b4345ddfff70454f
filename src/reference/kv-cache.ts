// The serving reference: a paged KV cache as vLLM and FlashInfer lay it out, the cache write
// (keys rotated once at their key position, with Qwen's key factor), and attention over the cache
// for several sequences of different lengths. Written from the definitions, independent of any
// kernel's tiling: the cache is gathered into one dense sequence per batch entry and handed to the
// dense float64 reference.
//
// Layout (DESIGN.md §5): k_cache, v_cache (num_blocks, block_size, Hk, D); block_table int32
// (batch, max_blocks); seq_lens int32 (batch,). Key j of sequence s sits in physical block
// block_table[s][j / block_size], row j % block_size. Writes go through slot_mapping: one int per
// new token, block × block_size + row.

import { ConfigurationError, ShapeError, UsageError } from '../errors.js';
import type { CompiledPattern } from '../dsl/instantiate.js';
import type { Tensor } from '../io/tensor.js';
import { referenceAttention, qwenTemperature, type AttentionOptions, type AttentionResult } from './attention.js';
import { checkRotaryDim, inverseFrequencies, rotaryPairs, rotate, type RopeConfig } from './rope.js';

export interface PagedCacheShape {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly keyHeads: number;
  readonly headDim: number;
}

/** Where every sequence's keys live: block table and lengths, validated. */
export interface PagedLayout {
  readonly batch: number;
  readonly maxBlocks: number;
  /** (batch, maxBlocks) physical block numbers; entries past a sequence's last block are ignored. */
  readonly blockTable: Int32Array;
  /** (batch,) keys per sequence. */
  readonly seqLens: Int32Array;
}

function integers(t: Tensor, name: string): Int32Array {
  const out = new Int32Array(t.data.length);
  for (let k = 0; k < t.data.length; k++) {
    const x = t.data[k]!;
    if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31) throw new ShapeError(`${name}: element ${k} (${x}) is not an int32`);
    out[k] = x;
  }
  return out;
}

/** Validates the cache tensors' shapes: (num_blocks, block_size, Hk, D), k and v alike. */
export function pagedCacheShape(kCache: Tensor, vCache: Tensor): PagedCacheShape {
  if (kCache.shape.length !== 4) throw new ShapeError(`k cache must have rank 4 (num_blocks, block_size, key_heads, head_dim), got shape [${kCache.shape.join(', ')}]`);
  if (vCache.shape.join(',') !== kCache.shape.join(',')) throw new ShapeError(`v cache shape [${vCache.shape.join(', ')}] must equal k cache shape [${kCache.shape.join(', ')}]`);
  const [numBlocks, blockSize, keyHeads, headDim] = kCache.shape as [number, number, number, number];
  if (numBlocks < 1 || blockSize < 1 || keyHeads < 1 || headDim < 1) throw new ShapeError('every cache dimension must be at least 1');
  return { numBlocks, blockSize, keyHeads, headDim };
}

/**
 * Validates a block table and sequence lengths against a cache: every length at least
 * `minLength` (the queries of the call) and covered by its blocks, every block a sequence uses
 * inside the cache.
 */
export function pagedLayout(blockTable: Tensor, seqLens: Tensor, cache: PagedCacheShape, minLength = 1): PagedLayout {
  if (blockTable.shape.length !== 2) throw new ShapeError(`block table must have rank 2 (batch, max_blocks), got shape [${blockTable.shape.join(', ')}]`);
  if (seqLens.shape.length !== 1) throw new ShapeError(`seq lens must have rank 1 (batch,), got shape [${seqLens.shape.join(', ')}]`);
  const [batch, maxBlocks] = blockTable.shape as [number, number];
  if (seqLens.shape[0] !== batch) throw new ShapeError(`block table has ${batch} rows but seq lens has ${seqLens.shape[0]} entries`);
  if (batch < 1 || maxBlocks < 1) throw new ShapeError('block table must have at least one row and one column');
  const table = integers(blockTable, 'block table');
  const lens = integers(seqLens, 'seq lens');
  for (let b = 0; b < batch; b++) {
    const n = lens[b]!;
    if (n < minLength) throw new ShapeError(`sequence ${b} has ${n} keys, fewer than the ${minLength} queries of the call`);
    const blocks = Math.ceil(n / cache.blockSize);
    if (blocks > maxBlocks) throw new ShapeError(`sequence ${b} has ${n} keys, more than its ${maxBlocks} blocks of ${cache.blockSize} hold`);
    for (let t = 0; t < blocks; t++) {
      const block = table[b * maxBlocks + t]!;
      if (block < 0 || block >= cache.numBlocks) throw new ShapeError(`block table [${b}][${t}] = ${block} is outside the cache's ${cache.numBlocks} blocks`);
    }
  }
  return { batch, maxBlocks, blockTable: table, seqLens: lens };
}

/** Element offset of key j of sequence b (head 0) in a cache tensor. */
export function cacheOffset(layout: PagedLayout, cache: PagedCacheShape, b: number, j: number): number {
  const block = layout.blockTable[b * layout.maxBlocks + Math.floor(j / cache.blockSize)]!;
  return ((block * cache.blockSize + (j % cache.blockSize)) * cache.keyHeads) * cache.headDim;
}

/** Sequence b's keys (or values) as a dense (1, seq_len, Hk, D) tensor. */
export function gatherSequence(cacheTensor: Tensor, layout: PagedLayout, cache: PagedCacheShape, b: number): Tensor<Float64Array> {
  const n = layout.seqLens[b]!;
  const row = cache.keyHeads * cache.headDim;
  const data = new Float64Array(n * row);
  for (let j = 0; j < n; j++) {
    const at = cacheOffset(layout, cache, b, j);
    for (let e = 0; e < row; e++) data[j * row + e] = cacheTensor.data[at + e]!;
  }
  return { shape: [1, n, cache.keyHeads, cache.headDim], data };
}

export interface PagedAttentionOptions extends Omit<AttentionOptions, 'onlyRegion'> {
  /**
   * Chunked prefill / varlen (FlashAttention's convention): q is packed (total_q, Hq, D) and
   * sequence b owns rows cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1, the last positions of the
   * sequence; the output is packed like q and the LSE is (Hq, total_q).
   */
  readonly cuSeqlensQ?: ArrayLike<number>;
  /**
   * Keys in the cache are already rotated at the pattern's key position and carry the Qwen key
   * factor they were written with (a cache filled by appendToCache). Otherwise they are raw keys:
   * rotated and scaled on load, as at prefill.
   */
  readonly preRotatedKeys?: boolean;
}

/**
 * Attention of q (batch, Sq, Hq, D), the last Sq positions of every sequence, over the paged
 * cache. Qwen temperature (engine semantics, DESIGN.md §5): logits × scale × s(n), n = seq_len;
 * raw keys also get s(n) on load (so a raw cache gives prefill's s(n)²), rotated keys keep the
 * factor they were written with.
 */
export function referencePagedAttention(q: Tensor, kCache: Tensor, vCache: Tensor, layout: PagedLayout, options: PagedAttentionOptions): AttentionResult {
  const cache = pagedCacheShape(kCache, vCache);
  const packed = options.cuSeqlensQ !== undefined;
  if (q.shape.length !== (packed ? 3 : 4)) {
    throw new ShapeError(packed ? `packed q must have rank 3 (total_q, Hq, D), got shape [${q.shape.join(', ')}]` : `q must have rank 4 (batch, Sq, Hq, D), got shape [${q.shape.join(', ')}]`);
  }
  const [queryHeads, headDim] = q.shape.slice(-2) as [number, number];
  const rows = packed ? q.shape[0]! : q.shape[0]! * q.shape[1]!;
  const batch = packed ? options.cuSeqlensQ!.length - 1 : q.shape[0]!;
  if (batch !== layout.batch) throw new ShapeError(`q has ${batch} sequences but the block table has ${layout.batch} rows`);
  if (headDim !== cache.headDim) throw new ShapeError(`q has head dim ${headDim} but the cache has ${cache.headDim}`);
  const firstRow = (b: number): number => (packed ? options.cuSeqlensQ![b]! : b * q.shape[1]!);
  if (packed && (firstRow(0) !== 0 || firstRow(batch) !== rows)) throw new ShapeError(`cu_seqlens_q must run from 0 to the ${rows} packed query rows`);
  const out = new Float64Array(q.data.length);
  const lse = new Float64Array(queryHeads * rows);
  const rowElements = queryHeads * headDim;
  const { originalMaxPosition: _unused, cuSeqlensQ: _packing, ...rest } = options;
  for (let b = 0; b < batch; b++) {
    const first = firstRow(b);
    const queries = firstRow(b + 1) - first;
    const n = layout.seqLens[b]!;
    if (queries < 0) throw new ShapeError(`cu_seqlens_q decreases at sequence ${b}`);
    if (queries === 0) continue;
    if (n < queries) throw new ShapeError(`sequence ${b} has ${n} keys, fewer than its ${queries} queries`);
    const qb: Tensor = { shape: [1, queries, queryHeads, headDim], data: q.data.subarray(first * rowElements, (first + queries) * rowElements) };
    const kb = gatherSequence(kCache, layout, cache, b);
    const vb = gatherSequence(vCache, layout, cache, b);
    const base = options.scale ?? 1 / Math.sqrt(headDim);
    const factor = qwenTemperature(n, options.originalMaxPosition);
    const result = options.preRotatedKeys
      ? referenceAttention(qb, kb, vb, { ...rest, scale: base * factor, preRotatedKeys: true })
      : referenceAttention(qb, kb, vb, { ...rest, scale: base * factor * factor, preRotatedKeys: false });
    out.set(result.out.data, first * rowElements);
    for (let h = 0; h < queryHeads; h++) {
      for (let r = 0; r < queries; r++) {
        lse[packed ? h * rows + first + r : (b * queryHeads + h) * queries + r] = result.lse.data[h * queries + r]!;
      }
    }
  }
  return {
    out: { shape: [...q.shape], data: out },
    lse: { shape: packed ? [queryHeads, rows] : [batch, queryHeads, q.shape[1]!], data: lse },
  };
}

export interface CacheAppendOptions {
  readonly pattern: CompiledPattern;
  readonly rope: RopeConfig;
  /**
   * Qwen key factor s(n) = max(1, 0.1·ln(n / c_orig) + 1), applied to every written key when
   * given; `lengths` then names n per token (the length of its sequence at this step).
   */
  readonly originalMaxPosition?: number;
  readonly lengths?: ArrayLike<number>;
}

/**
 * Writes new tokens into the cache (in place): key t rotated at the pattern's key position of
 * positions[t] (and multiplied by its Qwen factor), value t as it is, both at slot_mapping[t].
 * A negative slot skips the token (vLLM's padding convention).
 */
/** What a cache write names: the caches, the new tokens, where they go, and the pattern placing them. */
export interface CacheAppendInput {
  /** (num_blocks, block_size, Hk, D): the cache before the write. */
  readonly kCache: Tensor;
  readonly vCache: Tensor;
  /** (tokens, Hk, D) new raw keys and values. */
  readonly k: Tensor;
  readonly v: Tensor;
  /** Sequence position of every token. */
  readonly positions: ArrayLike<number>;
  /** block × block_size + row of every token; negative: skip (padding). */
  readonly slotMapping: ArrayLike<number>;
  readonly pattern: CompiledPattern;
  /** Qwen's key factor s(n) on, with `lengths` the sequence length n of every token. */
  readonly originalMaxPosition?: number;
  readonly lengths?: ArrayLike<number>;
}

export interface CacheAppendShape {
  readonly cache: PagedCacheShape;
  readonly tokens: number;
  /** The largest key position a written token takes (sizes the RoPE table). */
  readonly maxKeyPosition: number;
}

/**
 * Validates a cache write, the same for the reference and every kernel: a pattern whose keys sit
 * at one position (a rotated cache), (tokens, Hk, D) keys and values matching the cache, one
 * position and one slot per token (negative slots skip the token, others inside the cache), and
 * every token's sequence length when Qwen's key factor is on.
 */
export function checkCacheAppend(input: CacheAppendInput): CacheAppendShape {
  const { pattern, k, v, positions, slotMapping } = input;
  const own = pattern.regions.find((r) => !r.sharesKeyPosition);
  if (own !== undefined) throw new ConfigurationError(`pattern ${pattern.name} cannot use a rotated KV cache: region ${own.name} places keys at its own position`);
  const cache = pagedCacheShape(input.kCache, input.vCache);
  if (k.shape.length !== 3 || v.shape.join(',') !== k.shape.join(',')) throw new ShapeError(`new keys and values must both have shape (tokens, key_heads, head_dim), got [${k.shape.join(', ')}] and [${v.shape.join(', ')}]`);
  const [tokens, heads, headDim] = k.shape as [number, number, number];
  if (heads !== cache.keyHeads || headDim !== cache.headDim) throw new ShapeError(`new keys have ${heads} heads × ${headDim} dims but the cache holds ${cache.keyHeads} × ${cache.headDim}`);
  if (positions.length !== tokens || slotMapping.length !== tokens) throw new ShapeError(`positions (${positions.length}) and slot mapping (${slotMapping.length}) need one entry per token (${tokens})`);
  if (input.originalMaxPosition !== undefined && input.lengths?.length !== tokens) throw new UsageError('the Qwen key factor needs the sequence length of every token');
  const slots = cache.numBlocks * cache.blockSize;
  let maxKeyPosition = 0;
  for (let t = 0; t < tokens; t++) {
    const slot = slotMapping[t]!;
    if (!Number.isInteger(slot) || slot >= slots) throw new ShapeError(`slot mapping [${t}] = ${slot} is outside the cache's ${slots} slots`);
    const position = positions[t]!;
    if (!Number.isInteger(position) || position < 0) throw new ShapeError(`positions [${t}] = ${position} is not a position`);
    if (slot >= 0) maxKeyPosition = Math.max(maxKeyPosition, pattern.definition.keyPosition(position, pattern.params));
  }
  return { cache, tokens, maxKeyPosition };
}

export function referenceAppendToCache(
  kCache: Tensor<Float64Array>, vCache: Tensor<Float64Array>,
  k: Tensor, v: Tensor, positions: ArrayLike<number>, slotMapping: ArrayLike<number>, options: CacheAppendOptions,
): void {
  const { pattern } = options;
  const { tokens } = checkCacheAppend({ kCache, vCache, k, v, positions, slotMapping, pattern, ...(options.originalMaxPosition !== undefined ? { originalMaxPosition: options.originalMaxPosition } : {}), ...(options.lengths !== undefined ? { lengths: options.lengths } : {}) });
  const [, heads, headDim] = k.shape as [number, number, number];
  const rotaryDim = checkRotaryDim(headDim, options.rope.rotaryDim);
  const invFreq = inverseFrequencies(options.rope.theta, rotaryDim);
  const pairs = rotaryPairs(options.rope.style, rotaryDim);
  const row = new Float64Array(headDim);
  for (let t = 0; t < tokens; t++) {
    const slot = slotMapping[t]!;
    if (slot < 0) continue;
    const position = pattern.definition.keyPosition(positions[t]!, pattern.params);
    const factor = options.originalMaxPosition === undefined ? 1 : qwenTemperature(options.lengths![t]!, options.originalMaxPosition);
    for (let h = 0; h < heads; h++) {
      const from = (t * heads + h) * headDim;
      const to = (slot * heads + h) * headDim;
      rotate(k.data, from, headDim, position, invFreq, pairs, row);
      for (let d = 0; d < headDim; d++) {
        kCache.data[to + d] = row[d]! * factor;
        vCache.data[to + d] = v.data[from + d]!;
      }
    }
  }
}
