// Emits a WGSL kernel set: the .wgsl shaders plus a self-contained ES-module launcher (and its
// .d.ts). Variants: `fused` (one pass over all regions; what dcagen is for) and `three-pass` (one
// kernel per region plus an LSE merge, the ChunkLlama approach, kept as a benchmark baseline). A
// fused set also carries the split-K decode kernel (two modules: with and without subgroup
// operations), which the launcher runs for calls with few query rows.

import { kebab, type CompiledPattern } from '../../dsl/instantiate.js';
import { planKernel, type KernelConfig, type KernelPlan, type KvLayout } from '../../plan/kernel-plan.js';
import { DECODE_MAX_QUERIES, kernelPasses } from '../../plan/passes.js';
import { kernelSetName, type EmittedFile, type KernelVariant } from '../kernel-set.js';
import { renderTemplate } from '../template.js';
import { jsonForJs, jsText, tsText, wgslText } from '../text.js';
import { decodeLayout } from './decode-layout.js';
import { decodeMaxLaneKeys, maxSplitKeys } from './invocation-bound.js';
import { renderAttentionWgsl, renderCacheAppendWgsl, renderDecodeWgsl, renderMergeWgsl } from './render.js';

export interface WgslEmitOptions {
  readonly variant?: KernelVariant;
  /** The command that regenerates these files, written into their headers. */
  readonly command?: string;
  /** Base name of the files (default derived from pattern, parameters, head dim, dtype). */
  readonly name?: string;
}

export interface WgslKernelSet {
  readonly name: string;
  readonly plan: KernelPlan;
  readonly files: readonly EmittedFile[];
  /** The launcher module's file name. */
  readonly launcher: string;
}

/** Largest power-of-two key tile whose K and V tiles fit in 16 KiB of workgroup memory (max 32). */
export function defaultBlockK(headDim: number): number {
  let blockK = 32;
  while (blockK > 1 && blockK * headDim * 4 * 2 > 16384) blockK /= 2;
  return blockK;
}

export function wgslKernelConfig(partial: Partial<KernelConfig> & Pick<KernelConfig, 'headDim' | 'dtype'>): KernelConfig {
  return {
    ropeStyle: 'half',
    blockQ: 64,
    blockK: defaultBlockK(partial.headDim),
    preRotatedKeys: false,
    ...partial,
  };
}


