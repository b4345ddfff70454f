// Command-line flag parsing: `--name value`, `--name=value` and boolean `--name`. Each command
// declares its flags in one table (kind, meaning, default, required) that both parses the command
// line and prints `--help`; unknown flags and missing values are UsageErrors with one clear line.

import { UsageError } from '../errors.js';

export type FlagKind = 'string' | 'int' | 'number' | 'boolean';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly description: string;
  /** Accepted values for string flags. */
  readonly choices?: readonly string[];
  /** The value when the flag is absent: ParsedFlags returns it and --help prints it. */
  readonly default?: string | number;
  /** A default that depends on other flags, the backend or a config, in words (--help prints it). */
  readonly defaultText?: string;
  /** true: parseFlags fails without the flag. A string: required, checked by the command, unless
   *  the condition it names holds ('' when there is none); --help prints it. */
  readonly required?: true | string;
  /** What --help calls the value (FILE, DIR, NAME); by default the choices, N, X or VALUE. */
  readonly value?: string;
  /** A short spelling (emit's `-o`). */
  readonly alias?: string;
}

export type FlagValue = string | number | boolean;

export class ParsedFlags {
  constructor(
    private readonly values: Map<string, FlagValue>,
    private readonly specs: Readonly<Record<string, FlagSpec>> = {},
  ) {}
  /** Whether the flag was given (its default does not count). */
  has(name: string): boolean { return this.values.has(name); }
  /** The given value, else the table's default. */
  string(name: string): string | undefined { return (this.values.get(name) ?? this.specs[name]?.default) as string | undefined; }
  number(name: string): number | undefined { return (this.values.get(name) ?? this.specs[name]?.default) as number | undefined; }
  boolean(name: string): boolean { return this.values.get(name) === true; }
  requireString(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`missing --${name}`);
    return v;
  }
  requireNumber(name: string): number {
    const v = this.number(name);
    if (v === undefined) throw new UsageError(`missing --${name}`);
    return v;
  }
}

export function parseFlags(argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>, command: string): ParsedFlags {
  const values = new Map<string, FlagValue>();
  for (let k = 0; k < argv.length; k++) {
    const alias = Object.entries(specs).find(([, spec]) => spec.alias !== undefined && spec.alias === argv[k]);
    const arg = alias !== undefined ? `--${alias[0]}` : argv[k]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}" for dcagen ${command} (flags start with --)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const spec = specs[name];
    if (spec === undefined) throw new UsageError(`unknown flag --${name} for dcagen ${command} (see dcagen ${command} --help)`);
    if (spec.kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      values.set(name, true);
      continue;
    }
    let raw: string | undefined;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      raw = argv[k + 1];
      k++;
    }
    if (raw === undefined || (eq < 0 && raw.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    values.set(name, convert(name, raw, spec));
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.required === true && !values.has(name)) throw new UsageError(`missing --${name}`);
  }
  return new ParsedFlags(values, specs);
}

function convert(name: string, raw: string, spec: FlagSpec): FlagValue {
  switch (spec.kind) {
    case 'string':
      if (spec.choices !== undefined && !spec.choices.includes(raw)) {
        throw new UsageError(`--${name} must be one of ${spec.choices.join(', ')}, got "${raw}"`);
      }
      return raw;
    case 'int': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isSafeInteger(v)) throw new UsageError(`--${name} must be an integer, got "${raw}"`);
      return v;
    }
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got "${raw}"`);
      return v;
    }
    case 'boolean':
      return true;
  }
}

/** How --help writes a flag's value: its name (FILE), its choices (a|b), or N / X / VALUE. */
function valueName(spec: FlagSpec): string {
  if (spec.kind === 'boolean') return '';
  if (spec.value !== undefined) return ` ${spec.value}`;
  if (spec.choices !== undefined) return ` ${spec.choices.join('|')}`;
  return spec.kind === 'int' ? ' N' : spec.kind === 'number' ? ' X' : ' VALUE';
}

/** The flag as a synopsis writes it: `--name VALUE` (or `-o DIR` for a flag with an alias). */
export function flagSynopsis(name: string, spec: FlagSpec): string {
  return `${spec.alias ?? `--${name}`}${valueName(spec)}`;
}

/** What --help adds after the meaning: the default, or that the flag is required. */
export function flagDefault(spec: FlagSpec): string | undefined {
  if (spec.required === true) return 'required';
  if (typeof spec.required === 'string') return spec.required === '' ? 'required' : `required ${spec.required}`;
  if (spec.default !== undefined) return `default: ${spec.default}`;
  if (spec.defaultText !== undefined) return `default: ${spec.defaultText}`;
  return undefined;
}

/** Joins words into lines of at most `width` characters (a longer word stays whole). */
export function wrap(words: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

/** The help text is wrapped to this many columns. */
export const HELP_WIDTH = 100;

/** One entry per flag, in table order: `--name VALUE   meaning [default: …]`, wrapped. */
export function formatFlagHelp(specs: Readonly<Record<string, FlagSpec>>): string {
  const entries = Object.entries(specs);
  const heads = entries.map(([name, spec]) => `  ${spec.alias !== undefined ? `${spec.alias}, ` : ''}--${name}${valueName(spec)}`);
  const column = Math.min(36, Math.max(0, ...heads.map((h) => h.length)) + 2);
  const pad = ' '.repeat(column);
  return entries
    .map(([, spec], n) => {
      const head = heads[n]!;
      const note = flagDefault(spec);
      const width = HELP_WIDTH - column;
      // The [default: …] note stays on one line when it fits on one.
      const tail = note === undefined ? [] : note.length + 2 <= width ? [`[${note}]`] : `[${note}]`.split(' ');
      const text = wrap([...spec.description.split(' '), ...tail], width);
      const lead = head.length + 2 > column ? `${head}\n${pad}` : head.padEnd(column);
      return `${lead}${text.join(`\n${pad}`)}`;
    })
    .join('\n');
}
