// `dcagen bench`: fused DCA vs plain causal vs the three-pass baseline on one shape. Median time
// over repeats, TFLOP/s by FlashAttention's convention (4·Sq·Sk·D·Hq·B, halved for causal), and the
// two ratios that matter: DCA / causal (the price of DCA) and three-pass / fused (what fusing saves).
// A benchmark, not a test: nothing here asserts a speed.

import { UsageError } from '../../errors.js';
import { compilePattern } from '../../dsl/instantiate.js';
import { dca, causal } from '../../patterns/index.js';
import { randomTensor } from '../../verify/cases.js';
import { parseFlags, type FlagSpec } from '../args.js';
import type { CommandIo } from './io.js';

const flags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: ['wgsl'], description: 'backend to time (the CUDA benchmark runs on a GPU machine: bench/cuda-h200.sh)' },
  'seq-len': { kind: 'int', description: 'Sq = Sk (default 1024)' },
  batch: { kind: 'int', description: 'batch (default 1)' },
  heads: { kind: 'int', description: 'query heads (default 4)' },
  'kv-heads': { kind: 'int', description: 'key/value heads (default 1)' },
  'head-dim': { kind: 'int', description: 'head dim (default 64)' },
  'chunk-size': { kind: 'int', description: 'DCA chunk size C (default 3/8 of the sequence)' },
  'local-window': { kind: 'int', description: 'DCA local window W (default 1/16 of the sequence)' },
  dtype: { kind: 'string', choices: ['f32', 'f16'], description: 'storage precision (default f32)' },
  repeats: { kind: 'int', description: 'timed runs per kernel (default 5)' },
};

export const benchHelp = 'dcagen bench --backend wgsl [--seq-len N] [--heads H] [--kv-heads H] [--head-dim D] [--chunk-size C --local-window W] [--repeats R]';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function benchCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlags(argv, flags, 'bench');
  const backend = parsed.string('backend') ?? 'wgsl';
  const seqLen = parsed.number('seq-len') ?? 1024;
  const batch = parsed.number('batch') ?? 1;
  const heads = parsed.number('heads') ?? 4;
  const kvHeads = parsed.number('kv-heads') ?? 1;
  const headDim = parsed.number('head-dim') ?? 64;
  const repeats = parsed.number('repeats') ?? 5;
  const dtype = (parsed.string('dtype') ?? 'f32') as 'f32' | 'f16';
  if (seqLen < 1 || heads < 1 || kvHeads < 1 || heads % kvHeads !== 0 || repeats < 1) throw new UsageError('shape flags must be positive and heads a multiple of kv-heads');
  const chunkSize = parsed.number('chunk-size') ?? Math.max(2, Math.floor((3 * seqLen) / 8));
  const localWindow = parsed.number('local-window') ?? Math.floor(seqLen / 16);
  const dcaPattern = compilePattern(dca, { chunkSize, localWindow });
  const causalPattern = compilePattern(causal, {});
  const q = randomTensor([batch, seqLen, heads, headDim], 1);
  const k = randomTensor([batch, seqLen, kvHeads, headDim], 2);
  const v = randomTensor([batch, seqLen, kvHeads, headDim], 3);
  const { benchWgsl } = await import('../../backends/wgsl/runner.js');
  const flops = (4 * seqLen * seqLen * headDim * heads * batch) / 2;
  const rope = { theta: 10000, style: 'half' as const };
  const runs = [
    { label: `fused dca (C=${chunkSize}, W=${localWindow})`, pattern: dcaPattern, variant: 'fused' as const },
    { label: 'causal flash (same kernel skeleton)', pattern: causalPattern, variant: 'fused' as const },
    { label: 'three-pass dca (3 kernels + merge)', pattern: dcaPattern, variant: 'three-pass' as const },
  ];
  io.stderr(`dcagen bench: ${backend}, B=${batch} S=${seqLen} Hq=${heads} Hk=${kvHeads} D=${headDim} ${dtype}, ${repeats} timed runs each, interleaved, after a warm-up`);
  const { times, adapter } = await benchWgsl({ q, k, v, rope, dtype }, runs, repeats);
  const medians = times.map(median);
  runs.forEach((run, n) => {
    const ms = medians[n]!;
    io.stdout(`${run.label.padEnd(40)} ${ms.toFixed(2).padStart(10)} ms  ${(flops / (ms * 1e-3) / 1e12).toExponential(3)} TFLOP/s`);
  });
  const [fused, plain, threePass] = medians as [number, number, number];
  io.stdout(`adapter: ${adapter}`);
  io.stdout(`DCA / causal        = ${(fused / plain).toFixed(3)}  (goal ≤ 1.10)`);
  io.stdout(`three-pass / fused  = ${(threePass / fused).toFixed(3)}  (goal ≥ 1.3)`);
  return 0;
}
