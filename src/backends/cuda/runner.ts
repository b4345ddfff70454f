// The `cuda` backend at run time: emits the kernel set, compiles it with the harness (cached by
// content hash), runs it, and reads the results back. Natively that is nvcc and a GPU; with
// `--emulate` the same .cu is compiled by the host C++ compiler with runtime/emulation's CUDA
// header and runs on CPU threads.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { KernelError, UnavailableError } from '../../errors.js';
import type { AttentionOutput, AttentionRequest } from '../../execute.js';
import { attentionShape } from '../../reference/attention.js';
import { runHarness } from '../harness-run.js';
import { packageRoot } from '../template.js';
import { cacheFolder } from '../kernel-set.js';
import type { KernelVariant } from '../kernel-set.js';
import { cudaKernelConfig, emitCuda, type CudaKernelSet } from './emit.js';

export interface CudaRunOptions {
  readonly variant?: KernelVariant;
  readonly repeats?: number;
  /** Rewrites the emitted source before compiling: mutation tests plant bugs the emulator must catch. */
  readonly transformSource?: (source: string) => string;
}

export interface CudaRunResult extends AttentionOutput {
  readonly times: readonly number[];
}

/** Whether this machine can run CUDA natively (an NVIDIA driver is present). */
export async function nativeCudaAvailable(): Promise<boolean> {
  if (!existsSync('/dev/nvidiactl') && !existsSync('/dev/nvidia0')) return false;
  const smi = await execa('nvidia-smi', ['-L'], { reject: false });
  return smi.exitCode === 0;
}

/** Compiles (or reuses) the harness binary for a kernel set. */
export async function buildHarness(set: CudaKernelSet, emulate: boolean): Promise<string> {
  const root = packageRoot();
  const harness = join(root, 'runtime', 'cuda', 'harness.cu');
  const emulation = join(root, 'runtime', 'emulation', 'cuda_emulation.hpp');
  const hash = createHash('sha256').update(set.source).update(set.header).update(await readFile(harness));
  if (emulate) hash.update(await readFile(emulation)).update(await readFile(join(root, 'runtime', 'emulation', 'emu_core.hpp')));
  const dir = join(cacheFolder(), 'cuda', `${set.name}-${emulate ? 'emu' : 'native'}-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(dir, 'harness');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  const cu = join(dir, `${set.name}.cu`);
  await writeFile(cu, set.source);
  await writeFile(join(dir, `${set.name}.h`), set.header);
  const defines = [`-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, `-I${dir}`];
  const partial = `${binary}.${process.pid}.partial`;
  const compile = emulate
    ? await execa(process.env['CXX'] ?? 'g++', ['-std=c++17', '-O2', '-fno-strict-aliasing', '-fstack-clash-protection', '-DDCAGEN_EMULATE', '-include', emulation, ...defines, '-x', 'c++', cu, '-x', 'c++', harness, '-o', partial, '-lpthread'], { reject: false, all: true })
    : await execa('nvcc', ['-O3', '-std=c++17', '-arch=native', ...defines, cu, harness, '-o', partial], { reject: false, all: true });
  if (compile.exitCode !== 0) {
    await rm(partial, { force: true });
    if ((compile as { code?: string }).code === 'ENOENT') throw new UnavailableError(emulate ? 'no C++ compiler (g++) found for --emulate' : 'nvcc not found');
    const first = (compile.all ?? '').split('\n').find((l) => /error/.test(l)) ?? (compile.all ?? '').split('\n')[0];
    throw new KernelError(`compiling ${set.name} ${emulate ? 'for the CPU emulation' : 'with nvcc'} failed: ${first}`);
  }
  await rename(partial, binary);
  return binary;
}



export async function runCudaAttention(request: AttentionRequest, options: CudaRunOptions = {}): Promise<CudaRunResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && !(await nativeCudaAvailable())) {
    throw new UnavailableError('no NVIDIA GPU or driver on this machine; run the same kernel on the CPU emulation with --emulate');
  }
  const shape = attentionShape(request.q, request.k, request.v);
  const config = cudaKernelConfig({
    headDim: shape.headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  let set: CudaKernelSet = emitCuda(request.pattern, config, { variant: options.variant ?? 'fused' });
  if (options.transformSource !== undefined) set = { ...set, source: options.transformSource(set.source) };
  const binary = await buildHarness(set, emulate);
  const elementBytes = request.dtype === 'f32' ? 4 : 2;
  const shapeArgs = [shape.batch, shape.queries, shape.keys, shape.queryHeads, shape.keyHeads, shape.headDim, elementBytes,
    request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, options.repeats ?? 1].map(String);
  return runHarness({
    label: set.name,
    request,
    shape,
    invoke: (files) => execa(binary, [...files, ...shapeArgs], { reject: false, all: true }),
    noDevice: 'no usable CUDA device; run the same kernel on the CPU emulation with --emulate',
  });
}
