// The CUDA launcher's safety on the CPU emulation: calls it must refuse before any kernel runs
// (shapes, NULL pointers, pointers and strides cp.async cannot load from) with a one-line reason
// from *_check_params, empty calls (batch 0, Sq 0) that succeed without a launch, as FlashAttention
// returns empty outputs, and calls with more batches or query heads than a grid dimension holds,
// which the launcher cuts into slices (tested with the limit lowered, and once at the real 65535).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { cudaKernelConfig, emitCuda } from '../src/backends/cuda/emit.js';
import { runCudaAttention } from '../src/backends/cuda/runner.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import type { KernelDType } from '../src/plan/kernel-plan.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAttention } from '../src/reference/attention.js';
import { randomTensor, tolerance } from '../src/verify/cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';

const root = join(import.meta.dirname, '..');
const dca = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
const rope = { theta: 10000, style: 'half' as const };

/** Builds test/fixtures/cuda/launch_checks.cpp with a kernel set on the emulation and returns its lines by case. */
async function launchChecks(dtype: KernelDType, headDim: number): Promise<Map<string, { rc: number; message: string }>> {
  const dir = await mkdtemp(join(tmpdir(), 'dcagen-launch-'));
  const set = emitCuda(dca, cudaKernelConfig({ headDim, dtype }), { command: 'test' });
  for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
  const binary = join(dir, 'checks');
  const build = await execa(process.env['CXX'] ?? 'g++', ['-std=c++17', '-O1', '-fno-strict-aliasing', '-DDCAGEN_EMULATE', '-include', join(root, 'runtime', 'emulation', 'cuda_emulation.hpp'),
    `-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, `-DDCAGEN_HEAD_DIM=${headDim}`, `-DDCAGEN_ELEMENT_BYTES=${dtype === 'f32' ? 4 : 2}`, `-I${dir}`,
    '-x', 'c++', join(dir, `${set.name}.cu`), '-x', 'c++', join(root, 'test', 'fixtures', 'cuda', 'launch_checks.cpp'), '-o', binary, '-lpthread'], { reject: false, all: true });
  expect(build.exitCode, build.all).toBe(0);
  const run = await execa(binary, [], { reject: false, all: true });
  expect(run.exitCode, run.all).toBe(0);
  const lines = new Map<string, { rc: number; message: string }>();
  for (const line of run.stdout.split('\n')) {
    const m = /^(\S+) (-?\d+) (.*)$/.exec(line);
    if (m) lines.set(m[1]!, { rc: Number(m[2]), message: m[3]! });
  }
  return lines;
}

describe('CUDA launcher checks (emulated)', () => {
  it('tensor-core kernel (bf16): empty calls succeed, bad calls are refused with a reason, misaligned cp.async sources never launch', async () => {
    const r = await launchChecks('bf16', 64);
    expect(r.get('empty_batch')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('empty_queries')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('valid')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('unused_batch_stride')).toEqual({ rc: 0, message: 'ok' });
    // 1 = cudaErrorInvalidValue
    expect(r.get('more_queries_than_keys')?.rc).toBe(1);
    expect(r.get('more_queries_than_keys')?.message).toMatch(/more queries \(5\) than keys \(3\)/);
    expect(r.get('null_v')).toEqual({ rc: 1, message: 'v is NULL' });
    expect(r.get('k_seq_stride_plus_4')?.rc).toBe(1);
    expect(r.get('k_seq_stride_plus_4')?.message).toMatch(/^k strides \(batch \d+, seq 68, head 64 elements of 2 bytes\) must be multiples of 16 bytes/);
    expect(r.get('q_offset_one_element')?.rc).toBe(1);
    expect(r.get('q_offset_one_element')?.message).toMatch(/^q \(0x[0-9a-f]+\) is not 16-byte aligned/);
  });

  it('SIMT kernel (f32) loads single elements: a 4-element row offset is fine there', async () => {
    const r = await launchChecks('f32', 64);
    expect(r.get('empty_batch')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('valid')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('k_seq_stride_plus_4')).toEqual({ rc: 0, message: 'ok' });
    expect(r.get('q_offset_one_element')).toEqual({ rc: 0, message: 'ok' });
  });
});

describe('the harness reports the launcher\'s reason', () => {
  it('dcagen run --emulate fails with check_params\' message (alignment demanded beyond what cudaMalloc gives, planted)', async () => {
    const q = randomTensor([1, 8, 1, 64], 71);
    const k = randomTensor([1, 8, 1, 64], 72);
    const planted = (source: string): string => {
      expect(source).toContain('constexpr int LOAD_BYTES = 16;');
      return source.replace('constexpr int LOAD_BYTES = 16;', 'constexpr int LOAD_BYTES = 1 << 20;');
    };
    await expect(runCudaAttention({ q, k, v: k, pattern: dca, rope, dtype: 'bf16', emulate: true }, { transformSource: planted }))
      .rejects.toThrow(/the launcher refused the call: q \(0x[0-9a-f]+\) is not 1048576-byte aligned/);
  });
});

describe('CUDA launcher grid slicing (emulated)', () => {
  // The real limit (65535) takes ~2 minutes to reach on the emulation, so the tests lower it in the
  // launcher and make every launch check its grid against the lowered limit: a slice that is too
  // big aborts the harness, as a too-big grid fails a real launch.
  const limit = (n: number) => (source: string): string => [
    `#define DCAGEN_GRID_YZ_LIMIT ${n}`,
    '#include <cstdio>',
    '#include <cstdlib>',
    'inline dim3 dcagen_test_grid(dim3 g) {',
    '  if (g.y > DCAGEN_GRID_YZ_LIMIT || g.z > DCAGEN_GRID_YZ_LIMIT) { std::fprintf(stderr, "grid (%u, %u, %u) over the lowered limit\\n", g.x, g.y, g.z); std::exit(1); }',
    '  return g;',
    '}',
    '#undef DCAGEN_LAUNCH',
    '#define DCAGEN_LAUNCH(kernel, grid, block, smem, stream) ::dcagen_emu::cuda::launch_config(kernel, dcagen_test_grid(grid), block, smem, stream, #kernel)',
    source,
  ].join('\n');
  // batch 3, Hq 8, Hk 2 (GQA groups of 4): limit 3 cuts inside a group (one KV head per slice, one
  // batch per slice), limit 5 takes one whole group per slice; batch 10 with Hq 2 and limit 4 cuts
  // only the batch (4 + 4 + 2).
  const shapes = {
    heads: [randomTensor([3, 50, 8, 64], 61), randomTensor([3, 70, 2, 64], 62), randomTensor([3, 70, 2, 64], 63)],
    batch: [randomTensor([10, 20, 2, 64], 64), randomTensor([10, 30, 1, 64], 65), randomTensor([10, 30, 1, 64], 66)],
  } as const;
  it.each([
    ['fused, heads, limit 3', 'fused', 'heads', 3],
    ['fused, heads, limit 5', 'fused', 'heads', 5],
    ['three-pass, heads, limit 3', 'three-pass', 'heads', 3],
    ['fused, batch, limit 4', 'fused', 'batch', 4],
  ] as const)('%s: the slices give the unsliced result', async (_label, variant, shape, n) => {
    const [q, k, v] = shapes[shape];
    const expected = referenceAttention(q, k, v, { pattern: dca, rope, dtype: 'bf16' });
    const got = await runCudaAttention({ q, k, v, pattern: dca, rope, dtype: 'bf16', emulate: true }, { variant, transformSource: limit(n) });
    expect(maxAbsDifference(expected.out.data, got.out.data)).toBeLessThanOrEqual(tolerance('bf16'));
    expect(maxAbsDifference(expected.lse.data, got.lse.data)).toBeLessThanOrEqual(tolerance('bf16'));
  });

  it('without the slicing (planted), the same call fails the grid check', async () => {
    const [q, k, v] = shapes.heads;
    const planted = (source: string): string => {
      expect(source).toContain('const int limit = DCAGEN_GRID_YZ_LIMIT;');
      return limit(3)(source.replace('const int limit = DCAGEN_GRID_YZ_LIMIT;', 'const int limit = 65535;'));
    };
    await expect(runCudaAttention({ q, k, v, pattern: dca, rope, dtype: 'bf16', emulate: true }, { transformSource: planted })).rejects.toThrow(/over the lowered limit/);
  });
});

