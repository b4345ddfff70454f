// `dcagen run`: reads q, k, v from .npy, runs attention on a backend, writes the output (and LSE)
// as float32 .npy. Outputs are written together and atomically: on any error nothing is left.

import { ShapeError, UsageError } from '../../errors.js';
import { backendNames, runAttention, type BackendName } from '../../execute.js';
import { writeFilesAtomic } from '../../io/atomic-write.js';
import { encodeNpy, readNpy } from '../../io/npy.js';
import { attentionShape } from '../../reference/attention.js';
import type { StorageDType } from '../../reference/precision.js';
import { checkRotaryDim } from '../../reference/rope.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { attentionFlags, attentionSettings, compileSelectedPattern, patternParamFlags, patternSelectionFlags, selectPattern } from '../pattern-options.js';
import type { CommandIo } from './io.js';

export const runFlags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: backendNames, default: 'reference', description: 'where to run' },
  ...patternSelectionFlags,
  ...attentionFlags,
  q: { kind: 'string', value: 'FILE', required: true, description: 'queries .npy, shape (batch, Sq, Hq, D)' },
  k: { kind: 'string', value: 'FILE', required: true, description: 'keys .npy, shape (batch, Sk, Hk, D)' },
  v: { kind: 'string', value: 'FILE', required: true, description: 'values .npy, shape (batch, Sk, Hk, D)' },
  out: { kind: 'string', value: 'FILE', required: true, description: 'output .npy (float32, shape of q)' },
  lse: { kind: 'string', value: 'FILE', defaultText: 'not written', description: 'also write the log-sum-exp .npy (float32, (batch, Hq, Sq))' },
  dtype: { kind: 'string', choices: ['f32', 'f16', 'bf16'], default: 'f32', description: 'storage precision of q, k, v (inputs are rounded to it)' },
  emulate: { kind: 'boolean', description: 'cuda/metal: run the emitted source on the CPU emulation' },
  'pre-rotated-keys': { kind: 'boolean', description: 'k is already rotated at its key position (rotated KV cache)' },
};

export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...runFlags, ...patternParamFlags(selection.definition) }, 'run');
  const pattern = compileSelectedPattern(selection, parsed);
  const settings = attentionSettings(selection, parsed);
  const outPath = parsed.requireString('out');
  const lsePath = parsed.string('lse');
  if (lsePath !== undefined && lsePath === outPath) throw new UsageError('--out and --lse must be different files');
  const [q, k, v] = await Promise.all([readNpy(parsed.requireString('q'), 4), readNpy(parsed.requireString('k'), 4), readNpy(parsed.requireString('v'), 4)]);
  const shape = attentionShape(q, k, v);
  const configHeadDim = selection.hf?.headDim;
  if (configHeadDim !== undefined && configHeadDim !== shape.headDim) {
    throw new ShapeError(`q has head dim ${shape.headDim} but --hf-config says ${configHeadDim}`);
  }
  try {
    checkRotaryDim(shape.headDim, settings.rope.rotaryDim);
  } catch (err) {
    throw new UsageError(`--rotary-dim: ${(err as Error).message}`);
  }
  const backend = parsed.requireString('backend') as BackendName;
  const result = await runAttention(backend, {
    q, k, v, pattern, ...settings,
    dtype: parsed.requireString('dtype') as StorageDType,
    emulate: parsed.boolean('emulate'),
    preRotatedKeys: parsed.boolean('pre-rotated-keys'),
  });
  await writeFilesAtomic([
    { path: outPath, data: encodeNpy(result.out) },
    ...(lsePath !== undefined ? [{ path: lsePath, data: encodeNpy(result.lse) }] : []),
  ]);
  io.stderr(`dcagen run: ${backend} ${pattern.name} B=${shape.batch} Sq=${shape.queries} Sk=${shape.keys} Hq=${shape.queryHeads} Hk=${shape.keyHeads} D=${shape.headDim} -> ${outPath}`);
  return 0;
}
