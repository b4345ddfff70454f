// The name half of the boundary (DESIGN.md §2): pattern, region and parameter names are checked in
// one place (src/dsl/names.ts) that definePattern, pattern files (plain-object exports included)
// and compilePattern all go through; hostile names are refused with one line and exit 2, never
// emitted; valid ones give files named [a-z0-9._-] that compile; `dcagen emit` writes only inside -o.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitCuda, cudaKernelConfig } from '../src/backends/cuda/emit.js';
import { FILE_NAME, checkFileName } from '../src/backends/kernel-set.js';
import { emitMetal, metalKernelConfig } from '../src/backends/metal/emit.js';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { fileInside } from '../src/cli/commands/emit.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { IDENTIFIER_NAME, PATTERN_NAME, PatternDefinitionError, constantName, nameProblem } from '../src/dsl/names.js';
import { definePattern, distanceAtLeast, distanceBelow, type PatternDefinition } from '../src/dsl/pattern.js';
import { DcagenError } from '../src/errors.js';
import { builtinPatterns } from '../src/patterns/index.js';
import { builtModule } from './helpers/built.js';
import { makeTempDir } from './helpers/tensors.js';
import { stripCode } from './helpers/strip-code.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CXX = process.env['CXX'] ?? 'g++';
const LINE_BREAK = /[\n\r\v\f\u0085\u2028\u2029]/;

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await makeTempDir('dcagen-names-');
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

/** A two-region pattern (exact distances below a window, clamped beyond) with the names given. */
function patternWith(names: { pattern?: unknown; near?: unknown; far?: unknown; param?: unknown }): Record<string, unknown> {
  const param = (names.param ?? 'width') as string;
  const width = (p: Readonly<Record<string, number>>): number => p[param]!;
  return {
    name: names.pattern ?? 'named',
    summary: 'a pattern under test',
    params: { [param]: { description: 'window', min: 1 } },
    keyPosition: (j: number) => j,
    regions: [
      { name: names.near ?? 'near', when: distanceBelow(width), mask: 'causal', queryPosition: (i: number) => i },
      { name: names.far ?? 'far', when: distanceAtLeast(width), mask: 'full', queryPosition: (i: number) => i },
    ],
  };
}

/** Hostile names: path pieces, line breaks, quotes, comment markers, unicode, template holes, and plain strings. */
const HOSTILE_PIECES = ['../', '/', '..', '\\', '\n', '\r', '\u2028', '\u2029', '\u0085', '*/', '/*', '"', "'", '`', '{{title}}', ' ', '-', '_', '.', 'é', 'Ω', '😀', '\u202e', '\0', 'A', 'a', '1'];
const hostileName = fc.oneof(
  fc.array(fc.constantFrom(...HOSTILE_PIECES), { minLength: 0, maxLength: 8 }).map((p) => p.join('')),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('w/../../../tmp/x', 'merge', 'headDim', 'lambda', 'ropeTheta', 'infinity', 'intMax', 'mPi', 'Chunk', 'chunk_size', 'chunk-size', ''),
);

