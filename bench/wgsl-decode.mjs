// Decode vs prefill on the WGSL backend: one query row against a long context, the same inputs
// through the split-K decode kernel and through the prefill kernel (forced with kind: 'prefill'),
// runs interleaved in one WebGPU process after a warm-up. A benchmark, not a test.
//
//   npm run build && node bench/wgsl-decode.mjs [Sq,Sk,Hq,Hk,D,repeats]   (default 1,16384,32,8,128,7)
//
// DCA with the Llama-2 4k ChunkLlama defaults (C = 3072, W = 512), f16 storage.
import { benchWgsl } from '../dist/src/backends/wgsl/runner.js';
import { compilePattern } from '../dist/src/dsl/instantiate.js';
import { builtinPattern } from '../dist/src/patterns/index.js';
import { randomTensor } from '../dist/src/verify/cases.js';

const [queries, keys, queryHeads, keyHeads, headDim, repeats] = (process.argv[2] ?? '1,16384,32,8,128,7').split(',').map(Number);
const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 3072, localWindow: 512 });
const q = randomTensor([1, queries, queryHeads, headDim], 1);
const k = randomTensor([1, keys, keyHeads, headDim], 2);
const v = randomTensor([1, keys, keyHeads, headDim], 3);
const entries = [{ pattern, variant: 'fused', kind: 'decode' }, { pattern, variant: 'fused', kind: 'prefill' }];
const { times, kinds, adapter } = await benchWgsl({ q, k, v, rope: { theta: 10000, style: 'half' }, dtype: 'f16' }, entries, repeats);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const [decode, prefill] = times.map(median);
console.log(`adapter: ${adapter}; Sq=${queries} Sk=${keys} Hq=${queryHeads} Hk=${keyHeads} D=${headDim} f16, ${repeats} interleaved runs each`);
kinds.forEach((kind, n) => console.log(`${kind.padEnd(8)} median ${median(times[n]).toFixed(1).padStart(9)} ms   runs: ${times[n].map((t) => t.toFixed(0)).join(' ')}`));
console.log(`prefill / decode = ${(prefill / decode).toFixed(2)}  (goal ≥ 3)`);
