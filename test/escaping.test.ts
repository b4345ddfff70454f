// The text half of the boundary (DESIGN.md §2): free text (pattern and region summaries, parameter
// descriptions, the recorded command line) reaches emitted files only through the target
// language's escapers (src/backends/text.ts). Hostile strings (line breaks of every kind, comment
// markers, quotes, backslashes, trigraphs, bidi controls, lone surrogates, template holes) must end
// up only inside comments and string literals:
//   - cheaply, on many generated cases: a small lexer per language drops comments and empties
//     strings, and what remains must equal the code emitted for a benign text, with the hostile
//     text's marker nowhere in it (test/helpers/strip-code.ts);
//   - on a few representative cases, by compiling: nvcc -c for CUDA, g++ with the C++14 Metal
//     declarations, Python's compiler (and the docstrings read back exactly), Node for the
//     launcher module, Deno WebGPU for the WGSL shaders. Swift has no compiler here: lexer only.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWebGpuJob } from '../runtime/webgpu/runner.js';
import { emitCuda, cudaKernelConfig } from '../src/backends/cuda/emit.js';
import type { EmittedFile } from '../src/backends/kernel-set.js';
import { emitMetal, metalKernelConfig } from '../src/backends/metal/emit.js';
import { cText, jsText, pythonText, swiftText, wgslText, type TextEscaper } from '../src/backends/text.js';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { compilePattern, type CompiledPattern } from '../src/dsl/instantiate.js';
import { definePattern, distanceAtLeast, distanceBelow } from '../src/dsl/pattern.js';
import { encodeStorage, decodeStorage } from '../src/io/storage.js';
import { referenceAttention } from '../src/reference/attention.js';
import { builtModule } from './helpers/built.js';
import { languageOf, stripCode } from './helpers/strip-code.js';
import { makeTempDir, maxAbsDiff, randomTensor } from './helpers/tensors.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CXX = process.env['CXX'] ?? 'g++';
const MARK = 'QZXJ';
const LINE_BREAK = /[\n\r\v\f\u0085\u2028\u2029]/;

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await makeTempDir('dcagen-escaping-');
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

/** Pieces that end, open or splice comments and strings in some target language. */
const PIECES = [
  '\n', '\r', '\r\n', '\u2028', '\u2029', '\u0085', '\v', '\f', '\0', '\t', '*/', '/*', '//', '"', "'", '"""', "'''", '`', '${x}',
  '\\', '\\\n', '\\ ', '\\\r\n', '??/', '??=', '../', '{{title}}', '{{', '}}', '#', '#include "x"', '}; int injected = 1; //',
  '\u202e', '\u2066', '\ufeff', '\u200b', '\ud800', '\udc00', '😀', 'é', 'Ω', '# coding: latin-1', '#"', '\\(', '<!--', '-->', 'r"', '\\u2028',
  '\\x', '%s', ' ', '',
];
/**
 * A hostile text: pieces and random code points, with the marker first and between every two (so
 * any escape shows up as code); half of them end in a backslash or ??/ instead of the marker, to
 * meet the line end of the comment they land in (a C line splice).
 */
const hostileText = fc.tuple(fc.array(fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...PIECES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
), { maxLength: 10 }), fc.oneof(fc.constant(MARK), fc.constantFrom('\\', '??/', '\\ ', '??/\t', ''))).map(([pieces, end]) => `${MARK}${pieces.join(MARK)}${end}`);

/** Every piece at once, and the text of the bug report (issue 8). */
const KITCHEN_SINK = `${MARK}${PIECES.join(MARK)}${MARK}`;
const BUG_REPORT = 'local window\n}; int injected = 1; //';

interface Texts {
  readonly summary: string;
  readonly description: string;
  readonly near: string;
  readonly far: string;
  readonly command: string;
}

const benign: Texts = { summary: 'benign', description: 'benign', near: 'benign', far: 'benign', command: 'benign' };

