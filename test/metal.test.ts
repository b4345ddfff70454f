// The Metal backend. The emitted .metal is compiled as C++ with the Metal dialect of the CPU
// emulation (runtime/emulation/metal_emulation.hpp) and run on CPU threads against the float64
// reference: the fixed edge cases, random cases from fast-check, head dims 64 and 128 (and a padded
// one), f32 and f16 (and bfloat), the fused kernel and the three-pass baseline, RoPE at Qwen-1M
// positions, and every thread order.
// The emulator must catch a missing threadgroup_barrier and a wrong simdgroup_matrix element index
// planted in a small kernel (test/emulation/metal_tile.metal). Off macOS, `run --backend metal`
// without --emulate must answer exit 2 with one line. The Swift host and the MLX module are emitted
// next to the kernel. Nothing here is skipped; the native Metal path needs a Mac and is not run.
import { execa } from 'execa';
import fc from 'fast-check';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { farPositionsError } from './helpers/far-positions.js';
import { emitMetal, metalKernelConfig } from '../src/backends/metal/emit.js';
import { emulationCompileArgs, METAL_UNAVAILABLE, runMetalAttention } from '../src/backends/metal/runner.js';
import type { KernelVariant } from '../src/backends/kernel-set.js';
import { main } from '../src/cli/main.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { builtinPattern } from '../src/patterns/index.js';
import { preRotateKeys, referenceAttention } from '../src/reference/attention.js';
import { roundArray } from '../src/reference/precision.js';
import { casePattern, caseTensors, randomTensor, tolerance, verifyCases, type VerifyCase } from '../src/verify/cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';
import { writeNpyFile } from './helpers/tensors.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CXX = process.env['CXX'] ?? 'g++';
const SCHEDULES = ['alternate', 'forward', 'reverse', 'shuffle'] as const;
// Thread attributes mx.fast.metal_kernel adds to a kernel's signature when the body names them (those
// dcagen's bodies use, in MLX's order).
const MLX_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = [
  ['simdgroup_index_in_threadgroup', 'uint'], ['thread_index_in_simdgroup', 'uint'], ['thread_index_in_threadgroup', 'uint'],
  ['thread_position_in_grid', 'uint3'], ['threadgroup_position_in_grid', 'uint3'],
];

/** Runs a verification case on the emulated Metal kernel; returns the max errors against the reference. */
async function checkCase(c: VerifyCase, variant: KernelVariant = 'fused', schedule?: string): Promise<{ out: number; lse: number }> {
  const pattern = casePattern(c);
  const { q, k, v } = caseTensors(c);
  const common = {
    pattern,
    rope: c.rope,
    ...(c.scale !== undefined ? { scale: c.scale } : {}),
    ...(c.originalMaxPosition !== undefined ? { originalMaxPosition: c.originalMaxPosition } : {}),
  };
  const expected = referenceAttention(q, k, v, { ...common, dtype: c.dtype });
  const keys = c.preRotatedKeys ? preRotateKeys({ shape: k.shape, data: roundArray(c.dtype, k.data) }, pattern, c.rope) : k;
  const got = await runMetalAttention(
    { q, k: keys, v, ...common, dtype: c.dtype, emulate: true, preRotatedKeys: c.preRotatedKeys },
    { variant, ...(schedule !== undefined ? { schedule } : {}) },
  );
  let lse = 0;
  for (let n = 0; n < expected.lse.data.length; n++) {
    const x = expected.lse.data[n]!;
    lse = Math.max(lse, Math.abs(x - got.lse.data[n]!) / Math.max(1, Math.abs(x)));
  }
  return { out: maxAbsDifference(expected.out.data, got.out.data), lse: Number.isNaN(lse) ? Infinity : lse };
}

function expectWithin(c: VerifyCase, errors: { out: number; lse: number }): void {
  const tol = tolerance(c.dtype);
  expect(errors.out, JSON.stringify(c)).toBeLessThanOrEqual(tol);
  expect(errors.lse, JSON.stringify(c)).toBeLessThanOrEqual(tol);
}

