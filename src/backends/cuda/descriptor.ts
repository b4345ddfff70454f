// The CUDA backend: a self-contained .cu with a C ABI and a PyTorch module, built by nvcc (or run
// on the CPU emulation).

import type { BackendDescriptor } from '../descriptor.js';
import { cFamily } from '../expr-render.js';
import { cudaText } from '../text.js';
import { cudaKernelConfig, emitCuda } from './emit.js';

export const cudaBackend: BackendDescriptor = {
  name: 'cuda',
  title: 'CUDA (nvcc; CPU emulation with --emulate)',
  dtypes: ['f32', 'bf16', 'f16'],
  verifyHeadDims: [64, 128, 72],
  // Calls with at most 16 query rows run the split-K decode kernel, paged or contiguous (K/V
  // addressing is a compile-time form of it); packed rows (cu_seqlens_q) run it over the paged cache.
  kinds: ['prefill', 'three-pass', 'decode', 'paged', 'varlen', 'cache-append'],
  splitsPrefill: false,
  kernelConfig: cudaKernelConfig,
  expressionLanguage: cFamily,
  text: cudaText,
  emit: (r) => {
    const set = emitCuda(r.pattern, cudaKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  },
  run: async () => (await import('./runner.js')).runCudaAttention,
  runPaged: async () => (await import('./runner.js')).runCudaPagedAttention,
  appendToCache: async () => (await import('./runner.js')).runCudaCacheAppend,
};