/** A two-region pattern carrying the texts; names are fixed unless given. */
function hostilePattern(t: Texts, names = { pattern: 'hostile', param: 'width', near: 'near', far: 'far' }): CompiledPattern {
  const definition = definePattern({
    name: names.pattern,
    summary: t.summary,
    params: { [names.param]: { description: t.description, min: 1 } },
    keyPosition: (j) => j,
    regions: [
      { name: names.near, summary: t.near, when: distanceBelow((p) => p[names.param]!), mask: 'causal', queryPosition: (i) => i },
      { name: names.far, summary: t.far, when: distanceAtLeast((p) => p[names.param]!), mask: 'full', queryPosition: (i) => i },
    ],
  });
  return compilePattern(definition, { [names.param]: 5 });
}

type Backend = 'cuda' | 'metal' | 'wgsl';
interface Variant { readonly variant: 'fused' | 'three-pass'; readonly dtype: 'f32' | 'f16' }

function emit(backend: Backend, pattern: CompiledPattern, command: string, v: Variant): readonly EmittedFile[] {
  const options = { variant: v.variant, command };
  if (backend === 'cuda') return emitCuda(pattern, cudaKernelConfig({ headDim: 64, dtype: v.dtype }), options).files;
  if (backend === 'metal') return emitMetal(pattern, metalKernelConfig({ headDim: 64, dtype: v.dtype }), options).files;
  return emitWgsl(pattern, wgslKernelConfig({ headDim: 64, dtype: v.dtype }), options).files;
}

/** Every file of the hostile set equals the benign one once comments and strings are gone, with no marker left. */
function expectOnlyInCommentsAndStrings(hostile: readonly EmittedFile[], plain: readonly EmittedFile[]): void {
  expect(hostile.map((f) => f.name)).toEqual(plain.map((f) => f.name));
  expect(hostile.some((f) => f.contents.includes(MARK)), 'the hostile text reached no file at all').toBe(true);
  for (const [k, file] of hostile.entries()) {
    const language = languageOf(file.name);
    const code = stripCode(language, file.contents);
    expect(code.includes(MARK), `${file.name}: hostile text outside comments and strings`).toBe(false);
    expect(code, `${file.name}: code differs from the benign emission`).toBe(stripCode(language, plain[k]!.contents));
  }
}

describe('the escapers', () => {
  const escapers: Array<[string, TextEscaper, boolean]> = [['C/CUDA/Metal', cText, true], ['WGSL', wgslText, true], ['JavaScript/TypeScript', jsText, true], ['Python', pythonText, false], ['Swift', swiftText, true]];

  it.each(escapers)('%s comment(): one line, no comment end or start, no line splice or trigraph (fast-check)', (_name, escaper, blockComments) => {
    fc.assert(fc.property(hostileText, (text) => {
      const out = escaper.comment(text);
      expect(out).not.toMatch(LINE_BREAK);
      expect(out).not.toMatch(/\\[\s\p{Cc}\p{Cf}]|\\$/u);  // a backslash is always followed by a visible character
      expect(out).not.toMatch(/(?!\t)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u);  // no invisible or line-breaking character
      if (blockComments) expect(out).not.toMatch(/\*\/|\/\*/);
      if (escaper === cText) expect(out).not.toMatch(/\?\?/);
      expect(out).toContain(MARK);
    }), { numRuns: 300, seed: 1 });
  });

  it('JavaScript stringLiteral() holds exactly the text (fast-check)', () => {
    fc.assert(fc.property(hostileText, (text) => {
      const literal = jsText.stringLiteral(text);
      expect(literal).not.toMatch(LINE_BREAK);
      expect(new Function(`return ${literal};`)()).toBe(text);
    }), { numRuns: 300, seed: 2 });
  });

  it('Python stringLiteral() and comment() (in a docstring) hold exactly the text, read by Python (fast-check)', async () => {
    const texts = fc.sample(hostileText, { numRuns: 150, seed: 3 });
    const sources = texts.map((t) => `${pythonText.stringLiteral(t)}\ndef f():\n    """${pythonText.comment(t)}"""\n`);
    const script = 'import ast, json, sys, warnings\nwarnings.simplefilter("error")\nout = []\nfor s in json.load(sys.stdin):\n    tree = ast.parse(s)\n    out.append([tree.body[0].value.value, ast.get_docstring(tree.body[1], clean=False)])\nprint(json.dumps(out))';
    const r = await execa('python3', ['-c', script], { input: JSON.stringify(sources), reject: false, all: true });
    expect(r.exitCode, r.all).toBe(0);
    const values = JSON.parse(r.stdout) as Array<[string, string]>;
    // JSON carries lone surrogates as \udXXX escapes, so the comparison is exact.
    for (const [k, t] of texts.entries()) expect(values[k]).toEqual([t, t]);
  });

  it('C stringLiteral() holds exactly the text as UTF-8 bytes, read by g++ (fast-check)', async () => {
    const texts = fc.sample(hostileText, { numRuns: 100, seed: 4 });
    const dir = await tempDir();
    const program = [
      '#include <cstdio>',
      'static const char* const texts[] = {',
      ...texts.map((t) => `  ${cText.stringLiteral(t)},`),
      '};',
      'int main() { for (const char* t : texts) { for (const char* c = t; *c; ++c) std::printf("%02x", (unsigned char)*c); std::printf("\\n"); } }',
    ].join('\n');
    await writeFile(join(dir, 'literals.cpp'), program);
    const cc = await execa(CXX, ['-std=c++14', '-pedantic', '-Wall', '-trigraphs', join(dir, 'literals.cpp'), '-o', join(dir, 'literals')], { reject: false, all: true });
    expect(cc.exitCode, cc.all).toBe(0);
    expect(cc.all).toBe('');
    const lines = (await execa(join(dir, 'literals'))).stdout.split('\n');
    // NUL ends a C string: compare up to the first one.
    for (const [k, t] of texts.entries()) expect(lines[k]).toBe(Buffer.from(t.split('\0')[0]!, 'utf8').toString('hex'));
  });
});

