// The emitted WGSL in a real browser: headless Chromium, whose WebGPU is Dawn and whose WGSL
// compiler is Tint (stricter than the naga that the Deno tier uses), on its SwiftShader adapter.
// Every committed kernel under generated/wgsl must compile in Tint; the default DCA kernel must
// build its pipeline in reasonable time; and the page imports emitted launchers exactly as a web
// app would, with results checked against the float64 reference. One Chromium session serves the
// file (a new one only after a job timed out, which ends a session).
//
// No skip path: without a chromium binary every test here fails, naming the apt package to install.

import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_APT_PACKAGE, ChromiumSession, findChromium, type BrowserAdapterInfo, type CompileJobResult } from '../runtime/browser/chromium.js';
import { emitWgsl, wgslKernelConfig, type KernelVariant } from '../src/backends/wgsl/emit.js';
import { emitCommand } from '../src/cli/commands/emit.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { UnavailableError } from '../src/errors.js';
import { decodeStorage, encodeStorage } from '../src/io/storage.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomTensor } from '../src/verify/cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';

const GENERATED_WGSL = fileURLToPath(new URL('../generated/wgsl/', import.meta.url));
/** DESIGN.md §3: f32 kernels within 2e-4 (max abs) of the float64 reference. */
const F32_TOLERANCE = 2e-4;
/** A small-shape run on SwiftShader takes seconds; the limit only bounds a page stuck compiling. */
const RUN_TIMEOUT_MS = 60_000;
/**
 * How long the harness waits for the default kernel's pipeline. The time itself is printed, not
 * asserted (speed belongs to benchmarks); the kernel that took minutes in SwiftShader's JIT (a key
 * loop unrolled per region) fails here by running out of this bound.
 */
const PIPELINE_TIMEOUT_MS = 60_000;
const COMPILE_TIMEOUT_MS = 30_000;
/** Chromium start-up, counted into the timeout of whichever test starts it. */
const STARTUP_TIMEOUT_MS = 90_000;
/** Tint's diagnostic for `enable f16;` on a device without shader-f16. */
const F16_NOT_ALLOWED = /extension 'f16' is not allowed/;

let served = '';
/** The session, started by the first test that needs it; a start-up failure fails every test. */
let started: Promise<ChromiumSession> | undefined;

function describeAdapter(a: BrowserAdapterInfo): string {
  const name = [a.vendor, a.architecture, a.device, a.description].filter((s) => s !== '').join(' ');
  return `${name}${a.isFallbackAdapter ? ' (fallback adapter)' : ''}, shader-f16 ${a.features.includes('shader-f16') ? 'yes' : 'no'}`;
}

async function startSession(): Promise<ChromiumSession> {
  const session = await ChromiumSession.start({ root: served });
  console.log(`chromium: ${session.userAgent}\n  adapter: ${describeAdapter(session.adapter)}; start-up ${session.startupMs} ms`);
  return session;
}

/**
 * The running session. Started lazily rather than in beforeAll, where a failure (no chromium)
 * would leave the tests reported as skipped; here every test fails with the start-up error. A
 * job that timed out ends a session (its page is stuck), so the next test gets a fresh one.
 */
async function browser(): Promise<ChromiumSession> {
  started ??= startSession();
  const session = await started;
  if (session.endedReason === undefined) return session;
  console.log(`chromium: restarting after "${session.endedReason}"`);
  await session.close();
  started = startSession();
  return started;
}

