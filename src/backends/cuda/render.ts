// The CUDA renderer: the kernel plan rendered into one self-contained .cu (plus its C header)
// through templates/cuda. 16-bit storage gets the tensor-core skeleton (mma.sync, ldmatrix,
// cp.async); f32 gets the SIMT skeleton. Regions become small structs of static functions that
// the fixed skeleton calls, FlexAttention-style; all region logic comes from the plan. Fused sets add
// the serving kernels (templates/cuda/serving.cu, cache_append.cu): the same region structs drive
// the paged kernel, and one merge kernel (merge.cu) combines key splits and three-pass partials.

import type { KernelPlan, RegionPlan } from '../../plan/kernel-plan.js';
import { workspaceFloatsPerRow } from '../../plan/passes.js';
import { cFamily, planNames, renderExpr } from '../expr-render.js';
import { loadTemplate, renderTemplate } from '../template.js';
import { cText } from '../text.js';

/** Renders an expression in C syntax (shared with the Metal renderer). */
export function cExpr(plan: KernelPlan, e: Parameters<typeof renderExpr>[0]): string {
  return renderExpr(e, cFamily, planNames(plan));
}

/** One struct per region: the functions the skeleton calls. `qualifier` is `__device__` or Metal's empty. */
export function regionStruct(plan: KernelPlan, r: RegionPlan, qualifier: string): string {
  const fn = (ret: string, name: string, args: string, body: string): string => `  ${qualifier}${qualifier ? ' ' : ''}static ${ret} ${name}(${args}) { return ${body}; }`;
  return [
    `// Region ${r.name}: ${cText.comment(r.summary)}.`,
    `struct Region_${r.ident} {`,
    fn('int', 'query_position', 'int i', cExpr(plan, r.queryPosition)),
    fn('int', 'key_position', 'int j', cExpr(plan, r.keyPosition)),
    `  // First and last key a query tile [row_first, row_last] visits in this region.`,
    fn('int', 'key_begin', 'int row_first', cExpr(plan, r.tileKeyBegin)),
    fn('int', 'key_end', 'int row_last', cExpr(plan, r.tileKeyEnd)),
    `  // True when key tile [key_tile, key_tile + BLOCK_K) lies inside the region for every row: no element mask.`,
    fn('bool', 'unmasked', 'int row_first, int row_last, int key_tile', cExpr(plan, r.tileUnmasked)),
    fn('bool', 'visible', 'int i, int j', cExpr(plan, r.elementVisible)),
    ...(qualifier === '__device__'
      ? [
        `  // True when visible(i, j) is key_begin(i) <= j <= key_end(i): an edge tile masks each row by its key range.`,
        `  static constexpr bool ROW_INTERVAL = ${rowInterval(r) ? 'true' : 'false'};`,
      ]
      : []),
    '};',
  ].join('\n');
}

/**
 * Whether a region's element mask is its per-row key interval: the plan can prove some of its tiles
 * unmasked only then (a region with a custom pair test has tileUnmasked folded to false).
 */
function rowInterval(r: RegionPlan): boolean {
  return !(r.tileUnmasked.kind === 'bool' && !r.tileUnmasked.value);
}

/** Rotation partner, frequency and sign of dimension d, and the first dimension of a pair. */
export function cRopeLayout(plan: KernelPlan, qualifier: string): string {
  const q = qualifier ? `${qualifier} ` : '';
  if (plan.rope.style === 'half') {
    return [
      `${q}inline int rope_pair(int d) { return d % ROPE_PAIRS; }`,
      `${q}inline int rope_partner(int d) { return d < ROPE_PAIRS ? d + ROPE_PAIRS : d - ROPE_PAIRS; }`,
      `${q}inline float rope_sign(int d) { return d < ROPE_PAIRS ? -1.f : 1.f; }`,
      `${q}inline int rope_first(int pair) { return pair; }`,
    ].join('\n');
  }
  return [
    `${q}inline int rope_pair(int d) { return d / 2; }`,
    `${q}inline int rope_partner(int d) { return d ^ 1; }`,
    `${q}inline float rope_sign(int d) { return (d & 1) == 0 ? -1.f : 1.f; }`,
    `${q}inline int rope_first(int pair) { return 2 * pair; }`,
  ].join('\n');
}

export function patternConstants(plan: KernelPlan, declare: (name: string) => string): string {
  if (plan.constants.length === 0) return '// (none)';
  return plan.constants.map((k) => `${declare(k.name)} = ${k.value};  // ${cText.comment(k.doc)}`).join('\n');
}

