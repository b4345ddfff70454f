// The WGSL backend: WebGPU shaders and an ES-module launcher, run on any WebGPU adapter.

import { ConfigurationError } from '../../errors.js';
import type { BackendDescriptor } from '../descriptor.js';
import { wgslText } from '../text.js';
import { emitWgsl, wgslKernelConfig } from './emit.js';
import { wgslLanguage } from './render.js';

export const wgslBackend: BackendDescriptor = {
  name: 'wgsl',
  title: 'WGSL (WebGPU)',
  dtypes: ['f32', 'f16'],
  verifyHeadDims: [32, 64, 128],
  kinds: ['prefill', 'three-pass', 'decode', 'paged', 'varlen', 'cache-append'],
  splitsPrefill: true,
  kernelConfig: wgslKernelConfig,
  expressionLanguage: wgslLanguage,
  text: wgslText,
  emit: (r) => {
    if (r.config.dtype === 'bf16') throw new ConfigurationError('WGSL has no bfloat16 storage; use --dtype f32 or f16');
    const set = emitWgsl(r.pattern, wgslKernelConfig(r.config), { variant: r.variant, command: r.command });
    return { name: set.name, files: set.files };
  },
  run: async () => (await import('./runner.js')).runWgslAttention,
  runPaged: async () => (await import('./runner.js')).runWgslPagedAttention,
  appendToCache: async () => (await import('./runner.js')).runWgslCacheAppend,
};
