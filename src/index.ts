// The library API (the package root, `import … from 'dcagen'`): the pattern DSL, the built-in
// patterns, the float64 reference, tensor files, the position matrix, and the serving calls
// (appendToCache, pagedAttention) on every backend that has them. Pattern files import
// `definePattern` and the condition builders from here.

// Under Node the compiler core reads kernel templates from templates/ on disk (installed on import).
import './io/package-files.js';

export * from './errors.js';
export * from './dsl/pattern.js';
export { compilePattern, resolveParams, owningRegion, conditionHolds, maskAllows } from './dsl/instantiate.js';
export type { CompiledPattern, CompiledRegion, CompiledMask } from './dsl/instantiate.js';
export { checkPattern, checkLength, type CheckProblem } from './dsl/check.js';
export { loadPatternFile } from './io/pattern-file.js';
export { loadPatternSource, PatternSyntaxError } from './dsl/pattern-source.js';
export * as expr from './dsl/expr.js';
export type { Expr } from './dsl/expr.js';
export { builtinPattern, builtinPatterns, causal, dca, dcaPaper, rerope, selfExtend, slidingWindow } from './patterns/index.js';
export { referenceAttention, mergePartials, attentionShape, qwenTemperature, logitScale } from './reference/attention.js';
export type { AttentionOptions, AttentionResult, AttentionShape } from './reference/attention.js';
export type { RopeConfig, RopeStyle } from './reference/rope.js';
export { roundBf16, roundF16, roundTo, type StorageDType } from './reference/precision.js';
export { readNpy, writeNpy, encodeNpy, decodeNpy } from './io/npy.js';
export { readHfConfig, type HfSettings } from './io/hf-config.js';
export { tensor, elementCount, type Tensor } from './io/tensor.js';
export { positionMatrix, formatPositionMatrix, positionMatrixSvg, type PositionMatrix } from './explain/position-matrix.js';
export { runAttention, runPagedAttention, pagedAttention, appendToCache, backendNames, type BackendName, type AttentionRequest, type PagedAttentionRequest, type CacheAppendRequest, type CacheAppendResult } from './execute.js';
export { referenceAppendToCache, referencePagedAttention, pagedCacheShape, pagedLayout, gatherSequence, type PagedCacheShape, type PagedLayout } from './reference/kv-cache.js';
export { allocatePagedCache, fillPagedCache, type PagedFixture } from './verify/paged-cases.js';
export { planKernel, type KernelPlan, type KernelConfig, type RegionPlan } from './plan/kernel-plan.js';
export { emitKernels, emitterNames, kernelBackend, kernelBackends, kernelBackendNames, type EmitRequest, type EmitResult, type BackendDescriptor, type KernelKind } from './backends/index.js';
export { kernelSetName, type EmittedFile, type KernelVariant } from './backends/kernel-set.js';
export { emitWgsl, wgslKernelConfig } from './backends/wgsl/emit.js';
export { emitCuda, cudaKernelConfig } from './backends/cuda/emit.js';
export { emitMetal, metalKernelConfig } from './backends/metal/emit.js';
export { verifyCases, tolerance, randomTensor, type VerifyCase } from './verify/cases.js';
export { verifyCase, type CaseResult } from './verify/verify.js';
export { preRotateKeys } from './reference/attention.js';