const edge = verifyCases(11, 7, { dtypes: ['f32', 'f16'], headDims: [64] });
const withHeadDim = (c: VerifyCase, headDim: number, dtype: VerifyCase['dtype']): VerifyCase => ({
  ...c,
  label: `${c.label}, D${headDim} ${dtype}`,
  headDim,
  dtype,
  ...(c.rope.rotaryDim !== undefined ? { rope: { ...c.rope, rotaryDim: headDim / 2 } } : {}),
});

describe.concurrent('emulated Metal kernels against the float64 reference', () => {
  it.each(edge.map((c) => [`${c.label} (${c.dtype})`, c] as const))('edge case: %s', async (_label, c) => {
    expectWithin(c, await checkCase(c));
  });

  const wide = [withHeadDim(edge[0]!, 128, 'f16'), withHeadDim(edge[2]!, 128, 'f32'), withHeadDim(edge[3]!, 128, 'f16'), withHeadDim(edge[4]!, 128, 'f32')];
  it.each(wide.map((c) => [c.label, c] as const))('head dim 128: %s', async (_label, c) => {
    expectWithin(c, await checkCase(c));
  });

  const threePass = [edge[0]!, withHeadDim(edge[2]!, 128, 'f16'), edge[7]!];
  it.each(threePass.map((c) => [`${c.label} (D${c.headDim} ${c.dtype})`, c] as const))('three-pass baseline: %s', async (_label, c) => {
    expectWithin(c, await checkCase(c, 'three-pass'));
  });

  it('stores bfloat (Metal 3.1) and pads head dims that are not multiples of 8', async () => {
    expectWithin(withHeadDim(edge[2]!, 64, 'bf16'), await checkCase(withHeadDim(edge[2]!, 64, 'bf16')));
    expectWithin(withHeadDim(edge[3]!, 36, 'f32'), await checkCase(withHeadDim(edge[3]!, 36, 'f32')));
  });

  it('gives the same results under every thread order of the emulation', async () => {
    for (const schedule of SCHEDULES) expectWithin(edge[0]!, await checkCase(edge[0]!, 'fused', schedule));
  });

  it('keeps RoPE exact at Qwen-1M positions (θ = 1e7, positions near 262144, peaked attention)', async () => {
    expect(await farPositionsError(runMetalAttention, true)).toBeLessThanOrEqual(2e-4);
  });
});

describe('emulated Metal kernels on random cases', () => {
  it('match the reference on random patterns and shapes (fast-check)', async () => {
    const caseArb = fc.record({ seed: fc.integer({ min: 1, max: 2 ** 30 }), pick: fc.nat(1000) });
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ seed, pick }) => {
        // Past the fixed edge cases into the random ones.
        const cases = verifyCases(12 + (pick % 4), seed, { dtypes: ['f32', 'f16'], headDims: [64, 128], maxKeys: 120 });
        const c = cases[cases.length - 1]!;
        expectWithin(c, await checkCase(c, pick % 5 === 0 ? 'three-pass' : 'fused'));
      }),
      { numRuns: 8, seed: 2024 },
    );
  });
});

describe('the Metal emulation catches planted bugs', () => {
  let work = '';
  const bins: Record<string, string> = {};
  const variants: Record<string, string[]> = { ok: [], missing_barrier: ['-DPLANT_MISSING_BARRIER=1'], wrong_element: ['-DPLANT_WRONG_ELEMENT=1'] };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'dcagen-metal-emu-'));
    await Promise.all(Object.entries(variants).map(async ([name, defines]) => {
      bins[name] = join(work, name);
      await execa(CXX, [...emulationCompileArgs(ROOT), '-Wall', ...defines, join(ROOT, 'test', 'emulation', 'metal_tile_main.cpp'), '-o', bins[name]!, '-lpthread']);
    }));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const run = (name: string, mode: string, schedule: string) =>
    execa(bins[name]!, [mode], { reject: false, all: true, env: { DCAGEN_EMU_SCHEDULE: schedule } });

  it('runs the correct kernel right under every thread order, with Apple\'s simdgroup_matrix layout', async () => {
    for (const schedule of SCHEDULES) {
      const r = await run('ok', 'tile', schedule);
      expect(r.exitCode, `${schedule}: ${r.all}`).toBe(0);
      expect(r.stdout).toBe('ok');
    }
    const layout = await run('ok', 'layout', 'alternate');
    expect(layout.exitCode, layout.all).toBe(0);
  });

  it('detects a missing threadgroup_barrier (the simdgroup loads see poisoned threadgroup memory)', async () => {
    for (const schedule of SCHEDULES) {
      const r = await run('missing_barrier', 'tile', schedule);
      expect(r.exitCode, schedule).toBe(1);
      expect(r.stdout).toMatch(/mismatch/);
    }
  });

  it('detects a wrong simdgroup_matrix element index (row-major lane order assumed)', async () => {
    const r = await run('wrong_element', 'tile', 'alternate');
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/mismatch/);
  });

  it('stops a simdgroup_load that runs past the threadgroup memory, naming it', async () => {
    const r = await run('ok', 'overrun', 'alternate');
    expect(r.exitCode).toBe(86);
    expect(r.stderr).toMatch(/dcagen-emu: error: simdgroup_load: .* runs past the threadgroup memory \(256 bytes\) \[kernel 'overrun_body'/);
  });
});

