// Runs real WGSL compute shaders through runtime/webgpu/runner.ts (Deno + wgpu, lavapipe on CI).
// There is deliberately no skip path: on a machine without a WebGPU adapter these tests fail,
// because the WGSL verification tier would otherwise pass vacuously.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KernelError, UnavailableError } from '../src/errors.js';
import { probeWebGpu, runWebGpuJob, WebGpuKernelError } from '../runtime/webgpu/runner.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/webgpu/vector-add.js', import.meta.url));
// Deno start-up plus lavapipe's shader JIT takes about a second; slow CI machines get headroom.
const JOB_TIMEOUT = 60_000;

async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'dcagen-webgpu-test-'));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Small deterministic generator so failures reproduce. */
function randomF32(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 ** ((i % 17) - 8);
  }
  return out;
}

function expectKernelError(error: unknown): WebGpuKernelError {
  expect(error).toBeInstanceOf(KernelError);
  expect(error).toBeInstanceOf(WebGpuKernelError);
  const e = error as WebGpuKernelError;
  expect(e.message).not.toContain('\n');
  return e;
}

describe('WebGPU runner (deno + wgpu)', () => {
  it('probes an adapter that executes compute shaders', { timeout: JOB_TIMEOUT }, async () => {
    const adapter = await probeWebGpu();
    // Which adapter the WGSL tiers ran on, in the test log (CI's included).
    console.log(`WebGPU adapter: ${adapter.description || adapter.device} (${adapter.vendor}); features: ${[...adapter.features].sort().join(', ')}`);
    expect(adapter.description.length + adapter.device.length + adapter.vendor.length).toBeGreaterThan(0);
    expect(Array.isArray(adapter.features)).toBe(true);
    expect(adapter.limits?.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 1024 * 1024);
  });

  it('adds two f32 vectors exactly, reading and writing files', { timeout: JOB_TIMEOUT }, async () => {
    await withTempDir(async (dir) => {
      const n = 1000; // not a multiple of the workgroup size, so the bounds check matters
      const a = randomF32(n, 1);
      const b = randomF32(n, 2);
      const paths = { a: join(dir, 'a.bin'), b: join(dir, 'b.bin'), out: join(dir, 'out.bin') };
      await writeFile(paths.a, new Uint8Array(a.buffer));
      await writeFile(paths.b, new Uint8Array(b.buffer));

      const { adapter, result } = await runWebGpuJob<{ n: number; adapter: string }>({
        module: FIXTURE,
        entry: 'vectorAddF32',
        args: paths,
        readPaths: [dir],
        writePaths: [paths.out],
        timeoutMs: JOB_TIMEOUT,
      });

      expect(result.n).toBe(n);
      expect(result.adapter).toBe(adapter.description);
      const bytes = await readFile(paths.out);
      const out = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      const expected = a.map((x, i) => Math.fround(x + b[i]));
      expect(Array.from(out)).toEqual(Array.from(expected));
    });
  });

  it('runs f16 arithmetic when shader-f16 is required', { timeout: JOB_TIMEOUT }, async () => {
    const { adapter, result } = await runWebGpuJob<number[]>({
      module: FIXTURE,
      entry: 'vectorAddF16',
      args: { a: [0.5, 2048, 1, -3.25, 65504, 3], b: [1.25, 1, 2 ** -11, 0.25, 0, 4] },
      requiredFeatures: ['shader-f16'],
      timeoutMs: JOB_TIMEOUT,
    });
    expect(adapter.features).toContain('shader-f16');
    // 2048 + 1 and 1 + 2^-11 are ties in f16 and round to even; in f32 they would not round.
    expect(result).toEqual([1.75, 2048, 1, -3, 65504, 7]);
  });

  it('reports a WGSL syntax error as a KernelError carrying the WGSL message', { timeout: JOB_TIMEOUT }, async () => {
    const code = `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  out[gid.x] = a[gid.x] + ;
}
`;
    const error = await runWebGpuJob({ module: FIXTURE, entry: 'vectorAddCustom', args: { code }, timeoutMs: JOB_TIMEOUT }).catch(
      (e: unknown) => e,
    );
    const e = expectKernelError(error);
    expect(e.message).toMatch(/WGSL compilation failed/);
    expect(e.message).toMatch(/vector-add:7:\d+: error: .*expected expression/);
    expect(e.detail).toContain('out[gid.x] = a[gid.x] + ;');
  });

  it('reports a WGSL type error with its line', { timeout: JOB_TIMEOUT }, async () => {
    const code = `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n: u32 = a[gid.x];
  out[gid.x] = f32(n);
}
`;
    const error = await runWebGpuJob({ module: FIXTURE, entry: 'vectorAddCustom', args: { code }, timeoutMs: JOB_TIMEOUT }).catch(
      (e: unknown) => e,
    );
    const e = expectKernelError(error);
    expect(e.message).toMatch(/WGSL compilation failed/);
    expect(e.detail).toContain('let n: u32 = a[gid.x];');
  });

  it('reports a WebGPU validation error (binding declared uniform, buffer is storage)', { timeout: JOB_TIMEOUT }, async () => {
    const code = `
@group(0) @binding(0) var<uniform> a: vec4<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < arrayLength(&out)) { out[gid.x] = a.x + b[gid.x]; }
}
`;
    const error = await runWebGpuJob({ module: FIXTURE, entry: 'vectorAddCustom', args: { code }, timeoutMs: JOB_TIMEOUT }).catch(
      (e: unknown) => e,
    );
    const e = expectKernelError(error);
    expect(e.message).toMatch(/WebGPU error|invalid/);
  });

  it('gives UnavailableError when a required feature does not exist', { timeout: JOB_TIMEOUT }, async () => {
    const error = await runWebGpuJob({
      module: FIXTURE,
      entry: 'vectorAddF16',
      args: { a: [1], b: [2] },
      requiredFeatures: ['dcagen-no-such-feature'],
      timeoutMs: JOB_TIMEOUT,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/lacks required feature\(s\) dcagen-no-such-feature/);
  });

  it('maps a launcher exception to KernelError', { timeout: JOB_TIMEOUT }, async () => {
    const error = await runWebGpuJob({ module: FIXTURE, entry: 'throws', args: null, timeoutMs: JOB_TIMEOUT }).catch((e: unknown) => e);
    const e = expectKernelError(error);
    expect(e.message).toContain('launcher exploded on purpose');
  });

  it('keeps the launcher inside its read/write permissions', { timeout: JOB_TIMEOUT }, async () => {
    await withTempDir(async (dir) => {
      const paths = { a: join(dir, 'a.bin'), b: join(dir, 'b.bin'), out: join(dir, 'out.bin') };
      await writeFile(paths.a, new Uint8Array(new Float32Array([1]).buffer));
      await writeFile(paths.b, new Uint8Array(new Float32Array([2]).buffer));
      // Readable inputs but no write permission for the output.
      const error = await runWebGpuJob({
        module: FIXTURE,
        entry: 'vectorAddF32',
        args: paths,
        readPaths: [dir],
        timeoutMs: JOB_TIMEOUT,
      }).catch((e: unknown) => e);
      const e = expectKernelError(error);
      expect(e.message).toMatch(/write access/);
    });
  });

  it('maps an unknown entry to KernelError and a timeout to KernelError', { timeout: JOB_TIMEOUT }, async () => {
    const missing = await runWebGpuJob({ module: FIXTURE, entry: 'noSuchEntry', args: null, timeoutMs: JOB_TIMEOUT }).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(KernelError);
    expect((missing as Error).message).toContain('no exported function "noSuchEntry"');

    const slow = await runWebGpuJob({ module: FIXTURE, entry: 'vectorAddF16', args: { a: [1], b: [2] }, timeoutMs: 1 }).catch(
      (e: unknown) => e,
    );
    expect(slow).toBeInstanceOf(KernelError);
    expect((slow as Error).message).toMatch(/timed out/);
  });
});
