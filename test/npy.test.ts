// .npy files: float32 round trip; reading <f2, <f8 and format v2/v3 headers; and a TensorFileError
// naming the problem for anything else.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TensorFileError } from '../src/errors.js';
import { decodeNpy, encodeNpy, readNpy, writeNpy } from '../src/io/npy.js';
import { float32Bytes, float64Bytes, listDir, rawNpy, uint16Bytes, withTempDir } from './helpers/tensors.js';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function decodeError(bytes: Uint8Array): Error {
  try {
    decodeNpy(bytes, 'x.npy');
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('.npy round trip', () => {
  it('writes float32 v1 with a 64-byte aligned header that reads back exactly', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 4 }),
        fc.integer({ min: 0, max: 1 << 30 }),
        (shape, seed) => {
          const n = shape.reduce((a, b) => a * b, 1);
          const data = Float64Array.from({ length: n }, (_, k) => Math.fround(Math.sin(seed + k) * 1e3));
          const bytes = encodeNpy({ shape, data });
          expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
          const headerLength = bytes[8]! | (bytes[9]! << 8);
          expect((10 + headerLength) % 64).toBe(0);
          expect(bytes[10 + headerLength - 1]).toBe(0x0a);
          expect(bytes.length).toBe(10 + headerLength + 4 * n);
          const back = decodeNpy(bytes);
          expect(back.shape).toEqual(shape);
          expect(Array.from(back.data)).toEqual(Array.from(data));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('writes the header text numpy writes (1-d shapes keep the trailing comma)', () => {
    const header = (shape: number[]): string => {
      const bytes = encodeNpy({ shape, data: new Float64Array(shape.reduce((a, b) => a * b, 1)) });
      return Buffer.from(bytes.subarray(10, 10 + (bytes[8]! | (bytes[9]! << 8)))).toString('latin1').trimEnd();
    };
    expect(header([3])).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }");
    expect(header([2, 3, 4, 5])).toBe("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 5), }");
  });

  it('writeNpy/readNpy round-trip through a file and leave no temporary behind', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'a.npy');
      await writeNpy(path, { shape: [2, 1, 3, 2], data: Float64Array.from({ length: 12 }, (_, k) => k / 4 - 1) });
      const t = await readNpy(path, 4);
      expect(t.shape).toEqual([2, 1, 3, 2]);
      expect(Array.from(t.data)).toEqual(Array.from({ length: 12 }, (_, k) => k / 4 - 1));
      expect(await listDir(dir)).toEqual(['a.npy']);
    });
  });

  it('rounds float64 values to float32 on write', () => {
    const back = decodeNpy(encodeNpy({ shape: [2], data: Float64Array.from([0.1, 1e-50]) }));
    expect(Array.from(back.data)).toEqual([Math.fround(0.1), 0]);
  });
});

describe('.npy reading other layouts', () => {
  it("reads '<f8'", () => {
    const values = [0.1, -2.5, 1e-300, 12345.6789];
    const t = decodeNpy(rawNpy({ descr: '<f8', shape: [2, 2], body: float64Bytes(values) }));
    expect(t.shape).toEqual([2, 2]);
    expect(Array.from(t.data)).toEqual(values);
  });

  it("reads '<f2' from half bit patterns", () => {
    const t = decodeNpy(rawNpy({ descr: '<f2', shape: [5], body: uint16Bytes([0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff]) }));
    expect(Array.from(t.data)).toEqual([1, -2, 0.333251953125, 2 ** -24, 65504]);
  });

  it('reads format version 2 and 3 headers (4-byte header length)', () => {
    for (const version of [2, 3]) {
      const bytes = rawNpy({ descr: '<f4', shape: [1, 3], version, body: float32Bytes([1.5, -0.25, 8]) });
      expect(bytes[6]).toBe(version);
      const t = decodeNpy(bytes);
      expect(t.shape).toEqual([1, 3]);
      expect(Array.from(t.data)).toEqual([1.5, -0.25, 8]);
    }
  });

  it('reads scalars and empty arrays', () => {
    expect(decodeNpy(rawNpy({ descr: '<f4', shape: [], body: float32Bytes([7]) }))).toEqual({ shape: [], data: Float64Array.from([7]) });
    expect(decodeNpy(rawNpy({ descr: '<f4', shape: [0, 3], body: new Uint8Array() })).shape).toEqual([0, 3]);
  });
});

