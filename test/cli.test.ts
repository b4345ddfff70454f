// The `dcagen` command line, spawned as a user runs it (node bin/dcagen.js): the paper's Figure 2,
// JSON and SVG output, custom pattern files, `run --backend reference` against referenceAttention
// (with --dtype and --hf-config), and every bad-input class: exit code 2, exactly one line on
// stderr naming the problem, no stack trace, and no output or temporary file left behind.

import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePattern } from '../src/dsl/instantiate.js';
import { definePattern, everyPair } from '../src/dsl/pattern.js';
import { flagDefault, parseFlags } from '../src/cli/args.js';
import { commands, main } from '../src/cli/main.js';
import { patternParamFlags } from '../src/cli/pattern-options.js';
import { decodeNpy } from '../src/io/npy.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPatterns, causal, dca } from '../src/patterns/index.js';
import { referenceAttention, type AttentionOptions } from '../src/reference/attention.js';
import { ensureBuilt } from './helpers/built.js';
import { dcagen, ROOT, type CliResult, expectBadInput } from './helpers/cli.js';
import { FIGURE_2, FIGURE_2_REGIONS } from './helpers/figure2.js';
import { asFloat32, float32Bytes, listDir, makeTempDir, maxAbsDiff, randomTensor, rawNpy, writeNpyFile } from './helpers/tensors.js';

const PATTERNS = join(ROOT, 'test', 'fixtures', 'patterns');
const QWEN_CONFIG = join(ROOT, 'test', 'fixtures', 'hf', 'qwen2.5-7b-instruct-1m.config.json');

// `npm test` builds first (pretest); a bare `npx vitest run` builds here when dist is stale.
beforeAll(() => ensureBuilt(), 180_000);

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await makeTempDir('dcagen-cli-');
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** The same CLI in-process (src through vitest): for cases whose process-level behaviour a spawn already covers. */
async function dcagenInProcess(args: readonly string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = await main(args, { stdout: (l) => out.push(l), stderr: (l) => err.push(l), interactive: false });
  return { exitCode, stdout: out.join('\n'), stderr: err.join('\n') };
}


interface RunFiles {
  readonly dir: string;
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly out: string;
  readonly lse: string;
  readonly inputs: { q: Tensor<Float64Array>; k: Tensor<Float64Array>; v: Tensor<Float64Array> };
}

/** A temp folder with q (B, Sq, Hq, D), k and v (B, Sk, Hk, D) as float32 .npy files. */
async function runFiles(shape: { B: number; Sq: number; Sk: number; Hq: number; Hk: number; D: number }, seed: number): Promise<RunFiles> {
  const dir = await tempDir();
  const q = randomTensor([shape.B, shape.Sq, shape.Hq, shape.D], seed);
  const k = randomTensor([shape.B, shape.Sk, shape.Hk, shape.D], seed + 1);
  const v = randomTensor([shape.B, shape.Sk, shape.Hk, shape.D], seed + 2);
  return {
    dir,
    q: await writeNpyFile(dir, 'q.npy', q),
    k: await writeNpyFile(dir, 'k.npy', k),
    v: await writeNpyFile(dir, 'v.npy', v),
    out: join(dir, 'out.npy'),
    lse: join(dir, 'lse.npy'),
    inputs: { q: asFloat32(q), k: asFloat32(k), v: asFloat32(v) },
  };
}

const SMALL = { B: 1, Sq: 5, Sk: 9, Hq: 4, Hk: 2, D: 8 };
const DCA_FLAGS = ['--pattern', 'dca', '--chunk-size', '6', '--local-window', '2'];

function runArgs(f: RunFiles, extra: readonly string[] = DCA_FLAGS): string[] {
  return ['run', '--backend', 'reference', ...extra, '--q', f.q, '--k', f.k, '--v', f.v, '--out', f.out, '--lse', f.lse];
}

async function readOutputs(f: RunFiles): Promise<{ out: Tensor<Float64Array>; lse: Tensor<Float64Array> }> {
  return { out: decodeNpy(await readFile(f.out)), lse: decodeNpy(await readFile(f.lse)) };
}

