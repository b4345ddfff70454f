// The flags every command shares: which pattern (built-in or from a file), its parameters, RoPE
// settings, softmax scale and Qwen temperature, optionally seeded from a Hugging Face config.
// Explicit flags override the config.

import { UsageError } from '../errors.js';
import { compilePattern, kebab, type CompiledPattern } from '../dsl/instantiate.js';
import { loadPatternFile } from '../dsl/load-file.js';
import type { PatternDefinition } from '../dsl/pattern.js';
import { readHfConfig, type HfSettings } from '../io/hf-config.js';
import { builtinPattern } from '../patterns/index.js';
import type { RopeConfig, RopeStyle } from '../reference/rope.js';
import type { FlagSpec, ParsedFlags } from './args.js';

export const patternSelectionFlags: Record<string, FlagSpec> = {
  pattern: { kind: 'string', description: 'built-in pattern: causal, dca, dca-paper, self-extend, rerope, sliding-window' },
  'pattern-file': { kind: 'string', description: 'a TypeScript file exporting a pattern (definePattern)' },
  'hf-config': { kind: 'string', description: "a Hugging Face config.json (Qwen's dual_chunk_attention_config, rope_theta, head dim)" },
};

export const attentionFlags: Record<string, FlagSpec> = {
  'rope-theta': { kind: 'number', description: 'RoPE base θ (default 10000, or the config’s rope_theta)' },
  'rope-style': { kind: 'string', choices: ['half', 'interleaved'], description: 'rotate-half (GPT-NeoX/Llama/Qwen, default) or interleaved (GPT-J)' },
  'rotary-dim': { kind: 'int', description: 'rotate only the first N dims of each head (partial rotary)' },
  scale: { kind: 'number', description: 'softmax scale (default 1/sqrt(head_dim))' },
  'original-max-position': { kind: 'int', description: 'Qwen temperature: logits × f(n)², f(n) = max(1, 0.1·ln(n/c_orig) + 1)' },
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

/** The flags a pattern adds: one per parameter, one per preset. */
export function patternParamFlags(definition: PatternDefinition): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {};
  for (const [name, spec] of Object.entries(definition.params)) flags[kebab(name)] = { kind: 'int', description: spec.description };
  for (const [name, preset] of Object.entries(definition.presets ?? {})) flags[kebab(name)] = { kind: 'int', description: preset.description };
  return flags;
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
    rope: { theta, style: (flags.string('rope-style') ?? 'half') as RopeStyle, ...(rotaryDim !== undefined ? { rotaryDim } : {}) },
    ...(scale !== undefined ? { scale } : {}),
    ...(originalMaxPosition !== undefined ? { originalMaxPosition } : {}),
  };
}
