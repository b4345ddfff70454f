// The CUDA backend through the tiers this machine has: nvcc compiles every emitted kernel for sm_80
// and sm_90 with zero register spills; the same .cu runs on the CPU emulation against the float64
// reference (edge cases, random configurations, the three-pass baseline); without a GPU, native
// runs fail with one line that points to --emulate; the PyTorch module is valid Python.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { farPositionsError } from './helpers/far-positions.js';
import { cudaKernelConfig, emitCuda } from '../src/backends/cuda/emit.js';
import { ptxasReport } from '../src/backends/cuda/report.js';
import { nativeCudaAvailable, runCudaAttention } from '../src/backends/cuda/runner.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { canonicalConfigs } from '../src/generated.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomTensor, tolerance, verifyCases, type VerifyCase } from '../src/verify/cases.js';
import { maxAbsDifference, verifyCase } from '../src/verify/verify.js';
import type { KernelDType } from '../src/plan/kernel-plan.js';

async function emitTo(dir: string, pattern: ReturnType<typeof compilePattern>, dtype: KernelDType, variant: 'fused' | 'three-pass', extra: Partial<Parameters<typeof cudaKernelConfig>[0]> = {}): Promise<string> {
  const set = emitCuda(pattern, cudaKernelConfig({ headDim: 128, dtype, ...extra }), { variant });
  for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
  return join(dir, `${set.name}.cu`);
}

describe('CUDA compile tier (nvcc, ptxas)', () => {
  it('compiles the shipped kernels for sm_80 and sm_90 with zero spills', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-nvcc-'));
    const sources: string[] = [];
    for (const config of canonicalConfigs) {
      for (const dtype of ['bf16', 'f16', 'f32'] as const) sources.push(await emitTo(dir, config.build(), dtype, 'fused'));
    }
    const dcaPattern = canonicalConfigs[0]!.build();
    sources.push(await emitTo(dir, dcaPattern, 'bf16', 'three-pass'));
    sources.push(await emitTo(dir, dcaPattern, 'bf16', 'fused', { headDim: 64 }));
    sources.push(await emitTo(dir, dcaPattern, 'bf16', 'fused', { headDim: 256 }));
    sources.push(await emitTo(dir, dcaPattern, 'f16', 'fused', { preRotatedKeys: true, ropeStyle: 'interleaved' }));
    sources.push(await emitTo(dir, compilePattern(builtinPattern('rerope'), { window: 512 }), 'bf16', 'fused'));
    const reports = await Promise.all(sources.map((s) => ptxasReport(s, dir)));
    for (const [k, rows] of reports.entries()) {
      expect(rows.length, sources[k]).toBeGreaterThan(0);
      expect(new Set(rows.map((r) => r.arch))).toEqual(new Set(['sm_80', 'sm_90']));
      for (const r of rows) expect({ source: sources[k], kernel: r.kernel, arch: r.arch, spills: r.spillStores + r.spillLoads }).toMatchObject({ spills: 0 });
    }
  });
});

describe('CUDA source', () => {
  it('the emitted .cu compiles alone (nvcc -c, no header beside it)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-alone-'));
    const set = emitCuda(canonicalConfigs[1]!.build(), cudaKernelConfig({ headDim: 128, dtype: 'bf16' }), { command: 'test' });
    await writeFile(join(dir, 'kernel.cu'), set.source);
    const result = await execa('nvcc', ['-c', '-arch=sm_80', '-std=c++17', 'kernel.cu', '-o', 'kernel.o'], { cwd: dir, reject: false, all: true });
    expect(result.all).not.toMatch(/error/);
    expect(result.exitCode).toBe(0);
  });
});

