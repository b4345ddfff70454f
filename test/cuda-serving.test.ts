// The CUDA serving kernels (cache append, paged attention: split-K decode and paged prefill) on the
// CPU emulation against the serving reference (src/reference/kv-cache.ts), nvcc's resource report
// for them, and `dcagen run --backend cuda --emulate` over a paged cache. Caches hold sequences of
// different lengths in shuffled physical blocks, with a DCA chunk length (40 − 9 = 31) that no block
// size divides. Each kernel set is compiled once (the runner caches harnesses by content) and
// reused by every case of its dtype and key form.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaKernelConfig, emitCuda } from '../src/backends/cuda/emit.js';
import { ptxasReport } from '../src/backends/cuda/report.js';
import { nativeCudaAvailable, runCudaCacheAppend, runCudaPagedAttention } from '../src/backends/cuda/runner.js';
import { compilePattern, type CompiledPattern } from '../src/dsl/instantiate.js';
import { ConfigurationError } from '../src/errors.js';
import type { PagedAttentionRequest } from '../src/execute.js';
import { decodeNpy, encodeNpy } from '../src/io/npy.js';
import type { Tensor } from '../src/io/tensor.js';
import { builtinPattern } from '../src/patterns/index.js';
import { referenceAppendToCache, referencePagedAttention } from '../src/reference/kv-cache.js';
import { roundArray, type StorageDType } from '../src/reference/precision.js';
import { randomTensor, tolerance } from '../src/verify/cases.js';
import { allocatePagedCache, fillPagedCache, type PagedFixture } from '../src/verify/paged-cases.js';
import { maxAbsDifference } from '../src/verify/verify.js';
import { ROOT, dcagen, expectBadInput } from './helpers/cli.js';
import { listDir, makeTempDir } from './helpers/tensors.js';

const dca = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
const rope = { theta: 10000, style: 'half' as const };
const [HQ, HK, D] = [6, 2, 32];   // GQA: three query heads per KV head
const LENS = [100, 57];
const ORIGINAL_MAX_POSITION = 30;  // Qwen factor s(n) > 1 for both sequences

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

interface PagedCase {
  readonly fixture: PagedFixture;
  readonly q: Tensor<Float64Array>;
  /** Raw keys and values per sequence, (1, n, HK, D), rounded to the storage type. */
  readonly ks: Tensor[];
  readonly vs: Tensor[];
  readonly kCache: Tensor<Float64Array>;
  readonly vCache: Tensor<Float64Array>;
}

function pagedCase(queries: number, blockSize: number, dtype: StorageDType, seed: number): PagedCase {
  const fixture = allocatePagedCache(LENS, blockSize, HK, D, seed, 1);
  const round = (t: Tensor<Float64Array>): Tensor => ({ shape: t.shape, data: roundArray(dtype, t.data) });
  const ks = LENS.map((n, b) => round(randomTensor([1, n, HK, D], seed + 10 * b + 1)));
  const vs = LENS.map((n, b) => round(randomTensor([1, n, HK, D], seed + 10 * b + 2)));
  return { fixture, q: randomTensor([LENS.length, queries, HQ, D], seed + 3), ks, vs, kCache: fillPagedCache(fixture, ks), vCache: fillPagedCache(fixture, vs) };
}

function request(c: PagedCase, dtype: StorageDType, extra: Partial<PagedAttentionRequest> = {}, pattern: CompiledPattern = dca): PagedAttentionRequest {
  return { q: c.q, kCache: c.kCache, vCache: c.vCache, layout: c.fixture.layout, pattern, rope, dtype, emulate: true, ...extra };
}

async function pagedError(req: PagedAttentionRequest, options: Parameters<typeof runCudaPagedAttention>[1] = {}): Promise<{ out: number; lse: number; splits: number }> {
  const expected = referencePagedAttention(req.q, req.kCache, req.vCache, req.layout, {
    pattern: req.pattern, rope: req.rope, dtype: req.dtype, preRotatedKeys: req.preRotatedKeys ?? false,
    ...(req.originalMaxPosition !== undefined ? { originalMaxPosition: req.originalMaxPosition } : {}),
  });
  const got = await runCudaPagedAttention(req, options);
  return { out: maxAbsDifference(expected.out.data, got.out.data), lse: maxAbsDifference(expected.lse.data, got.lse.data), splits: got.splits };
}

