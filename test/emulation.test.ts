// CPU emulation of CUDA (runtime/emulation/): the test kernels in
// test/emulation/ are compiled by g++ with the emulation header and run on CPU
// threads; correct kernels must match their references under every schedule,
// and planted bugs (wrong fragment index, missing barrier, missing cp.async
// wait, divergent barrier) must be caught.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const headerDir = join(root, 'runtime/emulation');
const src = join(root, 'test/emulation');
const CXX = process.env.CXX ?? 'g++';
// The command line documented in runtime/emulation/README.md, less the -include.
const FLAGS = ['-std=c++17', '-O2', '-Wall', '-fno-strict-aliasing', '-fstack-clash-protection', '-DDCAGEN_EMULATE'];
const CXXFLAGS = [...FLAGS, '-include', join(headerDir, 'cuda_emulation.hpp')];
// Builds include a copy of the headers with a precompiled header next to it
// (g++ uses the text when the .gch does not fit): it saves ~1 s per file.
let buildFlags = CXXFLAGS;
const SCHEDULES = ['alternate', 'forward', 'reverse', 'shuffle'] as const;
const EMU_EXIT = 86; // the emulator's exit status for a detected error

interface Target { cu?: string; harness: string; defines?: string[] }
const targets: Record<string, Target> = {
  numerics: { harness: 'numerics.cpp' },
  fragments: { cu: 'fragments.cu', harness: 'fragments_main.cpp' },
  gemm_f16: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp' },
  gemm_bf16: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['GEMM_BF16'] },
  gemm_wrong_fragment_ldmatrix: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['PLANT_WRONG_FRAGMENT=1'] },
  gemm_wrong_fragment_accum: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['GEMM_BF16', 'PLANT_WRONG_FRAGMENT=2'] },
  gemm_no_wait: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['PLANT_MISSING_WAIT=1'] },
  gemm_lax_wait: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['PLANT_MISSING_WAIT=2'] },
  gemm_no_barrier: { cu: 'gemm_mma.cu', harness: 'gemm_main.cpp', defines: ['PLANT_MISSING_BARRIER=1'] },
  reduce: { cu: 'reduce.cu', harness: 'reduce_main.cpp' },
  reduce_no_barrier_before_tree: { cu: 'reduce.cu', harness: 'reduce_main.cpp', defines: ['PLANT_MISSING_BARRIER=1'] },
  reduce_no_barrier_in_tree: { cu: 'reduce.cu', harness: 'reduce_main.cpp', defines: ['PLANT_MISSING_BARRIER=2'] },
  reduce_no_barrier_before_read: { cu: 'reduce.cu', harness: 'reduce_main.cpp', defines: ['PLANT_MISSING_BARRIER=3'] },
  shuffle: { cu: 'warp_shuffle.cu', harness: 'warp_shuffle_main.cpp' },
  divergent: { cu: 'divergent.cu', harness: 'divergent_main.cpp' },
  misuse: { cu: 'misuse.cu', harness: 'misuse_main.cpp' },
};

let work = '';
const bins: Record<string, string> = {};
let haveCxx = true;

