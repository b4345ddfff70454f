// Prepares the kernels bench/cuda_h200_decode.py needs on a GPU machine without Node: the Qwen2.5-1M
// DCA set (chunk 262144, window 8192), bf16, head dim 128, with a pre-rotated cache (keys written
// rotated once by append_to_cache, as a serving engine stores them). Its PyTorch module offers
// dca_attention (split-K decode for Sq <= 16, the tensor-core prefill kernel above) and
// paged_attention. Run by bench/prepare-cuda.mjs (or alone, after `npm run build`); writes
// bench/out/cuda-decode.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { emitCuda, cudaKernelConfig } from '../dist/src/backends/cuda/emit.js';
import { compilePattern } from '../dist/src/dsl/instantiate.js';
import { builtinPattern } from '../dist/src/patterns/index.js';

const out = join(import.meta.dirname, 'out', 'cuda-decode');
const kernels = join(out, 'kernels');
await mkdir(kernels, { recursive: true });
const params = { chunkSize: 262144, localWindow: 8192 };
const set = emitCuda(compilePattern(builtinPattern('dca'), params), cudaKernelConfig({ headDim: 128, dtype: 'bf16', preRotatedKeys: true }), {
  variant: 'fused',
  command: 'node bench/prepare-cuda-decode.mjs',
});
for (const f of set.files) await writeFile(join(kernels, f.name), f.contents);
const module = set.files.find((f) => f.name.endsWith('.py')).name.replace(/\.py$/, '');
await writeFile(join(out, 'manifest.json'), JSON.stringify({ module, name: set.name, params: { chunk_size: params.chunkSize, local_window: params.localWindow } }, null, 2));
console.log(`prepared ${set.name} in ${out}`);
