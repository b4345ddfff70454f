// The flags every command shares: which pattern (built-in or from a file), its parameters, RoPE
// settings, softmax scale and Qwen temperature, optionally seeded from a Hugging Face config.
// Explicit flags override the config.

import { UsageError } from '../errors.js';
import { compilePattern, kebab, type CompiledPattern } from '../dsl/instantiate.js';
import { loadPatternFile } from '../io/pattern-file.js';
import type { PatternDefinition } from '../dsl/pattern.js';
import { readHfConfig, type HfSettings } from '../io/hf-config.js';
import { builtinPattern, builtinPatterns } from '../patterns/index.js';
import type { RopeConfig, RopeStyle } from '../reference/rope.js';
import type { FlagSpec, ParsedFlags } from './args.js';

export const patternSelectionFlags: Record<string, FlagSpec> = {
  pattern: {
    kind: 'string', value: 'NAME', required: 'unless --pattern-file or --hf-config chooses one',
    description: `built-in pattern (${builtinPatterns.map((p) => p.name).join(', ')}), or which export of --pattern-file`,
  },
  'pattern-file': { kind: 'string', value: 'FILE', defaultText: 'none', description: 'a TypeScript file exporting a pattern (definePattern); its first export unless --pattern names one' },
  'hf-config': { kind: 'string', value: 'FILE', defaultText: 'none', description: "a Hugging Face config.json (Qwen's dual_chunk_attention_config, rope_theta, head dim); flags override it" },
};

export const attentionFlags: Record<string, FlagSpec> = {
  'rope-theta': { kind: 'number', defaultText: '10000, or the config’s rope_theta', description: 'RoPE base θ' },
  'rope-style': { kind: 'string', choices: ['half', 'interleaved'], default: 'half', description: 'rotate-half (GPT-NeoX/Llama/Qwen) or interleaved (GPT-J)' },
  'rotary-dim': { kind: 'int', defaultText: 'the head dim, or the config’s partial_rotary_factor', description: 'rotate only the first N dims of each head (partial rotary)' },
  scale: { kind: 'number', defaultText: '1/sqrt(head dim)', description: 'softmax scale' },
  'original-max-position': { kind: 'int', defaultText: 'none, or the config’s original_max_position_embeddings', description: 'Qwen temperature c_orig: logits × f(n)², f(n) = max(1, 0.1·ln(n/c_orig) + 1)' },
};

export interface PatternSelection {
  readonly definition: PatternDefinition;
  readonly hf?: HfSettings;
}

function peek(argv: readonly string[], name: string): string | undefined {
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k]!;
    if (a === `--${name}`) return argv[k + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

/** Decides the pattern before the full flag parse, since its parameters are flags too. */
export async function selectPattern(argv: readonly string[], fallback?: string): Promise<PatternSelection> {
  const hfPath = peek(argv, 'hf-config');
  const hf = hfPath === undefined ? undefined : await readHfConfig(hfPath);
  const file = peek(argv, 'pattern-file');
  const name = peek(argv, 'pattern');
  if (file !== undefined) {
    const patterns = await loadPatternFile(file);
    if (name === undefined) return { definition: patterns[0]!, ...(hf ? { hf } : {}) };
    const found = patterns.find((p) => p.name === name);
    if (found === undefined) throw new UsageError(`pattern file ${file} has no pattern named "${name}" (it has ${patterns.map((p) => p.name).join(', ')})`);
    return { definition: found, ...(hf ? { hf } : {}) };
  }
  const chosen = name ?? hf?.pattern ?? fallback;
  if (chosen === undefined) throw new UsageError('missing --pattern (or --pattern-file, or an --hf-config with dual_chunk_attention_config)');
  return { definition: builtinPattern(chosen), ...(hf ? { hf } : {}) };
}

/** The flags a pattern adds: one per parameter, one per preset. Defaults and ranges are shown by
 *  --help but applied by the pattern itself (resolveParams), after the config and the presets. */
export function patternParamFlags(definition: PatternDefinition): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {};
  const presets = Object.keys(definition.presets ?? {}).map((name) => `--${kebab(name)}`);
  for (const [name, spec] of Object.entries(definition.params)) {
    const range = spec.min !== undefined && spec.max !== undefined ? ` (${spec.min} to ${spec.max})`
      : spec.min !== undefined ? ` (at least ${spec.min})` : spec.max !== undefined ? ` (at most ${spec.max})` : '';
    const others = [...presets, ...(spec.hfKey !== undefined ? [`--hf-config's ${spec.hfKey}`] : [])];
    flags[kebab(name)] = {
      kind: 'int',
      description: `${spec.description}${range}`,
      ...(spec.default !== undefined ? { defaultText: String(spec.default) } : { required: others.length > 0 ? `unless ${others.join(' or ')} sets it` : '' }),
    };
  }
  for (const [name, preset] of Object.entries(definition.presets ?? {})) {
    flags[kebab(name)] = { kind: 'int', description: preset.description, defaultText: 'none; explicit parameter flags win' };
  }
  return flags;
}

/** A pattern's flags in one line, for listings: `--chunk-size N --local-window N | --pretraining-length N`. */
export function patternFlagsLine(definition: PatternDefinition): string {
  const params = Object.keys(definition.params).map((name) => `--${kebab(name)} N`).join(' ');
  const presets = Object.keys(definition.presets ?? {}).map((name) => `--${kebab(name)} N`);
  if (params === '') return '(no parameters)';
  return [params, ...presets].join(' | ');
}

/** Pattern parameters from (lowest to highest priority) the HF config, presets, explicit flags. */
export function compileSelectedPattern(selection: PatternSelection, flags: ParsedFlags): CompiledPattern {
  const { definition, hf } = selection;
  const given: Record<string, number | undefined> = {};
  for (const [name, spec] of Object.entries(definition.params)) {
    if (spec.hfKey !== undefined && hf?.patternValues[spec.hfKey] !== undefined) given[name] = hf.patternValues[spec.hfKey];
  }
  for (const [name, preset] of Object.entries(definition.presets ?? {})) {
    const v = flags.number(kebab(name));
    if (v !== undefined) Object.assign(given, preset.expand(v));
  }
  for (const name of Object.keys(definition.params)) {
    const v = flags.number(kebab(name));
    if (v !== undefined) given[name] = v;
  }
  return compilePattern(definition, given);
}

export interface AttentionSettings {
  readonly rope: RopeConfig;
  readonly scale?: number;
  readonly originalMaxPosition?: number;
}

export function attentionSettings(selection: PatternSelection, flags: ParsedFlags): AttentionSettings {
  const hf = selection.hf;
  const theta = flags.number('rope-theta') ?? hf?.ropeTheta ?? 10000;
  if (!(theta > 1)) throw new UsageError(`--rope-theta must be greater than 1, got ${theta}`);
  const rotaryDim = flags.number('rotary-dim') ?? hf?.rotaryDim;
  const scale = flags.number('scale');
  if (scale !== undefined && !(scale > 0)) throw new UsageError(`--scale must be positive, got ${scale}`);
  const originalMaxPosition = flags.number('original-max-position') ?? hf?.originalMaxPosition;
  if (originalMaxPosition !== undefined && originalMaxPosition < 1) throw new UsageError(`--original-max-position must be at least 1`);
  return {
    rope: { theta, style: flags.string('rope-style') as RopeStyle, ...(rotaryDim !== undefined ? { rotaryDim } : {}) },
    ...(scale !== undefined ? { scale } : {}),
    ...(originalMaxPosition !== undefined ? { originalMaxPosition } : {}),
  };
}