describe('one check for names', () => {
  it('accepts every built-in pattern, region and parameter name', () => {
    for (const p of builtinPatterns) {
      expect(p.name).toMatch(PATTERN_NAME);
      for (const r of p.regions) expect(nameProblem('region', r.name)).toBeUndefined();
      for (const name of Object.keys(p.params)) expect(nameProblem('parameter', name)).toBeUndefined();
      for (const name of Object.keys(p.presets ?? {})) expect(nameProblem('preset', name)).toBeUndefined();
    }
  });

  it('definePattern, a plain object and compilePattern refuse the same names with the same one-line error (fast-check)', () => {
    const where = fc.constantFrom('pattern', 'near', 'far', 'param');
    fc.assert(fc.property(hostileName, where, (name, slot) => {
      const definition = patternWith({ [slot]: name });
      let viaDefine: unknown;
      try {
        definePattern(definition as unknown as PatternDefinition);
      } catch (err) {
        viaDefine = err;
      }
      let viaCompile: unknown;
      try {
        // A plain object that never went through definePattern.
        compilePattern({ ...definition } as unknown as PatternDefinition, { [(slot === 'param' ? name : 'width') as string]: 3 });
      } catch (err) {
        viaCompile = err;
      }
      const valid = slot === 'pattern' ? PATTERN_NAME.test(name) && name.length <= 40 : IDENTIFIER_NAME.test(name) && name.length <= 40;
      if (viaDefine === undefined) {
        // Accepted: it must be an identifier of the documented shape, and compile too.
        expect(valid, JSON.stringify(name)).toBe(true);
        expect(viaCompile).toBeUndefined();
        return;
      }
      expect(viaDefine).toBeInstanceOf(PatternDefinitionError);
      const error = viaDefine as PatternDefinitionError;
      expect(error).toBeInstanceOf(DcagenError);
      expect(error.exitCode).toBe(2);
      expect(error.message).not.toMatch(LINE_BREAK);
      expect(viaCompile).toBeInstanceOf(PatternDefinitionError);
      expect((viaCompile as Error).message).toBe(error.message);
    }), { numRuns: 300, seed: 8 });
  });

  it('refuses a derived parameter whose name is not an identifier', () => {
    const definition = definePattern({ ...(patternWith({}) as unknown as PatternDefinition), derive: (p) => ({ 'x/../y': p.width! }) });
    expect(() => compilePattern(definition, { width: 2 })).toThrow(/derived parameter name "x\/\.\.\/y" must be an identifier/);
  });

  it('refuses a region named merge (the three-pass merge kernel and file) and duplicate regions', () => {
    expect(() => definePattern(patternWith({ far: 'merge' }) as unknown as PatternDefinition)).toThrow(/region name "merge" is reserved/);
    expect(() => definePattern(patternWith({ far: 'near' }) as unknown as PatternDefinition)).toThrow(/region "near" is declared twice/);
  });

  it('reserves every upper-case name the kernel templates use in code, so a parameter constant never collides', async () => {
    const dirs = ['cuda', 'metal', 'wgsl'];
    const seen = new Set<string>();
    for (const dir of dirs) {
      for (const file of await readdir(join(ROOT, 'templates', dir))) {
        const text = await readFile(join(ROOT, 'templates', dir, file), 'utf8');
        const language = file.endsWith('.py') ? 'python' : file.endsWith('.js') ? 'js' : file.endsWith('.ts') ? null : file.endsWith('.swift') ? 'swift' : file.endsWith('.wgsl') ? 'wgsl' : 'c';
        if (language === null) continue;
        // Holes ({{name}}) stand for code; fill them with a neutral identifier so the file lexes.
        const code = stripCode(language, text.replace(/\{\{[A-Za-z0-9_]+\}\}/g, language === 'js' ? '0' : 'hole'));
        for (const m of code.matchAll(/\b[A-Z][A-Z0-9_]*\b/g)) seen.add(m[0]);
      }
    }
    expect(seen.size).toBeGreaterThan(20);
    const unreserved = [...seen].filter((constant) => {
      const parameter = constant.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
      if (!IDENTIFIER_NAME.test(parameter) || constantName(parameter) !== constant) return false;  // no parameter has this constant
      return !/reserved/.test(nameProblem('parameter', parameter) ?? '');
    });
    expect(unreserved, 'add these to RESERVED_CONSTANTS in src/dsl/names.ts').toEqual([]);
  });

  it('gives valid random names files named [a-z0-9._-] on every backend, and the emitted code compiles (fast-check)', async () => {
    const identifier = fc.stringMatching(/^[a-z][A-Za-z0-9]{0,11}$/);
    const kebabName = fc.stringMatching(/^[a-z][a-z0-9]{0,7}(?:-[a-z0-9]{1,5}){0,2}$/);
    const sets: Array<{ python: Array<{ name: string; contents: string }>; metal: { name: string; contents: string } }> = [];
    fc.assert(fc.property(kebabName, identifier, identifier, identifier, (pattern, near, far, param) => {
      fc.pre(near !== far && nameProblem('region', near) === undefined && nameProblem('region', far) === undefined && nameProblem('parameter', param) === undefined);
      const definition = definePattern(patternWith({ pattern, near, far, param }) as unknown as PatternDefinition);
      const compiled = compilePattern(definition, { [param]: 5 });
      const cuda = emitCuda(compiled, cudaKernelConfig({ headDim: 64, dtype: 'f32' }), { variant: 'three-pass' });
      const metal = emitMetal(compiled, metalKernelConfig({ headDim: 64, dtype: 'f32' }), { variant: 'three-pass' });
      const wgsl = emitWgsl(compiled, wgslKernelConfig({ headDim: 64, dtype: 'f32' }), { variant: 'three-pass' });
      for (const f of [...cuda.files, ...metal.files, ...wgsl.files]) expect(f.name).toMatch(FILE_NAME);
      sets.push({ python: [...cuda.files, ...metal.files].filter((f) => f.name.endsWith('.py')), metal: metal.files[0]! });
    }), { numRuns: 40, seed: 21 });
    // Python modules all compile (one interpreter); a few Metal sources compile as C++14.
    const dir = await tempDir();
    const pyFiles: string[] = [];
    for (const [k, set] of sets.entries()) {
      for (const f of set.python) {
        await mkdir(join(dir, String(k)), { recursive: true });
        pyFiles.push(join(dir, String(k), f.name));
        await writeFile(pyFiles[pyFiles.length - 1]!, f.contents);
      }
    }
    const py = await execa('python3', ['-c', 'import py_compile, sys\nfor f in sys.argv[1:]: py_compile.compile(f, doraise=True)', ...pyFiles], { reject: false, all: true });
    expect(py.exitCode, py.all).toBe(0);
    for (const set of sets.slice(0, 2)) {
      const file = join(dir, set.metal.name);
      await writeFile(file, set.metal.contents);
      const cc = await execa(CXX, ['-std=c++14', '-pedantic', '-Wall', '-Wno-attributes', '-fsyntax-only', '-I', join(ROOT, 'test', 'emulation', 'msl_cxx14'), '-x', 'c++', file], { reject: false, all: true });
      expect(cc.exitCode, cc.all).toBe(0);
    }
  });
});

