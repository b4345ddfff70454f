// Runs a compiled kernel harness (CUDA's runtime/cuda/harness.cu, the Metal hosts) on raw tensor
// files: writes q, k, v in the storage type, invokes the harness, maps its exit status to typed
// errors, and reads out, lse and the timed repeats back. The harnesses share this file protocol.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelError, UnavailableError } from '../errors.js';
import type { AttentionOutput, AttentionRequest } from '../execute.js';
import { decodeStorage, encodeStorage } from '../io/storage.js';
import type { AttentionShape } from '../reference/attention.js';

export interface HarnessProcessResult {
  readonly exitCode?: number;
  readonly stdout?: string;
  readonly all?: string;
}

export interface HarnessRun {
  /** Kernel set name, for messages. */
  readonly label: string;
  readonly request: AttentionRequest;
  readonly shape: AttentionShape;
  /** Starts the harness with the five file paths (q, k, v, out, lse). */
  readonly invoke: (files: readonly string[]) => Promise<HarnessProcessResult>;
  /** The one-line message for exit status 3 (the harness found no device). */
  readonly noDevice: string;
}

/** Maps a harness's exit status to typed errors: 3 is "no device here", anything else non-zero a kernel failure. */
export function checkHarnessExit(result: HarnessProcessResult, label: string, noDevice: string): void {
  if (result.exitCode === 3) throw new UnavailableError(noDevice);
  if (result.exitCode !== 0) {
    const lines = (result.all ?? '').split('\n').filter((l) => l.trim().length > 0);
    throw new KernelError(`${label} failed: ${lines.slice(-3).join(' | ') || `exit ${result.exitCode}`}`);
  }
}

/** The timed repeats a harness printed ("time_ms <milliseconds>" lines). */
export function harnessTimes(result: HarnessProcessResult): number[] {
  return (result.stdout ?? '').split('\n').filter((l) => l.startsWith('time_ms ')).map((l) => Number(l.slice(8)));
}

export async function runHarness(run: HarnessRun): Promise<AttentionOutput & { readonly times: readonly number[] }> {
  const { request, shape } = run;
  const work = await mkdtemp(join(tmpdir(), 'dcagen-harness-'));
  try {
    const files = ['q', 'k', 'v', 'out', 'lse'].map((n) => join(work, `${n}.bin`));
    await Promise.all((['q', 'k', 'v'] as const).map((name, n) => writeFile(files[n]!, encodeStorage(request[name].data, request.dtype))));
    const result = await run.invoke(files);
    checkHarnessExit(result, `${run.label}${request.emulate ? ' (emulated)' : ''}`, run.noDevice);
    const times = harnessTimes(result);
    return {
      out: { shape: [shape.batch, shape.queries, shape.queryHeads, shape.headDim], data: decodeStorage(await readFile(files[3]!), request.dtype) },
      lse: { shape: [shape.batch, shape.queryHeads, shape.queries], data: decodeStorage(await readFile(files[4]!), 'f32') },
      times,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
