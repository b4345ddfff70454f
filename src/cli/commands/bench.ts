// `dcagen bench`: fused DCA vs plain causal vs the three-pass baseline on one shape. Median time
// over repeats, TFLOP/s by FlashAttention's convention (4·Sq·Sk·D·Hq·B, halved for causal), and the
// two ratios that matter: DCA / causal (the price of DCA) and three-pass / fused (what fusing saves).
// With --decode: few query rows against a long context, the split-K decode kernel vs the prefill
// kernel on the same inputs, and the effective K/V bandwidth. A benchmark, not a test: nothing here
// asserts a speed.

import { UsageError } from '../../errors.js';
import { compilePattern } from '../../dsl/instantiate.js';
import { dca, causal } from '../../patterns/index.js';
import { randomTensor } from '../../verify/cases.js';
import { parseFlags, type FlagSpec } from '../args.js';
import type { CommandIo } from './io.js';

export const benchFlags: Record<string, FlagSpec> = {
  backend: { kind: 'string', choices: ['wgsl'], default: 'wgsl', description: 'backend to time (the CUDA benchmark runs on a GPU machine: bench/cuda-h200.sh)' },
  'seq-len': { kind: 'int', default: 1024, description: 'Sq = Sk' },
  batch: { kind: 'int', default: 1, description: 'batch' },
  heads: { kind: 'int', default: 4, description: 'query heads' },
  'kv-heads': { kind: 'int', default: 1, description: 'key/value heads' },
  'head-dim': { kind: 'int', default: 64, description: 'head dim' },
  'chunk-size': { kind: 'int', defaultText: '⌊3·seq-len/8⌋, at least 2', description: 'DCA chunk size C' },
  'local-window': { kind: 'int', defaultText: '⌊seq-len/16⌋', description: 'DCA local window W' },
  dtype: { kind: 'string', choices: ['f32', 'f16'], default: 'f32', description: 'storage precision' },
  repeats: { kind: 'int', default: 5, description: 'timed runs per kernel' },
  decode: { kind: 'boolean', description: 'time decode: --queries rows over --seq-len keys, the decode kernel vs the prefill kernel' },
  queries: { kind: 'int', default: 1, description: 'query rows with --decode (at most 16)' },
};

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function benchCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseFlags(argv, benchFlags, 'bench');
  const backend = parsed.requireString('backend');
  const seqLen = parsed.requireNumber('seq-len');
  const batch = parsed.requireNumber('batch');
  const heads = parsed.requireNumber('heads');
  const kvHeads = parsed.requireNumber('kv-heads');
  const headDim = parsed.requireNumber('head-dim');
  const repeats = parsed.requireNumber('repeats');
  const dtype = parsed.requireString('dtype') as 'f32' | 'f16';
  if (seqLen < 1 || heads < 1 || kvHeads < 1 || heads % kvHeads !== 0 || repeats < 1) throw new UsageError('shape flags must be positive and heads a multiple of kv-heads');
  const chunkSize = parsed.number('chunk-size') ?? Math.max(2, Math.floor((3 * seqLen) / 8));
  const localWindow = parsed.number('local-window') ?? Math.floor(seqLen / 16);
  const dcaPattern = compilePattern(dca, { chunkSize, localWindow });
  if (parsed.boolean('decode')) {
    return benchDecode(io, { backend, seqLen, batch, heads, kvHeads, headDim, repeats, dtype, queries: parsed.requireNumber('queries'), pattern: dcaPattern, chunkSize, localWindow });
  }
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

interface DecodeBench {
  readonly backend: string;
  readonly seqLen: number;
  readonly batch: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly repeats: number;
  readonly dtype: 'f32' | 'f16';
  readonly queries: number;
  readonly pattern: ReturnType<typeof compilePattern>;
  readonly chunkSize: number;
  readonly localWindow: number;
}

/** Decode: the split-K decode kernel and the prefill kernel on the same inputs, interleaved. */
async function benchDecode(io: CommandIo, b: DecodeBench): Promise<number> {
  if (b.queries < 1 || b.queries > 16 || b.queries > b.seqLen) throw new UsageError('--queries must be in [1, 16] and at most --seq-len');
  const q = randomTensor([b.batch, b.queries, b.heads, b.headDim], 1);
  const k = randomTensor([b.batch, b.seqLen, b.kvHeads, b.headDim], 2);
  const v = randomTensor([b.batch, b.seqLen, b.kvHeads, b.headDim], 3);
  const { benchWgsl } = await import('../../backends/wgsl/runner.js');
  const entries = [
    { pattern: b.pattern, variant: 'fused' as const, kind: 'decode' as const },
    { pattern: b.pattern, variant: 'fused' as const, kind: 'prefill' as const },
  ];
  io.stderr(`dcagen bench --decode: ${b.backend}, B=${b.batch} Sq=${b.queries} Sk=${b.seqLen} Hq=${b.heads} Hk=${b.kvHeads} D=${b.headDim} ${b.dtype}, DCA C=${b.chunkSize} W=${b.localWindow}, ${b.repeats} timed runs each, interleaved, after a warm-up`);
  const { times, adapter } = await benchWgsl({ q, k, v, rope: { theta: 10000, style: 'half' }, dtype: b.dtype }, entries, b.repeats);
  const [decode, prefill] = times.map(median) as [number, number];
  // Bytes of K and V one call reads at least once: what bounds decode.
  const kvBytes = 2 * b.batch * b.seqLen * b.kvHeads * b.headDim * (b.dtype === 'f16' ? 2 : 4);
  for (const [label, ms] of [['decode kernel (split-K)', decode], ['prefill kernel', prefill]] as const) {
    io.stdout(`${label.padEnd(40)} ${ms.toFixed(2).padStart(10)} ms  ${(kvBytes / (ms * 1e-3) / 1e9).toFixed(2)} GB/s of K/V`);
  }
  io.stdout(`adapter: ${adapter}`);
  io.stdout(`prefill / decode    = ${(prefill / decode).toFixed(3)}  (goal ≥ 3)`);
  return 0;
}
