// The kernel plan: everything about a fused attention kernel that is not language syntax, computed
// once here and rendered by every backend. Per region: its position expressions, the key range a
// query tile visits, the test that says a key tile needs no element mask, and the element mask
// itself; plus the visit order, tile sizes, RoPE table layout and named constants.
//
// Tile-level expressions use the variables rowFirst / rowLast (first and last query index of the
// tile, absolute in key coordinates) and keyTile (first key of a key tile). They are valid because
// every region's key interval [keyFrom(i), keyTo(i)] is non-decreasing in i (checked below).

import { ConfigurationError } from '../errors.js';
import * as E from '../dsl/expr.js';
import type { Expr } from '../dsl/expr.js';
import type { CompiledPattern, CompiledRegion } from '../dsl/instantiate.js';
import { kebab } from '../dsl/instantiate.js';
import type { RopeStyle } from '../reference/rope.js';

export type KernelDType = 'f32' | 'f16' | 'bf16';

/**
 * How a kernel finds key j of sequence b: `contiguous` (batch, keys, key_heads, D) tensors with one
 * key count for the call, or `paged`: a KV cache of fixed-size blocks addressed through a block
 * table, each sequence with its own length (DESIGN.md §5).
 */
export type KvLayout = 'contiguous' | 'paged';

export interface KernelConfig {
  readonly headDim: number;
  readonly dtype: KernelDType;
  readonly ropeStyle: RopeStyle;
  /** Leading dimensions that rotate; defaults to headDim. */
  readonly rotaryDim?: number;
  /** Query rows per tile (one workgroup / thread block). */
  readonly blockQ: number;
  /** Keys per K/V tile staged in shared memory. */
  readonly blockK: number;
  /** Keys are stored already rotated at the pattern's key position (rotated KV cache). */
  readonly preRotatedKeys: boolean;
  /** K/V addressing; contiguous when absent. */
  readonly kvLayout?: KvLayout;
}

export interface RegionPlan {
  readonly name: string;
  /** Identifier-safe name for generated functions (`successive`, `inter`, …). */
  readonly ident: string;
  readonly summary: string;
  readonly queryPosition: Expr;
  readonly keyPosition: Expr;
  readonly sharesKeyPosition: boolean;
  /** First key the tile visits (inclusive), clamped at 0. Variables: rowFirst. */
  readonly tileKeyBegin: Expr;
  /** Last key the tile visits (inclusive), clamped at the causal diagonal. Variables: rowLast. */
  readonly tileKeyEnd: Expr;
  /** True when key tile [keyTile, keyTile + blockK) is entirely visible to every row of the tile. */
  readonly tileUnmasked: Expr;
  /** Whether key j is visible to query i in this region (the element mask). Variables: i, j. */
  readonly elementVisible: Expr;
}

export interface NamedConstant {
  readonly name: string;
  readonly value: number;
  readonly doc: string;
}

/** RoPE angles come from two host-computed float64 tables: angle(p) = coarse[p >> FINE_BITS] + fine[p & FINE_MASK]. */
export interface RopePlan {
  readonly style: RopeStyle;
  readonly rotaryDim: number;
  readonly pairs: number;
  readonly fineBits: number;
  /** Largest position any query or key takes, given the key count: a constant, or keys − 1. */
  readonly positionLimit?: number;
}

export interface KernelPlan {
  readonly pattern: CompiledPattern;
  readonly config: KernelConfig;
  readonly rope: RopePlan;
  /** Regions in the order the kernel visits them (ascending keys). */
  readonly regions: readonly RegionPlan[];
  /** Pattern parameters as named constants for the generated code. */
  readonly constants: readonly NamedConstant[];
}

export const ROPE_FINE_BITS = 8;

export function validateKernelConfig(config: KernelConfig): void {
  const { headDim, blockQ, blockK } = config;
  if (!Number.isInteger(headDim) || headDim < 4 || headDim > 256 || headDim % 4 !== 0) {
    throw new ConfigurationError(`head dim must be a multiple of 4 in [4, 256], got ${headDim}`);
  }
  const rotary = config.rotaryDim ?? headDim;
  if (rotary < 2 || rotary > headDim || rotary % 2 !== 0) throw new ConfigurationError(`rotary dim must be even and in [2, ${headDim}], got ${rotary}`);
  for (const [name, v] of [['blockQ', blockQ], ['blockK', blockK]] as const) {
    if (!Number.isInteger(v) || v < 1 || (v & (v - 1)) !== 0) throw new ConfigurationError(`${name} must be a power of two, got ${v}`);
  }
}