/** Float32 output files hold the float64 reference rounded once: allow a few float32 ulps. */
function expectMatchesReference(files: { out: Tensor; lse: Tensor }, expected: { out: Tensor; lse: Tensor }): void {
  expect(files.out.shape).toEqual(expected.out.shape);
  expect(files.lse.shape).toEqual(expected.lse.shape);
  expect(maxAbsDiff(files.out.data, expected.out.data)).toBeLessThanOrEqual(1e-6);
  expect(maxAbsDiff(files.lse.data, expected.lse.data)).toBeLessThanOrEqual(4e-6);
  // and exactly the float32 rounding of it:
  expect(maxAbsDiff(files.out.data, Float64Array.from(expected.out.data, Math.fround))).toBe(0);
}

/** A minimal XML well-formedness check: balanced tags, quoted attributes, no stray '<' or '&'. */
function expectWellFormedSvg(svg: string): void {
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let pos = 0;
  while (pos < svg.length) {
    const lt = svg.indexOf('<', pos);
    const text = svg.slice(pos, lt < 0 ? svg.length : lt);
    expect(text).not.toMatch(/&(?!(amp|lt|gt|quot|apos|#\d+);)/);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    expect(m, `bad tag at ${svg.slice(lt, lt + 60)}`).not.toBeNull();
    const [, closing, name, , selfClosing] = m!;
    if (closing) expect(stack.pop()).toBe(name);
    else if (!selfClosing) stack.push(name!);
    pos = tag.lastIndex;
  }
  expect(stack).toEqual([]);
}

describe.concurrent('dcagen explain', () => {
  it("prints the paper's Figure 2 for --chunk-size 9 --local-window 3 --seq-len 12", async () => {
    const r = await dcagen(['explain', '--pattern', 'dca', '--chunk-size', '9', '--local-window', '3', '--seq-len', '12']);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^pattern dca \(chunkSize=9 localWindow=3 chunkLength=6\), 12 tokens/);
    // The relative matrix: rows 0..11 after the column header.
    expect(lines[1]!.trim().split(/\s+/).map(Number)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (let i = 0; i < 12; i++) {
      const cells = lines[2 + i]!.trim().split(/\s+/);
      expect(cells[0]).toBe(String(i));
      expect(cells.slice(1).map((c) => (c === '·' ? null : Number(c)))).toEqual(FIGURE_2[i]);
    }
    // The region map names each region and marks every cell.
    const legend = lines.findIndex((l) => l.startsWith('regions: '));
    expect(lines[legend]).toBe('regions: I = intra, S = successive, N = inter');
    for (let i = 0; i < 12; i++) {
      const cells = lines[legend + 2 + i]!.trim().split(/\s+/).slice(1);
      expect(cells).toEqual(FIGURE_2_REGIONS[i]!.map((r) => (r === null ? '·' : r === 'intra' ? 'I' : 'S')));
    }
  });

  it('--json prints {"relative", "region", "query", "key"} with null above the diagonal', async () => {
    const r = await dcagen(['explain', '--pattern', 'dca', '--chunk-size', '9', '--local-window', '3', '--seq-len', '12', '--json']);
    expect(r.exitCode).toBe(0);
    const m = JSON.parse(r.stdout) as { relative: (number | null)[][]; region: (string | null)[][]; query: (number | null)[][]; key: (number | null)[][] };
    expect(Object.keys(m)).toEqual(['relative', 'region', 'query', 'key']);
    expect({ relative: m.relative, region: m.region }).toEqual({ relative: FIGURE_2, region: FIGURE_2_REGIONS });
    // Keys sit at j mod L (L = 6); relative = query − key.
    for (let i = 0; i < 12; i++) {
      for (let j = 0; j < 12; j++) {
        expect(m.key[i]![j]).toBe(j <= i ? j % 6 : null);
        expect(m.query[i]![j] === null ? null : m.query[i]![j]! - m.key[i]![j]!).toBe(FIGURE_2[i]![j]);
      }
    }
  });

  it('--svg writes a readable SVG heatmap (and nothing else)', async () => {
    const dir = await tempDir();
    const svgPath = join(dir, 'fig2.svg');
    const r = await dcagenInProcess(['explain', '--pattern', 'dca', '--chunk-size', '9', '--local-window', '3', '--seq-len', '12', '--svg', svgPath]);
    expect(r.exitCode).toBe(0);
    expect(await listDir(dir)).toEqual(['fig2.svg']);
    const svg = await readFile(svgPath, 'utf8');
    expectWellFormedSvg(svg);
    // One cell per causal pair, each titled with its region and distance.
    const cells = [...svg.matchAll(/<title>i=(\d+) j=(\d+) (\w+): (\d+) \(query (\d+) − key (\d+)\)<\/title>/g)];
    expect(cells).toHaveLength(78);
    for (const [, i, j, region, rel, query, key] of cells) {
      expect(Number(rel)).toBe(FIGURE_2[Number(i)]![Number(j)]);
      expect(Number(query) - Number(key)).toBe(Number(rel));
      expect(region).toBe(FIGURE_2_REGIONS[Number(i)]![Number(j)]);
    }
    for (const name of ['intra', 'successive', 'inter']) expect(svg).toContain(`>${name}</text>`);
  });

  it('--pretraining-length c sets C = ⌊3c/4⌋ and W = ⌊c/8⌋', async () => {
    const [big, small, overridden] = await Promise.all([
      dcagenInProcess(['explain', '--pattern', 'dca', '--pretraining-length', '4096', '--seq-len', '1']),
      dcagenInProcess(['explain', '--pattern', 'dca', '--pretraining-length', '32', '--seq-len', '30', '--json']),
      dcagenInProcess(['explain', '--pattern', 'dca', '--pretraining-length', '32', '--local-window', '2', '--seq-len', '1']),
    ]);
    expect(big.stdout.split('\n')[0]).toMatch(/^pattern dca \(chunkSize=3072 localWindow=512 chunkLength=2560\)/);
    // c = 32: C = 24, W = 4, L = 20. Row 29: r = 9, successive query min(29, 24) = 24.
    const m = JSON.parse(small.stdout) as { relative: (number | null)[][]; region: (string | null)[][] };
    expect(m.relative[29]!.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, j) => 24 - j));
    expect(m.relative[29]!.slice(20, 30)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(m.region[20]![19]).toBe('successive');
    expect(m.region[19]![19]).toBe('intra');
    // An explicit flag overrides the preset.
    expect(overridden.stdout.split('\n')[0]).toMatch(/^pattern dca \(chunkSize=24 localWindow=2 chunkLength=22\)/);
  });
});

describe.concurrent('custom pattern files (--pattern-file)', () => {
  it('loads a pattern that imports from "dcagen" and explains it', async () => {
    const r = await dcagen(['explain', '--pattern-file', join(PATTERNS, 'capped-chunks.ts'), '--chunk', '3', '--cap', '4', '--seq-len', '7', '--json']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const m = JSON.parse(r.stdout) as { relative: (number | null)[][]; region: (string | null)[][] };
    for (let i = 0; i < 7; i++) {
      for (let j = 0; j < 7; j++) {
        if (j > i) {
          expect(m.relative[i]![j]).toBeNull();
          continue;
        }
        const same = Math.floor(i / 3) === Math.floor(j / 3);
        expect([m.relative[i]![j], m.region[i]![j]]).toEqual(same ? [(i % 3) - (j % 3), 'local'] : [4 - (j % 3), 'far']);
      }
    }
  });

  it('picks a named export with --pattern, uses parameter defaults, and runs it on the reference', async () => {
    const f = await runFiles({ B: 1, Sq: 3, Sk: 4, Hq: 2, Hk: 1, D: 4 }, 50);
    const r = await dcagen(runArgs(f, ['--pattern-file', join(PATTERNS, 'capped-chunks.ts'), '--pattern', 'stride']));
    expect(r.exitCode, r.stderr).toBe(0);
    // The same pattern written here: positions 2i and 2j.
    const stride = definePattern({
      name: 'stride', summary: '', params: { stride: { description: 'stride', min: 1 } }, keyPosition: (j, p) => p.stride * j,
      regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i, p) => p.stride * i }],
    });
    const rope = { theta: 10000, style: 'half' as const };
    const expected = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { pattern: compilePattern(stride, { stride: 2 }), rope });
    expectMatchesReference(await readOutputs(f), expected);
    const plain = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { pattern: compilePattern(causal, {}), rope });
    expect(maxAbsDiff((await readOutputs(f)).out.data, plain.out.data)).toBeGreaterThan(1e-4);
  });

  it('a syntax error in a pattern file is reported at file:line:col', async () => {
    const dir = await tempDir();
    const file = join(dir, 'broken.ts');
    await writeFile(file, "import { definePattern } from 'dcagen';\nexport default definePattern({\n  name: 'x',,\n});\n");
    const r = await dcagen(['explain', '--pattern-file', file, '--seq-len', '2']);
    expectBadInput(r, new RegExp(`^dcagen explain: ${escape(file)}:3:13: `));
    expect(await listDir(dir)).toEqual(['broken.ts']);
  });

  it('a file that exports no pattern is a clear error', async () => {
    const dir = await tempDir();
    const file = join(dir, 'empty.ts');
    await writeFile(file, 'export const answer = 42;\n');
    expectBadInput(await dcagen(['explain', '--pattern-file', file, '--seq-len', '2']), /exports no pattern \(export definePattern\(\{\.\.\.\}\)\)/);
  });

  // Each broken fixture: its parameter flags, the text its bad construct starts with, the context and
  // the message after the location.
  const broken: Array<[string, string[], string, string, string]> = [
    ['bad-division.ts', ['--group', '2'], 'i / p.group', 'pattern bad-division, region all, queryPosition', 'division must be written Math.floor(a / b) (integer division), found "i / p.group"'],
    ['bad-let.ts', ['--chunk', '2'], 'let position', 'pattern bad-let, region intra, queryPosition', 'only const declarations are allowed, found let'],
    ['bad-call.ts', [], 'Math.sqrt(i)', 'pattern bad-call, region all, queryPosition', 'unsupported call "Math.sqrt(…)"; allowed calls are Math.floor, Math.min and Math.max'],
    ['bad-param.ts', ['--window', '2'], 'p.windw', 'pattern bad-param, region far, keyPosition', 'unknown parameter "windw"; this pattern has window'],
  ];
  for (const [fixture, params, marker, context, problem] of broken) {
    it(`${fixture}: the DSL error names file:line:col exactly`, async () => {
      const path = join(PATTERNS, fixture);
      const text = await readFile(path, 'utf8');
      const at = text.indexOf(marker);
      expect(at).toBeGreaterThan(0);
      expect(text.indexOf(marker, at + 1)).toBe(-1);
      const line = text.slice(0, at).split('\n').length;
      const column = at - text.lastIndexOf('\n', at - 1);
      const shown = relative(ROOT, path); // the path as the user typed it
      const r = await dcagen(['explain', '--pattern-file', shown, ...params, '--seq-len', '4']);
      expectBadInput(r, /./);
      expect(r.stderr).toBe(`dcagen explain: ${shown}:${line}:${column} (${context}): ${problem}`);
    });
  }
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe.concurrent('dcagen run --backend reference', () => {
  it('writes out and lse .npy files equal to referenceAttention, and no temporaries', async () => {
    const f = await runFiles(SMALL, 1);
    const r = await dcagen(runArgs(f));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr.split('\n')).toHaveLength(1);
    expect(await listDir(f.dir)).toEqual(['k.npy', 'lse.npy', 'out.npy', 'q.npy', 'v.npy']);
    const expected = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { pattern: compilePattern(dca, { chunkSize: 6, localWindow: 2 }), rope: { theta: 10000, style: 'half' } });
    const got = await readOutputs(f);
    expect(got.out.shape).toEqual([1, 5, 4, 8]);
    expect(got.lse.shape).toEqual([1, 4, 5]);
    expectMatchesReference(got, expected);
  });

  it('--dtype f16 rounds the inputs first (with interleaved rope, partial rotary, scale and temperature)', async () => {
    const f = await runFiles(SMALL, 2);
    const extra = ['--dtype', 'f16', '--rope-style', 'interleaved', '--rotary-dim', '6', '--scale', '0.4', '--original-max-position', '3', '--rope-theta', '500'];
    const r = await dcagen(runArgs(f, [...DCA_FLAGS, ...extra]));
    expect(r.exitCode, r.stderr).toBe(0);
    const options: AttentionOptions = {
      pattern: compilePattern(dca, { chunkSize: 6, localWindow: 2 }),
      rope: { theta: 500, style: 'interleaved', rotaryDim: 6 },
      scale: 0.4,
      originalMaxPosition: 3,
    };
    const expected = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { ...options, dtype: 'f16' });
    const asF32 = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { ...options, dtype: 'f32' });
    const got = await readOutputs(f);
    expectMatchesReference(got, expected);
    expect(maxAbsDiff(got.out.data, asF32.out.data)).toBeGreaterThan(1e-5);
  });

  it('--hf-config takes pattern, θ and temperature from a Qwen2.5-7B-Instruct-1M config; flags override it', async () => {
    const f = await runFiles({ B: 1, Sq: 4, Sk: 8, Hq: 28, Hk: 4, D: 128 }, 3);
    const [fromConfig, overridden] = await Promise.all([
      (async () => {
        const r = await dcagen(runArgs(f, ['--hf-config', QWEN_CONFIG]));
        expect(r.exitCode, r.stderr).toBe(0);
        return readOutputs(f);
      })(),
      (async () => {
        const g: RunFiles = { ...f, out: join(f.dir, 'out2.npy'), lse: join(f.dir, 'lse2.npy') };
        const r = await dcagen(runArgs(g, ['--hf-config', QWEN_CONFIG, '--rope-theta', '10000', '--chunk-size', '6', '--local-window', '2', '--original-max-position', '2']));
        expect(r.exitCode, r.stderr).toBe(0);
        return readOutputs(g);
      })(),
    ]);
    const qwen = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, {
      pattern: compilePattern(dca, { chunkSize: 262144, localWindow: 8192 }),
      rope: { theta: 1e7, style: 'half' },
      originalMaxPosition: 262144,
    });
    expectMatchesReference(fromConfig, qwen);
    const flags = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, {
      pattern: compilePattern(dca, { chunkSize: 6, localWindow: 2 }),
      rope: { theta: 10000, style: 'half' },
      originalMaxPosition: 2,
    });
    expectMatchesReference(overridden, flags);
    // θ from the config matters here (it is not the default 10000).
    const defaultTheta = referenceAttention(f.inputs.q, f.inputs.k, f.inputs.v, { pattern: compilePattern(causal, {}), rope: { theta: 10000, style: 'half' } });
    expect(maxAbsDiff(fromConfig.out.data, defaultTheta.out.data)).toBeGreaterThan(1e-4);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input. Each case gets a fresh folder with valid q, k, v; afterwards the folder must hold
