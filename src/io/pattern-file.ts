// Loads a user's pattern file (TypeScript) from disk, under Node. src/dsl/pattern-source.ts
// transpiles it (registering each arrow function's text and file:line:col, so DSL errors point
// into the file); here `import … from 'dcagen'` is pointed at this package and the module is
// imported from a temporary file beside the original, so its own relative imports resolve.

import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from '../errors.js';
import type { PatternDefinition } from '../dsl/pattern.js';
import { patternLoadError, patternsFromExports, transpilePattern } from '../dsl/pattern-source.js';
import { registerFunctionSource } from '../dsl/source-registry.js';

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
  const { js, source } = transpilePattern(text, path, {
    module: 'esm',
    register: (f) => f.createPropertyAccessExpression(f.createIdentifier('globalThis'), REGISTER),
  });
  const selfUrl = new URL('../index.js', import.meta.url).href;
  const code = js.replace(/from\s+(['"])dcagen\1/g, `from '${selfUrl}'`);
  (globalThis as Record<string, unknown>)[REGISTER] = registerFunctionSource;
  const temp = join(dirname(file), `.dcagen-pattern-${randomBytes(6).toString('hex')}.mjs`);
  await writeFile(temp, code);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(temp).href)) as Record<string, unknown>;
  } catch (err) {
    throw patternLoadError(err, source, path);
  } finally {
    await rm(temp, { force: true });
  }
  return patternsFromExports(mod, source, path);
}
