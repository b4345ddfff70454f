// `dcagen --help` and `dcagen <command> --help`, printed from the same flag tables that parse the
// command line (src/cli/args.ts FlagSpec): every flag with its meaning and its default, and the
// parameters of the pattern named with --pattern or --pattern-file.

import type { PatternDefinition } from '../dsl/pattern.js';
import { builtinPatterns } from '../patterns/index.js';
import { flagSynopsis, formatFlagHelp, HELP_WIDTH, wrap, type FlagSpec } from './args.js';
import type { CommandIo } from './commands/io.js';
import { patternFlagsLine, patternParamFlags } from './pattern-options.js';

export interface CommandEntry {
  readonly run: (argv: readonly string[], io: CommandIo) => Promise<number>;
  /** One line for `dcagen --help`. */
  readonly summary: string;
  /** The flags the command parses (pattern parameters come on top when patternParams). */
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Whether the command takes a pattern and, with it, the pattern's parameters as flags. */
  readonly patternParams: boolean;
}

const title = 'dcagen — fused Dual Chunk Attention (and relatives) for CUDA, WGSL and Metal, checked against a float64 reference';

function table(rows: readonly (readonly [string, string])[], indent = 2): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, right]) => `${' '.repeat(indent)}${left.padEnd(width)}${right}`.trimEnd()).join('\n');
}

function patternListing(): string {
  return table(builtinPatterns.map((p) => [p.name, patternFlagsLine(p)] as const));
}

export function mainHelp(commands: Readonly<Record<string, CommandEntry>>): string {
  return [
    title,
    '',
    'usage: dcagen <command> [flags]',
    '       dcagen <command> --help    every flag of the command, its meaning and its default',
    '',
    'commands:',
    table(Object.entries(commands).map(([name, c]) => [name, c.summary] as const)),
    '',
    'patterns (--pattern NAME, or your own with --pattern-file FILE.ts) and their parameters',
    '(`dcagen <command> --pattern NAME --help` explains them):',
    table(builtinPatterns.flatMap((p) => [[p.name, p.summary], ['', patternFlagsLine(p)]] as const)),
  ].join('\n');
}

/** `usage: dcagen emit --backend wgsl|cuda|metal --pattern NAME [pattern parameters] … [flags]`. */
function synopsis(name: string, entry: CommandEntry): string {
  const parts: string[] = [];
  for (const [flag, spec] of Object.entries(entry.flags)) {
    if (spec.required === undefined) continue;
    parts.push(flagSynopsis(flag, spec));
    if (flag === 'pattern' && entry.patternParams) parts.push('[pattern parameters]');
  }
  parts.push('[flags]');
  // Options stay whole (`--head-dim N`, `[pattern parameters]`) when the line wraps.
  const lead = `usage: dcagen ${name} `;
  return wrap(parts.map((p) => p.replace(/ /g, '\u00a0')), HELP_WIDTH - lead.length)
    .map((line, n) => `${n === 0 ? lead : ' '.repeat(lead.length)}${line.replace(/\u00a0/g, ' ')}`)
    .join('\n');
}

export function commandHelp(name: string, entry: CommandEntry, pattern?: PatternDefinition): string {
  const lines = [synopsis(name, entry), '', entry.summary, '', 'flags:', formatFlagHelp(entry.flags)];
  if (entry.patternParams) {
    lines.push('');
    if (pattern !== undefined) {
      const params = patternParamFlags(pattern);
      if (Object.keys(params).length === 0) lines.push(`pattern ${pattern.name} (${pattern.summary}) has no parameters`);
      else lines.push(`parameters of pattern ${pattern.name} (${pattern.summary}):`, formatFlagHelp(params));
    } else {
      lines.push('pattern parameters (with --pattern NAME or --pattern-file FILE, --help explains them):', patternListing());
    }
  }
  return lines.join('\n');
}
