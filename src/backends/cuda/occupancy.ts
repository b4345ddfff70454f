// Thread blocks (CTAs) per SM for a kernel on sm_80 (A100) and sm_90 (H100/H200), from its
// registers per thread, threads per block and shared memory per block: the same three limits the
// CUDA occupancy calculator applies, written out here so the cost report needs no GPU.
//
// - Registers: allocated per warp in units of 256 (regs × 32 rounded up), from a 64 Ki register
//   file split over 4 SM sub-partitions; a sub-partition holds floor(16384 / regs per warp) warps,
//   the SM four times that, and a block needs all its warps resident.
// - Shared memory: a block takes its static + dynamic bytes plus 1 KiB the driver reserves per
//   block, rounded up to 128 bytes; the SM has 164 KiB (sm_80) or 228 KiB (sm_90) when the kernel's
//   carveout is the largest (what a kernel that opts into more than 48 KiB gets). The most one block
//   may use is 163 KiB (sm_80) or 227 KiB (sm_90), i.e. the SM's memory less the reservation.
// - Threads and blocks: at most 2048 threads (64 warps) and 32 blocks per SM on both.

import { ConfigurationError } from '../../errors.js';

export interface SmLimits {
  readonly registersPerSm: number;
  readonly subPartitions: number;
  /** Registers are allocated to warps in units of this many. */
  readonly registerUnit: number;
  readonly sharedPerSm: number;
  /** Shared memory the driver keeps per block (counted against the SM, not the block's opt-in). */
  readonly reservedSharedPerBlock: number;
  readonly sharedUnit: number;
  readonly maxThreadsPerSm: number;
  readonly maxBlocksPerSm: number;
}

const KIB = 1024;

export const SM_LIMITS: Readonly<Record<string, SmLimits>> = {
  sm_80: { registersPerSm: 65536, subPartitions: 4, registerUnit: 256, sharedPerSm: 164 * KIB, reservedSharedPerBlock: KIB, sharedUnit: 128, maxThreadsPerSm: 2048, maxBlocksPerSm: 32 },
  sm_90: { registersPerSm: 65536, subPartitions: 4, registerUnit: 256, sharedPerSm: 228 * KIB, reservedSharedPerBlock: KIB, sharedUnit: 128, maxThreadsPerSm: 2048, maxBlocksPerSm: 32 },
};

export type OccupancyLimiter = 'registers' | 'shared memory' | 'threads' | 'blocks';

export interface Occupancy {
  /** Blocks resident per SM; 0 when one block does not fit. */
  readonly ctasPerSm: number;
  /** The tightest limit (the first in this order on a tie: registers, shared memory, threads, blocks). */
  readonly limiter: OccupancyLimiter;
}

const roundUp = (x: number, unit: number): number => Math.ceil(x / unit) * unit;

export function occupancy(arch: string, kernel: { registers: number; threads: number; sharedBytes: number }): Occupancy {
  const sm = SM_LIMITS[arch];
  if (sm === undefined) throw new ConfigurationError(`no occupancy model for ${arch} (have ${Object.keys(SM_LIMITS).join(', ')})`);
  const warps = Math.ceil(kernel.threads / 32);
  const registersPerWarp = roundUp(Math.max(1, kernel.registers) * 32, sm.registerUnit);
  const warpsPerSubPartition = Math.floor(sm.registersPerSm / sm.subPartitions / registersPerWarp);
  const byRegisters = Math.floor((warpsPerSubPartition * sm.subPartitions) / warps);
  const sharedPerBlock = roundUp(kernel.sharedBytes + sm.reservedSharedPerBlock, sm.sharedUnit);
  const byShared = sharedPerBlock > sm.sharedPerSm ? 0 : Math.floor(sm.sharedPerSm / sharedPerBlock);
  const byThreads = Math.floor(sm.maxThreadsPerSm / (warps * 32));
  const limits: [OccupancyLimiter, number][] = [['registers', byRegisters], ['shared memory', byShared], ['threads', byThreads], ['blocks', sm.maxBlocksPerSm]];
  const [limiter, ctasPerSm] = limits.reduce((a, b) => (b[1] < a[1] ? b : a));
  return { ctasPerSm, limiter };
}
