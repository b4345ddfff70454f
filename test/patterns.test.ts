// Built-in patterns: parameters (derived values, constraints, presets), the paper's Figure 2, the
// paper-formula variant, and the static checks (regions partition the causal triangle, positions
// stay in range) over random small parameters — plus deliberately broken patterns they must catch.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ParameterError } from '../src/errors.js';
import { checkLength, checkPattern } from '../src/dsl/check.js';
import { compilePattern, owningRegion, resolveParams } from '../src/dsl/instantiate.js';
import { chunksApart, chunksApartAtLeast, definePattern, distanceAtLeast, distanceBelow, everyPair, sameChunk, type PatternDefinition } from '../src/dsl/pattern.js';
import { positionMatrix } from '../src/explain/position-matrix.js';
import { builtinPattern, builtinPatterns, causal, dca, dcaPaper, rerope, selfExtend, slidingWindow } from '../src/patterns/index.js';
import { UsageError } from '../src/errors.js';
import { FIGURE_2, FIGURE_2_REGIONS } from './helpers/figure2.js';

function errorOf(run: () => unknown): Error {
  try {
    run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('DCA parameters', () => {
  it('derives the chunk length L = C − W', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (C, W) => {
        fc.pre(C - W >= 1);
        expect(resolveParams(dca, { chunkSize: C, localWindow: W })).toEqual({ chunkSize: C, localWindow: W, chunkLength: C - W });
      }),
      { numRuns: 100 },
    );
  });

  it('rejects L < 1 with a ParameterError that names the constraint', () => {
    for (const [C, W] of [[4, 4], [3, 7], [1, 1]] as const) {
      const err = errorOf(() => resolveParams(dca, { chunkSize: C, localWindow: W }));
      expect(err).toBeInstanceOf(ParameterError);
      expect(err.message).toBe(`pattern dca: chunk length L = chunk-size − local-window must be at least 1 (got ${C} − ${W} = ${C - W})`);
    }
  });

  it('rejects non-integer, negative, missing and unknown parameters', () => {
    const cases: Array<[Record<string, number | undefined>, string]> = [
      [{ chunkSize: 9.5, localWindow: 3 }, '--chunk-size must be an integer, got 9.5'],
      [{ chunkSize: 9, localWindow: 0.25 }, '--local-window must be an integer, got 0.25'],
      [{ chunkSize: 9, localWindow: Number.NaN }, '--local-window must be an integer, got NaN'],
      [{ chunkSize: 9, localWindow: -1 }, '--local-window must be at least 0, got -1'],
      [{ chunkSize: 0, localWindow: 0 }, '--chunk-size must be at least 1, got 0'],
      [{ localWindow: 3 }, 'pattern dca needs --chunk-size (C, the largest query position ever used (Qwen chunk_size))'],
      [{ chunkSize: 9, localWindow: 3, window: 2 }, 'pattern dca has no parameter --window'],
    ];
    for (const [given, message] of cases) {
      const err = errorOf(() => compilePattern(dca, given));
      expect(err).toBeInstanceOf(ParameterError);
      expect(err.message).toBe(message);
    }
  });

  it('--pretraining-length c expands to C = ⌊3c/4⌋, W = ⌊c/8⌋ (ChunkLlama defaults)', () => {
    const expand = dca.presets!['pretrainingLength']!.expand;
    expect(expand(4096)).toEqual({ chunkSize: 3072, localWindow: 512 });
    expect(resolveParams(dca, expand(4096))).toEqual({ chunkSize: 3072, localWindow: 512, chunkLength: 2560 });
    expect(resolveParams(dca, expand(32))).toEqual({ chunkSize: 24, localWindow: 4, chunkLength: 20 });
    expect(resolveParams(dca, expand(30))).toEqual({ chunkSize: 22, localWindow: 3, chunkLength: 19 });
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 1 << 20 }), (c) => {
        const p = expand(c);
        expect(p).toEqual({ chunkSize: Math.floor((3 * c) / 4), localWindow: Math.floor(c / 8) });
        expect(Number.isInteger(p['chunkSize'])).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('other patterns validate their parameters too', () => {
    expect(errorOf(() => resolveParams(dcaPaper, { c: 10, s: 6, w: 5 })).message).toBe('pattern dca-paper: w must be at most c − s (got w = 5, c − s = 4)');
    expect(errorOf(() => resolveParams(dcaPaper, { c: 6, s: 6, w: 1 })).message).toBe('pattern dca-paper: s must be smaller than c (got s = 6, c = 6)');
    expect(errorOf(() => resolveParams(rerope, { window: 0 }))).toBeInstanceOf(ParameterError);
    expect(errorOf(() => resolveParams(selfExtend, { groupSize: 2 })).message).toMatch(/needs --neighbor-window/);
    expect(errorOf(() => resolveParams(slidingWindow, { window: 1.5 })).message).toBe('--window must be an integer, got 1.5');
  });

  it('unknown pattern names are UsageErrors that list the built-ins', () => {
    const err = errorOf(() => builtinPattern('dca2'));
    expect(err).toBeInstanceOf(UsageError);
    expect(err.message).toMatch(/unknown pattern "dca2"; built-in patterns are causal, dca, dca-paper, self-extend, rerope, sliding-window/);
    expect(builtinPattern('dca')).toBe(dca);
  });
});