export function emitWgsl(pattern: CompiledPattern, config: KernelConfig, options: WgslEmitOptions = {}): WgslKernelSet {
  const variant = options.variant ?? 'fused';
  const plan = planKernel(pattern, config);
  const name = options.name ?? kernelSetName(pattern, config, variant);
  const command = options.command ?? `dcagen emit --backend wgsl --pattern ${pattern.name} …`;
  // Free text enters the shaders' comments here (titles are made of names, escaped all the same).
  const wgslCommand = wgslText.comment(command);
  const entry = name.replace(/[^A-Za-z0-9]/g, '_');
  // Every set ends with the merge kernel: it combines key splits (and, for three-pass, the passes).
  const kernels: Array<{ label: string; entryPoint: string; kind: 'attention' | 'decode' | 'merge' | 'cache-append'; layout: KvLayout; directOutput: boolean; subgroups: boolean; file: string; source: string }> = [];
  if (variant === 'fused') {
    // Prefill and decode for contiguous K/V (createAttention) and for a paged KV cache (createPagedAttention).
    for (const layout of ['contiguous', 'paged'] as const) {
      const layoutPlan = layout === 'contiguous' ? plan : planKernel(pattern, { ...config, kvLayout: 'paged', preRotatedKeys: false });
      const suffix = layout === 'contiguous' ? '' : '-paged';
      const what = layout === 'contiguous' ? '' : ' over a paged KV cache';
      kernels.push({
        label: `${name}${suffix}`, entryPoint: `${entry}${suffix.replace('-', '_')}`, kind: 'attention', layout, directOutput: true, subgroups: false, file: `${name}${suffix}.wgsl`,
        source: renderAttentionWgsl(layoutPlan, { title: wgslText.comment(`${name}${suffix}: fused ${pattern.name} flash attention${what}`), command: wgslCommand, entryPoint: `${entry}${suffix.replace('-', '_')}`, passIndex: 0, directOutput: true }),
      });
      const decode = decodeLayout(layoutPlan);
      if (decode === undefined) continue;
      for (const subgroups of [false, true]) {
        const label = `${name}${suffix}-decode${subgroups ? '-subgroups' : ''}`;
        const entryPoint = `${entry}${suffix.replace('-', '_')}_decode`;
        kernels.push({
          label, entryPoint, kind: 'decode', layout, directOutput: true, subgroups, file: `${label}.wgsl`,
          source: renderDecodeWgsl(layoutPlan, decode, {
            title: wgslText.comment(`${label}: split-K ${pattern.name} decode${what}${subgroups ? ', lanes combined with subgroup operations' : ''}`),
            command: wgslCommand, entryPoint, subgroups,
          }),
        });
      }
    }
  } else {
    for (const pass of kernelPasses(plan, variant)) {
      if (pass.role !== 'region-partial') continue;  // the merge kernel follows for both variants
      const region = pass.region;
      const regionPlan = planKernel(pattern, config, [region.name]);
      const label = `${name}-${kebab(region.ident)}`;  // file names are lower-case
      kernels.push({
        label, entryPoint: `${entry}_${region.ident}`, kind: 'attention', layout: 'contiguous', directOutput: false, subgroups: false, file: `${label}.wgsl`,
        source: renderAttentionWgsl(regionPlan, { title: wgslText.comment(`${label}: region ${region.name} alone (three-pass baseline, pass ${pass.slot + 1})`), command: wgslCommand, entryPoint: `${entry}_${region.ident}`, passIndex: pass.slot, directOutput: false }),
      });
    }
  }
  const passes = variant === 'fused' ? 'key splits (prefill or decode)' : `${plan.regions.length} region passes × key splits`;
  kernels.push({
    label: `${name}-merge`, entryPoint: `${entry}_merge`, kind: 'merge', layout: 'contiguous', directOutput: false, subgroups: false, file: `${name}-merge.wgsl`,
    source: renderMergeWgsl(plan, wgslText.comment(`${name}-merge: log-sum-exp merge of the partials of ${passes}`), wgslCommand, `${entry}_merge`),
  });
  // The cache write, for patterns whose keys sit at one position in every region (a rotated cache).
  if (variant === 'fused' && plan.regions.every((r) => r.sharesKeyPosition)) {
    kernels.push({
      label: `${name}-cache-append`, entryPoint: `${entry}_cache_append`, kind: 'cache-append', layout: 'paged', directOutput: false, subgroups: false, file: `${name}-cache-append.wgsl`,
      source: renderCacheAppendWgsl(plan, wgslText.comment(`${name}-cache-append: new keys rotated at the ${pattern.name} key position into a paged KV cache`), wgslCommand, `${entry}_cache_append`),
    });
  }
  const decode = variant === 'fused' ? decodeLayout(plan) : undefined;
  const launcherConfig = {
    name,
    variant,
    pattern: pattern.name,
    params: pattern.params,
    headDim: config.headDim,
    dtype: config.dtype,
    blockQ: config.blockQ,
    blockK: config.blockK,
    maxSplitKeys: maxSplitKeys(plan),
    preRotatedKeys: config.preRotatedKeys,
    // The decode kernel's layout: rows per workgroup at most, and the keys one lane may walk on
    // loop-capped adapters (null: this set has no decode kernel).
    decode: decode === undefined ? null : { workgroup: decode.workgroup, maxRows: decode.maxRows, maxLaneKeys: decodeMaxLaneKeys(plan) },
    rope: { style: plan.rope.style, rotaryDim: plan.rope.rotaryDim, pairs: plan.rope.pairs, fineBits: plan.rope.fineBits, ...(plan.rope.positionLimit !== undefined ? { positionLimit: plan.rope.positionLimit } : {}) },
  };
  const title = `${name}: WebGPU launcher for ${variant === 'fused' ? 'the fused' : 'the three-pass'} ${pattern.name} attention kernel${variant === 'fused' ? '' : 's'}`;
  const launcher = renderTemplate('wgsl', 'launcher.js', {
    title: jsText.comment(title),
    command: jsText.comment(command),
    config: jsonForJs(launcherConfig, 2),
    decodeMaxQueries: DECODE_MAX_QUERIES,
    kernels: `[\n${kernels.map((k) => `  { label: ${jsText.stringLiteral(k.label)}, entryPoint: ${jsText.stringLiteral(k.entryPoint)}, kind: ${jsText.stringLiteral(k.kind)}, layout: ${jsText.stringLiteral(k.layout)}, directOutput: ${k.directOutput}, subgroups: ${k.subgroups}, source: ${jsText.stringLiteral(k.source)} },`).join('\n')}\n]`,
  });
  const declaration = renderTemplate('wgsl', 'launcher.d.ts', {
    title: tsText.comment(title),
    configType: `{\n  readonly name: string;\n  readonly variant: 'fused' | 'three-pass';\n  readonly pattern: string;\n  readonly params: Readonly<Record<string, number>>;\n  readonly headDim: number;\n  readonly dtype: 'f32' | 'f16';\n  readonly blockQ: number;\n  readonly blockK: number;\n  /** Most keys one invocation may walk on loop-capped adapters (llvmpipe). */\n  readonly maxSplitKeys: number;\n  readonly preRotatedKeys: boolean;\n  /** The decode kernel: invocations per workgroup, rows per workgroup at most, keys one lane may walk on loop-capped adapters; null when the set has none. */\n  readonly decode: { readonly workgroup: number; readonly maxRows: number; readonly maxLaneKeys: number } | null;\n  readonly rope: { readonly style: 'half' | 'interleaved'; readonly rotaryDim: number; readonly pairs: number; readonly fineBits: number; readonly positionLimit?: number };\n}`,
  });
  return {
    name,
    plan,
    launcher: `${name}.js`,
    files: [...kernels.map((k) => ({ name: k.file, contents: k.source })), { name: `${name}.js`, contents: launcher }, { name: `${name}.d.ts`, contents: declaration }],
  };
}

export type { EmittedFile, KernelVariant };
