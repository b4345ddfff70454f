// Turns the text of a pattern file (TypeScript) into pattern definitions. The text is transpiled
// with a transform that registers every arrow function with its original text and line:col, so
// DSL errors point into the file (src/dsl/reader.ts reads the registered text). Exports are then
// checked like definePattern does, and a definition error is placed at the first place the
// offending name is written.
//
// Two hosts use it: src/io/pattern-file.ts under Node (a file on disk, which may import its own
// neighbours) and loadPatternSource here, which needs no file system (the browser playground):
// the module is evaluated in memory and may import only 'dcagen', whose DSL exports it is given.

import { ts } from 'ts-morph';
import { DslError, UsageError } from '../errors.js';
import { checkPatternDefinition, PatternDefinitionError } from './names.js';
import * as dsl from './pattern.js';
import type { PatternDefinition } from './pattern.js';
import { registerFunctionSource, type FunctionSource } from './source-registry.js';

/** Where a syntax or import problem sits in a pattern file (1-based). */
export interface PatternFilePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** A pattern file that does not transpile, or (in memory) imports what is not offered. Message: `file:line:col: problem`. */
export class PatternSyntaxError extends UsageError {
  readonly location: PatternFilePosition;
  readonly problem: string;
  constructor(problem: string, location: PatternFilePosition) {
    super(`${location.file}:${location.line}:${location.column}: ${problem}`);
    this.location = location;
    this.problem = problem;
  }
}

export interface TranspiledPattern {
  /** JavaScript in the module format asked for. */
  readonly js: string;
  /** The parsed original, for placing errors found later. */
  readonly source: ts.SourceFile;
}

export interface TranspileOptions {
  readonly module: 'esm' | 'commonjs';
  /** The expression each arrow function is registered through: called as (fn, FunctionSource). */
  readonly register: (factory: ts.NodeFactory) => ts.Expression;
}

/** Transpiles a pattern file, registering each arrow function's source; syntax errors are PatternSyntaxErrors. */
export function transpilePattern(text: string, displayPath: string, options: TranspileOptions): TranspiledPattern {
  const source = ts.createSourceFile(displayPath, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const output = ts.transpileModule(text, {
    fileName: displayPath,
    reportDiagnostics: true,
    compilerOptions: { module: options.module === 'esm' ? ts.ModuleKind.ESNext : ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
    transformers: { before: [registerArrowFunctions(source, displayPath, options.register)] },
  });
  const d = output.diagnostics?.[0];
  if (d !== undefined) {
    const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : { line: 0, character: 0 };
    throw new PatternSyntaxError(ts.flattenDiagnosticMessageText(d.messageText, ' '), { file: displayPath, line: pos.line + 1, column: pos.character + 1 });
  }
  return { js: output.outputText, source };
}

/**
 * The patterns among a module's exports (default export first), each checked as definePattern
 * checks (a plain object literal exported without definePattern gets the same checks here).
 */
export function patternsFromExports(exports: Readonly<Record<string, unknown>>, source: ts.SourceFile, displayPath: string): PatternDefinition[] {
  const patterns = Object.entries(exports)
    .sort(([a], [b]) => (a === 'default' ? -1 : b === 'default' ? 1 : 0))
    .map(([, value]) => value)
    .filter(isPatternDefinition);
  if (patterns.length === 0) throw new UsageError(`pattern file ${displayPath} exports no pattern (export definePattern({...}))`);
  for (const pattern of patterns) {
    try {
      checkPatternDefinition(pattern);
    } catch (err) {
      if (err instanceof PatternDefinitionError) throw locateDefinitionError(err, source, displayPath);
      throw err;
    }
  }
  return [...new Set(patterns)];
}

/** The error to report when evaluating a pattern module throws: definition errors at their place in the file. */
export function patternLoadError(err: unknown, source: ts.SourceFile, displayPath: string): Error {
  // definePattern's checks run while the module loads.
  if (err instanceof PatternDefinitionError) return locateDefinitionError(err, source, displayPath);
  if (err instanceof DslError || err instanceof PatternSyntaxError) return err;
  return new UsageError(`pattern file ${displayPath}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`);
}

/**
 * Loads a pattern file from its text, in memory (no file system, no module loader): the text is
 * transpiled to CommonJS and evaluated with a `require` that offers only 'dcagen' (the DSL:
 * definePattern and the condition builders). Imports of anything else, or of names 'dcagen' does
 * not offer here, are PatternSyntaxErrors at the import.
 */
export function loadPatternSource(text: string, displayPath = 'pattern.ts'): PatternDefinition[] {
  const register = '__dcagenRegisterSource';
  const { js, source } = transpilePattern(text, displayPath, { module: 'commonjs', register: (f) => f.createIdentifier(register) });
  checkImports(source, displayPath);
  const module = { exports: {} as Record<string, unknown> };
  const importModule = (specifier: string): unknown => {
    if (specifier === 'dcagen') return dsl;
    throw new UsageError(`pattern file ${displayPath}: cannot import '${specifier}' here`);
  };
  try {
    // The user's own pattern, evaluated in the user's own process (the CLI imports it the same way).
    const evaluate = new Function('exports', 'require', 'module', register, js) as (
      exports: Record<string, unknown>,
      importModule: (specifier: string) => unknown,
      module: { exports: Record<string, unknown> },
      registerSource: (fn: object, at: FunctionSource) => void,
    ) => void;
    evaluate(module.exports, importModule, module, registerFunctionSource);
  } catch (err) {
    throw patternLoadError(err, source, displayPath);
  }
  return patternsFromExports(module.exports, source, displayPath);
}

/** In memory only 'dcagen' can be imported, and only the names its DSL module exports. */
function checkImports(source: ts.SourceFile, displayPath: string): void {
  const at = (node: ts.Node, problem: string): PatternSyntaxError => {
    const { line, character } = source.getLineAndCharacterOfPosition(node.getStart(source));
    return new PatternSyntaxError(problem, { file: displayPath, line: line + 1, column: character + 1 });
  };
  for (const statement of source.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier)) continue;
    const from = statement.moduleSpecifier.text;
    if (from !== 'dcagen') throw at(statement.moduleSpecifier, `only 'dcagen' can be imported here, not '${from}'`);
    const clause = statement.importClause;
    if (clause === undefined || clause.isTypeOnly) continue;
    if (clause.name !== undefined) throw at(clause.name, "'dcagen' has no default export; import { definePattern, … } from 'dcagen'");
    const bindings = clause.namedBindings;
    if (bindings === undefined || !ts.isNamedImports(bindings)) continue;
    for (const element of bindings.elements) {
      if (element.isTypeOnly) continue;
      const name = (element.propertyName ?? element.name).text;
      if (!(name in dsl)) {
        // Types (Params, ParamFn, …) are erased and fine; a value that is not there would fail later.
        if (isTypeName(name)) continue;
        throw at(element, `'dcagen' offers ${Object.keys(dsl).sort().join(', ')} here, not '${name}'`);
      }
    }
  }
}

