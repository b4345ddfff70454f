// The Metal backend: a .metal with a Swift host program and an MLX module (xcrun metal on macOS,
// the CPU emulation elsewhere).

import type { BackendDescriptor } from '../descriptor.js';
import { cFamily } from '../expr-render.js';
import { metalText } from '../text.js';
import { emitMetal, metalKernelConfig } from './emit.js';

export const metalBackend: BackendDescriptor = {
  name: 'metal',
  title: 'Metal (xcrun metal on macOS; CPU emulation with --emulate)',
  dtypes: ['f32', 'f16'],
  verifyHeadDims: [64, 128],
  // Split-K decode runs for calls with few query rows, contiguous or paged (one kernel body, K/V
  // addressing a compile-time form); paged calls may pack query rows by cu_seqlens_q (varlen).
  kinds: ['prefill', 'three-pass', 'decode', 'paged', 'varlen', 'cache-append'],
  splitsPrefill: false,
  kernelConfig: metalKernelConfig,
  expressionLanguage: cFamily,
  text: metalText,
  emit: (r) => {
    const set = emitMetal(r.pattern, metalKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  },
  run: async () => (await import('./runner.js')).runMetalAttention,
  runPaged: async () => (await import('./runner.js')).runMetalPagedAttention,
  appendToCache: async () => (await import('./runner.js')).runMetalCacheAppend,
};
