// Pins generated source: the committed canonical kernels under generated/ must equal what the
// compiler emits now (run `npx dcagen generate` after an intended change), and a small kernel's
// full WGSL is snapshotted so reviews see every change to emitted code.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { canonicalFiles, generatedDrift } from '../src/generated.js';
import { builtinPattern } from '../src/patterns/index.js';

describe('generated kernels', () => {
  it('generated/ matches the compiler output', async () => {
    const drifted = await generatedDrift(join(import.meta.dirname, '..', 'generated'));
    expect(drifted, 'run `npx dcagen generate` and commit generated/').toEqual([]);
  });

  it('covers Llama-2 4k, Qwen2.5-1M and causal at head dim 128 for WGSL', () => {
    const names = canonicalFiles().map((f) => f.path).filter((p) => p.startsWith('wgsl/') && p.endsWith('.wgsl'));
    expect(names).toEqual(expect.arrayContaining([
      'wgsl/dca-cs3072-lw512-d128-f16.wgsl',
      'wgsl/dca-cs262144-lw8192-d128-f16.wgsl',
      'wgsl/causal-d128-f32.wgsl',
    ]));
  });

  it('emits readable WGSL with named constants and region comments (snapshot)', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 9, localWindow: 3 });
    const set = emitWgsl(pattern, wgslKernelConfig({ headDim: 32, dtype: 'f16' }), { command: 'dcagen emit --backend wgsl --pattern dca --chunk-size 9 --local-window 3 --head-dim 32 --dtype f16' });
    const wgsl = set.files.find((f) => f.name.endsWith('.wgsl'))!.contents;
    expect(wgsl).toContain('const CHUNK_LENGTH: i32 = 6;');
    expect(wgsl).toContain('// ---- Region successive');
    expect(wgsl).toContain('enable f16;');
    expect(wgsl).toMatchSnapshot();
  });

  it('emits the decode kernel from one template: the subgroup module differs only in its lane combine (snapshot)', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 9, localWindow: 3 });
    const set = emitWgsl(pattern, wgslKernelConfig({ headDim: 32, dtype: 'f16' }), { command: 'dcagen emit --backend wgsl --pattern dca --chunk-size 9 --local-window 3 --head-dim 32 --dtype f16' });
    const plain = set.files.find((f) => f.name.endsWith('-decode.wgsl'))!.contents;
    const subgroups = set.files.find((f) => f.name.endsWith('-decode-subgroups.wgsl'))!.contents;
    expect(plain).not.toMatch(/enable subgroups|subgroup(Add|Max|Elect)|subgroup_size/);
    expect(subgroups).toContain('enable subgroups;');
    expect(subgroups).toContain('subgroupAdd(');
    expect(plain).toContain('fn kv_row_base(batch: u32, j: u32, kv_head: u32) -> u32');
    expect(plain).toMatchSnapshot();
    // Lines only the subgroup module has: its header, the lane numbering and the cell reductions.
    const plainLines = new Set(plain.split('\n'));
    expect(subgroups.split('\n').filter((line) => !plainLines.has(line)).join('\n')).toMatchSnapshot();
  });
});
