// Runs WGSL compute work on a real WebGPU implementation from Node: spawns the npm package `deno`
// (whose WebGPU is wgpu; on a CPU-only Debian machine it runs on Mesa's lavapipe) with
// runtime/webgpu/deno-host.js, which loads a launcher module and calls its entry with a device.
// Node has no WebGPU of its own that works on lavapipe, hence the extra process.
//
// Failures come back as the project's typed errors: UnavailableError when there is no deno, no
// adapter or a required feature is missing; KernelError (WebGpuKernelError, with the full text in
// `detail`) when a shader does not compile, a WebGPU call is invalid, or the launcher throws.

import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { KernelError, UnavailableError, UsageError } from '../../src/errors.js';

export interface WebGpuJob {
  /** Absolute path (or file: URL) of an ES module run inside Deno. */
  module: string;
  /** Name of the exported `async (device, args, io) => result` to call. */
  entry: string;
  /** Passed to the entry as-is; must be JSON-serialisable. */
  args: unknown;
  /** Features the device must have; a missing one is an UnavailableError. */
  requiredFeatures?: string[];
  /** Features enabled when the adapter has them. */
  optionalFeatures?: string[];
  /** Kill the job after this long (default 300 000 ms). */
  timeoutMs?: number;
  /**
   * Files or folders the launcher may read (io.readFile, its own imports). The module's folder is
   * always readable; Deno's permission flags cannot express paths containing a comma.
   */
  readPaths?: string[];
  /** Files or folders the launcher may write (io.writeFile). Nothing is writable by default. */
  writePaths?: string[];
}

export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  /** The raised device limits the job ran with (maxStorageBufferBindingSize, maxBufferSize, ...). */
  limits?: Record<string, number>;
}

/** A KernelError whose one-line message is backed by the full WebGPU/WGSL diagnostic text. */
export class WebGpuKernelError extends KernelError {
  readonly detail: string;
  constructor(message: string, detail: string) {
    super(message);
    this.detail = detail;
  }
}

const DEFAULT_TIMEOUT_MS = 300_000;
const HOST_EXIT_UNAVAILABLE = 3;

interface HostReply {
  ok: boolean;
  kind?: string;
  message?: string;
  detail?: string;
  adapter?: WebGpuAdapterInfo;
  result?: unknown;
}

/**
 * The repository root that holds runtime/webgpu/deno-host.js. This module runs both from
 * runtime/webgpu/runner.ts (vitest) and from dist/runtime/webgpu/runner.js (tsc output, which does
 * not copy .js files), so walk upwards rather than assume a fixed depth.
 */
function findHostScript(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'runtime', 'webgpu', 'deno-host.js');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new UnavailableError(`runtime/webgpu/deno-host.js not found above ${fileURLToPath(import.meta.url)}`);
}

/**
 * The deno executable: $DCAGEN_DENO, else the binary the npm package `deno` placed next to its
 * package.json (resolved like an import, so a hoisted node_modules works). Running the binary
 * directly skips the package's Node wrapper (bin.cjs), which costs a Node start-up per job and
 * would survive a timeout kill as an orphan; the wrapper is only a fallback for installs made with
 * --ignore-scripts, where the binary was never copied there.
 */
function findDeno(): { file: string; leadingArgs: string[] } {
  const override = process.env.DCAGEN_DENO;
  if (override !== undefined && override !== '') return { file: override, leadingArgs: [] };
  let packageDir: string;
  try {
    packageDir = dirname(createRequire(import.meta.url).resolve('deno/package.json'));
  } catch {
    throw new UnavailableError("deno not found: the npm package 'deno' is not installed (run npm ci) and DCAGEN_DENO is not set");
  }
  const binary = join(packageDir, process.platform === 'win32' ? 'deno.exe' : 'deno');
  if (existsSync(binary)) return { file: binary, leadingArgs: [] };
  return { file: process.execPath, leadingArgs: [join(packageDir, 'bin.cjs')] };
}

function toPath(p: string): string {
  const path = p.startsWith('file:') ? fileURLToPath(p) : p;
  return isAbsolute(path) ? path : resolve(path);
}

/** One flag per path: a comma inside a single --allow-read=a,b value would split the path. */
function permissionFlags(flag: string, paths: string[]): string[] {
  return paths.map((p) => {
    if (p.includes(',')) throw new UsageError(`WebGPU job path contains a comma, which Deno's ${flag} cannot express: ${p}`);
    return `${flag}=${p}`;
  });
}

