// Turns a pattern definition plus parameter values into a compiled pattern: validated integer
// parameters (base and derived), each region's position expressions and key interval as expression
// trees with the parameters folded in. This is what the reference checks against and what the plan
// and every backend consume.

import { ParameterError } from '../errors.js';
import * as E from './expr.js';
import type { Expr } from './expr.js';
import { checkDerivedNames, checkPatternDefinition, kebab } from './names.js';
import type { Params, PatternDefinition, RegionDefinition } from './pattern.js';
import { readFunction } from './reader.js';

export type CompiledMask = { readonly kind: 'causal' } | { readonly kind: 'full' } | { readonly kind: 'window'; readonly size: number };

export interface CompiledRegion {
  readonly name: string;
  readonly index: number;
  readonly definition: RegionDefinition;
  /** Query position as a function of the query index i. */
  readonly queryPosition: Expr;
  /** Key position as a function of the key index j. */
  readonly keyPosition: Expr;
  /** The same two functions with parameters left by name, for generated code that names its constants. */
  readonly symbolic: { readonly queryPosition: Expr; readonly keyPosition: Expr };
  /** True when the region uses the pattern's shared key position (so pre-rotated keys work). */
  readonly sharesKeyPosition: boolean;
  /** First and last key index the region may own for query i, before the causal cut j ≤ i. */
  readonly keyFrom: Expr;
  readonly keyTo: Expr;
  /** Extra per-pair test for regions that are not key intervals; undefined for interval regions. */
  readonly pairTest?: Expr;
  readonly mask: CompiledMask;
}

export interface CompiledPattern {
  readonly definition: PatternDefinition;
  readonly name: string;
  /** Base and derived parameter values. */
  readonly params: Params;
  readonly positionLimit?: number;
  readonly keyPosition: Expr;
  readonly keyPositionSymbolic: Expr;
  readonly regions: readonly CompiledRegion[];
}

/** Checks base parameters (presence, integer, range), derives the rest, and runs the constraints. */
export function resolveParams(definition: PatternDefinition, given: Readonly<Record<string, number | undefined>>): Params {
  checkPatternDefinition(definition);
  const base: Record<string, number> = {};
  for (const [name, spec] of Object.entries(definition.params)) {
    const value = given[name] ?? spec.default;
    const flag = `--${kebab(name)}`;
    if (value === undefined) throw new ParameterError(`pattern ${definition.name} needs ${flag} (${spec.description})`);
    if (!Number.isSafeInteger(value)) throw new ParameterError(`${flag} must be an integer, got ${value}`);
    if (spec.min !== undefined && value < spec.min) throw new ParameterError(`${flag} must be at least ${spec.min}, got ${value}`);
    if (spec.max !== undefined && value > spec.max) throw new ParameterError(`${flag} must be at most ${spec.max}, got ${value}`);
    base[name] = value;
  }
  for (const name of Object.keys(given)) {
    if (!(name in definition.params) && given[name] !== undefined) {
      throw new ParameterError(`pattern ${definition.name} has no parameter --${kebab(name)}`);
    }
  }
  const derived: unknown = definition.derive?.(base) ?? {};
  if (typeof derived !== 'object' || derived === null || Array.isArray(derived)) throw new ParameterError(`pattern ${definition.name}: derive must return an object of parameter values`);
  checkDerivedNames(definition.name, Object.keys(derived).filter((name) => !(name in base)));
  const params: Params = { ...base, ...(derived as Params) };
  for (const [name, value] of Object.entries(params)) {
    if (!Number.isSafeInteger(value)) throw new ParameterError(`derived parameter ${name} is not an integer (${value})`);
  }
  for (const constraint of definition.constraints ?? []) {
    const problem = constraint(params);
    if (problem !== undefined) throw new ParameterError(`pattern ${definition.name}: ${problem}`);
  }
  return params;
}

export { kebab };

const compiledCache = new WeakMap<PatternDefinition, Map<string, CompiledPattern>>();

/** Compiles a pattern for concrete parameter values (cached per definition and values). */
export function compilePattern(definition: PatternDefinition, given: Readonly<Record<string, number | undefined>>): CompiledPattern {
  const params = resolveParams(definition, given);
  const key = JSON.stringify(params);
  let cache = compiledCache.get(definition);
  if (cache === undefined) compiledCache.set(definition, (cache = new Map()));
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const compiled = compileWithParams(definition, params);
  cache.set(key, compiled);
  return compiled;
}

