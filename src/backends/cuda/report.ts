// The static cost report of an emitted .cu (`dcagen emit --backend cuda --report [--json]`): compiles
// it with nvcc for sm_80 and sm_90 (no GPU needed), reads ptxas's resource report per kernel
// (registers, spills, stack, static shared memory) and the PTX nvcc kept, and adds per kernel and
// architecture: dynamic shared memory and threads from the kernel configuration the plan chose,
// CTAs per SM (occupancy.ts), and instruction counts of the steady-state key loop (ptx.ts).
// The tests require zero spills for the shipped configurations and pin the issue-10 targets.

import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { KernelError, UnavailableError } from '../../errors.js';
import type { KernelPlan } from '../../plan/kernel-plan.js';
import { occupancy, type OccupancyLimiter } from './occupancy.js';
import { findKeyLoops, parsePtxEntries, type InstructionCounts } from './ptx.js';
import { cudaSharedMemoryBytes, cudaThreads } from './render.js';

export interface KernelResources {
  readonly arch: string;
  readonly kernel: string;
  readonly registers: number;
  readonly spillStores: number;
  readonly spillLoads: number;
  readonly stackFrame: number;
  readonly staticSharedBytes: number;
}

export const REPORT_ARCHS = ['sm_80', 'sm_90'] as const;

export function parsePtxasReport(text: string, arch: string): KernelResources[] {
  const out: KernelResources[] = [];
  let current: { kernel: string; registers?: number; spillStores?: number; spillLoads?: number; stackFrame?: number; shared?: number } | undefined;
  const flush = (): void => {
    if (current?.registers !== undefined) {
      out.push({ arch, kernel: current.kernel, registers: current.registers, spillStores: current.spillStores ?? 0, spillLoads: current.spillLoads ?? 0, stackFrame: current.stackFrame ?? 0, staticSharedBytes: current.shared ?? 0 });
    }
  };
  for (const line of text.split('\n')) {
    const entry = /Compiling entry function '([^']+)'/.exec(line);
    if (entry) {
      flush();
      current = { kernel: entry[1]! };
      continue;
    }
    if (current === undefined) continue;
    const frame = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (frame) {
      current.stackFrame = Number(frame[1]);
      current.spillStores = Number(frame[2]);
      current.spillLoads = Number(frame[3]);
    }
    const regs = /Used (\d+) registers/.exec(line);
    if (regs) current.registers = Number(regs[1]);
    const smem = /(\d+) bytes smem/.exec(line);
    if (smem) current.shared = Number(smem[1]);
  }
  flush();
  return out;
}

async function demangle(names: string[]): Promise<Map<string, string>> {
  for (const tool of ['cu++filt', 'c++filt']) {
    const result = await execa(tool, names, { reject: false });
    if (result.exitCode === 0) {
      const lines = (result.stdout ?? '').split('\n');
      return new Map(names.map((n, k) => [n, lines[k] ?? n]));
    }
  }
  return new Map(names.map((n) => [n, n]));
}

/** One architecture's compile: ptxas's report (its text) and, when asked for, the PTX nvcc handed to ptxas. */
interface ArchCompile {
  readonly arch: string;
  readonly ptxasText: string;
  readonly ptx: string;
}

