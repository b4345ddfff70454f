// Renders the Swift host program of a Metal kernel set (templates/metal/host.swift): it loads the
// .metallib, binds the buffers, dispatches the attention passes or the split-K decode over contiguous
// keys (runtime/metal/harness.cpp's argument protocol) — or the serving kernels (paged attention,
// varlen included, and the cache append, with the argument protocol of runtime/metal/serving_harness.cpp)
// — for one shape and reads/writes raw files. `dcagen run --backend metal` builds and runs it on macOS.

import type { KernelPlan } from '../../plan/kernel-plan.js';
import { workspaceFloatsPerRow } from '../../plan/passes.js';
import { renderTemplate } from '../template.js';
import { swiftText } from '../text.js';
import type { KernelVariant } from '../kernel-set.js';
import type { MetalPass } from './render.js';
import { DECODE_MAX_QUERIES, MIN_SPLIT_KEYS, TARGET_THREADGROUPS, type MetalServing } from './serving.js';

export interface SwiftHostOptions {
  readonly name: string;
  readonly fileName: string;
  readonly swiftFile: string;
  readonly command: string;
  readonly passes: readonly MetalPass[];
  readonly threads: number;
  readonly variant: KernelVariant;
  readonly serving?: MetalServing;
}

export function renderSwiftHost(plan: KernelPlan, options: SwiftHostOptions): string {
  const c = plan.config;
  const serving = options.serving;
  const roles: Array<[string, string | undefined]> = serving === undefined ? [] : [
    ['cache_append', serving.cacheAppend], ['paged_decode', serving.decode], ['paged_merge', serving.merge], ['paged_prefill', serving.prefill],
    ['decode', serving.contiguousDecode], ['decode_merge', serving.contiguousMerge],
  ];
  const servingKernels = roles.filter((r): r is [string, string] => r[1] !== undefined);
  return renderTemplate('metal', 'host.swift', {
    title: swiftText.comment(`${options.name}: Swift host for the ${options.variant} ${plan.pattern.name} Metal kernel${options.passes.length > 1 ? 's' : ''}`),
    command: swiftText.comment(options.command),
    fileName: options.fileName,
    swiftFile: options.swiftFile,
    name: options.name,
    kernelList: options.passes.map((p) => p.kernel).join(', '),
    kernelNames: options.passes.map((p) => JSON.stringify(p.kernel)).join(', '),
    headDim: c.headDim,
    elementName: c.dtype === 'f32' ? 'float32' : c.dtype === 'f16' ? 'float16' : 'bfloat16',
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    positionLimit: plan.rope.positionLimit ?? -1,
    blockQ: c.blockQ,
    threads: options.threads,
    elementBytes: c.dtype === 'f32' ? 4 : 2,
    workspaceFloats: workspaceFloatsPerRow(plan, options.variant),
    servingSummary: servingKernels.length === 0
      ? 'No serving kernels: the fused kernel set of the pattern has them (modes paged and append).'
      : `Serving kernels: ${servingKernels.map(([, name]) => name).join(', ')}.`,
    servingKernels: servingKernels.length === 0 ? ':' : servingKernels.map(([role, name]) => `${swiftText.stringLiteral(role)}: ${swiftText.stringLiteral(name)}`).join(', '),
    decodeMaxRows: serving?.decodeMaxRows ?? 0,
    decodeMaxQueries: DECODE_MAX_QUERIES,
    targetThreadgroups: TARGET_THREADGROUPS,
    minSplitKeys: MIN_SPLIT_KEYS,
  });
}