describe('.npy errors', () => {
  const good = rawNpy({ descr: '<f4', shape: [2, 2], body: float32Bytes([1, 2, 3, 4]) });
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['not NumPy (text)', Buffer.from('hello, this is not an array\n'), /x\.npy: not a NumPy \.npy file \(missing \\x93NUMPY magic\)/],
    ['not NumPy (empty)', new Uint8Array(), /not a NumPy \.npy file/],
    ['not NumPy (a PNG)', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]), /not a NumPy \.npy file/],
    ['truncated header', good.subarray(0, 40), /x\.npy: truncated \.npy header/],
    ['truncated v2 header length', rawNpy({ descr: '<f4', shape: [1], version: 2, body: float32Bytes([1]) }).subarray(0, 11), /truncated \.npy header/],
    ['truncated data', good.subarray(0, good.length - 3), /x\.npy: truncated \.npy data: shape \[2, 2\] needs 16 bytes, file has 13/],
    ['Fortran order', rawNpy({ descr: '<f4', shape: [2, 2], fortran: true, body: float32Bytes([1, 2, 3, 4]) }), /x\.npy: Fortran-order arrays are not supported/],
    ["dtype '<i2'", rawNpy({ descr: '<i2', shape: [2], body: new Uint8Array(8) }), /x\.npy: unsupported dtype '<i2'/],
    ["dtype '>f4' (big-endian)", rawNpy({ descr: '>f4', shape: [2], body: new Uint8Array(8) }), /unsupported dtype '>f4'/],
    ["dtype '|u1'", rawNpy({ descr: '|u1', shape: [2], body: new Uint8Array(2) }), /unsupported dtype '\|u1'/],
    ['unknown format version', (() => { const b = Uint8Array.from(good); b[6] = 9; return b; })(), /unsupported \.npy format version 9/],
    ['malformed header dict', (() => {
      const b = Uint8Array.from(good);
      b.set(Buffer.from('{"nothing": 1}   '), 10);
      return b;
    })(), /malformed \.npy header/],
  ];
  for (const [what, bytes, message] of cases) {
    it(`rejects ${what}`, () => {
      const err = decodeError(bytes);
      expect(err).toBeInstanceOf(TensorFileError);
      expect(err.message).toMatch(message);
      expect(err.message).not.toContain('\n');
    });
  }

  it('readNpy rejects the wrong rank, a missing file and a directory, naming the path', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'm.npy');
      await writeFile(path, rawNpy({ descr: '<f4', shape: [2, 3], body: float32Bytes([1, 2, 3, 4, 5, 6]) }));
      const rank = await rejection(readNpy(path, 4));
      expect(rank).toBeInstanceOf(TensorFileError);
      expect(rank.message).toBe(`${path}: expected a rank-4 array, got shape (2, 3)`);
      expect((await readNpy(path, 2)).shape).toEqual([2, 3]);
      const missing = await rejection(readNpy(join(dir, 'nope.npy')));
      expect(missing).toBeInstanceOf(TensorFileError);
      expect(missing.message).toBe(`${join(dir, 'nope.npy')}: no such file`);
      const directory = await rejection(readNpy(dir));
      expect(directory).toBeInstanceOf(TensorFileError);
      expect(directory.message).toMatch(/is a directory, not a \.npy file/);
    });
  });

  it('readNpy reports a truncated file with its path', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 't.npy');
      await writeFile(path, good.subarray(0, good.length - 4));
      const err = await rejection(readNpy(path, 2));
      expect(err).toBeInstanceOf(TensorFileError);
      expect(err.message.startsWith(`${path}: truncated .npy data`)).toBe(true);
    });
  });
});
