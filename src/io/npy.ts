// NumPy `.npy` files, the tensor format at process boundaries (NumPy and PyTorch read and write it).
// Reads little-endian float32/float16/float64 and int32/int64 (block tables, lengths) in C order,
// format versions 1–3; writes float32 or int32, v1.
// Everything else is a TensorFileError that says what is wrong.

import { readFile } from 'node:fs/promises';
import { TensorFileError } from '../errors.js';
import { fromHalfBits } from '../reference/precision.js';
import { writeFileAtomic } from './atomic-write.js';
import { elementCount, type Tensor } from './tensor.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

const DTYPES = { '<f4': 4, '<f2': 2, '<f8': 8, '<i4': 4, '<i8': 8 } as const;
type NpyDType = keyof typeof DTYPES;

export interface NpyHeader {
  readonly dtype: NpyDType;
  readonly shape: readonly number[];
  readonly dataOffset: number;
}

export function parseNpyHeader(bytes: Uint8Array, name: string): NpyHeader {
  if (bytes.length < 10 || !Buffer.from(bytes.subarray(0, 6)).equals(MAGIC)) {
    throw new TensorFileError(`${name}: not a NumPy .npy file (missing \\x93NUMPY magic)`);
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new TensorFileError(`${name}: truncated .npy header`);
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new TensorFileError(`${name}: unsupported .npy format version ${major}`);
  }
  if (headerStart + headerLength > bytes.length) throw new TensorFileError(`${name}: truncated .npy header`);
  const header = Buffer.from(bytes.subarray(headerStart, headerStart + headerLength)).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new TensorFileError(`${name}: malformed .npy header ${JSON.stringify(header.trim())}`);
  }
  if (!(descr in DTYPES)) {
    throw new TensorFileError(`${name}: unsupported dtype '${descr}'; dcagen reads little-endian float32 ('<f4'), float16 ('<f2'), float64 ('<f8'), int32 ('<i4') and int64 ('<i8')`);
  }
  if (fortran === 'True') throw new TensorFileError(`${name}: Fortran-order arrays are not supported; save a C-contiguous array (np.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(n) || n < 0) throw new TensorFileError(`${name}: bad dimension "${s}" in .npy shape`);
    return n;
  });
  return { dtype: descr as NpyDType, shape, dataOffset: headerStart + headerLength };
}

/** Decodes .npy bytes into a float64 tensor. */
export function decodeNpy(bytes: Uint8Array, name = 'array'): Tensor<Float64Array> {
  const header = parseNpyHeader(bytes, name);
  const count = elementCount(header.shape);
  const itemSize = DTYPES[header.dtype];
  const needed = header.dataOffset + count * itemSize;
  if (bytes.length < needed) {
    throw new TensorFileError(`${name}: truncated .npy data: shape [${header.shape.join(', ')}] needs ${count * itemSize} bytes, file has ${bytes.length - header.dataOffset}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + header.dataOffset, count * itemSize);
  const data = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const at = k * itemSize;
    switch (header.dtype) {
      case '<f4': data[k] = view.getFloat32(at, true); break;
      case '<f8': data[k] = view.getFloat64(at, true); break;
      case '<f2': data[k] = fromHalfBits(view.getUint16(at, true)); break;
      case '<i4': data[k] = view.getInt32(at, true); break;
      case '<i8': {
        const n = view.getBigInt64(at, true);
        if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new TensorFileError(`${name}: int64 element ${k} (${n}) is out of range`);
        data[k] = Number(n);
        break;
      }
    }
  }
  return { shape: header.shape, data };
}

/** Encodes a tensor as float32 (or int32: block tables, lengths) .npy, format 1.0. */
export function encodeNpy(t: Tensor, dtype: '<f4' | '<i4' = '<f4'): Uint8Array {
  const shapeText = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Total header (magic + version + length + text + newline) is padded to a multiple of 64.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + t.data.length * 4);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  const view = new DataView(out.buffer, 10 + header.length);
  for (let k = 0; k < t.data.length; k++) {
    if (dtype === '<f4') view.setFloat32(k * 4, t.data[k]!, true);
    else view.setInt32(k * 4, t.data[k]!, true);
  }
  return out;
}

export async function readNpy(path: string, expectedRank?: number): Promise<Tensor<Float64Array>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TensorFileError(code === 'ENOENT' ? `${path}: no such file` : code === 'EISDIR' ? `${path}: is a directory, not a .npy file` : `${path}: cannot read (${code ?? String(err)})`);
  }
  const t = decodeNpy(bytes, path);
  if (expectedRank !== undefined && t.shape.length !== expectedRank) {
    throw new TensorFileError(`${path}: expected a rank-${expectedRank} array, got shape (${t.shape.join(', ')})`);
  }
  return t;
}

export async function writeNpy(path: string, t: Tensor): Promise<void> {
  await writeFileAtomic(path, encodeNpy(t));
}
