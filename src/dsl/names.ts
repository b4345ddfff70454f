// The one check every pattern goes through before anything uses it (DESIGN.md §2, "one boundary
// for names and text"): definePattern calls it, loadPatternFile calls it on every export that looks
// like a pattern (so a plain object literal gets the same checks), and compilePattern calls it
// again for definitions that reached it some other way. It checks the shape of the definition and
// that every name is an identifier the emitters can use as is:
//
//   pattern names    kebab-case: lower-case letters and digits, words joined by single hyphens
//                    (`dca-paper`); they become file names and C/Python identifiers with - → _.
//   region names     lower camelCase: a lower-case letter, then letters and digits (`intra`);
//                    they become identifier suffixes (Region_intra, query_position_intra).
//   parameter names  lower camelCase as well (`chunkSize`); they become flags (--chunk-size),
//                    constants (CHUNK_SIZE), Python keywords (chunk_size) and file-name tags, so no
//                    _ or - (chunk_size and chunkSize would both be CHUNK_SIZE).
//
// at most MAX_NAME_LENGTH characters, and none of the reserved words below. Free text (summaries,
// descriptions) may hold anything; the backends escape it (src/backends/text.ts).

import { DslError } from '../errors.js';
import type { PatternDefinition } from './pattern.js';

export const PATTERN_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
export const IDENTIFIER_NAME = /^[a-z][A-Za-z0-9]*$/;
export const MAX_NAME_LENGTH = 40;

/** Region names the emitters use for something else (the three-pass merge kernel and its file). */
export const RESERVED_REGION_NAMES: ReadonlySet<string> = new Set(['merge']);

/**
 * UPPER_SNAKE forms a parameter may not take: constants and macros of the kernel skeletons
 * (templates/), and macro families of the headers they include (C math, limits and stdint, CUDA,
 * Metal). A parameter's constant is its name in UPPER_SNAKE (chunkSize → CHUNK_SIZE).
 */
const RESERVED_CONSTANTS: ReadonlySet<string> = new Set([
  // the code of templates/ (test/names.test.ts checks this list against them)
  'APPEND_PARAMS_BYTES', 'COMBINE_CHUNK', 'DECODE_MAX_QUERIES', 'MAX_ROWS', 'WORKGROUP', 'BLOCK_K', 'BLOCK_Q', 'DIRECT_OUTPUT', 'OUTPUT_SLOT', 'MASKED_SCORE', 'MIN_SPLIT_KEYS', 'PARAMS_BYTES', 'PASS_INDEX', 'TARGET_WORKGROUPS', 'CHUNKS_PER_ROW', 'COPY_DST', 'DIMS_PER_THREAD', 'DIM_TILE', 'DTYPE', 'HEAD_DIM',
  'HEAD_VEC4', 'KERNELS', 'KV_TILE', 'LOG2E', 'MASKED', 'NAMESPACE', 'NEG_INF', 'PARAMS',
  'PARTIAL', 'PARTIALS', 'PASS', 'PASS_COUNT', 'PATTERN', 'POSITION_LIMIT', 'Q_TILE', 'REGIONS', 'REGION_COUNT',
  'ROPE_FINE_BITS', 'ROPE_PAIRS', 'ROPE_STYLE', 'ROTARY_DIM', 'ROW_THREADS', 'SIMDGROUPS',
  'SMEM_ELEMENTS', 'STORAGE', 'SWIZZLE', 'T', 'TG_MEMORY_FLOATS', 'THREADS', 'TILE_STRIDE', 'UNIFORM', 'URL',
  'VARIANT', 'WORKSPACE_FLOATS_PER_ROW',
  'CACHE_APPEND', 'DECODE_MAX_ROWS', 'DECODE_TG_FLOATS', 'KEYS_PRE_ROTATED', 'LANE_DIMS', 'SIMD_WIDTH', 'TARGET_THREADGROUPS',
  // the CUDA serving kernels (paged attention, cache append, merge)
  'APPEND_SUPPORTED', 'APPEND_THREADS', 'DIMS_PER_LANE', 'K_STRIDE', 'MERGE_THREADS', 'PAGED_SMEM_FLOATS', 'PAGED_THREADS', 'PAGED_WARPS',
  'PRE_ROTATED_KEYS', 'ROWS_PER_WARP', 'TARGET_BLOCKS_PER_SM', 'TILE_KEYS',
  'GATHER_BATCH', 'GATHER_LOADS', 'GATHER_VEC', 'LOAD_BYTES', 'MIN_RESIDENT_BLOCKS', 'VECTOR_GATHER',
  // the CUDA prefill kernel (128-row tiles, keys rotated once) and the Metal serving kernels
  'D_TILES', 'DTYPE_NAME', 'F', 'L', 'ML_FLOATS', 'N_TILES', 'R', 'ROTATE_THREADS', 'ROW_INTERVAL', 'WARPS',
  // single macros of <cmath>, <cstdio>, <cstdlib>, <ctime>, the CUDA and Metal headers
  'INFINITY', 'NAN', 'NULL', 'EOF', 'BUFSIZ', 'RAND_MAX', 'CLOCKS_PER_SEC', 'MAXFLOAT', 'EDOM', 'ERANGE', 'EILSEQ',
  'ASSERT', 'TRUE', 'FALSE', 'MIN', 'MAX', 'ABS',
]);
/** Macro families: a constant starting with one of these words and an underscore (INT_MAX, M_PI, CUDA_VERSION). */
const RESERVED_CONSTANT_PREFIXES = /^(?:INT\d*|UINT\d*|INTMAX|UINTMAX|INTPTR|UINTPTR|PTRDIFF|SIZE|SIG|WCHAR|WINT|CHAR|SCHAR|UCHAR|SHRT|USHRT|LONG|ULONG|LLONG|ULLONG|FLT|DBL|LDBL|HALF|BF16|FP|M|MATH|HUGE|EXIT|MB|CUDA|CUDART|CU|CUB|NV|NVRTC|CUBLAS|WARP|DCAGEN|METAL|MTL|TORCH|PYBIND11|ATOMIC|MLX)_/;

