// Loads a user's pattern file (TypeScript). The file is transpiled with a transform that registers
// every arrow function with its original text and file:line:col (so DSL errors point into the
// user's file), and `import … from 'dcagen'` is pointed at this package.

import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ts } from 'ts-morph';
import { DslError, UsageError } from '../errors.js';
import { checkPatternDefinition, PatternDefinitionError } from './names.js';
import type { PatternDefinition } from './pattern.js';
import { registerFunctionSource } from './source-registry.js';

const REGISTER = '__dcagenRegisterSource';

/** Returns the patterns a file exports (default export first). */
export async function loadPatternFile(path: string): Promise<PatternDefinition[]> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`pattern file ${path}: cannot read it`);
  }
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const diagnostics: ts.Diagnostic[] = [];
  const output = ts.transpileModule(text, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    transformers: { before: [registerArrowFunctions(source, path)] },
  });
  diagnostics.push(...(output.diagnostics ?? []));
  if (diagnostics.length > 0) {
    const d = diagnostics[0]!;
    const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    throw new UsageError(`${path}${pos ? `:${pos.line + 1}:${pos.character + 1}` : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
  }
  const selfUrl = new URL('../index.js', import.meta.url).href;
  const js = output.outputText.replace(/from\s+(['"])dcagen\1/g, `from '${selfUrl}'`);
  (globalThis as Record<string, unknown>)[REGISTER] = registerFunctionSource;
  // Beside the original, so the file's own relative imports resolve.
  const temp = join(dirname(file), `.dcagen-pattern-${randomBytes(6).toString('hex')}.mjs`);
  await writeFile(temp, js);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(temp).href)) as Record<string, unknown>;
  } catch (err) {
    // definePattern's checks run while the module loads.
    if (err instanceof PatternDefinitionError) throw locateDefinitionError(err, source, path);
    throw new UsageError(`pattern file ${path}: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await rm(temp, { force: true });
  }
  const patterns = Object.entries(mod)
    .sort(([a], [b]) => (a === 'default' ? -1 : b === 'default' ? 1 : 0))
    .map(([, value]) => value)
    .filter(isPatternDefinition);
  if (patterns.length === 0) throw new UsageError(`pattern file ${path} exports no pattern (export definePattern({...}))`);
  // A plain object literal exported without definePattern gets the same checks here.
  for (const pattern of patterns) {
    try {
      checkPatternDefinition(pattern);
    } catch (err) {
      if (err instanceof PatternDefinitionError) throw locateDefinitionError(err, source, path);
      throw err;
    }
  }
  return [...new Set(patterns)];
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

/** Wraps each arrow function `f` as `__dcagenRegisterSource(f, {text, file, line, column})`-returning-f. */
function registerArrowFunctions(original: ts.SourceFile, displayPath: string): ts.TransformerFactory<ts.SourceFile> {
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
      // (fn => (register(fn, info), fn))(arrow)
      const fnParam = f.createUniqueName('fn');
      const wrapper = f.createArrowFunction(undefined, undefined, [f.createParameterDeclaration(undefined, undefined, fnParam)], undefined, undefined,
        f.createParenthesizedExpression(f.createCommaListExpression([
          f.createCallExpression(f.createPropertyAccessExpression(f.createIdentifier('globalThis'), REGISTER), undefined, [fnParam, info]),
          fnParam,
        ])));
      return f.createCallExpression(f.createParenthesizedExpression(wrapper), undefined, [visited as ts.Expression]);
    };
    return (sf) => ts.visitNode(sf, visit) as ts.SourceFile;
  };
}