/** Every key of every sequence as append tokens (position j, slot of j, length n), in an interleaved order. */
function appendAll(c: PagedCase): { k: Tensor; v: Tensor; positions: number[]; slots: number[]; lengths: number[] } {
  const tokens: Array<[number, number]> = [];
  for (let j = 0; j < Math.max(...LENS); j++) LENS.forEach((n, b) => { if (j < n) tokens.push([b, j]); });
  const row = HK * D;
  const k = new Float64Array(tokens.length * row);
  const v = new Float64Array(tokens.length * row);
  tokens.forEach(([b, j], t) => {
    k.set(c.ks[b]!.data.subarray(j * row, (j + 1) * row), t * row);
    v.set(c.vs[b]!.data.subarray(j * row, (j + 1) * row), t * row);
  });
  return {
    k: { shape: [tokens.length, HK, D], data: k },
    v: { shape: [tokens.length, HK, D], data: v },
    positions: tokens.map(([, j]) => j),
    slots: tokens.map(([b, j]) => c.fixture.slot(b, j)),
    lengths: tokens.map(([b]) => LENS[b]!),
  };
}

describe('CUDA cache append (emulated) against the reference', () => {
  it.each(['f32', 'f16'] as const)('%s: rotated, Qwen-scaled keys and copied values in their slots; padding skipped; other slots untouched', async (dtype) => {
    const fixture = allocatePagedCache([100, 70], 16, HK, D, 11, 1);
    const cells = fixture.cache.numBlocks * 16 * HK * D;
    const shape = [fixture.cache.numBlocks, 16, HK, D];
    // The cache holds older entries: the write must leave every slot it does not name as it was.
    const kCache = { shape, data: Float64Array.from(roundArray(dtype, randomTensor([cells], 1).data)) };
    const vCache = { shape, data: Float64Array.from(roundArray(dtype, randomTensor([cells], 2).data)) };
    const tokens = [[0, 3], [0, 57], [0, 99], [1, 0], [1, 41], [1, 69], [0, 42]] as const;   // the last one is padding
    const k = { shape: [tokens.length, HK, D], data: roundArray(dtype, randomTensor([tokens.length * HK * D], 3).data) };
    const v = { shape: [tokens.length, HK, D], data: roundArray(dtype, randomTensor([tokens.length * HK * D], 4).data) };
    const positions = tokens.map(([, j]) => j);
    const slotMapping = tokens.map(([b, j], t) => (t === tokens.length - 1 ? -1 : fixture.slot(b, j)));
    const lengths = tokens.map(([b]) => (b === 0 ? 100 : 70));
    const got = await runCudaCacheAppend({ kCache, vCache, k, v, positions, slotMapping, lengths, pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, dtype, emulate: true });
    const expectedK = { shape, data: Float64Array.from(kCache.data) };
    const expectedV = { shape, data: Float64Array.from(vCache.data) };
    referenceAppendToCache(expectedK, expectedV, k, v, positions, slotMapping, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, lengths });
    // One rounding of the rotated key to the storage type: a few units in its last place.
    expect(maxAbsDifference(roundArray(dtype, expectedK.data), got.kCache.data)).toBeLessThanOrEqual(dtype === 'f16' ? 4e-3 : 2e-6);
    expect(maxAbsDifference(expectedV.data, got.vCache.data)).toBe(0);
    // Slots no token names are bit-identical to the cache before the write.
    const written = new Set(slotMapping.filter((s) => s >= 0));
    const row = HK * D;
    let untouched = 0;
    for (let slot = 0; slot < cells / row; slot++) {
      if (written.has(slot)) continue;
      expect(maxAbsDifference(kCache.data.subarray(slot * row, (slot + 1) * row), got.kCache.data.subarray(slot * row, (slot + 1) * row))).toBe(0);
      untouched++;
    }
    expect(untouched).toBe(cells / row - written.size);
  });

  it('refuses patterns whose regions place keys at their own positions (ConfigurationError)', async () => {
    const rerope = compilePattern(builtinPattern('rerope'), { window: 16 });
    const cache = { shape: [2, 8, HK, D], data: new Float64Array(2 * 8 * HK * D) };
    const k = { shape: [1, HK, D], data: new Float64Array(HK * D) };
    const call = runCudaCacheAppend({ kCache: cache, vCache: cache, k, v: k, positions: [0], slotMapping: [0], pattern: rerope, rope, dtype: 'f32', emulate: true });
    await expect(call).rejects.toThrow(ConfigurationError);
    await expect(call).rejects.toThrow(/rerope cannot use a rotated KV cache: region clamped places keys at its own position/);
    const paged = runCudaPagedAttention(request(pagedCase(1, 8, 'f32', 5), 'f32', { preRotatedKeys: true }, rerope));
    await expect(paged).rejects.toThrow(ConfigurationError);
  });
});

