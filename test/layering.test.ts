// The compiler core runs in a browser (the playground): the DSL reader, the plan, the renderers
// and emitters, the reference and the position matrix. This walks the static and dynamic imports
// of every core module, transitively, and fails when any of them reaches a Node built-in or a
// Node-only package; Node-only code (files, processes, nvcc, Deno) lives in its own layer
// (src/io, src/cli, the runners). It also checks the core reads a pattern file without a file
// system (loadPatternSource).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ts } from 'ts-morph';
import { describe, expect, it } from 'vitest';
import { compilePattern } from '../src/dsl/instantiate.js';
import { loadPatternSource, PatternSyntaxError } from '../src/dsl/pattern-source.js';
import { DslError } from '../src/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Packages that only work under Node (processes, native WebGPU, the Deno binary). */
const NODE_ONLY_PACKAGES = ['execa', 'deno', 'webgpu', 'playwright-core'];
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** The core: every module of these folders, and the renderers and emitters of every backend. */
function coreModules(): string[] {
  const files: string[] = [];
  for (const folder of ['src/dsl', 'src/plan', 'src/reference', 'src/explain', 'src/patterns']) {
    for (const name of readdirSync(join(ROOT, folder))) if (name.endsWith('.ts')) files.push(join(ROOT, folder, name));
  }
  for (const backend of readdirSync(join(ROOT, 'src/backends'), { withFileTypes: true })) {
    if (!backend.isDirectory()) continue;
    for (const name of ['render.ts', 'emit.ts']) {
      const path = join(ROOT, 'src/backends', backend.name, name);
      if (existsSync(path)) files.push(path);
    }
  }
  return files;
}