describe('metal without --emulate', () => {
  it('runs natively on macOS; elsewhere exits 2 with one line pointing to --emulate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-metal-cli-'));
    try {
      const files = await Promise.all(['q', 'k', 'v'].map((n, seed) => writeNpyFile(dir, `${n}.npy`, randomTensor([1, 4, 1, 64], seed + 1))));
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['run', '--backend', 'metal', '--pattern', 'causal', '--q', files[0]!, '--k', files[1]!, '--v', files[2]!, '--out', join(dir, 'o.npy')],
        { stdout: (l) => out.push(l), stderr: (l) => err.push(l), interactive: false });
      if (process.platform === 'darwin') {
        expect(code, err.join('\n')).toBe(0);
        return;
      }
      expect(code).toBe(2);
      expect(out).toEqual([]);
      expect(err).toHaveLength(1);
      expect(err[0]).toContain(METAL_UNAVAILABLE);
      expect(err[0]).toMatch(/--emulate/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('emitted Metal kernel set', () => {
  const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 29, localWindow: 6 });

  it('has the .metal, a Swift host and an MLX module that name the kernels', () => {
    for (const variant of ['fused', 'three-pass'] as const) {
      const set = emitMetal(pattern, metalKernelConfig({ headDim: 128, dtype: 'f16' }), { variant });
      expect(set.files.map((f) => f.name)).toEqual([`${set.name}.metal`, `${set.name}.swift`, `${set.name.replace(/-/g, '_')}.py`]);
      const [metal, swift, mlx] = set.files.map((f) => f.contents) as [string, string, string];
      for (const pass of set.passes) {
        expect(metal).toContain(`kernel void ${pass.kernel}(`);
        expect(swift).toContain(JSON.stringify(pass.kernel));
      }
      expect(swift).toContain('import Metal');
      expect(swift).toContain('makeComputePipelineState');
      expect(mlx).toContain('mx.fast.metal_kernel');
      expect(mlx).toContain('def dca_attention(q, k, v, *, chunk_size, local_window,');
      expect(mlx).toContain(`NAMESPACE = "${set.namespace}"`);
      expect(mlx).toContain(set.fileName);
      expect(metal).toContain('simdgroup_multiply_accumulate');
      expect(metal).toContain('static constant constexpr const int CHUNK_LENGTH = 23;');
      expect(metal).toContain('// Region successive: chunk distance = 1.');
    }
  });

  it('writes a Python module that compiles', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-metal-py-'));
    try {
      const set = emitMetal(pattern, metalKernelConfig({ headDim: 64, dtype: 'f32' }), { variant: 'three-pass' });
      const file = join(dir, set.mlxFile);
      await writeFile(file, set.files.find((f) => f.name === set.mlxFile)!.contents);
      const r = await execa('python3', ['-m', 'py_compile', file], { reject: false, all: true });
      expect(r.exitCode, r.all).toBe(0);
      expect(await readFile(file, 'utf8')).toContain('def rope_table(theta, max_position):');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives MLX kernel bodies that compile against the .metal with the signatures MLX generates', async () => {
    // The module's kernel_sources() (read through stub mlx and numpy modules), each body placed in
    // the function MLX's metal_kernel would generate, compiled with the emulation's Metal dialect.
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-metal-mlx-'));
    try {
      await mkdir(join(dir, 'stubs', 'mlx'), { recursive: true });
      await mkdir(join(dir, 'stubs', 'numpy'), { recursive: true });
      await writeFile(join(dir, 'stubs', 'mlx', '__init__.py'), '');
      await writeFile(join(dir, 'stubs', 'mlx', 'core.py'), 'float16 = "float16_t"\nbfloat16 = "bfloat16_t"\nfloat32 = "float"\nint32 = "int32_t"\nfast = None\n');
      await writeFile(join(dir, 'stubs', 'numpy', '__init__.py'), '');
      for (const [variant, dtype] of [['fused', 'f16'], ['three-pass', 'f32']] as const) {
        const set = emitMetal(pattern, metalKernelConfig({ headDim: 64, dtype }), { variant });
        for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
        const module = set.mlxFile.replace(/\.py$/, '');
        const py = await execa('python3', ['-c', `import json, sys\nsys.path[:0] = [${JSON.stringify(join(dir, 'stubs'))}, ${JSON.stringify(dir)}]\nimport ${module} as m\nprint(json.dumps([m.DTYPE, m.kernel_sources()]))`], { reject: false, all: true });
        expect(py.exitCode, py.all).toBe(0);
        const [typeName, sources] = JSON.parse(py.stdout) as [string, Array<[string, string[], string[], string]>];
        expect(sources.map((k) => k[0])).toEqual(variant === 'fused' ? ['fused'] : [...set.plan.regions.map((r) => `Region_${r.ident}`), 'merge']);
        const element = (name: string): string => (['q', 'k', 'v', 'out'].includes(name) ? typeName : name === 'params' ? 'int32_t' : 'float');
        const kernels = sources.map(([label, inputs, outputs, body]) => {
          const params = [
            ...inputs.map((n, i) => `  const ${n === 'params' ? 'constant' : 'device'} ${element(n)}* ${n} [[buffer(${i})]]`),
            ...outputs.map((n, i) => `  device ${element(n)}* ${n} [[buffer(${inputs.length + i})]]`),
            ...MLX_ATTRIBUTES.filter(([a]) => body.includes(a)).map(([a, t]) => `  ${t} ${a} [[${a}]]`),
          ];
          return `[[kernel]] void custom_kernel_${label}(\n${params.join(',\n')}) {\n${body}}\n`;
        });
        const file = join(dir, `${set.name}-mlx.cpp`);
        await writeFile(file, `#include <metal_stdlib>\nusing namespace metal;\ntypedef half float16_t;\ntypedef bfloat bfloat16_t;\n#include "${set.fileName}"\n${kernels.join('\n')}`);
        const cc = await execa(CXX, [...emulationCompileArgs(ROOT), '-fsyntax-only', '-I', dir, file], { reject: false, all: true });
        expect(cc.exitCode, cc.all).toBe(0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('is C++14, the language Metal is based on, against declarations of the Metal API it calls', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-metal-c14-'));
    try {
      const sets = [
        emitMetal(pattern, metalKernelConfig({ headDim: 128, dtype: 'f16' })),
        emitMetal(compilePattern(builtinPattern('rerope'), { window: 13 }), metalKernelConfig({ headDim: 36, dtype: 'f32', ropeStyle: 'interleaved' }), { variant: 'three-pass' }),
      ];
      for (const set of sets) {
        const file = join(dir, set.fileName);
        await writeFile(file, set.source);
        const cc = await execa(CXX, ['-std=c++14', '-pedantic', '-Wall', '-Wno-attributes', '-fsyntax-only', '-I', join(ROOT, 'test', 'emulation', 'msl_cxx14'), '-x', 'c++', file], { reject: false, all: true });
        expect(cc.exitCode, cc.all).toBe(0);
        expect(cc.all).toBe('');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses configurations that do not fit an Apple GPU', () => {
    expect(() => emitMetal(pattern, metalKernelConfig({ headDim: 62, dtype: 'f32' }))).toThrow(/multiples of 4/);
    expect(() => emitMetal(pattern, metalKernelConfig({ headDim: 128, dtype: 'f32', blockK: 64 }))).toThrow(/threadgroup memory/);
  });
});
