// The `metal` backend at run time: emits the kernel set, builds it (cached by content hash under
// the cache folder), runs it for the request's shape and reads the results back. On macOS that is
// `xcrun metal` + `metallib` and the emitted Swift host on the GPU; with `--emulate` (anywhere) the
// same .metal is compiled as C++ with runtime/emulation's Metal dialect and runtime/metal/harness.cpp
// and runs on CPU threads.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { KernelError, UnavailableError } from '../../errors.js';
import type { AttentionOutput, AttentionRequest } from '../../execute.js';
import { attentionShape } from '../../reference/attention.js';
import { runHarness } from '../harness-run.js';
import { packageRoot } from '../template.js';
import type { KernelVariant } from '../kernel-set.js';
import { cacheFolder } from '../kernel-set.js';
import { emitMetal, metalKernelConfig, type MetalKernelSet } from './emit.js';

export interface MetalRunOptions {
  readonly variant?: KernelVariant;
  readonly repeats?: number;
  /** Emulation only: thread order between switch points (alternate, forward, reverse, shuffle). */
  readonly schedule?: string;
}

export interface MetalRunResult extends AttentionOutput {
  readonly times: readonly number[];
}

/** The one line `run --backend metal` prints off macOS. */
export const METAL_UNAVAILABLE = 'Metal runs on macOS only (xcrun metal and an Apple GPU); run the same kernel on the CPU emulation with --emulate';

/** The emulation's files, relative to the package root: part of the build's cache key. */
export const METAL_EMULATION_FILES = [
  'runtime/emulation/emu_core.hpp',
  'runtime/emulation/metal_emulation.hpp',
  'runtime/emulation/metal_include/metal_stdlib',
  'runtime/metal/harness.cpp',
];

/**
 * Flags of the emulation build (documented in runtime/emulation/metal_emulation.hpp). -O1: the run
 * time is spent switching emulated threads, which -O2 does not speed up, while it compiles slower.
 */
export function emulationCompileArgs(root: string): string[] {
  return ['-std=c++17', '-O1', '-fno-strict-aliasing', '-fstack-clash-protection', '-Wno-attributes', '-DDCAGEN_EMULATE',
    '-I', join(root, 'runtime', 'emulation', 'metal_include')];
}

/**
 * A precompiled copy of the emulation header (cached by content), -include'd ahead of the harness:
 * it saves a third of every kernel's build. Best effort: without it the harness builds as well.
 */
const pchBuilds = new Map<string, Promise<string | undefined>>();

function precompiledHeader(root: string, cxx: string): Promise<string | undefined> {
  const key = `${root}\0${cxx}\0${cacheFolder()}`;
  let build = pchBuilds.get(key);
  if (build === undefined) {
    build = buildPrecompiledHeader(root, cxx);
    pchBuilds.set(key, build);
  }
  return build;
}