function compileWithParams(definition: PatternDefinition, params: Params): CompiledPattern {
  const paramNames = Object.keys(params);
  const at = (what: string): string => `pattern ${definition.name}, ${what}`;
  const readSymbolic = (fn: (...args: never[]) => unknown, indices: readonly E.IndexVariable[], returns: E.ExprType, what: string): Expr =>
    readFunction(fn, { indices, paramNames, returns, context: at(what) });
  const read = (fn: (...args: never[]) => unknown, indices: readonly E.IndexVariable[], returns: E.ExprType, what: string): Expr =>
    E.bindParams(readSymbolic(fn, indices, returns, what), params);

  const keyPositionSymbolic = readSymbolic(definition.keyPosition, ['j'], 'int', 'keyPosition');
  const keyPosition = E.bindParams(keyPositionSymbolic, params);
  const regions = definition.regions.map((region, index): CompiledRegion => {
    const querySymbolic = readSymbolic(region.queryPosition, ['i'], 'int', `region ${region.name}, queryPosition`);
    const queryPosition = E.bindParams(querySymbolic, params);
    const ownKeySymbolic = region.keyPosition === undefined ? undefined : readSymbolic(region.keyPosition, ['j'], 'int', `region ${region.name}, keyPosition`);
    const ownKey = ownKeySymbolic === undefined ? undefined : E.bindParams(ownKeySymbolic, params);
    const mask = compileMask(region, params, definition.name);
    const i = E.variable('i');
    let keyFrom: Expr = E.int(0);
    let keyTo: Expr = i;
    let pairTest: Expr | undefined;
    const when = region.when;
    if (when.kind === 'chunk') {
      const length = positiveInt(when.length(params), `${at(`region ${region.name}`)}: chunk length`);
      const chunkOfI = E.floorDiv(i, E.int(length));
      // Keys of chunk ⌊i/L⌋ − d span [(⌊i/L⌋ − d)·L, (⌊i/L⌋ − d + 1)·L − 1].
      if (!when.orMore) keyFrom = E.mul(E.sub(chunkOfI, E.int(when.distance)), E.int(length));
      keyTo = E.sub(E.mul(E.sub(chunkOfI, E.int(when.distance - 1)), E.int(length)), E.int(1));
    } else if (when.kind === 'distance') {
      if (when.max !== undefined) keyFrom = E.sub(i, E.int(when.max(params)));
      if (when.min !== undefined) keyTo = E.sub(i, E.int(when.min(params)));
    } else {
      pairTest = read(when.test, ['i', 'j'], 'bool', `region ${region.name}, when`);
    }
    if (mask.kind === 'window') keyFrom = E.max(keyFrom, E.sub(i, E.int(mask.size - 1)));
    return {
      name: region.name,
      index,
      definition: region,
      queryPosition,
      keyPosition: ownKey ?? keyPosition,
      symbolic: { queryPosition: querySymbolic, keyPosition: ownKeySymbolic ?? keyPositionSymbolic },
      sharesKeyPosition: ownKey === undefined,
      keyFrom: E.fold(keyFrom),
      keyTo: E.fold(keyTo),
      ...(pairTest === undefined ? {} : { pairTest }),
      mask,
    };
  });
  const limit = definition.positionLimit?.(params);
  return { definition, name: definition.name, params, ...(limit === undefined ? {} : { positionLimit: limit }), keyPosition, keyPositionSymbolic, regions };
}

function compileMask(region: RegionDefinition, params: Params, pattern: string): CompiledMask {
  if (region.mask === 'causal') return { kind: 'causal' };
  if (region.mask === 'full') return { kind: 'full' };
  return { kind: 'window', size: positiveInt(region.mask.window(params), `pattern ${pattern}, region ${region.name}: window size`) };
}

function positiveInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new ParameterError(`${what} must be a positive integer, got ${value}`);
  return value;
}

/**
 * The region that owns causal pair (i, j), decided natively from the definition (not from the
 * compiled intervals), or undefined when no region owns it. Masks are applied separately.
 */
export function owningRegion(pattern: CompiledPattern, i: number, j: number): CompiledRegion | undefined {
  for (const region of pattern.regions) {
    if (conditionHolds(region.definition, pattern.params, i, j)) return region;
  }
  return undefined;
}

export function conditionHolds(region: RegionDefinition, p: Params, i: number, j: number): boolean {
  const when = region.when;
  switch (when.kind) {
    case 'chunk': {
      const length = when.length(p);
      const apart = Math.floor(i / length) - Math.floor(j / length);
      return when.orMore ? apart >= when.distance : apart === when.distance;
    }
    case 'distance': {
      const d = i - j;
      return (when.min === undefined || d >= when.min(p)) && (when.max === undefined || d <= when.max(p));
    }
    case 'pair':
      return when.test(i, j, p);
  }
}

/** Whether the region's mask lets (i, j) through (j ≤ i is assumed). */
export function maskAllows(region: RegionDefinition, p: Params, i: number, j: number): boolean {
  if (region.mask === 'causal' || region.mask === 'full') return true;
  return i - j < region.mask.window(p);
}