export interface CudaKernelSetOptions {
  readonly title: string;
  readonly command: string;
  readonly fileName: string;
  readonly headerName: string;
  /** C identifier prefix of the exported functions, also the namespace. */
  readonly prefix: string;
  readonly variant: 'fused' | 'three-pass';
}

/** Whether the tensor-core skeleton covers this configuration (else the SIMT skeleton runs it). */
export function tensorCoresFit(dtype: KernelPlan['config']['dtype'], headDim: number): boolean {
  // Power-of-two head dims only: the XOR swizzle keeps a row's 16-byte chunks inside the row only
  // when their count is a power of two.
  return dtype !== 'f32' && (headDim === 32 || headDim === 64 || headDim === 128 || headDim === 256);
}

export function usesTensorCores(plan: KernelPlan): boolean {
  return tensorCoresFit(plan.config.dtype, plan.config.headDim);
}

export function cudaThreads(plan: KernelPlan): number {
  return usesTensorCores(plan) ? 128 : plan.config.blockQ * 4;
}

/** Bytes the kernel loads q, k and v in at a time (cp.async's 16-byte chunks on tensor cores, else one
 *  element): the launcher and the PyTorch module require pointers and used strides to be multiples. */
export function cudaLoadBytes(plan: KernelPlan): number {
  return usesTensorCores(plan) ? 16 : plan.config.dtype === 'f32' ? 4 : 2;
}

/** Dynamic shared memory a block of the kernel uses, in bytes (must equal SMEM_ELEMENTS × the element size in the kernel). */
export function cudaSharedMemoryBytes(plan: KernelPlan): number {
  const { blockQ, blockK, headDim } = plan.config;
  // Tensor cores: Q, K and V tiles (16-bit) and the running max and sum of each thread's rows (f32).
  if (!usesTensorCores(plan)) return 2 * blockK * headDim * 4;
  const threads = cudaThreads(plan);
  const rowsPerThread = 2 * (blockQ / 16 / (threads / 32));   // 2 rows per 16-row MMA tile of a warp
  return (blockQ * headDim + 2 * blockK * headDim) * 2 + 2 * rowsPerThread * threads * 4;
}

/**
 * Whether the launcher rotates contiguous K once per call into the key workspace before attention
 * runs: every region places keys at the one shared key position, and the caller's keys are raw.
 * Patterns with a region that places keys at its own position (ReRoPE) rotate inside the key loop.
 */
export function rotatesKeysOnce(plan: KernelPlan): boolean {
  return !plan.config.preRotatedKeys && plan.regions.every((r) => r.sharesKeyPosition);
}

/** The staged key element (dim d of key j, row k_row): rotated at the region's key position, or as stored when keys arrive rotated. */
function stagedKey(plan: KernelPlan, keysArriveRotated: boolean = plan.config.preRotatedKeys): string {
  return keysArriveRotated
    ? 'to_float(k_row[d]);  // keys arrive rotated at their key position'
    : 'rotated_element(k_row, d, Region::key_position(j), rope);';
}

/** Rows (query head × query) each warp of the paged kernel scores: ROWS_PER_WARP × ⌈HEAD_DIM / 32⌉ accumulators per lane stay near 16. */
export function pagedRowsPerWarp(headDim: number): number {
  return Math.max(1, Math.min(8, Math.floor(512 / headDim)));
}

/** Rows of the paged kernel's block (PAGED_WARPS × ROWS_PER_WARP). */
export function pagedMaxRows(headDim: number): number {
  return 4 * pagedRowsPerWarp(headDim);
}

