// What every backend's emitter takes and returns: pattern + kernel configuration in, files out.

import type { CompiledPattern } from '../dsl/instantiate.js';
import type { KernelConfig } from '../plan/kernel-plan.js';
import type { EmittedFile, KernelVariant } from './kernel-set.js';

export interface EmitRequest {
  readonly pattern: CompiledPattern;
  readonly config: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>;
  readonly variant: KernelVariant;
  /** The command line that regenerates the files, for their headers. */
  readonly command: string;
}

export interface EmitResult {
  readonly name: string;
  readonly files: readonly EmittedFile[];
}