describe('PyTorch module input checks (torch is not installed here: the pure check function runs alone)', () => {
  // Runs the emitted module's own _input_error (and the constants it reads), lifted out of the file
  // with Python's ast, on plain descriptions of tensors: what _tensor_facts reads from a real tensor.
  const lift = [
    'import ast, json, sys',
    'src = open(sys.argv[1]).read()',
    'keep = [n for n in ast.parse(src).body if (isinstance(n, ast.Assign) and any(getattr(t, "id", "") in ("HEAD_DIM", "LOAD_BYTES", "DTYPE_NAME") for t in n.targets))',
    '        or (isinstance(n, ast.FunctionDef) and n.name == "_input_error")]',
    'ns = {}',
    'exec(compile(ast.Module(body=keep, type_ignores=[]), sys.argv[1], "exec"), ns)',
    'cases = json.load(sys.stdin)',
    'print(json.dumps([ns["_input_error"]({k: dict(f, shape=tuple(f["shape"]), stride=tuple(f["stride"])) for k, f in c.items()}) for c in cases]))',
  ].join('\n');

  interface Facts { shape: number[]; stride: number[]; dtype: string; device: string; is_cuda: boolean; address: number; element_size: number }
  const contiguous = (shape: number[], dtype = 'torch.bfloat16', elementSize = 2): Facts => {
    const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
    return { shape, stride, dtype, device: 'cuda:0', is_cuda: true, address: 0x7f0000000000, element_size: elementSize };
  };
  const call = (over: { q?: Partial<Facts>; k?: Partial<Facts>; v?: Partial<Facts> } = {}, shapes = { q: [2, 64, 8, 128], kv: [2, 96, 2, 128] }, dtype = 'torch.bfloat16', elementSize = 2): Record<string, Facts> => ({
    q: { ...contiguous(shapes.q, dtype, elementSize), ...over.q },
    k: { ...contiguous(shapes.kv, dtype, elementSize), ...over.k },
    v: { ...contiguous(shapes.kv, dtype, elementSize), ...over.v },
  });

  async function errors(dtype: KernelDType, cases: Record<string, Facts>[]): Promise<(string | null)[]> {
    const dir = await mkdtemp(join(tmpdir(), 'dcagen-torch-checks-'));
    const set = emitCuda(dca, cudaKernelConfig({ headDim: 128, dtype }), { command: 'test' });
    const py = set.files.find((f) => f.name.endsWith('.py'))!;
    await writeFile(join(dir, py.name), py.contents);
    const compiled = await execa('python3', ['-m', 'py_compile', join(dir, py.name)], { reject: false, all: true });
    expect(compiled.exitCode, compiled.all).toBe(0);
    const run = await execa('python3', ['-c', lift, join(dir, py.name)], { input: JSON.stringify(cases), reject: false, all: true });
    expect(run.exitCode, run.all).toBe(0);
    return JSON.parse(run.stdout) as (string | null)[];
  }

  it('bf16 (tensor cores, 16-byte loads): device, dtype, shape, contiguity and alignment errors; empty calls pass', async () => {
    const sliced = contiguous([2, 96, 2, 132]);   // k = wider[..., :128]: rows 132 elements apart
    const cases: [Record<string, Facts>, RegExp | null][] = [
      [call(), null],
      [call({ k: { dtype: 'torch.float16' } }), /^k is torch\.float16; this kernel was compiled for torch\.bfloat16$/],
      [call({ q: { device: 'cpu', is_cuda: false } }), /^q is on cpu; the kernel runs on CUDA tensors$/],
      [call({ v: { device: 'cuda:1' } }), /^q, k and v must be on one device, got q on cuda:0, k on cuda:0, v on cuda:1$/],
      [call({ q: { stride: [65536, 1024, 1, 8] } }), /^q must be contiguous in its last dimension/],
      [call({ q: { address: 0x7f0000000000 + 2 } }), /^q's data is not 16-byte aligned/],
      [call({ k: { shape: [2, 96, 2, 128], stride: sliced.stride } }), /^k's strides \(25344, 264, 132, 1\) are not multiples of 16 bytes/],
      [call({ q: { stride: [3, 1024, 128, 1] } }, { q: [1, 64, 8, 128], kv: [1, 96, 2, 128] }), null],   // batch stride unused at batch 1
      [call({}, { q: [2, 100, 8, 128], kv: [2, 96, 2, 128] }), /^more queries \(100\) than keys \(96\)/],
      [call({}, { q: [2, 64, 6, 128], kv: [2, 96, 4, 128] }), /^query heads \(6\) must be a multiple of key heads \(4\)/],
      [call({ q: { address: 1 } }, { q: [2, 0, 8, 128], kv: [2, 96, 2, 128] }), null],   // Sq = 0: nothing is read
      [call({}, { q: [0, 64, 8, 128], kv: [0, 96, 2, 128] }), null],                       // batch 0
      [call({}, { q: [2, 64, 8, 64], kv: [2, 96, 2, 64] }), /^q must be 4-d \(batch, seq, heads, 128\)/],
    ];
    const got = await errors('bf16', cases.map(([c]) => c));
    cases.forEach(([, want], n) => {
      if (want === null) expect(got[n], `case ${n}`).toBeNull();
      else expect(got[n], `case ${n}`).toMatch(want);
    });
  });

  it('the binding runs every entry point on its input\'s device and passes on the launcher\'s reason', () => {
    const set = emitCuda(dca, cudaKernelConfig({ headDim: 128, dtype: 'bf16' }), { command: 'test' });
    const py = set.files.find((f) => f.name.endsWith('.py'))!.contents;
    expect(py).toContain('#include <c10/cuda/CUDAGuard.h>');
    // forward and paged guard q's device, append the new keys' device.
    expect(py.match(/const at::cuda::OptionalCUDAGuard device_guard\(q\.device\(\)\);/g)).toHaveLength(2);
    expect(py).toContain('const at::cuda::OptionalCUDAGuard device_guard(key.device());');
    expect(py).toMatch(new RegExp(`const char\\* why = ${set.prefix}_check_params\\(&p\\);\\n  TORCH_CHECK\\(why == nullptr`));
  });

  it('f32 (SIMT, element loads): a row stride of 129 elements is accepted', async () => {
    const got = await errors('f32', [call({ k: { stride: [24768, 258, 129, 1] } }, undefined, 'torch.float32', 4), call({}, undefined, 'torch.bfloat16', 2)]);
    expect(got[0]).toBeNull();
    expect(got[1]).toMatch(/^q is torch\.bfloat16; this kernel was compiled for torch\.float32$/);
  });
});
