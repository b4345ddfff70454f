// `dcagen verify`: random configurations (edge cases first) run on a backend and compared with the
// float64 reference; a progress bar, a summary table, exit 1 on any mismatch.

import { kernelBackend } from '../../backends/index.js';
import { backendNames, type BackendName } from '../../execute.js';
import type { StorageDType } from '../../reference/precision.js';
import { verifyCases } from '../../verify/cases.js';
import { describeCase, verifyCase, type CaseResult } from '../../verify/verify.js';
import { UsageError } from '../../errors.js';
import { parseFlags, type FlagSpec } from '../args.js';
import type { CommandIo } from './io.js';

export const verifyFlags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: backendNames, required: true, description: 'backend to check' },
  cases: { kind: 'int', default: 20, description: 'number of cases (the fixed edge cases come first, then random ones)' },
  seed: { kind: 'int', default: 1, description: 'random seed' },
  emulate: { kind: 'boolean', description: 'cuda/metal: run on the CPU emulation' },
  dtype: { kind: 'string', choices: ['f32', 'f16', 'bf16'], defaultText: 'every precision the backend supports', description: 'only this storage precision' },
  'max-keys': { kind: 'int', default: 160, description: 'largest sequence length drawn' },
  paged: { kind: 'boolean', description: 'serving calls: keys and values in a paged KV cache (shuffled blocks, per-sequence lengths)' },
};

/** Storage precisions and head dims to draw cases from: the backend's descriptor, or the reference's. */
function backendCapabilities(backend: BackendName): { dtypes: readonly StorageDType[]; headDims: readonly number[] } {
  const descriptor = kernelBackend(backend);
  return descriptor === undefined
    ? { dtypes: ['f32', 'f16', 'bf16'], headDims: [16, 32, 64] }
    : { dtypes: descriptor.dtypes, headDims: descriptor.verifyHeadDims };
}

function progressBar(done: number, total: number, failures: number): string {
  const width = 30;
  const filled = Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${failures > 0 ? `  ${failures} FAILED` : ''}`;
}

export function formatSummary(results: readonly CaseResult[]): string {
  const rows = results.map((r, n) => [
    String(n + 1),
    r.ok ? 'ok' : 'FAIL',
    r.failure !== undefined ? 'error' : r.outError.toExponential(2),
    r.failure !== undefined ? '' : r.lseError.toExponential(2),
    r.tolerance.toExponential(0),
    `${(r.milliseconds / 1000).toFixed(1)}s`,
    `${r.case.label}: ${describeCase(r.case)}${r.failure !== undefined ? ` — ${r.failure}` : ''}`,
  ]);
  const header = ['#', 'result', 'max|Δout|', 'max|Δlse|', 'tol', 'time', 'case'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

export async function verifyCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlags(argv, verifyFlags, 'verify');
  const backend = parsed.requireString('backend') as BackendName;
  const count = parsed.requireNumber('cases');
  if (count < 1) throw new UsageError('--cases must be at least 1');
  const capabilities = backendCapabilities(backend);
  const only = parsed.string('dtype') as StorageDType | undefined;
  if (only !== undefined && !capabilities.dtypes.includes(only)) throw new UsageError(`backend ${backend} does not support --dtype ${only}`);
  const cases = verifyCases(count, parsed.requireNumber('seed'), {
    dtypes: only !== undefined ? [only] : [...capabilities.dtypes],
    headDims: [...capabilities.headDims],
    maxKeys: parsed.requireNumber('max-keys'),
  });
  const results: CaseResult[] = [];
  for (const c of cases) {
    if (io.interactive) process.stderr.write(`\r${progressBar(results.length, cases.length, results.filter((r) => !r.ok).length)} ${c.label.slice(0, 40).padEnd(40)}`);
    const result = await verifyCase(backend, c, parsed.boolean('emulate'), parsed.boolean('paged'));
    results.push(result);
    if (!io.interactive) io.stderr(`${progressBar(results.length, cases.length, results.filter((r) => !r.ok).length)} ${result.ok ? 'ok  ' : 'FAIL'} ${c.label}`);
  }
  if (io.interactive) process.stderr.write(`\r${progressBar(results.length, cases.length, results.filter((r) => !r.ok).length)}${' '.repeat(42)}\n`);
  io.stdout(formatSummary(results));
  const failed = results.filter((r) => !r.ok).length;
  io.stdout(`${results.length - failed} passed, ${failed} failed (backend ${backend}${parsed.boolean('emulate') ? ', emulated' : ''}${parsed.boolean('paged') ? ', paged KV cache' : ''})`);
  return failed === 0 ? 0 : 1;
}
