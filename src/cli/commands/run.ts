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

const flags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: backendNames, description: 'where to run (default reference)' },
  ...patternSelectionFlags,
  ...attentionFlags,
  q: { kind: 'string', description: 'queries .npy, shape (batch, Sq, Hq, D)' },
  k: { kind: 'string', description: 'keys .npy, shape (batch, Sk, Hk, D)' },
  v: { kind: 'string', description: 'values .npy, shape (batch, Sk, Hk, D)' },
  out: { kind: 'string', description: 'output .npy (float32, shape of q)' },
  lse: { kind: 'string', description: 'also write the log-sum-exp .npy (float32, (batch, Hq, Sq))' },
  dtype: { kind: 'string', choices: ['f32', 'f16', 'bf16'], description: 'storage precision of q, k, v (default f32)' },
  emulate: { kind: 'boolean', description: 'cuda/metal: run the emitted source on the CPU emulation' },
  'pre-rotated-keys': { kind: 'boolean', description: 'k (or the k cache) is already rotated at its key position (rotated KV cache)' },
  'k-cache': { kind: 'string', description: 'paged key cache .npy, shape (num_blocks, block_size, Hk, D); replaces --k' },
  'v-cache': { kind: 'string', description: 'paged value cache .npy, shape like --k-cache; replaces --v' },
  'block-table': { kind: 'string', description: 'int32 .npy (batch, max_blocks): physical block of each logical block' },
  'seq-lens': { kind: 'string', description: 'int32 .npy (batch,): keys per sequence, each at least Sq' },
  splits: { kind: 'int', description: 'force the number of key splits per query tile (default: chosen from the work)' },
};

export const runHelp = 'dcagen run --backend reference|wgsl|cuda|metal --pattern P [params] --q q.npy --k k.npy --v v.npy --out o.npy [--lse lse.npy] [--dtype f32|f16|bf16]';

export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const selection = await selectPattern(argv);
  const parsed = parseFlags(argv, { ...flags, ...patternParamFlags(selection.definition) }, 'run');
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
  const backend = (parsed.string('backend') ?? 'reference') as BackendName;
  const common = {
    pattern, ...settings,
    dtype: (parsed.string('dtype') ?? 'f32') as StorageDType,
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
