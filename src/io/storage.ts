// Raw little-endian tensor bytes in a kernel's storage type, as the runtimes hand them to WebGPU,
// the CUDA harness and the Metal host: float32, IEEE half, or bfloat16 (round to nearest even).

import type { StorageDType } from '../reference/precision.js';
import { fromHalfBits, toHalfBits } from '../reference/precision.js';

export function encodeStorage(data: ArrayLike<number>, dtype: StorageDType): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(Float32Array.from(data).buffer);
  const out = new Uint16Array(data.length);
  if (dtype === 'f16') {
    for (let k = 0; k < data.length; k++) out[k] = toHalfBits(data[k]!);
  } else {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let k = 0; k < data.length; k++) {
      f[0] = data[k]!;
      const bits = u[0]!;
      out[k] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
  return new Uint8Array(out.buffer);
}

export function decodeStorage(bytes: Uint8Array, dtype: StorageDType): Float32Array {
  const copy = bytes.slice();
  if (dtype === 'f32') return new Float32Array(copy.buffer);
  const half = new Uint16Array(copy.buffer);
  if (dtype === 'f16') return Float32Array.from(half, (h) => fromHalfBits(h));
  return new Float32Array(Uint32Array.from(half, (h) => h << 16).buffer);
}
