// The editor's text as a compiled pattern: loaded in memory (src/dsl/pattern-source.ts), the
// parameters applied, every function read by the DSL reader. Failures come back as the messages
// the CLI prints, with the file position when the problem has one. The page and the reference
// worker both compile through here, so they see the same pattern.

import { compilePattern, type CompiledPattern } from '../../src/dsl/instantiate.js';
import type { PatternDefinition } from '../../src/dsl/pattern.js';
import { loadPatternSource, PatternSyntaxError } from '../../src/dsl/pattern-source.js';
import { DcagenError, DslError } from '../../src/errors.js';

/** The file name the editor's text goes by, in messages and in the equivalent CLI command. */
export const PATTERN_FILE = 'pattern.ts';

export interface Located {
  readonly line: number;
  readonly column: number;
}

export type PatternOutcome =
  | { readonly ok: true; readonly definition: PatternDefinition; readonly pattern: CompiledPattern }
  /** `definition` is there when the file loaded but its parameters or functions did not compile. */
  | { readonly ok: false; readonly message: string; readonly at?: Located; readonly definition?: PatternDefinition };

/** The pattern file's first export (default first), as `dcagen --pattern-file` takes it. */
export function loadDefinition(text: string): PatternDefinition {
  return loadPatternSource(text, PATTERN_FILE)[0]!;
}

export function compileText(text: string, params: Readonly<Record<string, number | undefined>>): PatternOutcome {
  let definition: PatternDefinition | undefined;
  try {
    definition = loadDefinition(text);
    // Values for parameters the pattern no longer has are dropped, not refused.
    const given = Object.fromEntries(Object.keys(definition.params).map((name) => [name, params[name]]));
    return { ok: true, definition, pattern: compilePattern(definition, given) };
  } catch (error) {
    return { ok: false, ...describe(error), ...(definition === undefined ? {} : { definition }) };
  }
}

function describe(error: unknown): { message: string; at?: Located } {
  if (error instanceof DslError && error.location.file === PATTERN_FILE && error.location.line !== undefined) {
    return { message: error.message, at: { line: error.location.line, column: error.location.column ?? 1 } };
  }
  if (error instanceof PatternSyntaxError) return { message: error.message, at: { line: error.location.line, column: error.location.column } };
  if (error instanceof DcagenError) return { message: error.message };
  // A bug in the pattern's own JavaScript (a throw in derive, a typo'd builder): say what it was.
  return { message: `${PATTERN_FILE}: ${error instanceof Error ? error.message : String(error)}` };
}