// At most `n` compilers at a time.
function limiter(n: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    while (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
const limit = limiter(Math.max(1, Math.min(4, availableParallelism())));

async function compile(file: string, out: string, defines: string[] = []): Promise<void> {
  await limit(() => execa(CXX, [...buildFlags, ...defines.map((d) => `-D${d}`), '-c', '-x', 'c++', join(src, file), '-o', out]));
}

async function buildAll(): Promise<void> {
  const pch = join(work, 'pch');
  await mkdir(pch);
  for (const h of ['emu_core.hpp', 'cuda_emulation.hpp']) await copyFile(join(headerDir, h), join(pch, h));
  await execa(CXX, [...FLAGS, '-x', 'c++-header', join(pch, 'cuda_emulation.hpp'), '-o', join(pch, 'cuda_emulation.hpp.gch')]);
  buildFlags = [...FLAGS, '-include', join(pch, 'cuda_emulation.hpp')];
  const harnessObjs = new Map<string, Promise<string>>();
  const harnessObj = (h: string) => {
    let p = harnessObjs.get(h);
    if (!p) {
      const out = join(work, h.replace(/\.cpp$/, '.o'));
      p = compile(h, out).then(() => out);
      harnessObjs.set(h, p);
    }
    return p;
  };
  await Promise.all(Object.entries(targets).map(async ([name, t]) => {
    const objs = [await harnessObj(t.harness)];
    if (t.cu) {
      const obj = join(work, `${name}.o`);
      await compile(t.cu, obj, t.defines);
      objs.push(obj);
    }
    const bin = join(work, name);
    await limit(() => execa(CXX, [...objs, '-o', bin, '-lpthread']));
    bins[name] = bin;
  }));
}

interface Run { exitCode: number; stdout: string; stderr: string }
async function run(name: string, args: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  const clean: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(clean)) if (k.startsWith('DCAGEN_EMU_')) delete clean[k];
  const r = await execa(bins[name], args, { env: { ...clean, ...env }, extendEnv: false, reject: false, timeout: 30_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('CUDA emulation on the CPU', () => {
  beforeAll(async () => {
    try {
      await execa(CXX, ['--version']);
    } catch {
      haveCxx = false;
      return;
    }
    work = await mkdtemp(join(tmpdir(), 'dcagen-emu-'));
    await buildAll();
  }, 180_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('has a host C++ compiler', () => {
    expect(haveCxx, `${CXX} not found`).toBe(true);
  });

  it('headers compile warnings-clean with -Wall -Wextra', async () => {
    const r = await execa(CXX, [...CXXFLAGS, '-Wextra', '-Werror', '-fsyntax-only', '-x', 'c++', '-'], {
      input: 'int main() { return 0; }\n', reject: false,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('f16/bf16 conversions round to nearest even and match a table-based reference', async () => {
    const r = await run('numerics');
    expect(r.stdout).toContain('conversion tables: 0 wrong; other checks: 0 wrong');
    expect(r.exitCode).toBe(0);
  });

  it('ldmatrix (x1/x2/x4, .trans) and mma.sync (m16n8k16, m16n8k8, f16/bf16/tf32) follow the PTX fragment layouts', async () => {
    const r = await run('fragments');
    expect(r.stdout.match(/: 0 wrong/g)?.length).toBe(11);
    expect(r.stdout).toContain('PASS');
    expect(r.exitCode).toBe(0);
  });

  it('tiled GEMM (ldmatrix + mma.sync m16n8k16 + cp.async double buffering) matches the CPU reference exactly', async () => {
    for (const name of ['gemm_f16', 'gemm_bf16']) {
      for (const schedule of SCHEDULES) {
        const r = await run(name, [], { DCAGEN_EMU_SCHEDULE: schedule });
        expect(r.stdout, `${name} under ${schedule}`).toMatch(/: 0 of 16384 elements wrong \(0 NaN\), max_abs_err=0\n/);
        expect(r.exitCode, `${name} under ${schedule}: ${r.stderr}`).toBe(0);
      }
    }
  });

  it('gives the same GEMM result with the ucontext fiber switch and with blocks on two OS threads', async () => {
    const envs: Record<string, string>[] = [
      { DCAGEN_EMU_UCONTEXT: '1' }, { DCAGEN_EMU_WORKERS: '2' }, { DCAGEN_EMU_SCHEDULE: 'shuffle', DCAGEN_EMU_SEED: '7' },
    ];
    for (const env of envs) {
      const r = await run('gemm_bf16', [], env);
      expect(r.stdout, JSON.stringify(env)).toContain('PASS');
      expect(r.exitCode).toBe(0);
    }
  });

  it('detects a planted wrong fragment index (ldmatrix sub-matrix order; accumulator register)', async () => {
    for (const name of ['gemm_wrong_fragment_ldmatrix', 'gemm_wrong_fragment_accum']) {
      const r = await run(name);
      expect(r.stdout, name).toContain('MISMATCH');
      expect(r.stdout, name).toMatch(/: [1-9]\d* of 16384 elements wrong \(0 NaN\)/);
      expect(r.exitCode, name).toBe(1);
    }
  });

  it('detects a missing or too lax cp.async.wait_group: the stage is still NaN-poisoned when read', async () => {
    for (const name of ['gemm_no_wait', 'gemm_lax_wait']) {
      for (const schedule of SCHEDULES) {
        const r = await run(name, [], { DCAGEN_EMU_SCHEDULE: schedule });
        expect(r.stdout, `${name} under ${schedule}`).toMatch(/: 16384 of 16384 elements wrong \(16384 NaN\)/);
        expect(r.exitCode).toBe(1);
      }
    }
  });

  it('detects a missing __syncthreads before a cp.async prefetch overwrites a stage still being read', async () => {
    for (const schedule of SCHEDULES) {
      const r = await run('gemm_no_barrier', [], { DCAGEN_EMU_SCHEDULE: schedule });
      expect(r.stdout, schedule).toContain('MISMATCH');
      expect(r.exitCode).toBe(1);
    }
  });

  it('shared-memory reduction: correct under every schedule; a missing __syncthreads gives wrong sums under the default schedule', async () => {
    for (const schedule of SCHEDULES) {
      const r = await run('reduce', [], { DCAGEN_EMU_SCHEDULE: schedule });
      expect(r.stdout, schedule).toContain('PASS');
      expect(r.exitCode).toBe(0);
    }
    // Readers below their writers show up in forward order, readers above in
    // reverse order; the default (alternate) catches both in a multi-block grid.
    const plants: [string, string][] = [
      ['reduce_no_barrier_before_tree', 'forward'], ['reduce_no_barrier_in_tree', 'forward'],
      ['reduce_no_barrier_before_read', 'reverse'],
    ];
    for (const [name, order] of plants) {
      for (const env of [{}, { DCAGEN_EMU_SCHEDULE: order }] as Record<string, string>[]) {
        const r = await run(name, [], env);
        expect(r.stdout, `${name} ${JSON.stringify(env)}`).toContain('<-- wrong');
        expect(r.stdout).toContain('MISMATCH');
        expect(r.exitCode).toBe(1);
      }
    }
    // Unwritten static __shared__ memory reads as NaN (poisoned at block start).
    expect((await run('reduce_no_barrier_before_tree')).stdout).toMatch(/sum -?nan/);
  });

  it('warp shuffles (xor/down/up/idx with width), ballot and a shuffle block reduction are correct', async () => {
    for (const schedule of SCHEDULES) {
      const r = await run('shuffle', [], { DCAGEN_EMU_SCHEDULE: schedule });
      expect(r.stdout, schedule).toContain('0 wrong values\nPASS');
      expect(r.exitCode).toBe(0);
    }
  });

  it('aborts divergent barriers and stranded warp collectives with a deadlock report', async () => {
    const half = await run('divergent', ['0']);
    expect(half.exitCode).toBe(EMU_EXIT);
    expect(half.stderr).toMatch(/deadlock in kernel 'divergent' block \(0,0,0\): __syncthreads can never complete/);
    expect(half.stderr).toMatch(/threads \(0,0,0\)\.\.\(31,0,0\) \[32\]: waiting at __syncthreads \(\S*divergent\.cu:\d+\)/);
    expect(half.stderr).toMatch(/threads \(32,0,0\)\.\.\(63,0,0\) \[32\]: exited/);

    const two = await run('divergent', ['1']);
    expect(two.exitCode).toBe(EMU_EXIT);
    expect(two.stderr).toMatch(/divergent barriers/);
    const sites = [...two.stderr.matchAll(/waiting at __syncthreads \(\S*divergent\.cu:(\d+)\)/g)].map((m) => m[1]);
    expect(new Set(sites).size).toBe(2);

    const shfl = await run('divergent', ['2']);
    expect(shfl.exitCode).toBe(EMU_EXIT);
    expect(shfl.stderr).toMatch(/threads \(0,0,0\)\.\.\(15,0,0\) \[16\]: waiting at warp collective __shfl_xor_sync .* member mask 0xffffffff/);
    expect(shfl.stderr).toMatch(/threads \(16,0,0\)\.\.\(31,0,0\) \[16\]: exited/);

    const ok = await run('divergent', ['3']);
    expect(ok.stdout).toContain('completed, 0 wrong values');
    expect(ok.exitCode).toBe(0);
  });

  it('names misuse: misaligned ldmatrix, cp.async outside its allocation, smem overrun, launch limits, host pointers, stack overflow', async () => {
    const expected: [string, RegExp, number][] = [
      ['0', /ldmatrix\.m8n8\.x4\.b16 .*row address 0x[0-9a-f]+ from lane \d+, thread \(\d+,0,0\), is not 16-byte aligned/, EMU_EXIT],
      ['1', /cp\.async\.cg\.shared\.global .*source 0x[0-9a-f]+\.\.\+16 is not inside a cudaMalloc allocation/, EMU_EXIT],
      ['2', /dynamic shared memory access past its end \(4096 bytes requested at launch\) \[kernel 'misuse', block \(0,0,0\), thread \(0,0,0\)\]/, EMU_EXIT],
      ['3', /65536 bytes of dynamic shared memory exceed the 49152 allowed/, 2],
      ['4', /argument 3 \(from 0\) of kernel 'misuse' is 0x[0-9a-f]+, which is not device memory/, EMU_EXIT],
      ['5', /stack overflow of thread \(\d+,0,0\)/, EMU_EXIT],
    ];
    for (const [mode, message, code] of expected) {
      const r = await run('misuse', [mode]);
      expect(r.stderr, `mode ${mode}`).toMatch(message);
      expect(r.exitCode, `mode ${mode}`).toBe(code);
    }
  });
});

describe('the emulation test kernels are real CUDA', () => {
  // nvcc is part of every machine this project runs on (DESIGN.md §4): a missing one fails here.
  it('compile with nvcc -c for sm_80', async () => {
    const out = await mkdtemp(join(tmpdir(), 'dcagen-emu-nvcc-'));
    try {
      const files = ['gemm_mma.cu', 'reduce.cu', 'warp_shuffle.cu', 'divergent.cu', 'fragments.cu', 'misuse.cu'];
      await Promise.all(files.map((f) => limit(() => execa('nvcc', ['-c', '-std=c++17', '-arch=sm_80', join(src, f), '-o', join(out, `${f}.o`)]))));
      // The planted variants only move indices and drop synchronisation.
      await limit(() => execa('nvcc', ['-c', '-std=c++17', '-arch=sm_80', '-DGEMM_BF16', '-DPLANT_WRONG_FRAGMENT=1',
        '-DPLANT_MISSING_WAIT=2', '-DPLANT_MISSING_BARRIER=1', join(src, 'gemm_mma.cu'), '-o', join(out, 'planted.o')]));
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 180_000);
});
