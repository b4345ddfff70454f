// `dcagen emit`: writes a backend's kernel source and launcher for a pattern into a folder.

import { mkdir } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { DcagenError, UsageError } from '../../errors.js';
import { quoteName } from '../../dsl/names.js';
import { emitKernels, kernelBackendNames, type KernelVariant } from '../../backends/index.js';
import { writeFilesAtomic } from '../../io/atomic-write.js';
import type { KernelDType } from '../../plan/kernel-plan.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { attentionFlags, attentionSettings, compileSelectedPattern, patternParamFlags, patternSelectionFlags, selectPattern } from '../pattern-options.js';
import type { CommandIo } from './io.js';

export const emitFlags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: kernelBackendNames, required: true, description: 'kernel language' },
  ...patternSelectionFlags,
  ...attentionFlags,
  'head-dim': { kind: 'int', required: 'unless --hf-config gives it', description: 'head dimension D' },
  dtype: { kind: 'string', choices: ['f32', 'f16', 'bf16'], default: 'f32', description: 'storage precision (bf16: cuda only)' },
  variant: { kind: 'string', choices: ['fused', 'three-pass'], default: 'fused', description: 'the fused single pass, or the three-pass baseline' },
  'pre-rotated-keys': { kind: 'boolean', description: 'keys arrive rotated at their key position (rotated KV cache)' },
  'block-q': { kind: 'int', defaultText: "the backend's, for the head dim and dtype", description: 'query rows per tile' },
  'block-k': { kind: 'int', defaultText: "the backend's, for the head dim and dtype", description: 'keys per K/V tile' },
  'out-dir': { kind: 'string', alias: '-o', value: 'DIR', required: true, description: 'output folder (created if missing)' },
  report: { kind: 'boolean', description: 'cuda: compile for sm_80 and sm_90 and print per kernel registers, spills, shared memory, threads, CTAs per SM and the key loop\'s instruction mix' },
  json: { kind: 'boolean', description: 'with --report: print the report as JSON on stdout (the written paths go to stderr)' },
};

export async function emitCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...emitFlags, ...patternParamFlags(selection.definition) }, 'emit');
  const pattern = compileSelectedPattern(selection, parsed);
  const settings = attentionSettings(selection, parsed);
  const backend = parsed.requireString('backend');
  const outDir = parsed.requireString('out-dir');
  const headDim = parsed.number('head-dim') ?? selection.hf?.headDim;
  if (headDim === undefined) throw new UsageError('missing --head-dim');
  const blockQ = parsed.number('block-q');
  const blockK = parsed.number('block-k');
  const command = ['dcagen emit', ...argv].join(' ');
  const report = parsed.boolean('report');
  const json = parsed.boolean('json');
  if (report && backend !== 'cuda') throw new UsageError('--report is available for the cuda backend only');
  if (json && !report) throw new UsageError('--json goes with --report');
  const config = {
    headDim,
    dtype: parsed.requireString('dtype') as KernelDType,
    ropeStyle: settings.rope.style,
    ...(settings.rope.rotaryDim !== undefined ? { rotaryDim: settings.rope.rotaryDim } : {}),
    preRotatedKeys: parsed.boolean('pre-rotated-keys'),
    ...(blockQ !== undefined ? { blockQ } : {}),
    ...(blockK !== undefined ? { blockK } : {}),
  };
  let result;
  try {
    result = emitKernels(backend, {
      pattern,
      config,
      variant: parsed.requireString('variant') as KernelVariant,
      command,
    });
  } catch (err) {
    if (err instanceof DcagenError) throw new UsageError(err.message);
    throw err;
  }
  try {
    await mkdir(outDir, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create ${outDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const paths = result.files.map((f) => fileInside(outDir, f.name));
  await writeFilesAtomic(result.files.map((f, k) => ({ path: paths[k]!, data: f.contents })));
  // With --json, stdout carries the report alone so that it parses.
  for (const p of paths) (json ? io.stderr(p) : io.stdout(p));
  if (report) {
    const { cudaCostReport, costReportJson, formatCostReport } = await import('../../backends/cuda/report.js');
    const { planKernel } = await import('../../plan/kernel-plan.js');
    const { cudaKernelConfig } = await import('../../backends/cuda/emit.js');
    const cu = paths.find((p) => p.endsWith('.cu'))!;
    // The plan of the kernels just written (same configuration): their tiles, threads and shared memory.
    const rows = await cudaCostReport(cu, outDir, planKernel(pattern, cudaKernelConfig(config)));
    io.stdout(json ? costReportJson(rows) : formatCostReport(rows));
  }
  return 0;
}

/**
 * The path of emitted file `name` in `outDir`, refusing (exit 2) anything that would land outside
 * it or in a subfolder. Emitters only make [a-z0-9._-] names (checked in emitKernels); this is the
 * last line, at the one place `dcagen emit` turns names into paths.
 */
export function fileInside(outDir: string, name: string): string {
  const folder = resolve(outDir);
  const path = resolve(folder, name);
  const rel = relative(folder, path);
  if (rel !== name || rel.includes(sep) || rel === '' || rel === '.' || rel === '..') {
    throw new UsageError(`refusing to write ${quoteName(name)}: it would not be a file directly inside ${outDir}`);
  }
  return join(outDir, name);
}