/** DCA's relative position straight from the DESIGN.md table (independent of the pattern code). */
function dcaRelative(C: number, W: number, i: number, j: number): [number, string] {
  const L = C - W;
  const r = (x: number): number => x % L;
  const n = (x: number): number => Math.floor(x / L);
  if (n(i) === n(j)) return [r(i) - r(j), 'intra'];
  if (n(i) - n(j) === 1) return [Math.min(r(i) + L, C) - r(j), 'successive'];
  return [Math.min(2 * L - 1, C) - r(j), 'inter'];
}

describe("the paper's Figure 2 and the DCA table", () => {
  it('dca with C = 9, W = 3 on 12 tokens gives the Figure 2 matrix', () => {
    const m = positionMatrix(compilePattern(dca, { chunkSize: 9, localWindow: 3 }), 12);
    expect(m.relative).toEqual(FIGURE_2);
    expect(m.region).toEqual(FIGURE_2_REGIONS);
  });

  it('dca matches the DESIGN.md table for random C, W and every causal pair (all three regions)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 14 }), fc.integer({ min: 0, max: 8 }), (C, W) => {
        fc.pre(C - W >= 1);
        const n = 3 * (C - W) + 4; // reaches the inter region
        const m = positionMatrix(compilePattern(dca, { chunkSize: C, localWindow: W }), n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            if (j > i) {
              expect(m.relative[i]![j]).toBeNull();
              expect(m.region[i]![j]).toBeNull();
              continue;
            }
            const [rel, region] = dcaRelative(C, W, i, j);
            expect([m.relative[i]![j], m.region[i]![j]]).toEqual([rel, region]);
            expect(rel).toBeGreaterThanOrEqual(0);
            expect(rel).toBeLessThanOrEqual(C);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('dca-paper with c = 10, s = 6, w = 4 equals dca with C = 9, W = 3 on 12 tokens', () => {
    const paper = positionMatrix(compilePattern(dcaPaper, { c: 10, s: 6, w: 4 }), 12);
    expect(paper.relative).toEqual(FIGURE_2);
    expect(paper.region).toEqual(FIGURE_2_REGIONS);
  });

  it('dca-paper equals dca (C = c − 1, W = c − 1 − s) when 2s ≥ c and w ≥ c − s − 1, and differs in the successive region when w < c − s − 1', () => {
    // With W = c − 1 − s, dca's successive query min(r + s, c − 1) reaches c − 1 at r = W, so the
    // paper's jump from s + w − 1 to c − 1 only shows when w < W (at w = W it is no jump at all).
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 16 }), fc.integer({ min: 1, max: 15 }), fc.integer({ min: 1, max: 15 }), (c, s, w) => {
        fc.pre(s < c && w <= c - s && 2 * s >= c);
        const n = 3 * s + 2;
        const paper = positionMatrix(compilePattern(dcaPaper, { c, s, w }), n);
        const code = positionMatrix(compilePattern(dca, { chunkSize: c - 1, localWindow: c - 1 - s }), n);
        expect(paper.region).toEqual(code.region);
        for (let i = s; i < 2 * s; i++) {
          const r = i % s;
          for (let j = 0; j < s; j++) {
            expect(paper.region[i]![j]).toBe('successive');
            expect(paper.relative[i]![j]).toBe((r < w ? s + r : c - 1) - j);
            const differs = r >= w && r < c - 1 - s;
            expect(paper.relative[i]![j] !== code.relative[i]![j]).toBe(differs);
          }
        }
        if (w >= c - s - 1) expect(paper.relative).toEqual(code.relative);
        else expect(paper.relative).not.toEqual(code.relative);
      }),
      { numRuns: 80 },
    );
  });

  it('dca-paper and dca differ on a concrete w < c − s case (c = 10, s = 6, w = 2)', () => {
    const paper = positionMatrix(compilePattern(dcaPaper, { c: 10, s: 6, w: 2 }), 12);
    expect(paper.relative).not.toEqual(FIGURE_2);
    expect(paper.relative[8]!.slice(0, 6)).toEqual([9, 8, 7, 6, 5, 4]); // r = 2 ≥ w: query at c − 1 = 9
    expect(FIGURE_2[8]!.slice(0, 6)).toEqual([8, 7, 6, 5, 4, 3]);
  });
});