/** The DSL's exported type names (erased by transpiling, so importing them is fine). */
const TYPE_NAMES = new Set(['Params', 'QueryPositionFn', 'KeyPositionFn', 'PairTestFn', 'ParamFn', 'RegionCondition', 'RegionMask', 'RegionDefinition', 'ParamSpec', 'PresetSpec', 'PatternDefinition']);
function isTypeName(name: string): boolean {
  return TYPE_NAMES.has(name);
}

/**
 * Points a definition error at the file: the first place the offending name is written (a string
 * literal or a property name), else the pattern's own name, else the file's first line.
 */
function locateDefinitionError(err: PatternDefinitionError, source: ts.SourceFile, path: string): DslError {
  const find = (text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    let found: number | undefined;
    const visit = (node: ts.Node): void => {
      if (found !== undefined) return;
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isIdentifier(node)) && node.text === text) {
        const parent = node.parent;
        // Property names and values, not identifiers that merely share the text.
        if (!ts.isIdentifier(node) || (parent !== undefined && (ts.isPropertyAssignment(parent) || ts.isShorthandPropertyAssignment(parent)) && parent.name === node)) {
          found = node.getStart(source);
          return;
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    return found;
  };
  const at = find(err.subject) ?? find(err.patternName) ?? 0;
  const { line, character } = source.getLineAndCharacterOfPosition(at);
  return new DslError(err.problem, { file: path, line: line + 1, column: character + 1, context: err.location.context });
}

function isPatternDefinition(value: unknown): value is PatternDefinition {
  return typeof value === 'object' && value !== null && 'regions' in value && 'keyPosition' in value && 'name' in value;
}

/** Wraps each arrow function `f` as `(fn => (register(fn, {text, file, line, column}), fn))(f)`. */
function registerArrowFunctions(original: ts.SourceFile, displayPath: string, register: (factory: ts.NodeFactory) => ts.Expression): ts.TransformerFactory<ts.SourceFile> {
  return (context) => {
    const f = context.factory;
    const visit = (node: ts.Node): ts.Node => {
      const visited = ts.visitEachChild(node, visit, context);
      if (!ts.isArrowFunction(node) || node.pos < 0) return visited;
      const start = node.getStart(original);
      const { line, character } = original.getLineAndCharacterOfPosition(start);
      const info = f.createObjectLiteralExpression([
        f.createPropertyAssignment('text', f.createStringLiteral(node.getText(original))),
        f.createPropertyAssignment('file', f.createStringLiteral(displayPath)),
        f.createPropertyAssignment('line', f.createNumericLiteral(line + 1)),
        f.createPropertyAssignment('column', f.createNumericLiteral(character + 1)),
      ]);
      const fnParam = f.createUniqueName('fn');
      const wrapper = f.createArrowFunction(undefined, undefined, [f.createParameterDeclaration(undefined, undefined, fnParam)], undefined, undefined,
        f.createParenthesizedExpression(f.createCommaListExpression([f.createCallExpression(register(f), undefined, [fnParam, info]), fnParam])));
      return f.createCallExpression(f.createParenthesizedExpression(wrapper), undefined, [visited as ts.Expression]);
    };
    return (sf) => ts.visitNode(sf, visit) as ts.SourceFile;
  };
}
