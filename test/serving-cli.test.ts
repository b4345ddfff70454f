// `dcagen run` over a paged KV cache (--k-cache, --v-cache, --block-table, --seq-lens), spawned as
// a user runs it: the result equals the dense reference over each sequence's keys, and every bad
// input (out-of-range blocks, sequences longer than their blocks, mixed contiguous and paged flags,
// --emulate where it does not apply) is one line, exit 2, and no file left behind.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compilePattern } from '../src/dsl/instantiate.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAttention } from '../src/reference/attention.js';
import { allocatePagedCache, fillPagedCache } from '../src/verify/paged-cases.js';
import { dcagen, expectBadInput } from './helpers/cli.js';
import { asFloat32, listDir, makeTempDir, maxAbsDiff, randomTensor } from './helpers/tensors.js';
import { rm } from 'node:fs/promises';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

interface PagedFiles {
  readonly dir: string;
  readonly args: string[];
  readonly q: Tensor<Float64Array>;
  readonly ks: Tensor<Float64Array>[];
  readonly vs: Tensor<Float64Array>[];
}

/** q (B, Sq, Hq, D) and a paged cache holding sequences of `lens` keys, written as .npy files. */
async function pagedFiles(lens: number[], queries: number, blockSize: number, seed: number): Promise<PagedFiles> {
  const dir = await makeTempDir('dcagen-serving-');
  dirs.push(dir);
  const [hq, hk, d] = [4, 2, 16];
  const fixture = allocatePagedCache(lens, blockSize, hk, d, seed);
  const ks = lens.map((n, b) => asFloat32(randomTensor([1, n, hk, d], seed + 10 * b + 1)));
  const vs = lens.map((n, b) => asFloat32(randomTensor([1, n, hk, d], seed + 10 * b + 2)));
  const q = asFloat32(randomTensor([lens.length, queries, hq, d], seed + 3));
  const files: Array<[string, Uint8Array]> = [
    ['q.npy', encodeNpy(q)],
    ['kc.npy', encodeNpy(fillPagedCache(fixture, ks))],
    ['vc.npy', encodeNpy(fillPagedCache(fixture, vs))],
    ['bt.npy', encodeNpy(fixture.blockTable, '<i4')],
    ['sl.npy', encodeNpy(fixture.seqLens, '<i4')],
  ];
  await Promise.all(files.map(([name, bytes]) => writeFile(join(dir, name), bytes)));
  const at = (name: string): string => join(dir, name);
  return {
    dir, q, ks, vs,
    args: ['--q', at('q.npy'), '--k-cache', at('kc.npy'), '--v-cache', at('vc.npy'), '--block-table', at('bt.npy'), '--seq-lens', at('sl.npy'), '--out', at('o.npy'), '--lse', at('l.npy')],
  };
}

const DCA = ['--pattern', 'dca', '--chunk-size', '13', '--local-window', '4'];

describe('dcagen run over a paged KV cache', () => {
  it.each(['reference', 'wgsl'])('matches the dense reference per sequence (%s backend, block size 8, shuffled blocks)', async (backend) => {
    const f = await pagedFiles([45, 30, 17], 3, 8, 21);
    const r = await dcagen(['run', '--backend', backend, ...DCA, ...f.args]);
    expect(r.exitCode, r.stderr).toBe(0);
    const out = decodeNpy(await readFile(join(f.dir, 'o.npy')));
    const lse = decodeNpy(await readFile(join(f.dir, 'l.npy')));
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 13, localWindow: 4 });
    const rope = { theta: 10000, style: 'half' as const };
    const [, sq, hq, d] = f.q.shape as [number, number, number, number];
    f.ks.forEach((k, b) => {
      const qb = { shape: [1, sq, hq, d], data: f.q.data.subarray(b * sq * hq * d, (b + 1) * sq * hq * d) };
      const expected = referenceAttention(qb, k, f.vs[b]!, { pattern, rope });
      // The reference is exact up to its f32 output file; a kernel within the f32 tolerance.
      const tolerance = backend === 'reference' ? 1e-5 : 2e-4;
      expect(maxAbsDiff(expected.out.data, out.data.subarray(b * sq * hq * d, (b + 1) * sq * hq * d))).toBeLessThan(tolerance);
      expect(maxAbsDiff(expected.lse.data, lse.data.subarray(b * hq * sq, (b + 1) * hq * sq))).toBeLessThan(tolerance);
    });
  });

  it('refuses bad paged inputs with one line and exit 2, leaving no file', async () => {
    const f = await pagedFiles([20, 9], 2, 8, 5);
    const before = await listDir(f.dir);
    const replace = (flag: string, path: string): string[] => f.args.map((a, k) => (f.args[k - 1] === flag ? path : a));
    const write = async (name: string, t: Tensor): Promise<string> => {
      const path = join(f.dir, name);
      await writeFile(path, encodeNpy(t, '<i4'));
      before.push(name);
      before.sort();
      return path;
    };
    const badTable = await write('bad-bt.npy', { shape: [2, 3], data: Float64Array.from([0, 1, 2, 3, 1000, 0]) });
    const longLens = await write('long-sl.npy', { shape: [2], data: Float64Array.from([20, 40]) });
    const shortLens = await write('short-sl.npy', { shape: [2], data: Float64Array.from([20, 1]) });
    const cases: Array<[string[], RegExp]> = [
      [replace('--block-table', badTable), /block table \[1\]\[1\] = 1000 is outside the cache's \d+ blocks/],
      [replace('--seq-lens', longLens), /sequence 1 has 40 keys, more than its 3 blocks of 8 hold/],
      [replace('--seq-lens', shortLens), /sequence 1 has 1 keys, fewer than the 2 queries/],
      [[...f.args, '--k', join(f.dir, 'q.npy')], /--k\/--v \(contiguous keys\) and --k-cache\/--v-cache \(paged cache\) exclude each other/],
      [f.args.filter((a, k) => a !== '--seq-lens' && f.args[k - 1] !== '--seq-lens'), /a paged call needs --seq-lens too/],
      [[...f.args, '--splits', '0'], /--splits must be at least 1/],
    ];
    for (const [args, message] of cases) {
      expectBadInput(await dcagen(['run', '--backend', 'reference', ...DCA, ...args]), message);
      expect(await listDir(f.dir)).toEqual(before);
    }
    expectBadInput(await dcagen(['run', '--backend', 'wgsl', '--emulate', ...DCA, ...f.args]), /--emulate applies to the cuda and metal backends/);
    expect(await listDir(f.dir)).toEqual(before);
  });
});
