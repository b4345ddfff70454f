// Tint, the WGSL compiler Chromium, Edge and Dawn ship, validating every kernel we emit — f16 and
// subgroup modules included — through Dawn for Node (npm `webgpu`) on Dawn's Null backend, which
// offers shader-f16 and subgroups without a GPU. The browser tier (test/chromium.test.ts) runs the
// kernels in Chromium; SwiftShader has no shader-f16, so this is where f16 kernels get Tint's full
// semantic check. Planted errors prove the check can fail.
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { emitWgsl, wgslKernelConfig } from '../src/backends/wgsl/emit.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { builtinPattern } from '../src/patterns/index.js';

const GENERATED_WGSL = fileURLToPath(new URL('../generated/wgsl/', import.meta.url));

const TINT_CHECK = fileURLToPath(new URL('../runtime/webgpu/tint-check.mjs', import.meta.url));

/** Tint's errors per module (empty when it compiles), from runtime/webgpu/tint-check.mjs. */
async function tintCheck(modules: ReadonlyArray<{ name: string; code: string }>): Promise<Map<string, string[]>> {
  const r = await execa('node', [TINT_CHECK], { input: JSON.stringify(modules), reject: false, timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`tint-check failed (${r.exitCode}): ${String(r.stderr)}`);
  const results = JSON.parse(String(r.stdout)) as Array<{ name: string; errors: string[] }>;
  return new Map(results.map((x) => [x.name, x.errors]));
}

function failures(results: Map<string, string[]>): string[] {
  return [...results].filter(([, errors]) => errors.length > 0).map(([name, errors]) => `${name}: ${errors[0]}`);
}

describe("Tint (Dawn's WGSL compiler) on every emitted kernel", () => {
  it('accepts every kernel under generated/wgsl, f16 and subgroup modules included', async () => {
    const files = (await readdir(GENERATED_WGSL)).filter((f) => f.endsWith('.wgsl')).sort();
    expect(files.some((f) => f.includes('-f16'))).toBe(true);
    expect(files.some((f) => f.includes('subgroups'))).toBe(true);
    const results = await tintCheck(await Promise.all(files.map(async (name) => ({ name, code: await readFile(`${GENERATED_WGSL}${name}`, 'utf8') }))));
    expect(results.size).toBe(files.length);
    expect(failures(results)).toEqual([]);
  });

  it('accepts the kernels of other patterns and configurations (three-pass, interleaved, partial rotary, per-region key positions, pre-rotated keys)', async () => {
    const sets = [
      emitWgsl(compilePattern(builtinPattern('dca'), { chunkSize: 26, localWindow: 7 }), wgslKernelConfig({ headDim: 64, dtype: 'f16' }), { variant: 'three-pass' }),
      emitWgsl(compilePattern(builtinPattern('rerope'), { window: 9 }), wgslKernelConfig({ headDim: 32, dtype: 'f16', ropeStyle: 'interleaved', rotaryDim: 16 })),
      emitWgsl(compilePattern(builtinPattern('self-extend'), { groupSize: 3, neighborWindow: 10 }), wgslKernelConfig({ headDim: 256, dtype: 'f32' })),
      emitWgsl(compilePattern(builtinPattern('dca-paper'), { c: 24, s: 14, w: 5 }), wgslKernelConfig({ headDim: 128, dtype: 'f16', preRotatedKeys: true })),
      emitWgsl(compilePattern(builtinPattern('sliding-window'), { window: 19 }), wgslKernelConfig({ headDim: 8, dtype: 'f32' })),
    ];
    const modules = sets.flatMap((set) => set.files.filter((f) => f.name.endsWith('.wgsl')).map((f) => ({ name: f.name, code: f.contents })));
    const results = await tintCheck(modules);
    expect(results.size).toBe(modules.length);
    expect(failures(results)).toEqual([]);
  });

  it('reports what it must reject: an infinite constant expression (naga accepts it) and an f16 type error', async () => {
    const results = await tintCheck([
      { name: 'infinite-constant', code: '@compute @workgroup_size(1) fn main() { const x = bitcast<f32>(0xff800000u); _ = x; }' },
      { name: 'f16-type-error', code: 'enable f16;\n@compute @workgroup_size(1) fn main() { let x: f16 = 1.0h; let y: f32 = x; _ = y; }' },
    ]);
    expect(results.get('infinite-constant')!.join('\n')).toMatch(/-inf cannot be represented/);
    expect(results.get('f16-type-error')!.join('\n')).toMatch(/f32.*f16|f16.*f32/);
  });
});
