// The kernel plan against brute-force enumeration: for random patterns, parameters and tile sizes,
// every query tile visits exactly the keys its rows need in each region, tiles the plan runs
// unmasked really are fully visible, and the element mask equals region ownership.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluate, evaluateInt } from '../src/dsl/expr.js';
import { compilePattern, maskAllows, owningRegion, type CompiledPattern } from '../src/dsl/instantiate.js';
import { planKernel, type KernelConfig } from '../src/plan/kernel-plan.js';
import { kernelPasses, partialWorkspaceFloats, workspaceFloatsPerRow } from '../src/plan/passes.js';
import { builtinPattern } from '../src/patterns/index.js';

const patternArb = fc.oneof(
  fc.integer({ min: 1, max: 40 }).chain((c) => fc.record({ name: fc.constant('dca'), params: fc.record({ chunkSize: fc.constant(c), localWindow: fc.integer({ min: 0, max: c - 1 }) }) })),
  fc.record({ name: fc.constant('causal'), params: fc.constant({}) }),
  fc.record({ name: fc.constant('rerope'), params: fc.record({ window: fc.integer({ min: 1, max: 30 }) }) }),
  fc.record({ name: fc.constant('self-extend'), params: fc.record({ groupSize: fc.integer({ min: 1, max: 5 }), neighborWindow: fc.integer({ min: 1, max: 25 }) }) }),
  fc.record({ name: fc.constant('sliding-window'), params: fc.record({ window: fc.integer({ min: 1, max: 30 }) }) }),
  fc.integer({ min: 3, max: 30 }).chain((c) => fc.integer({ min: 1, max: c - 1 }).chain((s) => fc.record({ name: fc.constant('dca-paper'), params: fc.record({ c: fc.constant(c), s: fc.constant(s), w: fc.integer({ min: 1, max: c - s }) }) }))),
);

function config(blockQ: number, blockK: number): KernelConfig {
  return { headDim: 32, dtype: 'f32', ropeStyle: 'half', blockQ, blockK, preRotatedKeys: false };
}

/** Simulates the kernel's loop structure and returns, per (i, j), the region that accumulated it. */
function simulate(pattern: CompiledPattern, c: KernelConfig, queries: number, keys: number): Map<string, string[]> {
  const plan = planKernel(pattern, c);
  const seen = new Map<string, string[]>();
  const offset = keys - queries;
  for (let start = 0; start < queries; start += c.blockQ) {
    const rowFirst = start + offset;
    const rowLast = Math.min(start + c.blockQ, queries) - 1 + offset;
    for (const r of plan.regions) {
      const begin = evaluateInt(r.tileKeyBegin, { rowFirst });
      const end = evaluateInt(r.tileKeyEnd, { rowLast });
      for (let keyTile = Math.floor(Math.max(begin, 0) / c.blockK) * c.blockK; keyTile <= end; keyTile += c.blockK) {
        const unmasked = evaluate(r.tileUnmasked, { rowFirst, rowLast, keyTile }) as boolean;
        for (let i = rowFirst; i <= rowLast; i++) {
          for (let j = keyTile; j < keyTile + c.blockK && j < keys; j++) {
            const visible = evaluate(r.elementVisible, { i, j }) as boolean;
            if (unmasked && !visible) throw new Error(`tile at keys ${keyTile} ran unmasked but (${i}, ${j}) is not visible in ${r.name}`);
            if (unmasked || visible) {
              const key = `${i},${j}`;
              seen.set(key, [...(seen.get(key) ?? []), r.name]);
            }
          }
        }
      }
    }
  }
  return seen;
}