export function planKernel(pattern: CompiledPattern, config: KernelConfig, regionSubset?: readonly string[]): KernelPlan {
  validateKernelConfig(config);
  const chosen = regionSubset === undefined ? pattern.regions : pattern.regions.filter((r) => regionSubset.includes(r.name));
  if (chosen.length === 0) throw new ConfigurationError(`no region of pattern ${pattern.name} matches ${regionSubset?.join(', ')}`);
  if (config.preRotatedKeys) {
    const own = pattern.regions.find((r) => !r.sharesKeyPosition);
    if (own !== undefined) {
      throw new ConfigurationError(`pattern ${pattern.name} cannot take pre-rotated keys: region ${own.name} places keys at its own position`);
    }
  }
  const regions = visitOrder(pattern, chosen).map((r) => planRegion(r, config));
  const rotaryDim = config.rotaryDim ?? config.headDim;
  return {
    pattern,
    config,
    rope: {
      style: config.ropeStyle,
      rotaryDim,
      pairs: rotaryDim / 2,
      fineBits: ROPE_FINE_BITS,
      ...(pattern.positionLimit !== undefined ? { positionLimit: pattern.positionLimit } : {}),
    },
    regions,
    constants: Object.entries(pattern.params).map(([name, value]) => ({
      name: kebab(name).replace(/-/g, '_').toUpperCase(),
      value,
      doc: pattern.definition.params[name]?.description ?? `derived parameter ${name}`,
    })),
  };
}

/** Regions whose keys come first are visited first: K/V reads then walk memory forwards. */
function visitOrder(pattern: CompiledPattern, regions: readonly CompiledRegion[]): CompiledRegion[] {
  const far = 1000 + 10 * Math.max(0, ...Object.values(pattern.params));
  const start = (r: CompiledRegion): number => Math.max(0, E.evaluateInt(r.keyFrom, { i: far }));
  return [...regions].sort((a, b) => start(a) - start(b) || a.index - b.index);
}

function planRegion(region: CompiledRegion, config: KernelConfig): RegionPlan {
  checkMonotone(region);
  const rowFirst = E.variable('rowFirst');
  const rowLast = E.variable('rowLast');
  const keyTile = E.variable('keyTile');
  const at = (e: Expr, by: Expr): Expr => E.substituteVar(e, 'i', by);
  const tileKeyBegin = E.fold(E.max(at(region.keyFrom, rowFirst), E.int(0)));
  const tileKeyEnd = E.fold(E.min(at(region.keyTo, rowLast), rowLast));
  const lastKeyOfTile = E.add(keyTile, E.int(config.blockK - 1));
  const tileUnmasked: Expr = region.pairTest !== undefined
    ? E.fold({ kind: 'bool', value: false })
    : E.fold(E.and(
      E.compare('<=', at(region.keyFrom, rowLast), keyTile),
      E.compare('<=', lastKeyOfTile, E.min(at(region.keyTo, rowFirst), rowFirst)),
    ));
  const i = E.variable('i');
  const j = E.variable('j');
  let elementVisible: Expr = E.and(E.compare('>=', j, region.keyFrom), E.compare('<=', j, E.min(region.keyTo, i)));
  if (region.pairTest !== undefined) elementVisible = E.and(elementVisible, region.pairTest);
  return {
    name: region.name,
    ident: region.name.replace(/[^A-Za-z0-9_]/g, '_'),
    summary: region.definition.summary ?? describeRegion(region),
    queryPosition: region.symbolic.queryPosition,
    keyPosition: region.symbolic.keyPosition,
    sharesKeyPosition: region.sharesKeyPosition,
    tileKeyBegin,
    tileKeyEnd,
    tileUnmasked,
    elementVisible: E.fold(elementVisible),
  };
}

function describeRegion(region: CompiledRegion): string {
  const when = region.definition.when;
  if (when.kind === 'chunk') return `chunk distance ${when.orMore ? '≥' : '='} ${when.distance}`;
  if (when.kind === 'distance') return `query − key distance in [${when.min ? 'min' : '0'}, ${when.max ? 'max' : '∞'}]`;
  return 'custom pair condition';
}

/** The tile bounds assume keyFrom and keyTo never decrease as i grows; verify on a long prefix. */
function checkMonotone(region: CompiledRegion): void {
  let prevFrom = -Infinity;
  let prevTo = -Infinity;
  for (let i = 0; i < 4096; i++) {
    const from = E.evaluateInt(region.keyFrom, { i });
    const to = E.evaluateInt(region.keyTo, { i });
    if (from < prevFrom || to < prevTo) {
      throw new ConfigurationError(`region ${region.name}: its key interval shrinks as the query index grows (at i=${i}); the plan needs monotone intervals`);
    }
    prevFrom = from;
    prevTo = to;
  }
}