/** Every module specifier a file imports or re-exports, statically or with import(). */
function specifiers(path: string): string[] {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Node's globals: using one needs no import, so the import walk alone would not see it. */
const NODE_GLOBALS = new Set(['process', 'Buffer', '__dirname', '__filename', 'require', 'global']);

/** Uses of Node's globals in a file (free identifiers, not property names or comments). */
function nodeGlobals(path: string): string[] {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      const parent = node.parent;
      const isName = (ts.isPropertyAccessExpression(parent) && parent.name === node) || (ts.isPropertyAssignment(parent) && parent.name === node) || ts.isPropertySignature(parent);
      if (!isName) found.push(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Walks the imports from the core modules; returns `importer → specifier` for each Node-only one (and each Node global used). */
function nodeOnlyImports(start: readonly string[] = coreModules()): { reached: number; offences: string[] } {
  const seen = new Set<string>();
  const offences: string[] = [];
  const queue = [...start];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const from = relative(ROOT, file);
    for (const name of nodeGlobals(file)) offences.push(`${from} → global ${name}`);
    for (const spec of specifiers(file)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
        if (!existsSync(target)) throw new Error(`${from}: cannot resolve ${spec}`);
        queue.push(target);
      } else if (NODE_BUILTINS.has(spec) || NODE_BUILTINS.has(spec.split('/')[0]!) || spec.startsWith('node:')) {
        offences.push(`${from} → ${spec}`);
      } else if (NODE_ONLY_PACKAGES.includes(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!)) {
        offences.push(`${from} → ${spec}`);
      }
    }
  }
  return { reached: seen.size, offences };
}

describe('layering: the compiler core has no Node-only imports', () => {
  it('no core module reaches node: built-ins or Node-only packages, directly or through what it imports', () => {
    const { reached, offences } = nodeOnlyImports();
    // The walk really covers the core (DSL, plan, three backends' renderers and emitters, reference, explain).
    expect(reached).toBeGreaterThan(30);
    expect(offences).toEqual([]);
  });

  it('the walk catches Node-only imports and globals one module away (planted in a temporary folder)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcagen-layering-'));
    try {
      writeFileSync(join(dir, 'core.ts'), "import { helper } from './helper.js';\nexport const x = helper;\n");
      writeFileSync(join(dir, 'helper.ts'), "import { execa } from 'execa';\nimport { join } from 'path';\nexport const helper = [execa, join, process.env.HOME, { process: 1 }.process];\n");
      expect(nodeOnlyImports([join(dir, 'core.ts')]).offences.map((o) => o.replace(/^.*\//, ''))).toEqual(['helper.ts → global process', 'helper.ts → execa', 'helper.ts → path']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the core reads a pattern file without a file system (loadPatternSource)', () => {
  const header = "import { definePattern, distanceAtLeast, distanceBelow, type Params } from 'dcagen';\n";
  const capped = (queryPosition: string): string => `${header}
export default definePattern({
  name: 'capped',
  summary: 'exact below W, W beyond',
  params: { window: { description: 'W', min: 1 } },
  keyPosition: (j) => j,
  regions: [
    { name: 'near', when: distanceBelow((p: Params) => p.window), mask: 'causal', queryPosition: (i) => i },
    { name: 'far', when: distanceAtLeast((p) => p.window), mask: 'full', queryPosition: ${queryPosition}, keyPosition: () => 0 },
  ],
});
`;

  it('loads a pattern that imports from "dcagen" and compiles it', () => {
    const [pattern] = loadPatternSource(capped('(_i, p) => p.window'), 'capped.ts');
    const compiled = compilePattern(pattern!, { window: 3 });
    expect(compiled.regions.map((r) => r.name)).toEqual(['near', 'far']);
    expect(compiled.regions[1]!.definition.queryPosition(10, compiled.params)).toBe(3);
  });

  it('a DSL error names the file, line and column in the source text, as the CLI does', () => {
    const [pattern] = loadPatternSource(capped('(i, p) => i / p.window'), 'capped.ts');
    const error = (() => {
      try {
        compilePattern(pattern!, { window: 3 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(DslError);
    // Line 10, the column of `i / p.window` inside the arrow function.
    const line = capped('(i, p) => i / p.window').split('\n')[9]!;
    expect((error as DslError).location).toMatchObject({ file: 'capped.ts', line: 10, column: line.indexOf('i / p.window') + 1 });
    expect((error as Error).message).toMatch(/^capped\.ts:10:\d+ \(pattern capped, region far, queryPosition\): division must be written Math\.floor/);
  });

  it("every type the DSL exports may be imported from 'dcagen' without `type` (erased, so allowed)", () => {
    const dsl = ts.createSourceFile('pattern.ts', readFileSync(join(ROOT, 'src/dsl/pattern.ts'), 'utf8'), ts.ScriptTarget.ES2022, true);
    const types = dsl.statements
      .filter((st): st is ts.TypeAliasDeclaration | ts.InterfaceDeclaration => (ts.isTypeAliasDeclaration(st) || ts.isInterfaceDeclaration(st)) && (st.modifiers ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword))
      .map((st) => st.name.text);
    expect(types.length).toBeGreaterThan(5);
    for (const name of types) {
      // Past the import check, the file fails only for exporting no pattern.
      expect(() => loadPatternSource(`import { ${name} } from 'dcagen';\nexport const n = 1;\n`, 't.ts'), name).toThrow('pattern file t.ts exports no pattern');
    }
  });

  it('a syntax error and an import that is not offered are PatternSyntaxErrors at their place', () => {
    const syntax = (() => { try { loadPatternSource(`${header}export default definePattern({ name: 'x', ;\n`, 'broken.ts'); } catch (e) { return e; } return undefined; })();
    expect(syntax).toBeInstanceOf(PatternSyntaxError);
    expect((syntax as PatternSyntaxError).location).toMatchObject({ file: 'broken.ts', line: 2 });
    const imported = (() => { try { loadPatternSource("import { readFileSync } from 'node:fs';\n", 'io.ts'); } catch (e) { return e; } return undefined; })();
    expect((imported as Error).message).toBe("io.ts:1:30: only 'dcagen' can be imported here, not 'node:fs'");
    const missing = (() => { try { loadPatternSource("import { definePattern, compilePattern } from 'dcagen';\n", 'm.ts'); } catch (e) { return e; } return undefined; })();
    expect((missing as PatternSyntaxError).location).toEqual({ file: 'm.ts', line: 1, column: 25 });
  });
});
