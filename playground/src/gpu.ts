// Runs emitted WGSL on the page's own WebGPU adapter. A launcher is the ES module `dcagen emit
// --backend wgsl` writes (templates/wgsl/launcher.js, shaders embedded); the page imports it from a
// Blob URL, exactly the module a user would ship. Inputs go up in the kernel's storage type, out
// and lse come back for the comparison, and several launchers can be timed on the same inputs,
// interleaved as `dcagen bench` does.

import { decodeStorage, encodeStorage } from '../../src/io/storage.js';
import type { RunSettings, RunShape } from './inputs.js';

/** No WebGPU here, or not the feature a run needs: the message says which and what to do. */
export class WebGpuUnavailableError extends Error {}

export interface GpuContext {
  readonly device: GPUDevice;
  /** "vendor architecture (description)", for the timings table. */
  readonly adapterName: string;
  readonly features: readonly string[];
}

/** The subset of an emitted launcher module the page uses (templates/wgsl/launcher.d.ts has all of it). */
interface LauncherModule {
  createAttention(device: GPUDevice, options?: { ropeTheta?: number }): Promise<AttentionRunner>;
}
interface AttentionRunner {
  readonly elementBytes: number;
  run(buffers: Record<'q' | 'k' | 'v' | 'out' | 'lse', GPUBuffer>, shape: Omit<RunShape, 'headDim'>): Promise<void>;
}

let context: Promise<GpuContext> | undefined;

/** The adapter and a device with shader-f16 and subgroups where the adapter has them (asked once). */
export function gpuContext(): Promise<GpuContext> {
  context ??= openDevice().catch((error: unknown) => {
    context = undefined;
    throw error;
  });
  return context;
}

