// `dcagen run`: reads q, k, v from .npy — or q and a paged KV cache (k/v cache, block table,
// sequence lengths) — runs attention on a backend, writes the output (and LSE) as float32 .npy.
// Outputs are written together and atomically: on any error nothing is left.

import { ShapeError, UsageError } from '../../errors.js';
import { backendNames, runAttention, runPagedAttention, type AttentionOutput, type BackendName } from '../../execute.js';
import { writeFilesAtomic } from '../../io/atomic-write.js';
import { encodeNpy, readNpy } from '../../io/npy.js';
import { attentionShape } from '../../reference/attention.js';
import { pagedCacheShape, pagedLayout } from '../../reference/kv-cache.js';
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
  k: { kind: 'string', value: 'FILE', description: 'keys .npy, shape (batch, Sk, Hk, D); required unless the call is paged (--k-cache)', defaultText: 'none: a paged call' },
  v: { kind: 'string', value: 'FILE', description: 'values .npy, shape (batch, Sk, Hk, D); required unless the call is paged (--v-cache)', defaultText: 'none: a paged call' },
  out: { kind: 'string', value: 'FILE', required: true, description: 'output .npy (float32, shape of q)' },
  lse: { kind: 'string', value: 'FILE', defaultText: 'not written', description: 'also write the log-sum-exp .npy (float32, (batch, Hq, Sq))' },
  dtype: { kind: 'string', choices: ['f32', 'f16', 'bf16'], default: 'f32', description: 'storage precision of q, k, v (inputs are rounded to it)' },
  emulate: { kind: 'boolean', description: 'cuda/metal: run the emitted source on the CPU emulation' },
  'pre-rotated-keys': { kind: 'boolean', description: 'k (or the k cache) is already rotated at its key position (rotated KV cache)' },
  'k-cache': { kind: 'string', value: 'FILE', description: 'paged key cache .npy, shape (num_blocks, block_size, Hk, D); replaces --k', defaultText: 'none: contiguous --k/--v' },
  'v-cache': { kind: 'string', value: 'FILE', description: 'paged value cache .npy, shape like --k-cache; replaces --v', defaultText: 'none: contiguous --k/--v' },
  'block-table': { kind: 'string', value: 'FILE', description: 'int32 .npy (batch, max_blocks): physical block of each logical block', defaultText: 'none: contiguous --k/--v' },
  'seq-lens': { kind: 'string', value: 'FILE', description: 'int32 .npy (batch,): keys per sequence, each at least Sq', defaultText: 'none: contiguous --k/--v' },
  splits: { kind: 'int', defaultText: 'chosen from the work and the adapter', description: 'force the number of key splits (decode, paged and WGSL prefill kernels split keys across workgroups/blocks)' },
};

export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...runFlags, ...patternParamFlags(selection.definition) }, 'run');
  const pattern = compileSelectedPattern(selection, parsed);
  const settings = attentionSettings(selection, parsed);
  const outPath = parsed.requireString('out');
  const lsePath = parsed.string('lse');
  if (lsePath !== undefined && lsePath === outPath) throw new UsageError('--out and --lse must be different files');
  const splits = parsed.number('splits');
  if (splits !== undefined && splits < 1) throw new UsageError(`--splits must be at least 1, got ${splits}`);
  const paged = ['k-cache', 'v-cache', 'block-table', 'seq-lens'].filter((name) => parsed.has(name));
  if (paged.length > 0) {
    if (parsed.has('k') || parsed.has('v')) throw new UsageError('--k/--v (contiguous keys) and --k-cache/--v-cache (paged cache) exclude each other');
    const missing = ['k-cache', 'v-cache', 'block-table', 'seq-lens'].filter((name) => !parsed.has(name));
    if (missing.length > 0) throw new UsageError(`a paged call needs ${missing.map((m) => `--${m}`).join(', ')} too`);
  }
  const q = await readNpy(parsed.requireString('q'), 4);
  const configHeadDim = selection.hf?.headDim;
  const headDim = q.shape[3]!;
  if (configHeadDim !== undefined && configHeadDim !== headDim) throw new ShapeError(`q has head dim ${headDim} but --hf-config says ${configHeadDim}`);
  try {
    checkRotaryDim(headDim, settings.rope.rotaryDim);
  } catch (err) {
    throw new UsageError(`--rotary-dim: ${(err as Error).message}`);
  }
  const backend = parsed.requireString('backend') as BackendName;
  const common = {
    pattern, ...settings,
    dtype: parsed.requireString('dtype') as StorageDType,
    emulate: parsed.boolean('emulate'),
    preRotatedKeys: parsed.boolean('pre-rotated-keys'),
    ...(splits !== undefined ? { splits } : {}),
  };
  let result: AttentionOutput;
  let summary: string;
  if (paged.length > 0) {
    const [kCache, vCache, blockTable, seqLens] = await Promise.all([
      readNpy(parsed.requireString('k-cache'), 4), readNpy(parsed.requireString('v-cache'), 4),
      readNpy(parsed.requireString('block-table'), 2), readNpy(parsed.requireString('seq-lens'), 1),
    ]);
    const cache = pagedCacheShape(kCache, vCache);
    if (cache.headDim !== headDim) throw new ShapeError(`q has head dim ${headDim} but the cache has ${cache.headDim}`);
    const [batch, queries, queryHeads] = q.shape as [number, number, number];
    if (queryHeads % cache.keyHeads !== 0) throw new ShapeError(`query heads (${queryHeads}) must be a multiple of the cache's key heads (${cache.keyHeads})`);
    const layout = pagedLayout(blockTable, seqLens, cache, queries);
    if (layout.batch !== batch) throw new ShapeError(`q has batch ${batch} but the block table has ${layout.batch} rows`);
    result = await runPagedAttention(backend, { q, kCache, vCache, layout, ...common });
    summary = `paged B=${batch} Sq=${queries} seq_lens=${Math.min(...layout.seqLens)}..${Math.max(...layout.seqLens)} block=${cache.blockSize} Hq=${queryHeads} Hk=${cache.keyHeads} D=${headDim}`;
  } else {
    const [k, v] = await Promise.all([readNpy(parsed.requireString('k'), 4), readNpy(parsed.requireString('v'), 4)]);
    const shape = attentionShape(q, k, v);
    result = await runAttention(backend, { q, k, v, ...common });
    summary = `B=${shape.batch} Sq=${shape.queries} Sk=${shape.keys} Hq=${shape.queryHeads} Hk=${shape.keyHeads} D=${shape.headDim}`;
  }
  await writeFilesAtomic([
    { path: outPath, data: encodeNpy(result.out) },
    ...(lsePath !== undefined ? [{ path: lsePath, data: encodeNpy(result.lse) }] : []),
  ]);
  io.stderr(`dcagen run: ${backend} ${pattern.name} ${summary} -> ${outPath}`);
  return 0;
}
