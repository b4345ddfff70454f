// What a kernel backend is, in one record: its name, what it can build (storage types, head dims,
// kernel kinds), its defaults, the expression language and text escapers its renderer uses, how it
// emits files and how it runs each kind. Code that asks "what can this backend do" asks here.

import type { CacheAppendRunner, BackendRunner, PagedBackendRunner } from '../execute.js';
import type { KernelConfig } from '../plan/kernel-plan.js';
import type { KernelKind } from '../plan/passes.js';
import type { StorageDType } from '../reference/precision.js';
import type { ExprLanguage } from './expr-render.js';
import type { EmitRequest, EmitResult } from './emit-request.js';
import type { TextEscaper } from './text.js';

export type { KernelKind } from '../plan/passes.js';

export type KernelBackendName = 'wgsl' | 'cuda' | 'metal';

export interface BackendDescriptor {
  readonly name: KernelBackendName;
  /** The kernel language and its runtime, for messages. */
  readonly title: string;
  /** Storage precisions of q, k, v, out. */
  readonly dtypes: readonly StorageDType[];
  /** Head dims `dcagen verify` draws (the kernels accept more: any multiple of 4 up to 256 where noted). */
  readonly verifyHeadDims: readonly number[];
  readonly kinds: readonly KernelKind[];
  /** Whether a call may force the number of key splits (kernels that split keys across workgroups). */
  readonly splitsPrefill: boolean;
  /** The default kernel configuration (tiles) for a head dim and storage type. */
  readonly kernelConfig: (partial: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>) => KernelConfig;
  /** How plan expressions are spelled in the kernel language. */
  readonly expressionLanguage: ExprLanguage;
  /** How free text reaches the kernel source: comments (and string literals where the language has them). */
  readonly text: TextEscaper;
  readonly emit: (request: EmitRequest) => EmitResult;
  /** The runners, imported when first used (they pull in Node-only process and file code). */
  readonly run: () => Promise<BackendRunner>;
  readonly runPaged?: () => Promise<PagedBackendRunner>;
  readonly appendToCache?: () => Promise<CacheAppendRunner>;
}