// exactly what the case put there (no out.npy, lse.npy or temporary).

/** Help text with its line wrapping undone, so a wrapped "[default: …]" still matches. */
const unwrapped = (text: string): string => text.replace(/\s+/g, ' ');

describe.concurrent('--help', () => {
  it('dcagen --help lists every command with its summary and every built-in pattern with its flags', async () => {
    const r = await dcagen(['--help']);
    expect(r.exitCode).toBe(0);
    for (const [name, c] of Object.entries(commands)) expect(r.stdout).toMatch(new RegExp(`^  ${name} +${c.summary.replace(/[()]/g, '\\$&')}$`, 'm'));
    for (const p of builtinPatterns) expect(r.stdout).toMatch(new RegExp(`^  ${p.name} `, 'm'));
    expect(r.stdout).toContain('--chunk-size N --local-window N | --pretraining-length N');
    expect(r.stdout).toContain('--group-size N --neighbor-window N');
  });

  for (const [name, command] of Object.entries(commands)) {
    it(`dcagen ${name} --help lists every flag of its table with its meaning and its default`, async () => {
      const r = await dcagenInProcess([name, '--help']);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe('');
      expect(unwrapped(r.stdout.split('\n\n')[0]!)).toMatch(new RegExp(`^usage: dcagen ${name} .*\\[flags\\]$`));
      const text = unwrapped(r.stdout);
      for (const [flag, spec] of Object.entries(command.flags)) {
        expect(r.stdout).toMatch(new RegExp(`^  (${spec.alias ?? '-'}, )?--${flag}\\b`, 'm'));
        expect(text).toContain(unwrapped(spec.description));
        const note = flagDefault(spec);
        if (note !== undefined) expect(text).toContain(`${unwrapped(spec.description)} [${note}]`);
        // Every flag that takes a value says what happens without it.
        if (spec.kind !== 'boolean') expect(note, `--${flag} of ${name}`).toBeDefined();
      }
      for (const line of r.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    });
  }

  it('states the defaults the commands use', async () => {
    const help = async (...args: string[]): Promise<string> => unwrapped((await dcagenInProcess([...args, '--help'])).stdout);
    const bench = await help('bench');
    for (const [flag, value] of [['seq-len', '1024'], ['batch', '1'], ['heads', '4'], ['kv-heads', '1'], ['head-dim', '64'], ['dtype f32|f16', 'f32'], ['repeats', '5']]) {
      expect(bench).toMatch(new RegExp(`--${flag.replace('|', '\\|')}( N)? .*?\\[default: ${value}\\]`));
    }
    const verify = await help('verify');
    expect(verify).toMatch(/--cases N number of cases .*\[default: 20\]/);
    expect(verify).toMatch(/--seed N random seed \[default: 1\]/);
    expect(verify).toMatch(/--max-keys N .*\[default: 160\]/);
    const emit = await help('emit');
    expect(emit).toMatch(/--dtype f32\|f16\|bf16 .*\[default: f32\]/);
    expect(emit).toMatch(/--variant fused\|three-pass .*\[default: fused\]/);
    expect(emit).toMatch(/-o, --out-dir DIR .*\[required\]/);
    expect(emit).toMatch(/--rope-style half\|interleaved .*\[default: half\]/);
    expect(emit).toMatch(/--rope-theta X .*\[default: 10000/);
    expect(await help('run')).toMatch(/--backend reference\|wgsl\|cuda\|metal where to run \[default: reference\]/);
  });

  it('the parser applies the defaults the table declares (the help cannot drift from the behaviour)', () => {
    const flags = parseFlags(['--backend', 'wgsl'], commands['verify']!.flags, 'verify');
    expect([flags.number('cases'), flags.number('seed'), flags.number('max-keys'), flags.has('cases')]).toEqual([20, 1, 160, false]);
    expect(parseFlags(['--cases', '3', '--backend', 'wgsl'], commands['verify']!.flags, 'verify').number('cases')).toBe(3);
    expect(parseFlags(['-o', 'x', '--backend', 'wgsl'], commands['emit']!.flags, 'emit').string('out-dir')).toBe('x');
  });

  it('with --pattern (or a pattern file), the help lists that pattern\'s parameters; without, every pattern\'s flags', async () => {
    for (const p of builtinPatterns) {
      const r = await dcagenInProcess(['emit', '--pattern', p.name, '--help']);
      expect(r.exitCode).toBe(0);
      const params = Object.entries(patternParamFlags(p));
      if (params.length === 0) expect(r.stdout).toContain(`pattern ${p.name} (${p.summary}) has no parameters`);
      else expect(r.stdout).toContain(`parameters of pattern ${p.name} (${p.summary}):`);
      for (const [flag, spec] of params) {
        expect(r.stdout).toMatch(new RegExp(`^  --${flag} N`, 'm'));
        expect(unwrapped(r.stdout)).toContain(`${unwrapped(spec.description)} [${flagDefault(spec)}]`);
      }
    }
    const dcaHelp = unwrapped((await dcagenInProcess(['explain', '--pattern=dca', '--help'])).stdout);
    expect(dcaHelp).toContain('--chunk-size N C, the largest query position ever used (Qwen chunk_size) (at least 1) [required unless --pretraining-length or --hf-config\'s chunk_size sets it]');
    expect(dcaHelp).toContain('--pretraining-length N c, the pretraining length');
    const fromFile = await dcagen(['explain', '--pattern-file', join(PATTERNS, 'capped-chunks.ts'), '--help']);
    expect(fromFile.exitCode, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toMatch(/^parameters of pattern capped-chunks /m);
    expect(fromFile.stdout).toMatch(/^  --chunk N +chunk length \(at least 1\) \[required\]$/m);
    const generic = await dcagenInProcess(['run', '--help']);
    expect(generic.stdout).toMatch(/^pattern parameters \(with --pattern NAME/m);
    for (const p of builtinPatterns) expect(generic.stdout).toMatch(new RegExp(`^  ${p.name} +(--|\\(no parameters\\))`, 'm'));
  });

  it('dcagen help <command> is <command> --help; an unknown --pattern with --help is bad input', async () => {
    expect(await dcagenInProcess(['help', 'bench'])).toEqual(await dcagenInProcess(['bench', '--help']));
    expectBadInput(await dcagenInProcess(['emit', '--pattern', 'nope', '--help']), /^dcagen emit: unknown pattern "nope"/);
  });
});

describe.concurrent('dcagen emit', () => {
  it('-o DIR writes the kernel files there and prints their paths', async () => {
    const dir = await tempDir();
    const r = await dcagen(['emit', '--backend', 'metal', '--pattern', 'causal', '--head-dim', '64', '-o', dir]);
    expect(r.exitCode, r.stderr).toBe(0);
    const written = r.stdout.split('\n');
    expect(written.length).toBeGreaterThan(0);
    for (const path of written) expect(existsSync(path) && path.startsWith(dir)).toBe(true);
    expect(written.some((p) => p.endsWith('.metal'))).toBe(true);
  });
});

interface BadCase {
  readonly name: string;
  /** Returns the argv; may add or replace files in the folder. */
  readonly args: (f: RunFiles) => Promise<string[]> | string[];
  readonly message: RegExp;
  /** Spawn the built CLI (every class issue 2 §6 names); the rest run in-process through main(). */
  readonly spawn?: true;
}

const badCases: BadCase[] = [
  { name: 'unknown flag', spawn: true, args: (f) => [...runArgs(f), '--bogus', '3'], message: /^dcagen run: unknown flag --bogus for dcagen run \(see dcagen run --help\)$/ },
  { name: 'unknown pattern', spawn: true, args: (f) => runArgs(f, ['--pattern', 'dca2']), message: /^dcagen run: unknown pattern "dca2"; built-in patterns are causal, dca, dca-paper/ },
  { name: 'unknown command', spawn: true, args: () => ['frobnicate', '--pattern', 'dca'], message: /^dcagen: unknown command "frobnicate" \(commands: explain, run/ },
  { name: 'non-integer parameter', spawn: true, args: (f) => runArgs(f, ['--pattern', 'dca', '--chunk-size', '6.5', '--local-window', '2']), message: /^dcagen run: --chunk-size must be an integer, got "6\.5"$/ },
  { name: 'non-numeric parameter', args: (f) => runArgs(f, ['--pattern', 'dca', '--chunk-size', '6', '--local-window', 'two']), message: /^dcagen run: --local-window must be an integer, got "two"$/ },
  { name: 'out-of-range parameter (L < 1)', spawn: true, args: (f) => runArgs(f, ['--pattern', 'dca', '--chunk-size', '4', '--local-window', '4']), message: /^dcagen run: pattern dca: chunk length L = chunk-size − local-window must be at least 1 \(got 4 − 4 = 0\)$/ },
  { name: 'negative parameter', args: (f) => runArgs(f, ['--pattern', 'dca', '--chunk-size', '4', '--local-window', '-1']), message: /^dcagen run: --local-window must be at least 0, got -1$/ },
  { name: 'missing parameter', args: (f) => runArgs(f, ['--pattern', 'dca', '--local-window', '1']), message: /^dcagen run: pattern dca needs --chunk-size/ },
  { name: 'missing input file', spawn: true, args: (f) => runArgs({ ...f, q: join(f.dir, 'missing.npy') }), message: /^dcagen run: .*missing\.npy: no such file$/ },
  { name: 'malformed .npy (not NumPy)', spawn: true, args: async (f) => { await writeFile(f.k, 'this is not an array\n'); return runArgs(f); }, message: /^dcagen run: .*k\.npy: not a NumPy \.npy file/ },
  { name: 'malformed .npy (truncated data)', args: async (f) => { const b = await readFile(f.v); await writeFile(f.v, b.subarray(0, b.length - 5)); return runArgs(f); }, message: /^dcagen run: .*v\.npy: truncated \.npy data/ },
  { name: 'malformed .npy (unsupported dtype)', args: async (f) => { await writeFile(f.q, rawNpy({ descr: '<i2', shape: [1, 5, 4, 8], body: new Uint8Array(640) })); return runArgs(f); }, message: /^dcagen run: .*q\.npy: unsupported dtype '<i2'/ },
  { name: 'malformed .npy (wrong rank)', args: async (f) => { await writeFile(f.q, rawNpy({ descr: '<f4', shape: [5, 4, 8], body: float32Bytes(new Array(160).fill(0.5)) })); return runArgs(f); }, message: /^dcagen run: .*q\.npy: expected a rank-4 array, got shape \(5, 4, 8\)$/ },
  { name: 'mismatched head dim (q vs k)', spawn: true, args: async (f) => { await writeNpyFile(f.dir, 'q.npy', randomTensor([1, 5, 4, 6], 9)); return runArgs(f); }, message: /^dcagen run: q has head dim 6 but k has head dim 8$/ },
  { name: 'mismatched batch', spawn: true, args: async (f) => { await writeNpyFile(f.dir, 'q.npy', randomTensor([2, 5, 4, 8], 9)); return runArgs(f); }, message: /^dcagen run: q has batch 2 but k has batch 1$/ },
  { name: 'mismatched k and v', args: async (f) => { await writeNpyFile(f.dir, 'v.npy', randomTensor([1, 8, 2, 8], 9)); return runArgs(f); }, message: /^dcagen run: v shape \[1, 8, 2, 8\] must equal k shape \[1, 9, 2, 8\]$/ },
  { name: 'Hq not a multiple of Hk', spawn: true, args: async (f) => { await writeNpyFile(f.dir, 'q.npy', randomTensor([1, 5, 3, 8], 9)); return runArgs(f); }, message: /^dcagen run: query heads \(3\) must be a multiple of key heads \(2\)$/ },
  { name: 'Sq > Sk', spawn: true, args: async (f) => { await writeNpyFile(f.dir, 'q.npy', randomTensor([1, 10, 4, 8], 9)); return runArgs(f); }, message: /^dcagen run: more queries \(10\) than keys \(9\)/ },
  { name: 'unwritable output path (folder missing)', spawn: true, args: (f) => runArgs({ ...f, out: join(f.dir, 'no-such-folder', 'out.npy') }), message: /^dcagen run: cannot write .*no-such-folder\/out\.npy: its folder does not exist$/ },
  { name: 'unwritable --lse path (out must not be left behind)', spawn: true, args: (f) => runArgs({ ...f, lse: join(f.dir, 'no-such-folder', 'lse.npy') }), message: /^dcagen run: cannot write .*no-such-folder\/lse\.npy: its folder does not exist$/ },
  { name: 'output path is a directory', spawn: true, args: async (f) => { await mkdir(join(f.dir, 'outdir')); return runArgs({ ...f, out: join(f.dir, 'outdir') }); }, message: /^dcagen run: cannot write .*outdir: it is a directory$/ },
  { name: 'rotary dim larger than the head dim', args: (f) => [...runArgs(f), '--rotary-dim', '10'], message: /^dcagen run: --rotary-dim: rotary dim must be an even integer in \[2, 8\], got 10$/ },
  { name: 'head dim differs from --hf-config', args: (f) => runArgs(f, ['--hf-config', QWEN_CONFIG]), message: /^dcagen run: q has head dim 8 but --hf-config says 128$/ },
  { name: 'unknown --dtype', args: (f) => [...runArgs(f), '--dtype', 'f64'], message: /^dcagen run: --dtype must be one of f32, f16, bf16, got "f64"$/ },
  { name: 'flag without a value', args: (f) => [...runArgs(f), '--rope-theta'], message: /^dcagen run: --rope-theta needs a value$/ },
  { name: 'missing --hf-config file', args: (f) => runArgs(f, ['--hf-config', join(f.dir, 'config.json')]), message: /^dcagen run: --hf-config .*config\.json: no such file$/ },
  { name: 'missing --pattern-file', args: (f) => runArgs(f, ['--pattern-file', join(f.dir, 'mine.ts')]), message: /^dcagen run: pattern file .*mine\.ts: cannot read it$/ },
  { name: 'explain: unwritable --svg path', args: (f) => ['explain', '--pattern', 'causal', '--seq-len', '3', '--svg', join(f.dir, 'nope', 'x.svg')], message: /^dcagen explain: cannot write .*nope\/x\.svg: its folder does not exist$/ },
  { name: 'emit: missing -o', args: () => ['emit', '--backend', 'wgsl', '--pattern', 'causal', '--head-dim', '64'], message: /^dcagen emit: missing --out-dir$/ },
  { name: 'explain: --seq-len out of range', args: () => ['explain', '--pattern', 'causal', '--seq-len', '0'], message: /^dcagen explain: --seq-len must be between 1 and 4096, got 0$/ },
];

describe.concurrent('bad input: exit 2, one line naming the problem, nothing left behind', () => {
  for (const c of badCases) {
    it(`${c.name}${c.spawn ? ' (spawned)' : ''}`, async () => {
      const f = await runFiles(SMALL, 7);
      const args = await c.args(f);
      const before = await listDir(f.dir);
      const r = c.spawn ? await dcagen(args, f.dir) : await dcagenInProcess(args);
      expectBadInput(r, c.message);
      expect(await listDir(f.dir)).toEqual(before);
      if (before.includes('outdir')) expect(await listDir(join(f.dir, 'outdir'))).toEqual([]);
    });
  }
});

// Runs after the concurrent blocks above have finished (a plain describe is not grouped with them).
describe('after the pattern-file runs', () => {
  it('no transpiled temporary is left next to the pattern files', () => {
    expect(readdirSync(PATTERNS).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});