// Random small parameters for each built-in pattern.
const builtinParams: Record<string, fc.Arbitrary<Record<string, number>>> = {
  causal: fc.constant({}),
  dca: fc.record({ chunkSize: fc.integer({ min: 1, max: 12 }), localWindow: fc.integer({ min: 0, max: 8 }) }).filter((p) => p.chunkSize - p.localWindow >= 1),
  'dca-paper': fc.record({ c: fc.integer({ min: 2, max: 12 }), s: fc.integer({ min: 1, max: 11 }), w: fc.integer({ min: 1, max: 11 }) }).filter((p) => p.s < p.c && p.w <= p.c - p.s),
  'self-extend': fc.record({ groupSize: fc.integer({ min: 1, max: 6 }), neighborWindow: fc.integer({ min: 1, max: 10 }) }),
  rerope: fc.record({ window: fc.integer({ min: 1, max: 12 }) }),
  'sliding-window': fc.record({ window: fc.integer({ min: 1, max: 12 }) }),
};

describe('static checks', () => {
  it('every built-in pattern has random small parameters defined in this test', () => {
    expect(builtinPatterns.map((p) => p.name).sort()).toEqual(Object.keys(builtinParams).sort());
  });

  for (const definition of builtinPatterns) {
    it(`${definition.name}: regions partition the causal triangle and positions stay in range`, () => {
      fc.assert(
        fc.property(builtinParams[definition.name]!, (params) => {
          const pattern = compilePattern(definition, params);
          const n = Math.min(checkLength(pattern), 60);
          expect(checkPattern(pattern, n)).toEqual([]);
        }),
        { numRuns: 25 },
      );
    });
  }

  it('dca positions follow the table and stay within [0, C] at the Qwen scale (sampled pairs)', () => {
    const C = 262144;
    const W = 8192;
    const pattern = compilePattern(dca, { chunkSize: C, localWindow: W });
    expect(pattern.positionLimit).toBe(C);
    expect(pattern.params['chunkLength']).toBe(C - W);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 * C }), fc.integer({ min: 0, max: 5 * C }), (x, y) => {
        const i = Math.max(x, y);
        const j = Math.min(x, y);
        const region = owningRegion(pattern, i, j)!;
        const rel = region.definition.queryPosition(i, pattern.params) - (region.definition.keyPosition ?? dca.keyPosition)(j, pattern.params);
        expect([rel, region.name]).toEqual(dcaRelative(C, W, i, j));
        expect(rel).toBeGreaterThanOrEqual(0);
        expect(rel).toBeLessThanOrEqual(C);
      }),
      { numRuns: 300 },
    );
  });

  const base = { summary: 'broken on purpose', keyPosition: (j: number) => j };
  const broken: Array<[string, PatternDefinition, Record<string, number>, string, RegExp]> = [
    ['overlapping regions', definePattern({
      ...base, name: 'overlap', params: {},
      regions: [
        { name: 'near', when: distanceBelow(() => 3), mask: 'causal', queryPosition: (i) => i },
        { name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => i },
      ],
    }), {}, 'partition', /pair \(i=0, j=0\) belongs to near and all/],
    ['a gap between regions', definePattern({
      ...base, name: 'gap', params: {},
      regions: [
        { name: 'near', when: distanceBelow(() => 2), mask: 'causal', queryPosition: (i) => i },
        { name: 'far', when: distanceAtLeast(() => 4), mask: 'full', queryPosition: (i) => i },
      ],
    }), {}, 'partition', /pair \(i=2, j=0\) belongs to no region/],
    ['a chunk gap (no successive region)', definePattern({
      ...base, name: 'chunk-gap', params: { length: { description: 'chunk length', min: 1 } },
      keyPosition: (j, p) => j % p.length,
      regions: [
        { name: 'intra', when: sameChunk((p) => p.length), mask: 'causal', queryPosition: (i, p) => i % p.length },
        { name: 'inter', when: chunksApartAtLeast((p) => p.length, 2), mask: 'full', queryPosition: (_i, p) => 2 * p.length - 1 },
      ],
    }), { length: 3 }, 'partition', /pair \(i=3, j=0\) belongs to no region/],
    ['a position out of the declared range', definePattern({
      ...base, name: 'out-of-range', params: { c: { description: 'c', min: 1 } },
      positionLimit: (p) => p.c,
      regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => i }],
    }), { c: 4 }, 'range', /region all: position outside \[0, 4\] at \(i=5, j=0\): query 5, key 0/],
    ['a negative distance', definePattern({
      ...base, name: 'negative', params: {},
      regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => i - 1 }],
    }), {}, 'range', /region all: negative position at \(i=0, j=0\)/],
    ["a 'full' region that touches the diagonal", definePattern({
      ...base, name: 'full-diagonal', params: {},
      regions: [{ name: 'all', when: everyPair, mask: 'full', queryPosition: (i) => i }],
    }), {}, 'mask', /region all is declared 'full' but owns the diagonal pair \(0, 0\)/],
    ["a DCA whose successive region is 'full' but includes the same chunk", definePattern({
      ...base, name: 'dca-wrong-distance', params: { length: { description: 'chunk length', min: 1 } },
      keyPosition: (j, p) => j % p.length,
      regions: [
        { name: 'near', when: chunksApart((p) => p.length, 0), mask: 'full', queryPosition: (i, p) => i % p.length },
        { name: 'far', when: chunksApartAtLeast((p) => p.length, 1), mask: 'full', queryPosition: (_i, p) => p.length },
      ],
    }), { length: 2 }, 'mask', /region near is declared 'full' but owns the diagonal pair/],
  ];

  for (const [what, definition, params, check, message] of broken) {
    it(`finds ${what}`, () => {
      const pattern = compilePattern(definition, params);
      const problems = checkPattern(pattern, 10);
      expect(problems.length).toBeGreaterThan(0);
      const ofKind = problems.filter((p) => p.check === check);
      expect(ofKind.length, JSON.stringify(problems)).toBeGreaterThan(0);
      expect(ofKind.map((p) => p.message).join('\n')).toMatch(message);
    });
  }

  it('the built-ins compile for the parameters the checks use (causal and sliding-window sanity)', () => {
    expect(checkPattern(compilePattern(causal, {}), 12)).toEqual([]);
    expect(positionMatrix(compilePattern(slidingWindow, { window: 2 }), 3).relative).toEqual([[0, null, null], [1, 0, null], [null, 1, 0]]);
  });
});