/** The serving half of a fused kernel set: cache append, paged attention (device code, host launchers, ABI notes). */
function renderServing(plan: KernelPlan, options: CudaKernelSetOptions): { device: string; host: string; abi: string } {
  const shared = plan.regions.find((r) => r.sharesKeyPosition);
  const own = plan.regions.find((r) => !r.sharesKeyPosition);
  const appendDevice = own === undefined && shared !== undefined
    ? renderTemplate('cuda', 'cache_append.cu', { keyPosition: cExpr(plan, shared.keyPosition) })
    : `// No cache append: region ${cText.comment(own?.name ?? '')} of pattern ${cText.comment(plan.pattern.name)} places keys at its own position, so the\n// cache cannot store keys rotated once (${options.prefix}_append_to_cache returns cudaErrorNotSupported).`;
  const appendLaunch = own === undefined
    ? [
      `  using namespace ${options.prefix};`,
      `  const paged::CacheAppendParams& p = *params;`,
      `  if (p.tokens < 0 || p.key_heads < 1 || p.num_blocks < 1 || p.block_size < 1) return (int)cudaErrorInvalidValue;`,
      `  if (p.tokens == 0) return 0;`,
      `  if (p.key == nullptr || p.value == nullptr || p.k_cache == nullptr || p.v_cache == nullptr || p.slot_mapping == nullptr || p.positions == nullptr || p.rope == nullptr) return (int)cudaErrorInvalidValue;`,
      `  const long long threads = (long long)p.tokens * p.key_heads * HEAD_DIM;`,
      `  DCAGEN_LAUNCH(paged::append_kernel, dim3((unsigned)((threads + paged::APPEND_THREADS - 1) / paged::APPEND_THREADS)), dim3(paged::APPEND_THREADS), 0,`,
      `                (cudaStream_t)stream_handle)(p);`,
      `  return (int)cudaGetLastError();`,
    ].join('\n')
    : [
      `  // Region ${cText.comment(own.name)} places keys at its own position: keys cannot be stored rotated once.`,
      `  (void)params;`,
      `  (void)stream_handle;`,
      `  return (int)cudaErrorNotSupported;`,
    ].join('\n');
  const keysSummary = plan.config.preRotatedKeys
    ? 'The cache holds keys rotated at their key position (by append_to_cache), carrying the Qwen key\n// factor they were written with: logits × softmax scale × s(n).'
    : 'The cache holds raw keys: rotated as they are gathered, and with Qwen\'s temperature the logits are\n// × softmax scale × s(n)² (query and key factor, as at prefill).';
  const device = renderTemplate('cuda', 'serving.cu', {
    cacheAppend: appendDevice,
    rowsPerWarp: pagedRowsPerWarp(plan.config.headDim),
    keysSummary,
    preRotatedKeys: plan.config.preRotatedKeys ? 'true' : 'false',
    // The element-wise gather sits one level deeper than the SIMT skeleton's.
    stagedKey: stagedKey(plan),
  });
  const host = renderTemplate('cuda', 'serving_launchers.cu', {
    namespace: options.prefix,
    prefix: options.prefix,
    regionList: plan.regions.map((r) => `Region_${r.ident}`).join(', '),
    appendLaunch,
  });
  const abi = [
    `//`,
    `//   Serving (paged KV cache, vLLM / FlashInfer layout; see ${options.headerName}):`,
    `//   ${options.prefix}_append_to_cache(params, stream) writes new keys and values through slot_mapping, keys`,
    `//   rotated once at the pattern's key position; ${options.prefix}_paged_attention(params, stream) runs q`,
    `//   over the cache (block table, per-sequence lengths), splitting keys across blocks when the call is`,
    `//   small (${options.prefix}_paged_splits, ${options.prefix}_paged_workspace_bytes); packed query rows of`,
    `//   different counts per sequence with cu_seqlens_q (chunked prefill / varlen). ${options.prefix}_launch runs`,
    `//   calls of at most 16 queries with the same split-K kernel over contiguous K/V (${options.prefix}_decode).`,
    ``,
  ].join('\n');
  return { device: `${device}\n`, host, abi };
}