describe('names from pattern files', () => {
  // Pattern files import 'dcagen': load them with the compiled package.
  let loadPatternFile: typeof import('../src/io/pattern-file.js').loadPatternFile;
  let main: typeof import('../src/cli/main.js').main;
  beforeAll(async () => {
    ({ loadPatternFile } = await builtModule<typeof import('../src/io/pattern-file.js')>('src/io/pattern-file.js'));
    ({ main } = await builtModule<typeof import('../src/cli/main.js')>('src/cli/main.js'));
  }, 180_000);
  const header = "import { definePattern, distanceAtLeast, distanceBelow } from 'dcagen';\n";
  const body = (name: string, param: string): string => [
    '{',
    `  name: ${JSON.stringify(name)},`,
    "  summary: 's',",
    `  params: { ${JSON.stringify(param)}: { description: 'd', min: 1 } },`,
    '  keyPosition: (j) => j,',
    '  regions: [',
    `    { name: 'near', when: distanceBelow((p) => p[${JSON.stringify(param)}]), mask: 'causal', queryPosition: (i) => i },`,
    `    { name: 'far', when: distanceAtLeast((p) => p[${JSON.stringify(param)}]), mask: 'full', queryPosition: (i) => i },`,
    '  ],',
    '}',
  ].join('\n');

  it('a plain-object export and a definePattern export fail the same check, at the file:line:col of the bad name', async () => {
    const dir = await tempDir();
    const defined = join(dir, 'defined.ts');
    const plain = join(dir, 'plain.ts');
    await writeFile(defined, `${header}export default definePattern(${body('evil', 'w/../../../tmp/x')});\n`);
    await writeFile(plain, `${header}export const evil = ${body('evil', 'w/../../../tmp/x')};\n`);
    for (const file of [defined, plain]) {
      const error = await loadPatternFile(file).then(() => undefined, (e: unknown) => e);
      expect((error as DcagenError).exitCode).toBe(2);
      // line 5 of the file (after the import line), column of the string literal
      expect((error as Error).message).toBe(`${file}:5:13 (pattern evil): parameter name "w/../../../tmp/x" must be an identifier: a lower-case letter, then letters and digits (like chunkSize)`);
    }
  });

  it('a plain-object export with a good shape loads and works like definePattern', async () => {
    const dir = await tempDir();
    const plain = join(dir, 'plain.ts');
    await writeFile(plain, `${header}export const fine = ${body('fine', 'width')};\n`);
    const [pattern] = await loadPatternFile(plain);
    expect(compilePattern(pattern!, { width: 3 }).regions.map((r) => r.name)).toEqual(['near', 'far']);
  });

  it('a plain-object export missing a field is refused at the pattern name', async () => {
    const dir = await tempDir();
    const plain = join(dir, 'plain.ts');
    await writeFile(plain, `${header}export const broken = ${body('broken', 'width').replace("  summary: 's',\n", '')};\n`);
    await expect(loadPatternFile(plain)).rejects.toThrow(`${plain}:3:9 (pattern broken): summary must be a string`);
  });

  it('dcagen emit refuses a hostile name with exit 2 and one line, and writes nothing (fast-check)', async () => {
    const dir = await tempDir();
    const out = join(dir, 'out');
    let n = 0;
    await fc.assert(fc.asyncProperty(hostileName.filter((s) => nameProblem('parameter', s) !== undefined), async (name) => {
      const file = join(dir, `p${n++}.ts`);
      await writeFile(file, `${header}export default definePattern(${body('evil', name)});\n`);
      const lines: string[] = [];
      const code = await main(['emit', '--backend', 'cuda', '--pattern-file', file, '--head-dim', '64', '-o', out], { stdout: (l) => lines.push(`out: ${l}`), stderr: (l) => lines.push(l), interactive: false });
      expect(code).toBe(2);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^dcagen emit: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+ \\(pattern evil\\): parameter name `));
    }), { numRuns: 25, seed: 3 });
    expect((await readdir(dir)).filter((f) => !f.endsWith('.ts'))).toEqual([]);
  });
});

describe('emitted file names stay inside -o', () => {
  it('file names are [a-z0-9._-] (fast-check)', () => {
    fc.assert(fc.property(fc.oneof(hostileName, fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/)), (name) => {
      let threw = false;
      try {
        checkFileName(name);
      } catch (err) {
        threw = true;
        expect(err).toBeInstanceOf(DcagenError);
        expect((err as Error).message).not.toMatch(LINE_BREAK);
      }
      expect(threw).toBe(!/^[a-z0-9][a-z0-9._-]{0,199}$/.test(name));
    }), { numRuns: 300, seed: 5 });
  });

  it('dcagen emit resolves each path and refuses one outside the folder', () => {
    const out = join(tmpdir(), 'dcagen-out');
    expect(fileInside(out, 'dca-cs8-lw2-d64-f32.cu')).toBe(join(out, 'dca-cs8-lw2-d64-f32.cu'));
    for (const bad of ['../x.cu', '/tmp/x.cu', 'a/b.cu', '..', '.', '', 'a/../../x']) {
      expect(() => fileInside(out, bad), bad).toThrow(/^refusing to write .*: it would not be a file directly inside /);
    }
  });
});