describe.each(['cuda', 'metal', 'wgsl'] as const)('hostile text in %s kernel sets', (backend) => {
  it('stays inside comments and string literals; the code equals the benign emission (fast-check)', () => {
    const texts = fc.record({ summary: hostileText, description: hostileText, near: hostileText, far: hostileText, command: hostileText });
    const variant = fc.record({ variant: fc.constantFrom('fused' as const, 'three-pass' as const), dtype: fc.constantFrom('f32' as const, 'f16' as const) });
    const plainSets = new Map<string, readonly EmittedFile[]>();
    fc.assert(fc.property(texts, variant, (t, v) => {
      const key = `${v.variant}/${v.dtype}`;
      if (!plainSets.has(key)) plainSets.set(key, emit(backend, hostilePattern(benign), benign.command, v));
      expectOnlyInCommentsAndStrings(emit(backend, hostilePattern(t), t.command, v), plainSets.get(key)!);
    }), { numRuns: 60, seed: 11 });
  });
});

describe('representative hostile kernel sets compile', () => {
  // Odd but valid names as well: the names boundary and the text boundary together.
  const names = { pattern: 'odd-9-name', param: 'x9Yz', near: 'r1', far: 'aBC' };
  const texts: Texts = { summary: KITCHEN_SINK, description: BUG_REPORT, near: KITCHEN_SINK, far: `${BUG_REPORT}\\`, command: KITCHEN_SINK };
  const pattern = (): CompiledPattern => hostilePattern(texts, names);

  it('CUDA: the .cu compiles with nvcc -c, the header with g++, and the PyTorch module with Python (docstring read back exactly)', async () => {
    const dir = await tempDir();
    const files = emit('cuda', pattern(), texts.command, { variant: 'fused', dtype: 'f16' });
    expectOnlyInCommentsAndStrings(files, emit('cuda', hostilePattern(benign, names), benign.command, { variant: 'fused', dtype: 'f16' }));
    for (const f of files) await writeFile(join(dir, f.name), f.contents);
    const cu = files.find((f) => f.name.endsWith('.cu'))!.name;
    const header = files.find((f) => f.name.endsWith('.h'))!.name;
    const [nvcc, gxx] = await Promise.all([
      execa('nvcc', ['-c', '-arch=sm_80', '-std=c++17', cu, '-o', 'kernel.o'], { cwd: dir, reject: false, all: true }),
      execa(CXX, ['-std=c++14', '-pedantic', '-Wall', '-trigraphs', '-fsyntax-only', '-x', 'c++', header], { cwd: dir, reject: false, all: true }),
    ]);
    expect(nvcc.exitCode, nvcc.all).toBe(0);
    expect(nvcc.all).not.toMatch(/error/);
    expect(gxx.exitCode, gxx.all).toBe(0);
    await expectPythonDocstrings(dir, files.find((f) => f.name.endsWith('.py'))!.name, texts.command, `${texts.summary}, fused into one flash-attention pass.`);
  });

  it('Metal: the .metal compiles as C++14 against the Metal declarations (both variants), and the MLX module with Python', async () => {
    const dir = await tempDir();
    for (const variant of ['fused', 'three-pass'] as const) {
      const files = emit('metal', pattern(), texts.command, { variant, dtype: 'f32' });
      expectOnlyInCommentsAndStrings(files, emit('metal', hostilePattern(benign, names), benign.command, { variant, dtype: 'f32' }));
      await mkdir(join(dir, variant), { recursive: true });
      for (const f of files) await writeFile(join(dir, variant, f.name), f.contents);
      const metal = files.find((f) => f.name.endsWith('.metal'))!.name;
      const cc = await execa(CXX, ['-std=c++14', '-pedantic', '-Wall', '-Wno-attributes', '-trigraphs', '-fsyntax-only', '-I', join(ROOT, 'test', 'emulation', 'msl_cxx14'), '-x', 'c++', metal], { cwd: join(dir, variant), reject: false, all: true });
      expect(cc.exitCode, cc.all).toBe(0);
      expect(cc.all).toBe('');
      const suffix = variant === 'fused' ? ', fused into one flash-attention pass.' : ', as the three-pass baseline (one kernel per region, then a log-sum-exp merge).';
      await expectPythonDocstrings(join(dir, variant), files.find((f) => f.name.endsWith('.py'))!.name, texts.command, `${texts.summary}${suffix}`);
    }
  });

  it('WGSL: the launcher imports in Node, and the three-pass shaders compile and run on WebGPU (Deno) against the reference', async () => {
    const dir = await tempDir();
    const compiled = pattern();
    for (const variant of ['fused', 'three-pass'] as const) {
      const files = emit('wgsl', compiled, texts.command, { variant, dtype: 'f32' });
      const work = join(dir, variant);
      await mkdir(work, { recursive: true });
      for (const f of files) await writeFile(join(work, f.name), f.contents);
      const launcher = join(work, files.find((f) => f.name.endsWith('.js'))!.name);
      const node = await execa('node', ['--input-type=module', '-e', `const m = await import(${JSON.stringify(pathToFileURL(launcher).href)}); console.log(JSON.stringify(m.config))`], { reject: false, all: true });
      expect(node.exitCode, node.all).toBe(0);
      expect(JSON.parse(node.stdout)).toMatchObject({ pattern: names.pattern, params: { [names.param]: 5 } });
      expectOnlyInCommentsAndStrings(files, emit('wgsl', hostilePattern(benign, names), benign.command, { variant, dtype: 'f32' }));
      // Tiny attention on the hostile kernels, compared with the float64 reference: the three-pass
      // set has every shader kind (per-region kernels and the merge), so one WebGPU run covers both.
      if (variant === 'fused') continue;
      const q = randomTensor([1, 9, 1, 64], 31);
      const k = randomTensor([1, 9, 1, 64], 32);
      const v = randomTensor([1, 9, 1, 64], 33);
      for (const [name, t] of Object.entries({ q, k, v })) await writeFile(join(work, `${name}.bin`), encodeStorage(t.data, 'f32'));
      await runWebGpuJob({
        module: join(ROOT, 'runtime', 'webgpu', 'attention-job.js'),
        entry: 'runAttentionJob',
        args: {
          launcher,
          options: { ropeTheta: 10000 },
          shape: { batch: 1, queries: 9, keys: 9, queryHeads: 1, keyHeads: 1, headDim: 64 },
          inputs: { q: join(work, 'q.bin'), k: join(work, 'k.bin'), v: join(work, 'v.bin') },
          outputs: { out: join(work, 'out.bin'), lse: join(work, 'lse.bin') },
        },
        readPaths: [work],
        writePaths: [work],
      });
      const expected = referenceAttention(q, k, v, { pattern: compiled, rope: { theta: 10000, style: 'half' } });
      expect(maxAbsDiff(decodeStorage(await readFile(join(work, 'out.bin')), 'f32'), expected.out.data)).toBeLessThanOrEqual(2e-4);
    }
  });
});