describe('CUDA native harness', () => {
  it('builds with nvcc (kernel + runtime/cuda/harness.cu) and reports a missing GPU with exit 3', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-native-'));
    const set = emitCuda(compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 }), cudaKernelConfig({ headDim: 64, dtype: 'bf16' }), { command: 'test' });
    for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
    const harness = join(import.meta.dirname, '..', 'runtime', 'cuda', 'harness.cu');
    const build = await execa('nvcc', ['-O2', '-std=c++17', '-arch=sm_80', `-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, `-I${dir}`, join(dir, `${set.name}.cu`), harness, '-o', join(dir, 'harness')], { reject: false, all: true });
    expect(build.all).not.toMatch(/error/);
    expect(build.exitCode).toBe(0);
    const run = await execa(join(dir, 'harness'), ['q', 'k', 'v', 'o', 'l', '1', '1', '1', '1', '1', '64', '2', '10000', '0', '0', '1'], { reject: false, all: true });
    // Without a GPU the harness must say so (exit 3, which `dcagen run` turns into exit 2); with one
    // it gets as far as reading its (missing) input files (exit 2).
    expect(run.exitCode).toBe((await nativeCudaAvailable()) ? 2 : 3);
  });
});

describe('CUDA emulated on the CPU (the same .cu, g++ and runtime/emulation)', () => {
  const edge = verifyCases(11, 3, { dtypes: ['bf16', 'f16', 'f32'], headDims: [64] });
  it.each(edge.map((c) => [c.label, c] as const))('edge case: %s', async (_label, c) => {
    const result = await verifyCase('cuda', c, true);
    expect(result.failure).toBeUndefined();
    expect(result.outError).toBeLessThanOrEqual(tolerance(c.dtype));
    expect(result.lseError).toBeLessThanOrEqual(tolerance(c.dtype));
  });

  it('matches the reference on random configurations (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 2 ** 30 }), fc.nat(3), async (seed, extra) => {
        const cases = verifyCases(12 + extra, seed, { dtypes: ['bf16', 'f16', 'f32'], headDims: [64, 128], maxKeys: 140 });
        const c: VerifyCase = cases[cases.length - 1]!;
        const result = await verifyCase('cuda', c, true);
        expect(result.failure, JSON.stringify(c)).toBeUndefined();
        expect(result.outError, JSON.stringify(c)).toBeLessThanOrEqual(tolerance(c.dtype));
      }),
      { numRuns: 5, seed: 77 },
    );
  });

  it('runs head dims the tensor-core tiles do not cover on the SIMT kernel (bf16 d 72, f16 d 96), and d 256 on tensor cores (16 rows per warp)', async () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 30, localWindow: 7 });
    for (const [headDim, dtype] of [[72, 'bf16'], [96, 'f16'], [256, 'f16'], [256, 'bf16']] as const) {
      const q = randomTensor([1, 40, 2, headDim], 41);
      const k = randomTensor([1, 70, 1, headDim], 42);
      const v = randomTensor([1, 70, 1, headDim], 43);
      const rope = { theta: 10000, style: 'half' as const };
      const expected = referenceAttention(q, k, v, { pattern, rope, dtype });
      const got = await runCudaAttention({ q, k, v, pattern, rope, dtype, emulate: true });
      expect(maxAbsDifference(expected.out.data, got.out.data), `${dtype} d ${headDim}`).toBeLessThanOrEqual(tolerance(dtype));
    }
  });

  it('keeps RoPE exact at Qwen-1M positions (θ = 1e7, positions near 262144, peaked attention), f32 path', async () => {
    expect(await farPositionsError(runCudaAttention, true)).toBeLessThanOrEqual(2e-4);
  });

  it('runs the three-pass baseline (three region kernels and the merge) to the same result', async () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
    const q = randomTensor([1, 100, 2, 64], 31);
    const k = randomTensor([1, 100, 1, 64], 32);
    const v = randomTensor([1, 100, 1, 64], 33);
    const rope = { theta: 10000, style: 'half' as const };
    const expected = referenceAttention(q, k, v, { pattern, rope, dtype: 'bf16' });
    const got = await runCudaAttention({ q, k, v, pattern, rope, dtype: 'bf16', emulate: true }, { variant: 'three-pass' });
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(6e-2);
    expect(maxAbsDifference(expected.lse.data, got.lse.data)).toBeLessThanOrEqual(6e-2);
  });
});

describe('the emulator catches bugs planted in the emitted attention kernel', () => {
  const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
  const q = randomTensor([1, 100, 2, 64], 51);
  const k = randomTensor([1, 100, 1, 64], 52);
  const v = randomTensor([1, 100, 1, 64], 53);
  const rope = { theta: 10000, style: 'half' as const };
  const expected = referenceAttention(q, k, v, { pattern, rope, dtype: 'bf16' });
  const plant = async (from: string, to: string): Promise<number> => {
    try {
      const got = await runCudaAttention({ q, k, v, pattern, rope, dtype: 'bf16', emulate: true }, {
        transformSource: (source) => {
          expect(source).toContain(from);
          return source.replace(from, to);
        },
      });
      return maxAbsDifference(expected.out.data, got.out.data);
    } catch (err) {
      // The emulator aborting (deadlock, bad access) is a catch too; a compile error is not.
      expect((err as Error).message).not.toMatch(/compiling/);
      return Infinity;
    }
  };

  // The unplanted kernel is within ~1e-3 of the reference here; a planted bug moves it far more.
  it('the unplanted kernel is accurate on this case', async () => {
    expect(await plant('__syncthreads();  // V of this tile has landed', '__syncthreads();  // V of this tile has landed')).toBeLessThan(5e-3);
  });

  it('a missing barrier after the V tile lands', async () => {
    expect(await plant('__syncthreads();  // V of this tile has landed', '/* planted: no barrier */ //')).toBeGreaterThan(2e-2);
  });

  it('a wrong mma fragment index (B registers swapped)', async () => {
    expect(await plant('const uint32_t b0[2] = {b[0], b[1]};\n      const uint32_t b1[2] = {b[2], b[3]};\n      #pragma unroll\n      for (int mt = 0; mt < M_TILES; ++mt) {\n        mma_16816(s[mt][nt]',
      'const uint32_t b0[2] = {b[1], b[0]};\n      const uint32_t b1[2] = {b[2], b[3]};\n      #pragma unroll\n      for (int mt = 0; mt < M_TILES; ++mt) {\n        mma_16816(s[mt][nt]')).toBeGreaterThan(2e-2);
  });

  it('an edge tile skipping its element mask (as if the plan proved it unmasked)', async () => {
    expect(await plant('masked = !decltype(tag)::type::unmasked(row_first, row_last, key_tile);', 'masked = false;')).toBeGreaterThan(2e-2);
  });

  it('keys rotated once at the wrong position', async () => {
    expect(await plant('rope_cos_sin((const float2*)p.rope, Region::key_position(j), rope_pair(d))', 'rope_cos_sin((const float2*)p.rope, Region::key_position(j) + 1, rope_pair(d))')).toBeGreaterThan(2e-2);
  });

  it('ReRoPE (keys at their own region position): a missing barrier after the in-loop key rotation', async () => {
    const rerope = compilePattern(builtinPattern('rerope'), { window: 24 });
    const want = referenceAttention(q, k, v, { pattern: rerope, rope, dtype: 'bf16' });
    const run = async (to: string): Promise<number> => {
      const got = await runCudaAttention({ q, k, v, pattern: rerope, rope, dtype: 'bf16', emulate: true }, {
        transformSource: (source) => {
          expect(source).toContain('__syncthreads();  // rotated keys visible to every warp');
          return source.replace('__syncthreads();  // rotated keys visible to every warp', to);
        },
      }).catch(() => undefined);
      return got === undefined ? Infinity : maxAbsDifference(want.out.data, got.out.data);
    };
    expect(await run('__syncthreads();  // rotated keys visible to every warp')).toBeLessThan(5e-3);
    expect(await run('/* planted: no barrier */')).toBeGreaterThan(2e-2);
  });
});

describe('CUDA entry points', () => {
  it('run --backend cuda: without a GPU, exit 2 with one line pointing to --emulate (with one, it runs)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-nogpu-'));
    const { encodeNpy } = await import('../src/io/npy.js');
    for (const [name, shape] of [['q', [1, 4, 1, 64]], ['k', [1, 4, 1, 64]], ['v', [1, 4, 1, 64]]] as const) {
      await writeFile(join(dir, `${name}.npy`), encodeNpy(randomTensor(shape, 1)));
    }
    const result = await execa('node', ['bin/dcagen.js', 'run', '--backend', 'cuda', '--pattern', 'causal', '--q', join(dir, 'q.npy'), '--k', join(dir, 'k.npy'), '--v', join(dir, 'v.npy'), '--out', join(dir, 'o.npy'), '--dtype', 'bf16'], { reject: false, cwd: join(import.meta.dirname, '..') });
    if (await nativeCudaAvailable()) {
      expect(result.exitCode, result.stderr).toBe(0);
      return;
    }
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--emulate/);
  });

  it('emits a PyTorch module that is valid Python and documents dca_attention', async () => {
    const set = emitCuda(canonicalConfigs[0]!.build(), cudaKernelConfig({ headDim: 128, dtype: 'bf16' }), { command: 'test' });
    const py = set.files.find((f) => f.name.endsWith('.py'))!;
    expect(py.contents).toContain('def dca_attention(q, k, v, *, chunk_size, local_window,');
    expect(py.contents).toContain('torch.utils.cpp_extension');
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-py-'));
    await writeFile(join(dir, py.name), py.contents);
    const compiled = await execa('python3', ['-c', `import ast,sys; ast.parse(open(sys.argv[1]).read())`, join(dir, py.name)], { reject: false });
    expect(compiled.stderr).toBe('');
    expect(compiled.exitCode).toBe(0);
  });
});
