// The pattern DSL: what a kernel author writes. A pattern has typed integer parameters (with
// derived values and constraints), a key-position function, and an ordered list of regions. Each
// region says which causal pairs (i, j) it owns, where the query sits, optionally where the key
// sits, and its mask. Functions are plain TypeScript; the reference runs them, the compiler reads
// their source (see reader.ts).

import { checkPatternDefinition } from './names.js';

/** Parameter values after derivation: base parameters plus derived ones, all integers. */
export type Params = Readonly<Record<string, number>>;

export type QueryPositionFn = (i: number, p: Params) => number;
export type KeyPositionFn = (j: number, p: Params) => number;
export type PairTestFn = (i: number, j: number, p: Params) => boolean;
/** Host-side parameter arithmetic (chunk lengths, window sizes): evaluated natively, not compiled. */
export type ParamFn = (p: Params) => number;

/** Which causal pairs a region owns. */
export type RegionCondition =
  /** ⌊i/L⌋ − ⌊j/L⌋ equals `distance` (or is at least `distance` when `orMore`). */
  | { readonly kind: 'chunk'; readonly length: ParamFn; readonly distance: number; readonly orMore: boolean }
  /** min ≤ i − j ≤ max (either side may be open). */
  | { readonly kind: 'distance'; readonly min?: ParamFn; readonly max?: ParamFn }
  /** Any predicate on (i, j); the plan must then mask every tile of the region. */
  | { readonly kind: 'pair'; readonly test: PairTestFn };

/** `causal`: j ≤ i. `full`: the region never reaches the diagonal (checked). `window`: also i − j < size. */
export type RegionMask = 'causal' | 'full' | { readonly window: ParamFn };

export interface RegionDefinition {
  readonly name: string;
  readonly when: RegionCondition;
  readonly queryPosition: QueryPositionFn;
  /** Overrides the pattern's key position in this region (ReRoPE, Self-Extend). */
  readonly keyPosition?: KeyPositionFn;
  readonly mask: RegionMask;
  readonly summary?: string;
}

export interface ParamSpec {
  readonly description: string;
  /** Smallest allowed value (inclusive). */
  readonly min?: number;
  readonly max?: number;
  readonly default?: number;
  /** Key in a Hugging Face config's `dual_chunk_attention_config` (or similar) that sets it. */
  readonly hfKey?: string;
}

export interface PresetSpec {
  readonly description: string;
  /** Expands one integer (e.g. a pretraining length) into base parameters. */
  readonly expand: (value: number) => Params;
}

export interface PatternDefinition {
  readonly name: string;
  readonly summary: string;
  readonly params: Readonly<Record<string, ParamSpec>>;
  /** Shortcut flags that set several parameters at once (`--pretraining-length` for DCA). */
  readonly presets?: Readonly<Record<string, PresetSpec>>;
  /** Derived parameters, computed from the base ones (DCA's chunk length L = C − W). */
  readonly derive?: (base: Params) => Params;
  /** Each returns an error message when the parameters are unusable, else undefined. */
  readonly constraints?: readonly ((p: Params) => string | undefined)[];
  /** Every query and key position, and every query − key distance, lies in [0, limit]. */
  readonly positionLimit?: ParamFn;
  readonly keyPosition: KeyPositionFn;
  readonly regions: readonly RegionDefinition[];
}

/**
 * Declares a pattern; checks its shape and names early (src/dsl/names.ts, the same check every
 * other way in goes through) so authors see mistakes at definition time.
 */
export function definePattern(definition: PatternDefinition): PatternDefinition {
  checkPatternDefinition(definition);
  return definition;
}

// Condition builders: the vocabulary kernel authors use for `when`.
export const sameChunk = (length: ParamFn): RegionCondition => ({ kind: 'chunk', length, distance: 0, orMore: false });
export const chunksApart = (length: ParamFn, distance: number): RegionCondition => ({ kind: 'chunk', length, distance, orMore: false });
export const chunksApartAtLeast = (length: ParamFn, distance: number): RegionCondition => ({ kind: 'chunk', length, distance, orMore: true });
/** i − j < size. */
export const distanceBelow = (size: ParamFn): RegionCondition => ({ kind: 'distance', max: (p) => size(p) - 1 });
/** i − j ≥ size. */
export const distanceAtLeast = (size: ParamFn): RegionCondition => ({ kind: 'distance', min: size });
/** Every causal pair. */
export const everyPair: RegionCondition = { kind: 'distance' };
export const pairsWhere = (test: PairTestFn): RegionCondition => ({ kind: 'pair', test });
export const windowMask = (size: ParamFn): RegionMask => ({ window: size });