/** Python words a parameter's snake_case form may not take: keywords, the generated function's own arguments, and the module-level names and builtins its body reads. */
const RESERVED_PYTHON: ReadonlySet<string> = new Set([
  'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except',
  'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise',
  'return', 'try', 'while', 'with', 'yield', 'match', 'case', 'type',
  'q', 'k', 'v', 'rope_theta', 'scale', 'original_max_position',
  // the serving functions' arguments (append_to_cache, paged_attention in the PyTorch and MLX modules)
  'key', 'value', 'key_cache', 'value_cache', 'k_cache', 'v_cache', 'slot_mapping', 'positions', 'lengths', 'seq_lens',
  'block_table', 'splits', 'softmax_scale', 'num_splits', 'return_softmax_lse', 'max_seq_len',
  'math', 'os', 'np', 'mx', 'torch', 'rope_table', 'logit_scale', 'kernel_sources', 'load_inline',
  'abs', 'bool', 'dict', 'float', 'int', 'len', 'list', 'max', 'min', 'print', 'range', 'str', 'tuple', 'isinstance', 'super', 'open',
]);

/** A parameter's name in the generated code's naming styles. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
export const constantName = (name: string): string => kebab(name).replace(/-/g, '_').toUpperCase();
export const snakeName = (name: string): string => kebab(name).replace(/-/g, '_');

/** A name as error messages show it: quoted, every control or line-breaking character escaped, long ones cut. */
export function quoteName(value: unknown): string {
  if (typeof value !== 'string') return value === undefined ? 'nothing' : `a ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}`;
  const cut = [...value].length > 60 ? `${[...value].slice(0, 60).join('')}…` : value;
  return JSON.stringify(cut).replace(/[\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Why a name is unusable, or undefined when it is fine. */
export function nameProblem(kind: 'pattern' | 'region' | 'parameter' | 'preset' | 'derived parameter', name: unknown): string | undefined {
  const shown = `${kind} name ${quoteName(name)}`;
  if (typeof name !== 'string') return `${shown}: must be a string`;
  if (name.length > MAX_NAME_LENGTH) return `${shown} is longer than ${MAX_NAME_LENGTH} characters`;
  if (kind === 'pattern') {
    return PATTERN_NAME.test(name) ? undefined : `${shown} must be lower-case letters and digits, words joined by single hyphens (like dca-paper)`;
  }
  if (!IDENTIFIER_NAME.test(name)) return `${shown} must be an identifier: a lower-case letter, then letters and digits (like chunkSize)`;
  if (kind === 'region') return RESERVED_REGION_NAMES.has(name) ? `${shown} is reserved (the three-pass merge kernel)` : undefined;
  const constant = constantName(name);
  if (RESERVED_CONSTANTS.has(constant) || RESERVED_CONSTANT_PREFIXES.test(constant)) {
    return `${shown} is reserved: its constant ${constant} is a name the generated kernels or their headers already use`;
  }
  if (RESERVED_PYTHON.has(snakeName(name))) return `${shown} is reserved: ${snakeName(name)} is a Python keyword or a name the generated Python modules use`;
  return undefined;
}

/**
 * A definition that fails the shape or name checks. `subject` is the offending text as the author
 * wrote it (a name), so a file loader can point at it (file:line:col).
 */
export class PatternDefinitionError extends DslError {
  readonly problem: string;
  readonly subject: string | undefined;
  readonly patternName: string | undefined;
  constructor(problem: string, context: string, subject?: string, patternName?: string) {
    super(problem, { context });
    this.problem = problem;
    this.subject = subject;
    this.patternName = patternName;
  }
}

const checked = new WeakSet<object>();

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFunction = (v: unknown): boolean => typeof v === 'function';
const optional = (v: unknown, test: (x: unknown) => boolean): boolean => v === undefined || test(v);
const isString = (v: unknown): boolean => typeof v === 'string';
const isInteger = (v: unknown): boolean => Number.isSafeInteger(v);

/**
 * Checks a pattern definition's shape and names; throws a PatternDefinitionError (exit 2) naming
 * the first problem. Cheap on a definition it has seen before.
 */
export function checkPatternDefinition(value: unknown): asserts value is PatternDefinition {
  if (isObject(value) && checked.has(value)) return;
  if (!isObject(value)) throw new PatternDefinitionError(`a pattern must be an object, got ${quoteName(value)}`, 'pattern definition');
  const name = value['name'];
  const nameBad = nameProblem('pattern', name);
  if (nameBad !== undefined) throw new PatternDefinitionError(nameBad, 'pattern definition', typeof name === 'string' ? name : undefined);
  const pattern = name as string;
  const fail = (problem: string, subject?: string, where?: string): never => {
    throw new PatternDefinitionError(problem, `pattern ${pattern}${where ? `, ${where}` : ''}`, subject, pattern);
  };
  if (!isString(value['summary'])) fail('summary must be a string', 'summary');
  if (!isFunction(value['keyPosition'])) fail('keyPosition must be a function (j, p) => position', 'keyPosition');
  for (const field of ['derive', 'positionLimit'] as const) {
    if (!optional(value[field], isFunction)) fail(`${field} must be a function`, field);
  }
  const constraints = value['constraints'];
  if (!optional(constraints, (c) => Array.isArray(c) && c.every(isFunction))) fail('constraints must be an array of functions', 'constraints');

  const params = value['params'];
  if (!isObject(params)) fail('params must be an object of parameter specs (use {} for none)', 'params');
  const flags = new Set<string>();
  for (const [param, spec] of Object.entries(params as Record<string, unknown>)) {
    const bad = nameProblem('parameter', param);
    if (bad !== undefined) fail(bad, param);
    const where = `parameter ${param}`;
    if (!isObject(spec)) fail('must be an object { description, min?, max?, default?, hfKey? }', param, where);
    const s = spec as Record<string, unknown>;
    if (!isString(s['description'])) fail('description must be a string', param, where);
    for (const bound of ['min', 'max', 'default'] as const) {
      if (!optional(s[bound], isInteger)) fail(`${bound} must be an integer`, param, where);
    }
    if (!optional(s['hfKey'], isString)) fail('hfKey must be a string', param, where);
    flags.add(kebab(param));
  }
  const presets = value['presets'];
  if (!optional(presets, isObject)) fail('presets must be an object', 'presets');
  for (const [preset, spec] of Object.entries((presets ?? {}) as Record<string, unknown>)) {
    const bad = nameProblem('preset', preset);
    if (bad !== undefined) fail(bad, preset);
    const where = `preset ${preset}`;
    if (flags.has(kebab(preset))) fail('has the name of a parameter (both would be the flag --' + kebab(preset) + ')', preset, where);
    if (!isObject(spec) || !isString(spec['description']) || !isFunction(spec['expand'])) {
      fail('must be an object { description: string, expand: (value) => params }', preset, where);
    }
  }

  const regions = value['regions'];
  if (!Array.isArray(regions) || regions.length === 0) fail('regions must be a non-empty array', 'regions');
  const seen = new Set<string>();
  for (const region of regions as unknown[]) {
    if (!isObject(region)) fail('every region must be an object', 'regions');
    const r = region as Record<string, unknown>;
    const bad = nameProblem('region', r['name']);
    if (bad !== undefined) fail(bad, typeof r['name'] === 'string' ? r['name'] : undefined);
    const regionName = r['name'] as string;
    const where = `region ${regionName}`;
    if (seen.has(regionName)) fail(`region "${regionName}" is declared twice`, regionName);
    seen.add(regionName);
    if (!isFunction(r['queryPosition'])) fail('queryPosition must be a function (i, p) => position', regionName, where);
    if (!optional(r['keyPosition'], isFunction)) fail('keyPosition must be a function (j, p) => position', regionName, where);
    if (!optional(r['summary'], isString)) fail('summary must be a string', regionName, where);
    const mask = r['mask'];
    if (!(mask === 'causal' || mask === 'full' || (isObject(mask) && isFunction(mask['window'])))) {
      fail("mask must be 'causal', 'full' or windowMask(size)", regionName, where);
    }
    const when = r['when'];
    const whenOk = isObject(when) && (
      (when['kind'] === 'chunk' && isFunction(when['length']) && isInteger(when['distance']) && typeof when['orMore'] === 'boolean') ||
      (when['kind'] === 'distance' && optional(when['min'], isFunction) && optional(when['max'], isFunction)) ||
      (when['kind'] === 'pair' && isFunction(when['test'])));
    if (!whenOk) fail('when must be a condition built with sameChunk, chunksApart, distanceBelow, everyPair, pairsWhere, …', regionName, where);
  }
  checked.add(value);
}

/** Checks the names a pattern's derive function adds (known only once it runs). */
export function checkDerivedNames(pattern: string, names: readonly string[]): void {
  for (const name of names) {
    const bad = nameProblem('derived parameter', name);
    if (bad !== undefined) throw new PatternDefinitionError(bad, `pattern ${pattern}, derive`, name, pattern);
  }
}