async function openDevice(): Promise<GpuContext> {
  if (!('gpu' in navigator) || navigator.gpu === undefined) {
    throw new WebGpuUnavailableError('This browser has no WebGPU (navigator.gpu is missing): use a recent Chrome, Edge or Safari, or Firefox with WebGPU enabled, on a secure (https or localhost) page. The matrix and the downloads work without it.');
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (adapter === null) throw new WebGpuUnavailableError('WebGPU is present but offers no adapter (requestAdapter() returned null): the GPU may be blocklisted or disabled in this browser.');
  const wanted = (['shader-f16', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: wanted });
  const info = adapter.info;
  const adapterName = [info.vendor, info.architecture, info.description].filter((s) => s !== '').join(' ') || 'unnamed adapter';
  return { device, adapterName, features: [...adapter.features].map(String) };
}

/** Refuses an f16 run on an adapter without shader-f16, before any shader is compiled. */
export function checkDtype(gpu: GpuContext, dtype: RunSettings['dtype']): void {
  if (dtype === 'f16' && !gpu.features.includes('shader-f16')) {
    throw new WebGpuUnavailableError(`This WebGPU adapter (${gpu.adapterName}) has no shader-f16, so the f16 kernel cannot run here: choose f32.`);
  }
}

export async function importLauncher(source: string): Promise<LauncherModule> {
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  try {
    return (await import(/* @vite-ignore */ url)) as LauncherModule;
  } finally {
    URL.revokeObjectURL(url);
  }
}

interface Buffers {
  readonly all: Record<'q' | 'k' | 'v' | 'out' | 'lse', GPUBuffer>;
  readonly outBytes: number;
  readonly lseBytes: number;
}

const align4 = (n: number): number => Math.max(16, Math.ceil(n / 4) * 4);

function upload(device: GPUDevice, bytes: Uint8Array): GPUBuffer {
  const buffer = device.createBuffer({ size: align4(bytes.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  // writeBuffer takes 4-byte multiples: pad a ragged f16 tail.
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  device.queue.writeBuffer(buffer, 0, padded);
  return buffer;
}

function createBuffers(device: GPUDevice, settings: RunSettings, inputs: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> }, elementBytes: number): Buffers {
  const { batch, queries, queryHeads, headDim } = settings.shape;
  const outBytes = batch * queries * queryHeads * headDim * elementBytes;
  const lseBytes = batch * queryHeads * queries * 4;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  return {
    all: {
      q: upload(device, encodeStorage(inputs.q, settings.dtype)),
      k: upload(device, encodeStorage(inputs.k, settings.dtype)),
      v: upload(device, encodeStorage(inputs.v, settings.dtype)),
      out: device.createBuffer({ size: align4(outBytes), usage }),
      lse: device.createBuffer({ size: align4(lseBytes), usage }),
    },
    outBytes,
    lseBytes,
  };
}

async function readBack(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<Uint8Array> {
  const staging = device.createBuffer({ size: align4(bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, align4(bytes));
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = new Uint8Array(staging.getMappedRange().slice(0, bytes));
  staging.unmap();
  staging.destroy();
  return copy;
}

/** WebGPU validation errors raised while `work` runs, as one message (they are not exceptions). */
async function checked<T>(device: GPUDevice, what: string, work: () => Promise<T>): Promise<T> {
  device.pushErrorScope('validation');
  device.pushErrorScope('internal');
  device.pushErrorScope('out-of-memory');
  let result: T;
  try {
    result = await work();
  } finally {
    const errors = (await Promise.all([device.popErrorScope(), device.popErrorScope(), device.popErrorScope()])).filter((e) => e !== null);
    if (errors.length > 0) throw new Error(`${what}: ${errors.map((e) => e!.message).join('; ')}`);
  }
  return result;
}

export interface KernelResult {
  readonly out: Float32Array;
  readonly lse: Float32Array;
  /** createAttention (shader modules and pipelines) and one run, milliseconds. */
  readonly createMs: number;
  readonly runMs: number;
}

/** One run of a launcher on the inputs; out and lse read back. */
export async function runKernel(gpu: GpuContext, launcherSource: string, settings: RunSettings, inputs: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> }): Promise<KernelResult> {
  const { device } = gpu;
  const launcher = await importLauncher(launcherSource);
  let started = performance.now();
  const attention = await checked(device, 'createAttention', () => launcher.createAttention(device, { ropeTheta: settings.ropeTheta }));
  const createMs = performance.now() - started;
  const buffers = createBuffers(device, settings, inputs, attention.elementBytes);
  try {
    started = performance.now();
    await checked(device, 'attention.run', () => attention.run(buffers.all, settings.shape));
    const runMs = performance.now() - started;
    const out = decodeStorage(await readBack(device, buffers.all.out, buffers.outBytes), settings.dtype);
    const lse = decodeStorage(await readBack(device, buffers.all.lse, buffers.lseBytes), 'f32');
    return { out, lse, createMs, runMs };
  } finally {
    for (const b of Object.values(buffers.all)) b.destroy();
  }
}

/** Median milliseconds of each launcher over `repeats` interleaved runs (A B C A B C …) after a warm-up. */
export async function timeKernels(gpu: GpuContext, launcherSources: readonly string[], settings: RunSettings, inputs: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> }, repeats: number): Promise<number[]> {
  const { device } = gpu;
  const attentions: AttentionRunner[] = [];
  for (const source of launcherSources) {
    const launcher = await importLauncher(source);
    attentions.push(await checked(device, 'createAttention', () => launcher.createAttention(device, { ropeTheta: settings.ropeTheta })));
  }
  const buffers = createBuffers(device, settings, inputs, attentions[0]!.elementBytes);
  try {
    for (const a of attentions) await a.run(buffers.all, settings.shape);
    const times: number[][] = attentions.map(() => []);
    for (let r = 0; r < repeats; r++) {
      for (const [n, a] of attentions.entries()) {
        const started = performance.now();
        await a.run(buffers.all, settings.shape);
        times[n]!.push(performance.now() - started);
      }
    }
    return times.map(median);
  } finally {
    for (const b of Object.values(buffers.all)) b.destroy();
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