function compileErrors(result: CompileJobResult): string[] {
  return [...result.messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}:${m.linePos} ${m.message}`), ...result.errors];
}

/** 1-based line of the `enable f16;` directive. */
function enableF16Line(source: string): number {
  return source.split('\n').findIndex((l) => /^\s*enable\s+f16\s*;/.test(l)) + 1;
}

/** Serves `source` as `name` and returns Tint's verdict on it. */
async function compile(name: string, source: string, requiredFeatures: string[] = []): Promise<CompileJobResult> {
  await writeFile(join(served, name), source);
  return (await browser()).run({ kind: 'compile', wgsl: name, requiredFeatures }, COMPILE_TIMEOUT_MS);
}

interface RunCase {
  readonly label: string;
  readonly pattern: 'dca' | 'causal';
  readonly params: Readonly<Record<string, number>>;
  readonly variant: KernelVariant;
  readonly batch: number;
  readonly queries: number;
  readonly keys: number;
  readonly queryHeads: number;
  readonly keyHeads: number;
  readonly headDim: number;
  readonly seed: number;
  /** Force the number of key splits (the split + merge path). */
  readonly splits?: number;
  /** The decode kernel: which path the launcher must take, with or without subgroup operations. */
  readonly decode?: { readonly subgroups: boolean };
  readonly interleaved?: boolean;
}

const RUN_CASES: readonly RunCase[] = [
  // The paper's Figure 2 (C = 9, W = 3, L = 6): 12 tokens, all three regions.
  { label: 'fused DCA, Figure 2 (C 9, W 3), GQA 2:1', pattern: 'dca', params: { chunkSize: 9, localWindow: 3 }, variant: 'fused', batch: 1, queries: 12, keys: 12, queryHeads: 2, keyHeads: 1, headDim: 32, seed: 101 },
  // L = 15 over 100 keys: seven chunks, inter-chunk regions, two query tiles, Sq < Sk, batch 2.
  { label: 'fused DCA across seven chunks (C 20, W 5), GQA 4:2, Sq 70 < Sk 100, batch 2', pattern: 'dca', params: { chunkSize: 20, localWindow: 5 }, variant: 'fused', batch: 2, queries: 70, keys: 100, queryHeads: 4, keyHeads: 2, headDim: 64, seed: 202 },
  { label: 'fused DCA in 3 key splits + merge (C 20, W 5), Sq 40 < Sk 100', pattern: 'dca', params: { chunkSize: 20, localWindow: 5 }, variant: 'fused', batch: 1, queries: 40, keys: 100, queryHeads: 2, keyHeads: 1, headDim: 32, seed: 505, splits: 3 },
  // Few query rows: the split-K decode kernel, lanes combined with subgroup operations (SwiftShader has them) or without.
  { label: 'DCA decode with subgroups, Sq 3, GQA 8:2, interleaved RoPE', pattern: 'dca', params: { chunkSize: 40, localWindow: 9 }, variant: 'fused', batch: 1, queries: 3, keys: 125, queryHeads: 8, keyHeads: 2, headDim: 32, seed: 606, decode: { subgroups: true }, interleaved: true },
  { label: 'DCA decode with subgroups over 3000 keys, d 128 (splits + merge)', pattern: 'dca', params: { chunkSize: 1100, localWindow: 100 }, variant: 'fused', batch: 1, queries: 1, keys: 3000, queryHeads: 4, keyHeads: 1, headDim: 128, seed: 707, decode: { subgroups: true } },
  { label: 'DCA decode without subgroups, Sq 16, batch 2', pattern: 'dca', params: { chunkSize: 40, localWindow: 9 }, variant: 'fused', batch: 2, queries: 16, keys: 130, queryHeads: 8, keyHeads: 2, headDim: 32, seed: 808, decode: { subgroups: false } },
  { label: 'causal baseline, Sq 50 < Sk 60', pattern: 'causal', params: {}, variant: 'fused', batch: 1, queries: 50, keys: 60, queryHeads: 2, keyHeads: 2, headDim: 64, seed: 303 },
  { label: 'three-pass DCA (region kernels + LSE merge), GQA 4:2, Sq 70 < Sk 100', pattern: 'dca', params: { chunkSize: 20, localWindow: 5 }, variant: 'three-pass', batch: 1, queries: 70, keys: 100, queryHeads: 4, keyHeads: 2, headDim: 64, seed: 404 },
];

describe('chromium binary lookup', () => {
  it('fails with the apt package to install when no chromium is on PATH', () => {
    const saved = { path: process.env['PATH'], override: process.env['DCAGEN_CHROMIUM'] };
    try {
      process.env['PATH'] = '/nonexistent';
      delete process.env['DCAGEN_CHROMIUM'];
      expect(() => findChromium()).toThrow(UnavailableError);
      expect(() => findChromium()).toThrow(`apt-get install ${CHROMIUM_APT_PACKAGE}`);
    } finally {
      process.env['PATH'] = saved.path;
      if (saved.override !== undefined) process.env['DCAGEN_CHROMIUM'] = saved.override;
    }
  });
});

/** Live (not zombie) processes of process group `pgid`, from Linux's /proc. */
async function liveGroupMembers(pgid: number): Promise<number[]> {
  const live: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') live.push(Number(entry));
  }
  return live;
}

/** Waits up to 5 s for SIGKILLed processes to disappear; returns those still alive. */
async function survivors(pgid: number): Promise<number[]> {
  let live = await liveGroupMembers(pgid);
  for (let attempt = 0; attempt < 50 && live.length > 0; attempt++) {
    await new Promise((r) => setTimeout(r, 100));
    live = await liveGroupMembers(pgid);
  }
  return live;
}

describe('Chromium harness failures', () => {
  let folder = '';
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'dcagen-chromium-harness-'));
  });
  afterAll(async () => {
    if (folder !== '') await rm(folder, { recursive: true, force: true });
  });

  it('fails with a one-line UnavailableError when the page gets no WebGPU adapter', { timeout: STARTUP_TIMEOUT_MS }, async () => {
    // Without the software rasterizer SwiftShader is off and requestAdapter() returns null.
    const error = await ChromiumSession.start({ root: folder, extraFlags: ['--disable-software-rasterizer'] }).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error!.message).toMatch(/^Chromium has no WebGPU adapter \(.*requestAdapter\(\) returned null\)/);
    expect(error!.message).not.toContain('\n');
  });

  it('ends the session and its processes when a job times out', { timeout: STARTUP_TIMEOUT_MS }, async () => {
    await writeFile(join(folder, 'tiny.wgsl'), '@compute @workgroup_size(1) fn main() {}\n');
    const s = await ChromiumSession.start({ root: folder });
    try {
      const pid = s.pid!;
      // Browser, zygotes, GPU process, renderer: all in the group close() ends.
      expect((await liveGroupMembers(pid)).length).toBeGreaterThan(1);
      await expect(s.run({ kind: 'compile', wgsl: 'tiny.wgsl' }, 1)).rejects.toThrow(/timed out after 0.001 s/);
      expect(s.endedReason).toMatch(/timed out/);
      await expect(s.run({ kind: 'compile', wgsl: 'tiny.wgsl' })).rejects.toThrow(/session already ended/);
      await s.close();
      // Every process of Chromium's group is gone or a zombie waiting for init to reap it.
      expect(await survivors(pid)).toEqual([]);
    } finally {
      await s.close();
    }
  });
});

describe('emitted WGSL in headless Chromium (Dawn/Tint)', () => {
  beforeAll(async () => {
    served = await mkdtemp(join(tmpdir(), 'dcagen-chromium-test-'));
  });

  afterAll(async () => {
    await (await started?.catch(() => undefined))?.close();
    if (served !== '') await rm(served, { recursive: true, force: true });
  });

  it('starts Chromium with a WebGPU adapter', { timeout: STARTUP_TIMEOUT_MS }, async () => {
    const session = await browser();
    expect(session.adapter.features.length).toBeGreaterThan(0);
  });

  it('reports Tint diagnostics: a const-expression evaluating to -inf (naga accepts it) and f16 syntax errors', { timeout: STARTUP_TIMEOUT_MS }, async () => {
    // The "no errors" checks below mean something only if the page really returns Tint's errors.
    const inf = await compile(
      'sanity-inf.wgsl',
      '@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = bitcast<f32>(0xff800000u); }\n',
    );
    expect(compileErrors(inf).join('\n')).toMatch(/-inf cannot be represented as 'f32'/);
    // Without shader-f16 Tint still parses a whole f16 module (a syntax error wins over the
    // extension error); this is what makes the f16 parse check below a real check.
    const hasF16 = (await browser()).adapter.features.includes('shader-f16');
    const syntax = await compile(
      'sanity-f16-syntax.wgsl',
      'enable f16;\n@group(0) @binding(0) var<storage, read_write> o: array<f16>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0h +; }\n',
      hasF16 ? ['shader-f16'] : [],
    );
    expect(syntax.messages.filter((m) => m.type === 'error').map((m) => m.message)).toEqual(['unable to parse right side of + expression']);
  });

  it('compiles every kernel under generated/wgsl, subgroup modules with the subgroups feature (f32 fully; f16 fully with shader-f16, else parse only)', { timeout: STARTUP_TIMEOUT_MS + 60_000 }, async () => {
    const names = (await readdir(GENERATED_WGSL)).sort();
    const wgsl = names.filter((n) => n.endsWith('.wgsl'));
    const launchers = names.filter((n) => n.endsWith('.js'));
    expect(wgsl.length).toBeGreaterThan(0);
    const sources = new Map<string, string>();
    for (const name of wgsl) sources.set(name, await readFile(join(GENERATED_WGSL, name), 'utf8'));
    // The launchers compile the same text as the .wgsl files beside them.
    for (const launcher of launchers) {
      const text = await readFile(join(GENERATED_WGSL, launcher), 'utf8');
      const base = launcher.slice(0, -'.js'.length);
      const own = wgsl.filter((n) => n === `${base}.wgsl` || n.startsWith(`${base}-`));
      expect(own.length, `${launcher} has no .wgsl beside it`).toBeGreaterThan(0);
      for (const n of own) expect(text.includes(JSON.stringify(sources.get(n))), `${launcher} embeds ${n}`).toBe(true);
    }

    const hasF16 = (await browser()).adapter.features.includes('shader-f16');
    const failures: string[] = [];
    for (const name of wgsl) {
      const source = sources.get(name)!;
      const f16 = enableF16Line(source) > 0;
      // The decode kernel's subgroup module needs the feature (Chromium's SwiftShader adapter has it).
      const subgroups = /^enable subgroups;/m.test(source) ? ['subgroups'] : [];
      const result = await compile(`generated-${name}`, source, [...(f16 && hasF16 ? ['shader-f16'] : []), ...subgroups]);
      const errors = compileErrors(result);
      if (f16 && !hasF16) {
        // Tint parsed the module and stopped at `enable f16`: the only message must be that one.
        const onlyF16 = result.messages.length === 1 && F16_NOT_ALLOWED.test(result.messages[0]!.message) && result.messages[0]!.lineNum === enableF16Line(source);
        console.log(`${name}: Tint parse ${onlyF16 ? 'ok' : 'FAILED'} in ${result.compileMs.toFixed(0)} ms (no shader-f16 adapter: types and semantics not validated)`);
        if (!onlyF16) failures.push(`${name}: ${result.messages.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
      } else {
        console.log(`${name}: Tint ${errors.length === 0 ? 'ok' : 'FAILED'} in ${result.compileMs.toFixed(0)} ms`);
        if (errors.length > 0) failures.push(`${name}: ${errors[0]!.split('\n')[0]}`);
      }
    }
    expect(failures.join('\n')).toBe('');
  });

  it(`builds the default DCA kernel's pipeline (dcagen emit --pattern dca --pretraining-length 4096 --head-dim 128 --dtype f32) and prints the time`, { timeout: STARTUP_TIMEOUT_MS + PIPELINE_TIMEOUT_MS }, async () => {
    const out = join(served, 'default');
    const written: string[] = [];
    const io = { stdout: (line: string) => written.push(line), stderr: () => {}, interactive: false };
    expect(await emitCommand(['--backend', 'wgsl', '--pattern', 'dca', '--pretraining-length', '4096', '--head-dim', '128', '--dtype', 'f32', '-o', out], io)).toBe(0);
    const kernel = written.find((p) => p.endsWith('.wgsl'));
    expect(kernel).toBeDefined();
    const name = kernel!.slice(out.length + 1);
    let result: CompileJobResult;
    try {
      result = await (await browser()).run({ kind: 'compile', wgsl: `default/${name}`, pipeline: true }, PIPELINE_TIMEOUT_MS);
    } catch (error) {
      console.log(`${name}: createComputePipelineAsync not measured: ${(error as Error).message}`);
      throw error;
    }
    const why = compileErrors(result)[0] ?? result.pipelineError ?? 'no time reported';
    const measured = result.pipelineMs !== undefined ? `${result.pipelineMs.toFixed(0)} ms` : `not measured (${why.replace(/\s*\n\s*/g, ' ').trim()})`;
    console.log(`${name}: createComputePipelineAsync ${measured}; Tint ${result.compileMs.toFixed(0)} ms`);
    expect(compileErrors(result).join('\n')).toBe('');
    expect(result.pipelineError).toBeUndefined();
    expect(result.pipelineMs).toBeDefined();
  });

  it.each(RUN_CASES.map((c) => [c.label, c] as const))('%s matches the float64 reference (f32)', { timeout: STARTUP_TIMEOUT_MS + RUN_TIMEOUT_MS }, async (_label, c) => {
    const pattern = compilePattern(builtinPattern(c.pattern), c.params);
    const set = emitWgsl(pattern, wgslKernelConfig({ headDim: c.headDim, dtype: 'f32', ropeStyle: c.interleaved ? 'interleaved' : 'half' }), { variant: c.variant });
    for (const f of set.files) await writeFile(join(served, f.name), f.contents);
    const q = randomTensor([c.batch, c.queries, c.queryHeads, c.headDim], c.seed);
    const k = randomTensor([c.batch, c.keys, c.keyHeads, c.headDim], c.seed + 1);
    const v = randomTensor([c.batch, c.keys, c.keyHeads, c.headDim], c.seed + 2);
    const inputs = { q: `${set.name}-${c.seed}-q.bin`, k: `${set.name}-${c.seed}-k.bin`, v: `${set.name}-${c.seed}-v.bin` };
    await writeFile(join(served, inputs.q), encodeStorage(q.data, 'f32'));
    await writeFile(join(served, inputs.k), encodeStorage(k.data, 'f32'));
    await writeFile(join(served, inputs.v), encodeStorage(v.data, 'f32'));

    const rope = { theta: 10000, style: c.interleaved ? 'interleaved' as const : 'half' as const };
    const result = await (await browser()).run(
      {
        kind: 'attention',
        launcher: set.launcher,
        options: { ropeTheta: rope.theta, ...(c.splits !== undefined ? { splits: c.splits } : {}), ...(c.decode !== undefined ? { subgroups: c.decode.subgroups } : {}) },
        ...(c.decode?.subgroups ? { requiredFeatures: ['subgroups'] } : {}),
        shape: { batch: c.batch, queries: c.queries, keys: c.keys, queryHeads: c.queryHeads, keyHeads: c.keyHeads, headDim: c.headDim },
        inputs,
      },
      RUN_TIMEOUT_MS,
    );
    const expected = referenceAttention(q, k, v, { pattern, rope });
    const outError = maxAbsDifference(expected.out.data, decodeStorage(result.out, 'f32'));
    const lseError = maxAbsDifference(expected.lse.data, decodeStorage(result.lse, 'f32'));
    console.log(`${set.name}: createAttention ${result.createMs.toFixed(0)} ms, run ${result.runMs.toFixed(0)} ms, max |Δout| ${outError.toExponential(2)}, max |Δlse| ${lseError.toExponential(2)}`);
    expect(result.errors).toEqual([]);
    if (c.decode !== undefined) {
      expect(result.split?.kind).toBe('decode');
      expect(result.subgroups).toBe(c.decode.subgroups);
    }
    expect(outError).toBeLessThanOrEqual(F32_TOLERANCE);
    expect(lseError).toBeLessThanOrEqual(F32_TOLERANCE);
  });
});