async function buildPrecompiledHeader(root: string, cxx: string): Promise<string | undefined> {
  const headers = ['emu_core.hpp', 'metal_emulation.hpp'];
  const hash = createHash('sha256').update(cxx).update(emulationCompileArgs('').join(' '));
  for (const h of headers) hash.update(await readFile(join(root, 'runtime', 'emulation', h)));
  const dir = join(cacheFolder(), 'metal', `pch-${hash.digest('hex').slice(0, 16)}`);
  const header = join(dir, 'metal_emulation.hpp');
  if (existsSync(`${header}.gch`)) return header;
  // Built in a private folder and renamed into place, so concurrent builds never see half a copy.
  const temp = `${dir}.${process.pid}.partial`;
  try {
    await mkdir(temp, { recursive: true });
    for (const h of headers) await writeFile(join(temp, h), await readFile(join(root, 'runtime', 'emulation', h)));
    const r = await execa(cxx, [...emulationCompileArgs(root), '-x', 'c++-header', join(temp, 'metal_emulation.hpp'), '-o', join(temp, 'metal_emulation.hpp.gch')], { reject: false });
    if (r.exitCode !== 0) return undefined;
    await rename(temp, dir).catch(() => undefined);  // another build may have won the race: use its copy
    return existsSync(`${header}.gch`) ? header : undefined;
  } catch {
    return undefined;
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function compileOrThrow(file: string, args: readonly string[], what: string, missing: string): Promise<void> {
  const run = await execa(file, args, { reject: false, all: true });
  if (run.exitCode === 0) return;
  if ((run as { code?: string }).code === 'ENOENT') throw new UnavailableError(missing);
  const lines = (run.all ?? '').split('\n');
  const first = lines.find((l) => /error/.test(l)) ?? lines[0];
  throw new KernelError(`${what} failed: ${first}`);
}

/** Compiles (or reuses) the emulation binary of a kernel set. */
export async function buildEmulation(set: MetalKernelSet): Promise<string> {
  const root = packageRoot();
  const hash = createHash('sha256').update(set.source).update(set.namespace);
  for (const f of METAL_EMULATION_FILES) hash.update(await readFile(join(root, f)));
  const dir = join(cacheFolder(), 'metal', `${set.name}-emu-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(dir, 'harness');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, set.fileName), set.source);
  const partial = `${binary}.${process.pid}.partial`;
  const cxx = process.env['CXX'] ?? 'g++';
  const pch = await precompiledHeader(root, cxx);
  try {
    await compileOrThrow(cxx, [
      ...emulationCompileArgs(root), ...(pch !== undefined ? ['-include', pch] : []), '-I', dir,
      `-DDCAGEN_METAL_SOURCE=${set.fileName}`, `-DDCAGEN_NS=${set.namespace}`,
      join(root, 'runtime', 'metal', 'harness.cpp'), '-o', partial, '-lpthread',
    ], `compiling ${set.name} for the CPU emulation`, 'no C++ compiler (g++) found for --emulate');
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, binary);
  return binary;
}

/** Compiles (or reuses) the metallib and the Swift host of a kernel set (macOS). */
export async function buildNative(set: MetalKernelSet): Promise<{ host: string; library: string }> {
  const swift = set.files.find((f) => f.name === set.swiftFile)!.contents;
  const hash = createHash('sha256').update(set.source).update(swift);
  const dir = join(cacheFolder(), 'metal', `${set.name}-native-${hash.digest('hex').slice(0, 16)}`);
  const host = join(dir, 'host');
  const library = join(dir, `${set.name}.metallib`);
  if (existsSync(host) && existsSync(library)) return { host, library };
  await mkdir(dir, { recursive: true });
  const metal = join(dir, set.fileName);
  await writeFile(metal, set.source);
  await writeFile(join(dir, set.swiftFile), swift);
  const missing = 'xcrun not found: install the Xcode command-line tools (xcode-select --install)';
  const air = join(dir, `${set.name}.air`);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'metal', '-c', metal, '-o', air], `compiling ${set.fileName} with xcrun metal`, missing);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'metallib', air, '-o', `${library}.partial`], 'metallib', missing);
  await compileOrThrow('xcrun', ['-sdk', 'macosx', 'swiftc', '-O', join(dir, set.swiftFile), '-o', `${host}.partial`], `compiling ${set.swiftFile}`, missing);
  await rename(`${library}.partial`, library);
  await rename(`${host}.partial`, host);
  return { host, library };
}



export async function runMetalAttention(request: AttentionRequest, options: MetalRunOptions = {}): Promise<MetalRunResult> {
  const emulate = request.emulate ?? false;
  if (!emulate && process.platform !== 'darwin') throw new UnavailableError(METAL_UNAVAILABLE);
  const shape = attentionShape(request.q, request.k, request.v);
  const config = metalKernelConfig({
    headDim: shape.headDim,
    dtype: request.dtype,
    ropeStyle: request.rope.style,
    ...(request.rope.rotaryDim !== undefined ? { rotaryDim: request.rope.rotaryDim } : {}),
    preRotatedKeys: request.preRotatedKeys ?? false,
  });
  const set: MetalKernelSet = emitMetal(request.pattern, config, { variant: options.variant ?? 'fused' });
  const shapeArgs = [shape.batch, shape.queries, shape.keys, shape.queryHeads, shape.keyHeads,
    request.rope.theta, request.scale ?? 0, request.originalMaxPosition ?? 0, options.repeats ?? 1].map(String);
  return runHarness({
    label: set.name,
    request,
    shape,
    invoke: async (files) => {
      if (emulate) {
        const binary = await buildEmulation(set);
        const schedule = options.schedule ?? process.env['DCAGEN_EMU_SCHEDULE'] ?? 'alternate';
        // Threadgroups are independent: spread them over the cores unless told otherwise.
        const workers = process.env['DCAGEN_EMU_WORKERS'] ?? String(availableParallelism());
        return execa(binary, [...files, ...shapeArgs], { reject: false, all: true, env: { DCAGEN_EMU_SCHEDULE: schedule, DCAGEN_EMU_WORKERS: workers } });
      }
      const { host, library } = await buildNative(set);
      return execa(host, [library, ...files, ...shapeArgs], { reject: false, all: true });
    },
    noDevice: 'no Metal device on this Mac; run the same kernel on the CPU emulation with --emulate',
  });
}