describe('dcagen emit with the bug report\'s pattern file (issue 8)', () => {
  // Pattern files import 'dcagen': load them with the compiled package.
  let main: typeof import('../src/cli/main.js').main;
  beforeAll(async () => {
    ({ main } = await builtModule<typeof import('../src/cli/main.js')>('src/cli/main.js'));
  }, 180_000);

  it('a description with a newline stays a comment: the .cu has no injected line and the same code as a benign one', async () => {
    const dir = await tempDir();
    const write = async (name: string, description: string): Promise<string> => {
      const file = join(dir, `${name}.ts`);
      await writeFile(file, [
        "import { definePattern, everyPair } from 'dcagen';",
        'export default definePattern({',
        `  name: ${JSON.stringify(name)}, summary: ${JSON.stringify(`${MARK}\n"""\nimport os`)},`,
        `  params: { w: { description: ${JSON.stringify(description)}, min: 1 } },`,
        '  keyPosition: (j, p) => j + 0 * p.w,',
        "  regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => i }],",
        '});',
      ].join('\n'));
      return file;
    };
    const emitted: Record<string, EmittedFile[]> = {};
    for (const [name, description] of [['hostile', `${MARK}${BUG_REPORT}`], ['benign', 'benign']] as const) {
      const out = join(dir, `out-${name}`);
      const lines: string[] = [];
      const code = await main(['emit', '--backend', 'cuda', '--pattern-file', await write(name, description), '--w', '3', '--head-dim', '64', '-o', out], { stdout: (l) => lines.push(l), stderr: (l) => lines.push(l), interactive: false });
      expect(code, lines.join('\n')).toBe(0);
      // The two differ in their names (pattern, file, folder) too: make those equal.
      const same = (text: string): string => text.replace(/hostile|benign/gi, 'x');
      emitted[name] = await Promise.all(lines.map(async (path) => ({ name: same(path.slice(out.length + 1)), contents: same(await readFile(path, 'utf8')) })));
    }
    const cu = emitted['hostile']!.find((f) => f.name.endsWith('.cu'))!.contents;
    expect(cu).not.toMatch(/^\s*\}; int injected = 1;/m);
    expect(cu).toContain('// QZXJlocal window\\n}; int injected = 1; //');
    // The recorded command line differs only inside comments too.
    expectOnlyInCommentsAndStrings(emitted['hostile']!, emitted['benign']!);
  });
});

/** Compiles a Python module and checks its first function docstring (the one with the summary) reads back as `expected`. */
async function expectPythonDocstrings(dir: string, file: string, command: string, expected: string): Promise<void> {
  const script = [
    'import ast, json, sys, warnings',
    'warnings.simplefilter("error")',  // an invalid escape sequence is a SyntaxWarning: fail on it
    'source = open(sys.argv[1], encoding="utf-8").read()',
    'tree = ast.parse(source)',
    'compile(source, sys.argv[1], "exec")',
    'fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_attention")]',
    'print(json.dumps([ast.get_docstring(tree, clean=False), ast.get_docstring(fns[0], clean=False)]))',
  ].join('\n');
  const r = await execa('python3', ['-c', script, join(dir, file)], { reject: false, all: true });
  expect(r.exitCode, r.all).toBe(0);
  const [moduleDoc, functionDoc] = JSON.parse(r.stdout) as [string, string];
  expect(moduleDoc).toContain(`\n    ${command}\n`);  // the recorded command line, exactly
  expect(functionDoc.startsWith(`${expected}\n`), functionDoc.slice(0, 200)).toBe(true);
}
