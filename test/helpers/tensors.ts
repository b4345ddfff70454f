// Test helpers: seeded random tensors, temporary folders, and hand-built .npy bytes (any dtype,
// order, version) so the reader's error paths can be exercised.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy } from '../../src/io/npy.js';
import type { Tensor } from '../../src/io/tensor.js';

/** mulberry32: a small deterministic generator, so failures reproduce from the seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A float64 tensor with entries uniform in [−scale, scale). */
export function randomTensor(shape: readonly number[], seed: number, scale = 1): Tensor<Float64Array> {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  for (let k = 0; k < n; k++) data[k] = (2 * next() - 1) * scale;
  return { shape: [...shape], data };
}

/** The same tensor with every entry rounded to float32 (what a float32 .npy file holds). */
export function asFloat32(t: Tensor): Tensor<Float64Array> {
  return { shape: [...t.shape], data: Float64Array.from(t.data, (x) => Math.fround(x)) };
}

/** (B, S, H, D) element offset. */
export function at4(shape: readonly number[], b: number, s: number, h: number, d: number): number {
  return ((b * shape[1]! + s) * shape[2]! + h) * shape[3]! + d;
}

/** Rows [from, from + count) of the sequence axis of a (B, S, H, D) tensor. */
export function sliceSeq(t: Tensor, from: number, count: number): Tensor<Float64Array> {
  const [B, S, H, D] = t.shape as [number, number, number, number];
  const out = new Float64Array(B * count * H * D);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < count; s++) {
      const src = ((b * S + from + s) * H) * D;
      out.set(t.data.subarray(src, src + H * D), ((b * count + s) * H) * D);
    }
  }
  return { shape: [B, count, H, D], data: out };
}

/** Repeats every head of a (B, S, H, D) tensor `times` times (GQA → MHA). */
export function repeatHeads(t: Tensor, times: number): Tensor<Float64Array> {
  const [B, S, H, D] = t.shape as [number, number, number, number];
  const out = new Float64Array(B * S * H * times * D);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) {
      for (let h = 0; h < H * times; h++) {
        const src = at4(t.shape, b, s, Math.floor(h / times), 0);
        out.set(t.data.subarray(src, src + D), ((b * S + s) * H * times + h) * D);
      }
    }
  }
  return { shape: [B, S, H * times, D], data: out };
}

/** Largest absolute difference between two equally long arrays (NaN counts as infinite). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let k = 0; k < a.length; k++) {
    const x = a[k]!;
    const y = b[k]!;
    if (x === y) continue; // covers equal infinities
    const d = Math.abs(x - y);
    worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
  }
  return worst;
}

export async function makeTempDir(prefix = 'dcagen-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await makeTempDir();
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes `t` as a float32 .npy file in `dir` and returns its path. */
export async function writeNpyFile(dir: string, name: string, t: Tensor): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, encodeNpy(t));
  return path;
}

export async function listDir(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

export interface RawNpy {
  readonly descr: string;
  readonly shape: readonly number[];
  readonly fortran?: boolean;
  /** 1, 2 or 3 */
  readonly version?: number;
  /** Already-encoded element bytes. */
  readonly body: Uint8Array;
}

/** Builds .npy bytes by hand, the way numpy.save lays them out (header padded to 64 bytes). */
export function rawNpy({ descr, shape, fortran = false, version = 1, body }: RawNpy): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const prefix = version === 1 ? 10 : 12;
  header += ' '.repeat((64 - ((prefix + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(prefix + header.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), prefix);
  out.set(body, prefix + header.length);
  return out;
}

/** Little-endian element bytes of `values` as float64, float32 or raw uint16 (half bits). */
export function float64Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  values.forEach((v, k) => new DataView(out.buffer).setFloat64(k * 8, v, true));
  return out;
}

export function float32Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, k) => new DataView(out.buffer).setFloat32(k * 4, v, true));
  return out;
}

export function uint16Bytes(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, k) => new DataView(out.buffer).setUint16(k * 2, v, true));
  return out;
}