/** The last stdout line of the host is its reply; anything before it is not ours. */
function parseReply(stdout: string): HostReply | undefined {
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{"ok":'));
  const last = lines[lines.length - 1];
  if (last === undefined) return undefined;
  try {
    return JSON.parse(last) as HostReply;
  } catch {
    return undefined;
  }
}

/** A one-line summary of stderr from a host that died without replying (panic, abort, crash). */
function summariseStderr(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const interesting = lines.find((l) => /panicked|error|Error|abort|fatal/.test(l)) ?? lines[lines.length - 1];
  return interesting ?? 'no output';
}

function describe(job: WebGpuJob): string {
  return `${job.entry} in ${job.module}`;
}

export async function runWebGpuJob<T>(job: WebGpuJob): Promise<{ adapter: WebGpuAdapterInfo; result: T }> {
  const hostScript = findHostScript();
  const deno = findDeno();
  const modulePath = toPath(job.module);
  const readPaths = [dirname(modulePath), ...(job.readPaths ?? []).map(toPath)];
  const writePaths = (job.writePaths ?? []).map(toPath);
  const timeoutMs = job.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  // 0700 by mkdtemp, which is also what Mesa wants of XDG_RUNTIME_DIR.
  const workDir = await mkdtemp(join(tmpdir(), 'dcagen-webgpu-'));
  try {
    const jobFile = join(workDir, 'job.json');
    await writeFile(
      jobFile,
      JSON.stringify({
        module: modulePath,
        entry: job.entry,
        args: job.args ?? null,
        requiredFeatures: job.requiredFeatures ?? [],
        optionalFeatures: job.optionalFeatures ?? [],
      }),
    );

    const args = [
      ...deno.leadingArgs,
      'run',
      '--quiet',
      '--no-prompt',
      // No deno.json/package.json discovery, lockfile, remote or npm imports: the job is
      // self-contained local JS, and none of these may touch the network or write files.
      '--no-config',
      '--no-lock',
      '--no-remote',
      '--no-npm',
      ...permissionFlags('--allow-read', [jobFile, ...readPaths]),
      ...permissionFlags('--allow-write', writePaths),
      hostScript,
      jobFile,
    ];

    const run = await execa(deno.file, args, {
      cwd: workDir,
      env: {
        XDG_RUNTIME_DIR: workDir,
        NO_COLOR: '1',
        DENO_NO_UPDATE_CHECK: '1',
        DENO_NO_PROMPT: '1',
      },
      stdin: 'ignore',
      reject: false,
      timeout: timeoutMs,
      forceKillAfterDelay: 2_000,
      maxBuffer: 1024 * 1024 * 1024,
      stripFinalNewline: false,
    });

    if (run.timedOut) {
      throw new KernelError(`WebGPU job ${describe(job)} timed out after ${timeoutMs / 1000} s`);
    }
    if (run.code === 'ENOENT' || run.code === 'EACCES') {
      throw new UnavailableError(`deno not runnable at ${deno.file} (${run.code}); run npm ci or set DCAGEN_DENO`);
    }
    const stdout = typeof run.stdout === 'string' ? run.stdout : '';
    const stderr = typeof run.stderr === 'string' ? run.stderr : '';
    const reply = parseReply(stdout);

    if (reply?.ok === true && run.exitCode === 0 && reply.adapter !== undefined) {
      return { adapter: reply.adapter, result: reply.result as T };
    }
    if (reply !== undefined && reply.ok === false) {
      const message = reply.message ?? 'WebGPU job failed';
      if (reply.kind === 'unavailable') throw new UnavailableError(message);
      throw new WebGpuKernelError(message, reply.detail ?? '');
    }
    const how = run.signal !== undefined ? `was killed by ${run.signal}` : `exited with code ${run.exitCode ?? 'unknown'}`;
    if (run.exitCode === HOST_EXIT_UNAVAILABLE) {
      throw new UnavailableError(`WebGPU unavailable: ${summariseStderr(stderr)}`);
    }
    throw new WebGpuKernelError(`WebGPU job ${describe(job)}: deno ${how}: ${summariseStderr(stderr)}`, stderr);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

// Dispatches one invocation that writes a constant and reads it back, so a probe that succeeds
// means compute shaders really execute, not only that an adapter was listed.
const PROBE_MODULE = `
export async function probe(device) {
  const module = device.createShaderModule({
    label: 'probe',
    code: '@group(0) @binding(0) var<storage, read_write> out: array<u32>;\\n' +
      '@compute @workgroup_size(1) fn main() { out[0] = 0xdcau; }',
  });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const storage = device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const readback = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: storage } }],
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(1);
  pass.end();
  encoder.copyBufferToBuffer(storage, 0, readback, 0, 4);
  device.queue.submit([encoder.finish()]);
  await readback.mapAsync(GPUMapMode.READ);
  const value = new Uint32Array(readback.getMappedRange())[0];
  readback.unmap();
  return value;
}
`;

/** The adapter WebGPU jobs will run on; throws UnavailableError when there is none. */
export async function probeWebGpu(): Promise<WebGpuAdapterInfo> {
  const dir = await mkdtemp(join(tmpdir(), 'dcagen-webgpu-probe-'));
  try {
    const module = join(dir, 'probe.js');
    await writeFile(module, PROBE_MODULE);
    const { adapter, result } = await runWebGpuJob<number>({ module, entry: 'probe', args: null, timeoutMs: 60_000 });
    if (result !== 0xdca) {
      throw new KernelError(`WebGPU probe on "${adapter.description}" read back ${String(result)} instead of ${0xdca}`);
    }
    return adapter;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