async function compileArchs(cuPath: string, includeDir: string, keepPtx: boolean): Promise<ArchCompile[]> {
  const work = await mkdtemp(join(tmpdir(), 'dcagen-ptxas-'));
  try {
    const out: ArchCompile[] = [];
    for (const arch of REPORT_ARCHS) {
      const keep = join(work, arch);
      await mkdir(keep);
      // -c also compiles the host launchers (a host-side error fails the report too); --keep leaves the PTX.
      const keepFlags = keepPtx ? ['--keep', '--keep-dir', keep] : [];
      const result = await execa('nvcc', ['-c', `-arch=${arch}`, '-std=c++17', '-O3', '-Xptxas', '-v', ...keepFlags, `-I${includeDir}`, cuPath, '-o', join(work, `${arch}.o`)], { reject: false, all: true });
      if ((result as { code?: string }).code === 'ENOENT') throw new UnavailableError('nvcc not found: the CUDA compile tier needs the CUDA toolkit');
      if (result.exitCode !== 0) {
        const first = (result.all ?? '').split('\n').find((l) => /error/.test(l)) ?? 'unknown error';
        throw new KernelError(`nvcc ${arch} failed for ${cuPath}: ${first}`);
      }
      const ptxName = `${basename(cuPath).replace(/\.cu$/, '')}.ptx`;
      const ptx = !keepPtx ? '' : await readFile(join(keep, ptxName), 'utf8').catch(() => {
        throw new KernelError(`nvcc ${arch} left no ${ptxName} in its --keep folder`);
      });
      out.push({ arch, ptxasText: result.all ?? '', ptx });
    }
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Compiles `cuPath` for each architecture and returns ptxas's numbers per kernel. */
export async function ptxasReport(cuPath: string, includeDir: string): Promise<KernelResources[]> {
  const compiled = await compileArchs(cuPath, includeDir, false);
  const all = compiled.flatMap((c) => parsePtxasReport(c.ptxasText, c.arch));
  const names = await demangle([...new Set(all.map((r) => r.kernel))]);
  return all.map((r) => ({ ...r, kernel: names.get(r.kernel) ?? r.kernel }));
}

/** What a kernel of the set does, from its (demangled) name. */
export type KernelRole = 'prefill' | 'rotate-keys' | 'merge' | 'paged' | 'cache-append' | 'other';

export function kernelRole(demangled: string): KernelRole {
  if (/::paged::attention_kernel\b/.test(demangled)) return 'paged';
  if (/::append_kernel\b/.test(demangled)) return 'cache-append';
  if (/::merge_kernel\b/.test(demangled)) return 'merge';
  if (/::rotate_keys_kernel\b/.test(demangled)) return 'rotate-keys';
  if (/::attention_kernel\b/.test(demangled)) return 'prefill';
  return 'other';
}

export interface LoopCost extends InstructionCounts {
  readonly ldmatrixPerMma: number;
  readonly otherPerMma: number;
}

/** One kernel on one architecture: resources, occupancy and the key loop's instruction mix. */
export interface KernelCost {
  readonly kernel: string;
  readonly arch: string;
  readonly role: KernelRole;
  readonly registers: number;
  /** Spill stores + spill loads, bytes. */
  readonly spillBytes: number;
  readonly stackFrame: number;
  readonly staticSharedBytes: number;
  /** From the kernel configuration (prefill: the plan's tiles; merge and cache append launch with none); null when the launcher sizes it per call. */
  readonly dynamicSharedBytes: number | null;
  readonly sharedBytes: number | null;
  /** Threads per block: the plan's for prefill kernels, else the kernel's __launch_bounds__ (.maxntid). */
  readonly threads: number | null;
  readonly ctasPerSm: number | null;
  readonly occupancyLimiter: OccupancyLimiter | null;
  readonly blockQ: number | null;
  readonly blockK: number | null;
  /** The steady-state key loop (ptx.ts findKeyLoops); null for kernels without MMAs in a loop. */
  readonly loop: LoopCost | null;
  /** Key loops in the kernel (one per region a fused DCA kernel visits). */
  readonly keyLoops: number;
  /** RoPE-table loads and angle math in all key loops together (0: no rotation inside the key loop). */
  readonly ropeLoadsInKeyLoops: number;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : Math.round((a / b) * 1000) / 1000);

/** The cost report of an emitted .cu whose prefill kernels were planned as `plan`. */
export async function cudaCostReport(cuPath: string, includeDir: string, plan: KernelPlan): Promise<KernelCost[]> {
  const compiled = await compileArchs(cuPath, includeDir, true);
  const rows = compiled.flatMap((c) => {
    const entries = new Map(parsePtxEntries(c.ptx).map((e) => [e.name, e]));
    return parsePtxasReport(c.ptxasText, c.arch).map((r) => ({ r, entry: entries.get(r.kernel) }));
  });
  const names = await demangle([...new Set(rows.map(({ r }) => r.kernel))]);
  return rows.map(({ r, entry }): KernelCost => {
    const kernel = names.get(r.kernel) ?? r.kernel;
    const role = kernelRole(kernel);
    const prefill = role === 'prefill';
    const dynamicSharedBytes = prefill ? cudaSharedMemoryBytes(plan) : role === 'merge' || role === 'cache-append' || role === 'rotate-keys' ? 0 : null;
    const threads = prefill ? cudaThreads(plan) : entry?.maxThreads ?? null;
    const sharedBytes = dynamicSharedBytes === null ? null : r.staticSharedBytes + dynamicSharedBytes;
    const occ = sharedBytes === null || threads === null ? null : occupancy(r.arch, { registers: r.registers, threads, sharedBytes });
    const keyLoops = entry === undefined ? undefined : findKeyLoops(entry);
    return {
      kernel,
      arch: r.arch,
      role,
      registers: r.registers,
      spillBytes: r.spillStores + r.spillLoads,
      stackFrame: r.stackFrame,
      staticSharedBytes: r.staticSharedBytes,
      dynamicSharedBytes,
      sharedBytes,
      threads,
      ctasPerSm: occ?.ctasPerSm ?? null,
      occupancyLimiter: occ?.limiter ?? null,
      blockQ: prefill ? plan.config.blockQ : null,
      blockK: prefill ? plan.config.blockK : null,
      loop: keyLoops === undefined ? null : { ...keyLoops.counts, ldmatrixPerMma: ratio(keyLoops.counts.ldmatrix, keyLoops.counts.mma), otherPerMma: ratio(keyLoops.counts.other, keyLoops.counts.mma) },
      keyLoops: keyLoops?.keyLoops ?? 0,
      ropeLoadsInKeyLoops: keyLoops?.ropeLoadsInKeyLoops ?? 0,
    };
  });
}

/** Drops the kernel set's namespace and the parameter list from a demangled kernel name. */
export function shortKernelName(kernel: string): string {
  return kernel.replace(/^void /, '').replace(/dcagen_[A-Za-z0-9_]+::/g, '').replace(/\((?:const )?dcagen_[a-z_]+(?:, [A-Za-z:]+)?\)$/, '');
}

/** The report as text: one block per kernel and architecture, then a spill summary. */
export function formatCostReport(rows: readonly KernelCost[]): string {
  const lines: string[] = [];
  for (const r of rows) {
    const shared = r.dynamicSharedBytes === null ? `${r.staticSharedBytes} B static + dynamic set per call` : `${r.staticSharedBytes} + ${r.dynamicSharedBytes} = ${r.sharedBytes} B`;
    const occ = r.ctasPerSm === null ? 'CTAs/SM: depends on the call' : `${r.ctasPerSm} CTA${r.ctasPerSm === 1 ? '' : 's'}/SM (limited by ${r.occupancyLimiter})`;
    const tiles = r.blockQ === null ? '' : `, tiles ${r.blockQ}×${r.blockK}`;
    lines.push(`${r.arch}  ${shortKernelName(r.kernel)}`);
    lines.push(`  ${r.registers} regs, ${r.spillBytes} B spills, ${r.stackFrame} B stack, shared ${shared}, ${r.threads ?? '?'} threads${tiles}, ${occ}`);
    if (r.loop !== null) {
      const l = r.loop;
      lines.push(`  key loop (${r.keyLoops === 1 ? 'the only one' : `leanest of ${r.keyLoops}`}): ${l.mma} mma, ${l.ldmatrix} ldmatrix (${l.ldmatrixPerMma} per mma), ${l.sharedLoads} ld.shared, ${l.sharedStores} st.shared, ` +
        `${l.globalLoads} ld.global, ${l.cpAsync} cp.async, ${l.ex2} ex2, ${l.other} other (${l.otherPerMma} per mma); RoPE-table loads in key loops: ${r.ropeLoadsInKeyLoops}`);
    }
  }
  const spills = rows.filter((r) => r.spillBytes > 0).length;
  lines.push(spills === 0 ? 'no spills' : `${spills} kernel(s) spill registers`);
  return lines.join('\n');
}

/** The report as JSON: `{"kernels": [...]}`, one entry per kernel and architecture. */
export function costReportJson(rows: readonly KernelCost[]): string {
  return JSON.stringify({ kernels: rows }, null, 2);
}
