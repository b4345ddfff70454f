// The canonical kernels committed under generated/: Llama-2 4k ChunkLlama defaults, the Qwen2.5-1M
// config and plain causal, at head dim 128, per backend. `dcagen generate` rewrites them; a test
// fails when the committed files drift from what the compiler emits.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { emitKernels, emitterNames, type EmittedFile } from './backends/index.js';
import { compilePattern } from './dsl/instantiate.js';
import type { KernelDType } from './plan/kernel-plan.js';
import { causal, dca } from './patterns/index.js';

export interface CanonicalConfig {
  readonly label: string;
  readonly build: () => ReturnType<typeof compilePattern>;
}

export const canonicalConfigs: readonly CanonicalConfig[] = [
  { label: 'Llama-2 4k, ChunkLlama defaults (C=3072, W=512)', build: () => compilePattern(dca, dca.presets!['pretrainingLength']!.expand(4096)) },
  { label: 'Qwen2.5-7B/14B-Instruct-1M (chunk_size 262144, local_size 8192)', build: () => compilePattern(dca, { chunkSize: 262144, localWindow: 8192 }) },
  { label: 'plain causal', build: () => compilePattern(causal, {}) },
];

const DTYPES: Record<string, readonly KernelDType[]> = { wgsl: ['f32', 'f16'], cuda: ['bf16', 'f16', 'f32'], metal: ['f32', 'f16'] };

/** Every canonical file, by path relative to generated/. */
export function canonicalFiles(): Array<{ path: string; contents: string }> {
  const out: Array<{ path: string; contents: string }> = [];
  for (const backend of emitterNames()) {
    for (const config of canonicalConfigs) {
      for (const dtype of DTYPES[backend] ?? ['f32']) {
        const result = emitKernels(backend, {
          pattern: config.build(),
          config: { headDim: 128, dtype },
          variant: 'fused',
          command: 'npx dcagen generate',
        });
        out.push(...result.files.map((f: EmittedFile) => ({ path: join(backend, f.name), contents: f.contents })));
      }
    }
  }
  return out;
}

/** Paths whose committed contents differ from the compiler's output (missing files included). */
export async function generatedDrift(root: string): Promise<string[]> {
  const drifted: string[] = [];
  for (const f of canonicalFiles()) {
    const onDisk = await readFile(join(root, f.path), 'utf8').catch(() => undefined);
    if (onDisk !== f.contents) drifted.push(f.path);
  }
  return drifted;
}