export function renderCudaSource(plan: KernelPlan, options: CudaKernelSetOptions): string {
  const c = plan.config;
  const mma = usesTensorCores(plan);
  const storageType = c.dtype === 'bf16' ? '__nv_bfloat16' : c.dtype === 'f16' ? '__half' : 'float';
  const regionList = plan.regions.map((r) => `Region_${r.ident}`);
  const rotateOnce = rotatesKeysOnce(plan);
  const keysArriveRotated = c.preRotatedKeys || rotateOnce;
  const skeleton = mma
    ? renderTemplate('cuda', 'skeleton_mma.cu', {
      mmaEmulation: c.dtype === 'bf16' ? 'mma_m16n8k16_f32_bf16' : 'mma_m16n8k16_f32_f16',
      mmaType: c.dtype === 'bf16' ? 'bf16' : 'f16',
      packTwo: c.dtype === 'bf16'
        ? '__nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);\n  return *reinterpret_cast<uint32_t*>(&v);'
        : '__half2 v = __floats2half2_rn(lo, hi);\n  return *reinterpret_cast<uint32_t*>(&v);',
      rotateKeys: keysArriveRotated
        ? `    // Keys arrive rotated at their key position (${c.preRotatedKeys ? 'by the caller' : 'by rotate_keys_kernel'}): no rotation here.`
        : '    with_region<Regions...>(region, [&](auto tag) { rotate_keys<typename decltype(tag)::type>(sk, rope, key_tile, tid); });\n    __syncthreads();  // rotated keys visible to every warp',
    })
    : renderTemplate('cuda', 'skeleton_simt.cu', { stagedKey: stagedKey(plan, keysArriveRotated) });
  const sharedKeyRegion = plan.regions[0]!;
  const rotateDevice = rotateOnce ? `\n${renderTemplate('cuda', 'rotate_keys.cu', { regionName: cText.comment(sharedKeyRegion.name) })}` : '';
  const merge = `\n${renderTemplate('cuda', 'merge.cu', {})}`;
  // The opt-in above 48 KiB can fail (too much for this GPU): its result is checked like a launch's.
  const setAttr = (k: string): string => `  { const cudaError_t e = cudaFuncSetAttribute(${k}, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes); if (e != cudaSuccess) return (int)e; }`;
  let launchBody: string;
  // The attention kernels read `a`: the caller's parameters, with K replaced by the rotated copy
  // when the keys rotate once.
  const prologue = rotateOnce
    ? [
      `  // Keys rotated once: K at its key position into the key workspace (contiguous), read by attention.`,
      `  AttentionParams a = p;`,
      `  void* rotated = p.key_workspace;`,
      `  const size_t rotated_bytes = (size_t)p.batch * p.keys * p.key_heads * HEAD_DIM * sizeof(storage_t);  // = ${options.prefix}_key_workspace_bytes`,
      `  if (rotated == nullptr) {  // no workspace passed: a stream-ordered one for this call`,
      `    if (cudaMallocAsync(&rotated, rotated_bytes, stream) != cudaSuccess) return (int)cudaErrorMemoryAllocation;`,
      `  }`,
      `  const long long rotate_elements = (long long)p.batch * p.keys * p.key_heads * HEAD_DIM;`,
      `  DCAGEN_LAUNCH(rotate_keys_kernel<Region_${sharedKeyRegion.ident}>, dim3((unsigned)((rotate_elements + ROTATE_THREADS - 1) / ROTATE_THREADS)), dim3(ROTATE_THREADS), 0, stream)(p, (storage_t*)rotated);`,
      `  a.k = rotated;`,
      `  a.k_head_stride = HEAD_DIM;`,
      `  a.k_seq_stride = (long long)p.key_heads * HEAD_DIM;`,
      `  a.k_batch_stride = (long long)p.keys * a.k_seq_stride;`,
    ]
    : [`  const AttentionParams& a = p;  // keys ${c.preRotatedKeys ? 'arrive rotated' : 'rotate inside the key loop (a region places keys at its own position)'}`];
  const epilogue = rotateOnce
    ? [
      `  if (p.key_workspace == nullptr) {`,
      `    cudaFreeAsync(rotated, stream);`,
      `  }`,
    ]
    : [];
  if (options.variant === 'fused') {
    launchBody = [
      `  // One fused pass over the regions, in the plan's visit order.`,
      `  void (*kernel)(const AttentionParams) = attention_kernel<0, false, ${regionList.join(', ')}>;`,
      setAttr('kernel'),
      `  DCAGEN_LAUNCH(kernel, grid, dim3(THREADS), smem_bytes, stream)(a);`,
    ].join('\n');
  } else {
    const lines = [
      `  // Three-pass baseline: one kernel per region writing f32 partials, then the LSE merge.`,
      `  AttentionParams q = a;`,
      `  q.partial_lse = (float*)p.partial_out + (long long)${plan.regions.length} * p.batch * p.queries * p.query_heads * HEAD_DIM;`,
    ];
    regionList.forEach((region, slot) => {
      lines.push(`  {`, `    void (*kernel)(const AttentionParams) = attention_kernel<${slot}, true, ${region}>;`, `  ${setAttr('kernel')}`, `    DCAGEN_LAUNCH(kernel, grid, dim3(THREADS), smem_bytes, stream)(q);`, `  }`);
    });
    lines.push(`  launch_merge((const float*)p.partial_out, ${plan.regions.length}, p.out, p.lse, p.out_batch_stride, p.out_seq_stride, p.out_head_stride,`);
    lines.push(`               p.batch, p.queries, p.query_heads, stream);`);
    launchBody = lines.join('\n');
  }
  // Before the key rotation: the split-K kernel reads raw (or caller-rotated) keys itself.
  const checks = options.variant === 'three-pass'
    ? [`  if (p.partial_out == nullptr) return (int)cudaErrorInvalidValue;`]
    : [
      `  // Few query rows (decode, speculative decoding): the split-K serving kernel over contiguous K/V.`,
      `  if (p.queries <= paged::DECODE_MAX_QUERIES) return paged::launch_contiguous(p, 0, nullptr, stream);`,
    ];
  launchBody = [...checks, ...prologue, launchBody, ...epilogue].join('\n');
  const keyWorkspaceHost = [
    ``,
    `extern "C" long long ${options.prefix}_key_workspace_bytes(int batch, int keys, int key_heads) {`,
    rotateOnce
      ? `  return (long long)batch * keys * key_heads * ${c.headDim} * (long long)sizeof(${options.prefix}::storage_t);  // K rotated once, contiguous`
      : `  (void)batch;\n  (void)keys;\n  (void)key_heads;\n  return 0;  // keys ${c.preRotatedKeys ? 'arrive rotated' : 'rotate inside the key loop'}: no key workspace`,
    `}`,
  ].join('\n');
  const serving = options.variant === 'fused' ? renderServing(plan, options) : undefined;
  const launchers = renderTemplate('cuda', 'launchers.cu', {
    prefix: options.prefix,
    namespace: options.prefix,
    maxPosition: plan.rope.positionLimit !== undefined ? `(void)keys, ${plan.rope.positionLimit}` : 'keys - 1',
    ropeFineBits: plan.rope.fineBits,
    ropePairs: plan.rope.pairs,
    rotaryDim: plan.rope.rotaryDim,
    headDim: c.headDim,
    workspaceFloats: `${workspaceFloatsPerRow(plan, options.variant)}ll`,
    smemType: mma ? 'storage_t' : 'float',
    loadBytes: cudaLoadBytes(plan),
    launchBody,
  });
  return renderTemplate('cuda', 'kernels.cu', {
    paramsStruct: loadTemplate('cuda', 'params.h'),
    title: cText.comment(options.title),
    patternName: plan.pattern.name,
    command: cText.comment(options.command),
    fileName: options.fileName,
    headerName: options.headerName,
    prefix: options.prefix,
    namespace: options.prefix,
    pathSummary: mma
      ? `Tensor-core path: mma.sync m16n8k16 ${c.dtype} with f32 accumulation, ldmatrix, cp.async double buffering.`
      : `SIMT path (FP32 FMA on ${c.dtype} storage, no tensor cores): f32 checking, GPUs without 16-bit tensor cores, head dims the tensor-core tiles do not cover.`,
    headDim: c.headDim,
    rotaryDim: plan.rope.rotaryDim,
    ropePairs: plan.rope.pairs,
    ropeFineBits: plan.rope.fineBits,
    blockQ: c.blockQ,
    blockK: c.blockK,
    threads: cudaThreads(plan),
    patternConstants: patternConstants(plan, (name) => `[[maybe_unused]] constexpr int ${name}`),
    storageType,
    ropeStyleName: plan.rope.style === 'half' ? 'rotate-half (GPT-NeoX / Llama / Qwen)' : 'interleaved (GPT-J)',
    ropeLayout: cRopeLayout(plan, '__device__ __forceinline__').replace(/__forceinline__ inline/g, '__forceinline__'),
    regions: [`using AttentionParams = dcagen_attention_params;`, ...plan.regions.map((r) => regionStruct(plan, r, '__device__'))].join('\n\n'),
    skeleton: skeleton + rotateDevice + merge,
    servingAbi: serving?.abi ?? '',
    serving: serving?.device ?? '',
    launchers: `${launchers}${keyWorkspaceHost}\n${serving === undefined ? '' : `\n${serving.host}`}`,
  });
}

export function renderCudaHeader(options: CudaKernelSetOptions): string {
  return renderTemplate('cuda', 'header.h', {
    paramsStruct: loadTemplate('cuda', 'params.h'),
    title: cText.comment(options.title),
    fileName: options.fileName,
    prefix: options.prefix,
    guard: `${options.prefix.toUpperCase()}_H`,
    servingPrototypes: options.variant === 'fused' ? renderTemplate('cuda', 'serving_prototypes.h', { prefix: options.prefix }) : '',
  });
}
