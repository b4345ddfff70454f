// What every backend's emitter produces and how kernel sets are named and cached: a kernel set is
// the files emitted for one pattern, configuration and variant, named after them.

import type { CompiledPattern } from '../dsl/instantiate.js';
import { quoteName } from '../dsl/names.js';
import { ConfigurationError } from '../errors.js';
import type { KernelConfig } from '../plan/kernel-plan.js';
import type { KernelVariant } from '../plan/passes.js';

export type { KernelVariant } from '../plan/passes.js';

export interface EmittedFile {
  /** File name relative to the output folder. */
  readonly name: string;
  readonly contents: string;
}

/**
 * Emitted file names: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit
 * (so never '.', '..' or a hidden file), at most 200 characters. Every file an emitter returns is
 * checked against it (emitKernels), and its base name too (kernelSetName).
 */
export const FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,199}$/;

/** Returns `name` when it is a valid emitted file name, else throws a ConfigurationError (exit 2). */
export function checkFileName(name: string): string {
  if (!FILE_NAME.test(name)) {
    throw new ConfigurationError(`refusing to emit a file named ${quoteName(name)}: file names are [a-z0-9._-], at most 200 characters`);
  }
  return name;
}

export function kernelSetName(pattern: CompiledPattern, config: KernelConfig, variant: KernelVariant): string {
  const params = Object.keys(pattern.definition.params).map((name) => `${name[0]}${name.replace(/[a-z0-9]/g, '')}`.toLowerCase() + String(pattern.params[name]));
  const parts = [pattern.name, ...params, `d${config.headDim}`, config.dtype];
  if (config.ropeStyle === 'interleaved') parts.push('interleaved');
  if (config.rotaryDim !== undefined && config.rotaryDim !== config.headDim) parts.push(`r${config.rotaryDim}`);
  if (config.preRotatedKeys) parts.push('prerotated');
  if (variant === 'three-pass') parts.push('three-pass');
  // Pattern and parameter names are identifiers (src/dsl/names.ts), so this holds; checked anyway.
  return checkFileName(parts.join('-'));
}