describe('kernel plan', () => {
  it('visits every visible pair exactly once, in its own region, and nothing else', () => {
    fc.assert(
      fc.property(
        patternArb,
        fc.constantFrom(1, 4, 8, 16),
        fc.constantFrom(1, 2, 8, 16),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 0, max: 40 }),
        (p, blockQ, blockK, keys, fewer) => {
          const pattern = compilePattern(builtinPattern(p.name), p.params);
          const queries = Math.max(1, keys - fewer);
          const seen = simulate(pattern, config(blockQ, blockK), queries, keys);
          const offset = keys - queries;
          for (let i = offset; i < keys; i++) {
            for (let j = 0; j < keys; j++) {
              const owner = j <= i ? owningRegion(pattern, i, j) : undefined;
              const expected = owner !== undefined && maskAllows(owner.definition, pattern.params, i, j) ? [owner.name] : undefined;
              expect(seen.get(`${i},${j}`), `pair (${i}, ${j})`).toEqual(expected);
            }
          }
        },
      ),
      { numRuns: 150, seed: 42 },
    );
  });

  it('orders DCA regions by ascending keys and masks only edge tiles', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 3072, localWindow: 512 });
    const plan = planKernel(pattern, config(64, 16));
    expect(plan.regions.map((r) => r.name)).toEqual(['inter', 'successive', 'intra']);
    // A query tile in the middle of chunk 2 (L = 2560): inter tiles before 2560 − 16 are unmasked.
    const rowFirst = 2 * 2560 + 640;
    const rowLast = rowFirst + 63;
    const inter = plan.regions[0]!;
    expect(evaluateInt(inter.tileKeyBegin, { rowFirst })).toBe(0);
    expect(evaluateInt(inter.tileKeyEnd, { rowLast })).toBe(2559);
    expect(evaluate(inter.tileUnmasked, { rowFirst, rowLast, keyTile: 2544 })).toBe(true);
    const intra = plan.regions[2]!;
    expect(evaluateInt(intra.tileKeyBegin, { rowFirst })).toBe(5120);
    expect(evaluate(intra.tileUnmasked, { rowFirst, rowLast, keyTile: 5120 })).toBe(true);
    // The diagonal tile needs the element mask.
    expect(evaluate(intra.tileUnmasked, { rowFirst, rowLast, keyTile: rowFirst })).toBe(false);
    // Count masked tiles over the whole tile: only the diagonal ones.
    let masked = 0;
    let total = 0;
    for (const r of plan.regions) {
      const begin = evaluateInt(r.tileKeyBegin, { rowFirst });
      const end = evaluateInt(r.tileKeyEnd, { rowLast });
      for (let keyTile = Math.floor(begin / 16) * 16; keyTile <= end; keyTile += 16) {
        total++;
        if (!(evaluate(r.tileUnmasked, { rowFirst, rowLast, keyTile }) as boolean)) masked++;
      }
    }
    expect(total).toBe(Math.ceil((rowLast + 1) / 16));
    expect(masked).toBe(4);
  });

  it('refuses pre-rotated keys when a region has its own key position', () => {
    const pattern = compilePattern(builtinPattern('rerope'), { window: 8 });
    expect(() => planKernel(pattern, { ...config(16, 16), preRotatedKeys: true })).toThrow(/own position/);
  });

  it('rejects head dims and tiles it cannot render', () => {
    const pattern = compilePattern(builtinPattern('causal'), {});
    expect(() => planKernel(pattern, { ...config(16, 16), headDim: 30 })).toThrow(/multiple of 4/);
    expect(() => planKernel(pattern, { ...config(16, 16), headDim: 260 })).toThrow(/multiple of 4/);
    expect(() => planKernel(pattern, config(24, 16))).toThrow(/power of two/);
  });

  it('names the passes of each variant and sizes the one partial layout from them', () => {
    const pattern = compilePattern(builtinPattern('dca'), { chunkSize: 40, localWindow: 9 });
    const plan = planKernel(pattern, config(16, 16));
    const fused = kernelPasses(plan, 'fused');
    expect(fused.map((p) => p.role)).toEqual(['fused']);
    const threePass = kernelPasses(plan, 'three-pass');
    expect(threePass.map((p) => p.role)).toEqual(['region-partial', 'region-partial', 'region-partial', 'merge']);
    // Partial slots follow the plan's visit order, one per region, and the merge reads all of them.
    expect(threePass.flatMap((p) => (p.role === 'region-partial' ? [[p.slot, p.region.name]] : []))).toEqual(plan.regions.map((r, slot) => [slot, r.name]));
    expect(threePass.at(-1)).toMatchObject({ role: 'merge', partials: plan.regions.length });
    const d = plan.config.headDim;
    expect(workspaceFloatsPerRow(plan, 'fused')).toBe(0);
    expect(workspaceFloatsPerRow(plan, 'three-pass')).toBe(3 * (d + 1));
    // Three partials over 2 × 5 × 4 rows: outputs shaped like q, then one LSE per row.
    expect(partialWorkspaceFloats(3, 40, d)).toBe(3 * 40 * d + 3 * 40);
  });
});
