// Compiles an emitted .cu with nvcc for sm_80 and sm_90 and reads ptxas's resource report per
// kernel: registers, spill bytes, stack frame, shared memory. `dcagen emit --report` prints it and
// the tests require zero spills for the shipped configurations.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { KernelError, UnavailableError } from '../../errors.js';

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

/** Compiles `cuPath` for each architecture and returns ptxas's numbers per kernel. */
export async function ptxasReport(cuPath: string, includeDir: string): Promise<KernelResources[]> {
  const work = await mkdtemp(join(tmpdir(), 'dcagen-ptxas-'));
  try {
    const all: KernelResources[] = [];
    for (const arch of REPORT_ARCHS) {
      const result = await execa('nvcc', ['-c', `-arch=${arch}`, '-std=c++17', '-O3', '-Xptxas', '-v', `-I${includeDir}`, cuPath, '-o', join(work, `${arch}.o`)], { reject: false, all: true });
      if ((result as { code?: string }).code === 'ENOENT') throw new UnavailableError('nvcc not found: the CUDA compile tier needs the CUDA toolkit');
      if (result.exitCode !== 0) {
        const first = (result.all ?? '').split('\n').find((l) => /error/.test(l)) ?? 'unknown error';
        throw new KernelError(`nvcc ${arch} failed for ${cuPath}: ${first}`);
      }
      all.push(...parsePtxasReport(result.all ?? '', arch));
    }
    const names = await demangle([...new Set(all.map((r) => r.kernel))]);
    return all.map((r) => ({ ...r, kernel: names.get(r.kernel) ?? r.kernel }));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function formatReport(rows: readonly KernelResources[], dynamicSharedBytes: number): string {
  const short = (k: string): string => k.replace(/dcagen_[A-Za-z0-9_]+::/g, '').replace(/\(dcagen_attention_params\)/, '');
  const lines = rows.map((r) => `${r.arch}  ${String(r.registers).padStart(3)} regs  ${String(r.spillStores).padStart(4)} B spill stores  ${String(r.spillLoads).padStart(4)} B spill loads  ${String(r.stackFrame).padStart(4)} B stack  ${short(r.kernel)}`);
  lines.push(`dynamic shared memory per block: ${dynamicSharedBytes} bytes`);
  const spills = rows.filter((r) => r.spillStores > 0 || r.spillLoads > 0).length;
  lines.push(spills === 0 ? 'no spills' : `${spills} kernel(s) spill registers`);
  return lines.join('\n');
}
