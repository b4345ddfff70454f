// Command-line flag parsing: `--name value`, `--name=value` and boolean `--name`. Each command
// declares its flags; unknown flags and missing values are UsageErrors with one clear line.

import { UsageError } from '../errors.js';

export type FlagKind = 'string' | 'int' | 'number' | 'boolean';

export interface FlagSpec {
  readonly kind: FlagKind;
  readonly description: string;
  /** Accepted values for string flags. */
  readonly choices?: readonly string[];
}

export type FlagValue = string | number | boolean;

export class ParsedFlags {
  constructor(private readonly values: Map<string, FlagValue>) {}
  has(name: string): boolean { return this.values.has(name); }
  string(name: string): string | undefined { return this.values.get(name) as string | undefined; }
  number(name: string): number | undefined { return this.values.get(name) as number | undefined; }
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
  names(): string[] { return [...this.values.keys()]; }
}

export function parseFlags(argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>, command: string): ParsedFlags {
  const values = new Map<string, FlagValue>();
  for (let k = 0; k < argv.length; k++) {
    const arg = argv[k]!;
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
  return new ParsedFlags(values);
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

export function formatFlagHelp(specs: Readonly<Record<string, FlagSpec>>): string {
  return Object.entries(specs)
    .map(([name, spec]) => {
      const value = spec.kind === 'boolean' ? '' : spec.choices ? ` ${spec.choices.join('|')}` : spec.kind === 'string' ? ' VALUE' : ' N';
      return `  --${name}${value}`.padEnd(36) + spec.description;
    })
    .join('\n');
}