describe('CUDA paged attention (emulated) against the reference', () => {
  it.each([
    [1, 8], [1, 16], [1, 64],
    [3, 8], [3, 16], [3, 64],
    [16, 8], [16, 16], [16, 64],
  ] as const)('decode, raw keys rotated on load, f32: Sq %i, block size %i', async (queries, blockSize) => {
    const e = await pagedError(request(pagedCase(queries, blockSize, 'f32', 100 + queries + blockSize), 'f32', { originalMaxPosition: ORIGINAL_MAX_POSITION }));
    expect(e.out).toBeLessThanOrEqual(2e-4);
    expect(e.lse).toBeLessThanOrEqual(2e-4);
  });

  it('forced splits 1..4 agree with each other and with the reference (partials + LSE merge)', async () => {
    const c = pagedCase(3, 16, 'f32', 31);
    const outs: Float32Array[] = [];
    for (const splits of [1, 2, 3, 4]) {
      const req = request(c, 'f32', { splits });
      const got = await runCudaPagedAttention(req);
      expect(got.splits).toBe(splits);
      outs.push(got.out.data as Float32Array);
      const e = await pagedError(req);
      expect(e.out, `${splits} splits`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `${splits} splits`).toBeLessThanOrEqual(2e-4);
    }
    for (const out of outs.slice(1)) expect(maxAbsDifference(outs[0]!, out)).toBeLessThanOrEqual(1e-6);
  });

  it('chooses splits from the work: a small decode call splits its keys, a bigger one does not', async () => {
    // 2 sequences × 2 KV heads = 4 blocks: below the GPU's fill target, but no split under 512 keys.
    const small = await runCudaPagedAttention(request(pagedCase(1, 16, 'f32', 41), 'f32'));
    expect(small.splits).toBe(1);
    const fixture = allocatePagedCache([1500, 1100], 64, HK, D, 43);
    const ks = [1500, 1100].map((n, b) => randomTensor([1, n, HK, D], 44 + b));
    const vs = [1500, 1100].map((n, b) => randomTensor([1, n, HK, D], 46 + b));
    const req: PagedAttentionRequest = {
      q: randomTensor([2, 1, HQ, D], 48), kCache: fillPagedCache(fixture, ks), vCache: fillPagedCache(fixture, vs),
      layout: fixture.layout, pattern: dca, rope, dtype: 'f32', emulate: true,
    };
    const e = await pagedError(req);
    expect(e.splits).toBe(3);   // ⌈1500 / 512⌉ splits of 512 keys
    expect(e.out).toBeLessThanOrEqual(2e-4);
  });

  it('pre-rotated keys written by the CUDA cache append, Qwen factor: decode Sq 1 and 3, block size 8 (f32)', async () => {
    for (const queries of [1, 3]) {
      const c = pagedCase(queries, 8, 'f32', 51 + queries);
      const tokens = appendAll(c);
      const empty = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
      const appended = await runCudaCacheAppend({
        kCache: empty, vCache: empty, k: tokens.k, v: tokens.v, positions: tokens.positions, slotMapping: tokens.slots, lengths: tokens.lengths,
        pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, dtype: 'f32', emulate: true,
      });
      const kCache = { shape: c.kCache.shape, data: Float64Array.from(appended.kCache.data) };
      const vCache = { shape: c.kCache.shape, data: Float64Array.from(appended.vCache.data) };
      // The reference reads the same cache as pre-rotated; and it equals its own append of the raw keys.
      const e = await pagedError(request({ ...c, kCache, vCache }, 'f32', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(e.out, `Sq ${queries}`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `Sq ${queries}`).toBeLessThanOrEqual(2e-4);
      const raw = referencePagedAttention(c.q, c.kCache, c.vCache, c.fixture.layout, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION });
      const viaAppend = await runCudaPagedAttention(request({ ...c, kCache, vCache }, 'f32', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(maxAbsDifference(raw.out.data, viaAppend.out.data), 'pre-rotated cache = raw cache').toBeLessThanOrEqual(2e-4);
    }
  });

  it('f16, pre-rotated cache, Qwen factor: decode Sq 16, block size 16, 2 splits', async () => {
    const c = pagedCase(16, 16, 'f16', 61);
    const tokens = appendAll(c);
    const kCache = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    const vCache = { shape: c.kCache.shape, data: new Float64Array(c.kCache.data.length) };
    referenceAppendToCache(kCache, vCache, tokens.k, tokens.v, tokens.positions, tokens.slots, { pattern: dca, rope, originalMaxPosition: ORIGINAL_MAX_POSITION, lengths: tokens.lengths });
    const rounded = { shape: kCache.shape, data: Float64Array.from(roundArray('f16', kCache.data)) };
    const e = await pagedError(request({ ...c, kCache: rounded, vCache }, 'f16', { preRotatedKeys: true, originalMaxPosition: ORIGINAL_MAX_POSITION, splits: 2 }));
    expect(e.out).toBeLessThanOrEqual(tolerance('f16'));
    expect(e.lse).toBeLessThanOrEqual(tolerance('f16'));
  });

  it('bf16, raw keys of a pattern with per-region key positions (ReRoPE): Sq 3, block size 64, 2 splits', async () => {
    const rerope = compilePattern(builtinPattern('rerope'), { window: 20 });
    const e = await pagedError(request(pagedCase(3, 64, 'bf16', 71), 'bf16', { splits: 2 }, rerope));
    expect(e.out).toBeLessThanOrEqual(tolerance('bf16'));
    expect(e.lse).toBeLessThanOrEqual(tolerance('bf16'));
  });

  it('paged prefill (Sq 40 > the rows of a block: query blocks of one head), f32, block size 16, unsplit and 2 splits', async () => {
    const c = pagedCase(40, 16, 'f32', 81);
    for (const splits of [1, 2]) {
      const e = await pagedError(request(c, 'f32', { splits, originalMaxPosition: ORIGINAL_MAX_POSITION }));
      expect(e.out, `${splits} splits`).toBeLessThanOrEqual(2e-4);
      expect(e.lse, `${splits} splits`).toBeLessThanOrEqual(2e-4);
    }
  });

  it('is independent of the order the emulator runs threads in (forward, reverse, shuffle)', async () => {
    const req = request(pagedCase(3, 8, 'f32', 91), 'f32', { splits: 2 });
    for (const schedule of ['forward', 'reverse', 'shuffle'] as const) {
      const e = await pagedError(req, { schedule });
      expect(e.out, schedule).toBeLessThanOrEqual(2e-4);
    }
  });
});

describe('the emulator catches bugs planted in the paged kernel', () => {
  const req = request(pagedCase(3, 8, 'f32', 95), 'f32', { splits: 2 });
  const plant = async (from: string, to: string): Promise<number> => {
    try {
      const e = await pagedError(req, {
        transformSource: (source) => {
          expect(source).toContain(from);
          return source.replace(from, to);
        },
      });
      return e.out;
    } catch (err) {
      // The emulator aborting (deadlock, bad access) is a catch too; a compile error is not.
      expect((err as Error).message).not.toMatch(/compiling/);
      return Infinity;
    }
  };

  it('a missing barrier between gathering a K/V tile and scoring it', async () => {
    expect(await plant('    __syncthreads();\n\n    // Scores: lane = key', '\n    // Scores: lane = key')).toBeGreaterThan(1e-2);
  });

  it('keys past the end of the region or split left unmasked in the last tile', async () => {
    expect(await plant('if (j > key_end || !Region::visible', 'if (!Region::visible')).toBeGreaterThan(1e-2);
  });
});

describe('CUDA serving kernels under nvcc', () => {
  it('compile for sm_80 and sm_90 with zero spills (Qwen2.5-1M DCA, bf16, d 128, pre-rotated cache); the native harness links them', async () => {
    const dir = await makeTempDir('dcagen-serving-nvcc-');
    temps.push(dir);
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 262144, localWindow: 8192 });
    const set = emitCuda(pattern, cudaKernelConfig({ headDim: 128, dtype: 'bf16', preRotatedKeys: true }), { command: 'test' });
    for (const f of set.files) await writeFile(join(dir, f.name), f.contents);
    const rows = await ptxasReport(join(dir, `${set.name}.cu`), dir);
    for (const arch of ['sm_80', 'sm_90']) {
      const kernels = rows.filter((r) => r.arch === arch).map((r) => r.kernel);
      for (const name of ['paged::attention_kernel', 'paged::append_kernel', 'merge_kernel']) {
        expect(kernels.some((k) => k.includes(name)), `${arch} ${name}`).toBe(true);
      }
    }
    for (const r of rows) expect({ kernel: r.kernel, arch: r.arch, spills: r.spillStores + r.spillLoads }).toMatchObject({ spills: 0 });
    // The native harness links the serving entry points; without a GPU each form exits 3 ("no device").
    const build = await execa('nvcc', ['-O2', '-std=c++17', '-arch=sm_80', `-DDCAGEN_HEADER=${set.name}.h`, `-DDCAGEN_PREFIX=${set.prefix}`, '-DDCAGEN_SERVING', `-I${dir}`,
      join(dir, `${set.name}.cu`), join(ROOT, 'runtime', 'cuda', 'harness.cu'), '-o', join(dir, 'harness')], { reject: false, all: true });
    expect(build.all).not.toMatch(/error/);
    expect(build.exitCode).toBe(0);
    const expected = (await nativeCudaAvailable()) ? 2 : 3;   // with a GPU it gets as far as its (missing) input files
    const paged = await execa(join(dir, 'harness'), ['paged', 'q', 'kc', 'vc', 'bt', 'sl', 'o', 'l', '1', '1', '1', '1', '128', '2', '1', '16', '1', '10000', '0', '0', '0', '1'], { reject: false });
    expect(paged.exitCode).toBe(expected);
    const append = await execa(join(dir, 'harness'), ['append', 'k', 'v', 'kc', 'vc', 's', 'p', '-', 'ko', 'vo', '1', '1', '128', '2', '1', '16', '10000', '0'], { reject: false });
    expect(append.exitCode).toBe(expected);
  });
});

describe('the PyTorch module of a CUDA kernel set', () => {
  it('offers append_to_cache and paged_attention (valid Python; the binding calls only functions the header declares)', async () => {
    const dir = await makeTempDir('dcagen-serving-py-');
    temps.push(dir);
    const sets = [
      emitCuda(dca, cudaKernelConfig({ headDim: 128, dtype: 'bf16', preRotatedKeys: true }), { command: 'test' }),
      emitCuda(compilePattern(builtinPattern('rerope'), { window: 16 }), cudaKernelConfig({ headDim: 64, dtype: 'f16' }), { command: 'test' }),
    ];
    const files: string[] = [];
    for (const set of sets) {
      const py = set.files.find((f) => f.name.endsWith('.py'))!;
      expect(py.contents).toContain('def append_to_cache(key, value, k_cache, v_cache, slot_mapping, positions, *,');
      expect(py.contents).toContain('def paged_attention(q, k_cache, v_cache, block_table, seq_lens, *,');
      const called = py.contents.match(new RegExp(`${set.prefix}_[a-z_]+(?=\\()`, 'g')) ?? [];
      expect(new Set(called)).toEqual(new Set(['check_params', 'launch', 'paged_workspace_bytes', 'paged_attention', 'append_to_cache'].map((f) => `${set.prefix}_${f}`)));
      for (const name of called) expect(set.header, name).toContain(`${name}(`);
      files.push(join(dir, py.name));
      await writeFile(files[files.length - 1]!, py.contents);
    }
    expect(sets[0]!.files.find((f) => f.name.endsWith('.py'))!.contents).toMatch(/PRE_ROTATED_KEYS = True[^\n]*\nAPPEND_SUPPORTED = True/);
    expect(sets[1]!.files.find((f) => f.name.endsWith('.py'))!.contents).toMatch(/PRE_ROTATED_KEYS = False[^\n]*\nAPPEND_SUPPORTED = False/);
    const parsed = await execa('python3', ['-c', 'import ast, sys\nfor f in sys.argv[1:]: ast.parse(open(f).read())', ...files], { reject: false, all: true });
    expect(parsed.exitCode, parsed.all).toBe(0);
  });
});

describe('dcagen run --backend cuda --emulate over a paged cache', () => {
  it('matches the reference backend on the same files, and refuses an out-of-range block table with one line, exit 2', async () => {
    const dir = await makeTempDir('dcagen-cuda-serving-');
    temps.push(dir);
    const c = pagedCase(3, 16, 'f32', 101);
    const at = (name: string): string => join(dir, name);
    await Promise.all([
      writeFile(at('q.npy'), encodeNpy({ shape: c.q.shape, data: Float64Array.from(c.q.data, Math.fround) })),
      writeFile(at('kc.npy'), encodeNpy(c.kCache)),
      writeFile(at('vc.npy'), encodeNpy(c.vCache)),
      writeFile(at('bt.npy'), encodeNpy(c.fixture.blockTable, '<i4')),
      writeFile(at('sl.npy'), encodeNpy(c.fixture.seqLens, '<i4')),
    ]);
    const common = ['--pattern', 'dca', '--chunk-size', '40', '--local-window', '9', '--q', at('q.npy'), '--k-cache', at('kc.npy'), '--v-cache', at('vc.npy'), '--seq-lens', at('sl.npy')];
    const run = async (backend: string, out: string, extra: string[]): Promise<void> => {
      const r = await dcagen(['run', '--backend', backend, ...(backend === 'cuda' ? ['--emulate'] : []), ...common, '--block-table', at('bt.npy'), '--out', at(`${out}.npy`), '--lse', at(`${out}-lse.npy`), ...extra]);
      expect(r.exitCode, r.stderr).toBe(0);
    };
    await run('cuda', 'cuda', ['--splits', '2']);
    await run('reference', 'reference', []);
    const read = async (name: string): Promise<Float64Array> => decodeNpy(await readFile(at(`${name}.npy`))).data as Float64Array;
    expect(maxAbsDifference(await read('reference'), await read('cuda'))).toBeLessThanOrEqual(2e-4);
    expect(maxAbsDifference(await read('reference-lse'), await read('cuda-lse'))).toBeLessThanOrEqual(2e-4);

    const bad = Float64Array.from(c.fixture.blockTable.data);
    bad[c.fixture.layout.maxBlocks + 1] = 1000;
    await writeFile(at('bad-bt.npy'), encodeNpy({ shape: c.fixture.blockTable.shape, data: bad }, '<i4'));
    const before = await listDir(dir);
    expectBadInput(
      await dcagen(['run', '--backend', 'cuda', '--emulate', ...common, '--block-table', at('bad-bt.npy'), '--out', at('bad.npy')]),
      /block table \[1\]\[1\] = 1000 is outside the cache's \d+ blocks/,
    );
    expect(await listDir(dir)).toEqual(before);
  });
});
