// The DSL reader: every allowed construct reads into an expression that evaluates like the native
// function; every construct outside the subset is a DslError naming the construct and where it is.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DslError } from '../src/errors.js';
import { bindParams, evaluate } from '../src/dsl/expr.js';
import { compilePattern } from '../src/dsl/instantiate.js';
import { definePattern, everyPair, type Params } from '../src/dsl/pattern.js';
import { readFunction, readSource, type ReadOptions } from '../src/dsl/reader.js';

const PARAM_NAMES = ['a', 'b', 'L'];
const queryOptions: ReadOptions = { indices: ['i'], paramNames: PARAM_NAMES, returns: 'int', context: 'pattern t, region r, queryPosition' };
const pairOptions: ReadOptions = { indices: ['i', 'j'], paramNames: PARAM_NAMES, returns: 'bool', context: 'pattern t, region r, when' };

const paramsArb = fc.record({ a: fc.integer({ min: 0, max: 40 }), b: fc.integer({ min: 0, max: 40 }), L: fc.integer({ min: 1, max: 17 }) });

// One function per allowed construct (and a few combinations). Written as ordinary TypeScript:
// the reference calls them natively, the reader parses their source.
const queryFunctions: Record<string, (i: number, p: Params) => number> = {
  'index variable': (i) => i,
  'integer literal': () => 7,
  'parameter access': (_i, p) => p.a,
  'addition and subtraction': (i, p) => i + p.a - 3,
  multiplication: (i, p) => 3 * i * p.b,
  'modulo': (i, p) => i % p.L,
  'Math.floor of a division': (i, p) => Math.floor(i / p.L),
  'Math.floor of a compound division': (i, p) => Math.floor((i + p.a) / (p.b + 1)),
  'Math.floor of an integer': (i) => Math.floor(i),
  'Math.min with two arguments': (i, p) => Math.min((i % p.L) + p.L, p.a),
  'Math.max with three arguments': (i, p) => Math.max(i, p.a, p.b),
  'unary minus and plus': (i, p) => -(i - p.a) + +p.b,
  'conditional expression': (i, p) => (i % p.L < p.b ? p.L + (i % p.L) : p.a - 1),
  'comparisons, equality and logic': (i, p) => (i === p.a || (i !== p.b && !(i >= p.L)) ? 1 : i <= p.b && i > p.a ? 2 : 3),
  'loose equality': (i, p) => (i == p.a ? 1 : i != p.b ? 2 : 3),
  'boolean literals': (i, p) => (i > p.a && true) || false ? 4 : 5,
  'destructured parameters with an alias': (i, { a, b: bee }) => a * i - bee,
  'block body with const declarations': (i, p) => {
    const r = i % p.L;
    const n = Math.floor(i / p.L);
    const far = n > 0 && r >= p.b;
    return far ? r + p.L : -r;
  },
  'nested parentheses': (i, p) => ((((i + 1)) * ((p.a)))),
  'DCA successive position': (i, p) => Math.min((i % p.L) + p.L, p.a + p.L),
  'Self-Extend grouped position': (i, p) => Math.floor(i / (p.b + 1)) + p.L - Math.floor(p.L / (p.b + 1)),
};

const pairFunctions: Record<string, (i: number, j: number, p: Params) => boolean> = {
  'distance window': (i, j, p) => i - j < p.a,
  'chunk distance': (i, j, p) => Math.floor(i / p.L) - Math.floor(j / p.L) >= 2,
  'logic over pairs': (i, j, p) => !(i === j) && (j % p.L === 0 || i - j > p.b),
};

const asInteger = (v: number | boolean): number | boolean => (v === 0 ? 0 : v);

describe('DSL reader: allowed constructs', () => {
  for (const [name, fn] of Object.entries(queryFunctions)) {
    it(`${name} reads into an expression that evaluates like the native function`, () => {
      const expr = readFunction(fn, queryOptions);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 200 }), paramsArb, (i, params) => {
          // Integer semantics: −0 and +0 are the same position (JavaScript's −0 is an artefact).
          const native = asInteger(fn(i, params));
          expect(asInteger(evaluate(expr, { i, params }))).toBe(native);
          // Folding the parameters in (what the plan and backends see) keeps the value.
          expect(asInteger(evaluate(bindParams(expr, params), { i }))).toBe(native);
        }),
        { numRuns: 60 },
      );
    });
  }

  for (const [name, fn] of Object.entries(pairFunctions)) {
    it(`pair test "${name}" reads into a boolean expression that agrees natively`, () => {
      const expr = readFunction(fn, pairOptions);
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), paramsArb, (i, j, params) => {
          expect(evaluate(expr, { i, j, params })).toBe(fn(i, j, params));
          expect(evaluate(bindParams(expr, params), { i, j })).toBe(fn(i, j, params));
        }),
        { numRuns: 60 },
      );
    });
  }

  it('reads source text of a function expression and of a parenthesised arrow', () => {
    const fnExpr = readSource({ text: 'function (i, p) { return i * p.a; }' }, queryOptions);
    expect(evaluate(fnExpr, { i: 5, params: { a: 3, b: 0, L: 1 } })).toBe(15);
    const paren = readSource({ text: '((i) => i + 1)' }, queryOptions);
    expect(evaluate(paren, { i: 5 })).toBe(6);
  });

  it('keeps division by a parameter symbolic until parameters are bound', () => {
    const expr = readFunction((i: number, p: Params) => Math.floor(i / p.L), queryOptions);
    expect(expr).toEqual({ kind: 'arith', op: 'floordiv', left: { kind: 'var', name: 'i' }, right: { kind: 'param', name: 'L' } });
    expect(bindParams(expr, { a: 0, b: 0, L: 4 })).toEqual({ kind: 'arith', op: 'floordiv', left: { kind: 'var', name: 'i' }, right: { kind: 'int', value: 4 } });
  });
});

// Each rejected construct: the source text, and a pattern the message must match (naming it).
const rejected: Array<[string, string, RegExp, ReadOptions?]> = [
  ['division without Math.floor', '(i, p) => i / p.a', /division must be written Math\.floor\(a \/ b\).*"i \/ p\.a"/],
  ['division nested in an expression', '(i, p) => 1 + (i / 2)', /division must be written Math\.floor\(a \/ b\).*"i \/ 2"/],
  ['let declaration', '(i) => { let x = i; return x; }', /only const declarations are allowed, found let/],
  ['var declaration', '(i) => { var x = i; return x; }', /only const declarations are allowed, found var/],
  ['for loop', '(i) => { for (let k = 0; k < 3; k++) {} return i; }', /unsupported statement ForStatement/],
  ['while loop', '(i) => { while (i > 0) {} return i; }', /unsupported statement WhileStatement/],
  ['if statement', '(i) => { if (i > 0) return 1; return 0; }', /unsupported statement IfStatement/],
  ['assignment', '(i) => { i = 3; return i; }', /unsupported statement ExpressionStatement/],
  ['unknown identifier', '(i) => i + outside', /unknown name "outside"/],
  ['Math.sqrt', '(i) => Math.sqrt(i)', /unsupported call "Math\.sqrt\(…\)".*Math\.floor, Math\.min and Math\.max/],
  ['Math.abs', '(i) => Math.abs(i)', /unsupported call "Math\.abs\(…\)"/],
  ['an arbitrary function call', '(i) => helper(i)', /unsupported call "helper\(…\)"/],
  ['Math.PI', '(i) => i + Math.PI', /unsupported property access "Math\.PI"/],
  ['string literal', "(i) => 'abc'", /unsupported construct StringLiteral "'abc'"/],
  ['template literal', '(i) => `${i}`', /unsupported construct TemplateExpression/],
  ['array indexing', '(i) => [i][0]', /unsupported construct ElementAccessExpression/],
  ['fractional literal', '(i) => i + 0.5', /only integer literals are allowed, found 0\.5/],
  ['exponentiation', '(i) => i ** 2', /unsupported operator "\*\*"/],
  ['bit shift', '(i) => i << 1', /unsupported operator "<<"/],
  ['wrong parameter name', '(i, p) => i + p.nope', /unknown parameter "nope"; this pattern has a, b, L/],
  ['wrong destructured parameter name', '(i, { nope }) => i + nope', /unknown parameter "nope"/],
  ['parameter object used whole', '(i, p) => p', /parameter object must be read field by field/],
  ['a boolean where an integer is needed', '(i) => i > 3', /must yield an integer, but this is a boolean/],
  ['a boolean inside arithmetic', '(i) => (i > 3) + 1', /must yield an integer, but this is a boolean/],
  ['a boolean as a Math.min argument', '(i) => Math.min(i, i > 1)', /must yield an integer, but this is a boolean/],
  ['an integer where a boolean is needed', '(i, j) => i - j', /must yield a boolean, but this is an integer/, pairOptions],
  ['an integer as a condition', '(i) => (i ? 1 : 2)', /must yield a boolean, but this is an integer/],
  ['branches of different types', '(i) => (i > 1 ? 1 : false)', /both branches of \?: must have the same type/],
  ['too many parameters', '(i, p, extra) => i', /takes 3 parameters; a position function takes \(i, p\)/],
  ['no return', '(i) => { const x = i; }', /function body has no return statement/],
  ['code after return', '(i) => { return i; const y = 1; }', /unreachable code after return/],
  ['increment', '(i) => i++', /unsupported construct PostfixUnaryExpression/],
  ['a non-function', '42', /expected an arrow function, found NumericLiteral/],
];

describe('DSL reader: rejected constructs', () => {
  for (const [name, text, message, options] of rejected) {
    it(`rejects ${name} with a DslError naming it`, () => {
      let caught: unknown;
      try {
        readSource({ text }, options ?? queryOptions);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(DslError);
      const err = caught as DslError;
      expect(err.message).toMatch(message);
      // Without a file, the location is the pattern, region and function.
      expect(err.message.startsWith(`${(options ?? queryOptions).context}: `)).toBe(true);
      expect(err.location.file).toBeUndefined();
    });
  }

  it('names pattern, region and function when a built-in-style pattern has a bad construct', () => {
    const outside = 3;
    const cases: Array<[string, RegExp, () => unknown]> = [
      ['queryPosition', /pattern bad-division, region all, queryPosition: division must be written Math\.floor/, () => compilePattern(definePattern({
        name: 'bad-division', summary: '', params: { g: { description: 'g', min: 1 } }, keyPosition: (j) => j,
        regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i, p) => i / p.g }],
      }), { g: 2 })],
      ['keyPosition', /pattern bad-key, keyPosition: unknown name "outside"/, () => compilePattern(definePattern({
        name: 'bad-key', summary: '', params: {}, keyPosition: (j) => j + outside,
        regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => i }],
      }), {})],
      ['region keyPosition', /pattern bad-region-key, region far, keyPosition: unsupported call "Math\.sqrt\(…\)"/, () => compilePattern(definePattern({
        name: 'bad-region-key', summary: '', params: {}, keyPosition: (j) => j,
        regions: [{ name: 'far', when: everyPair, mask: 'causal', queryPosition: (i) => i, keyPosition: (j) => Math.sqrt(j) }],
      }), {})],
      ['pair condition', /pattern bad-when, region odd, when: unknown parameter "size"/, () => compilePattern(definePattern({
        name: 'bad-when', summary: '', params: { window: { description: 'w', min: 1 } }, keyPosition: (j) => j,
        regions: [{ name: 'odd', when: { kind: 'pair', test: (i, j, p) => i - j < p.size }, mask: 'causal', queryPosition: (i) => i }],
      }), { window: 2 })],
      ['block body with let', /pattern bad-let, region all, queryPosition: only const declarations are allowed, found let/, () => compilePattern(definePattern({
        name: 'bad-let', summary: '', params: {}, keyPosition: (j) => j,
        regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => {
          // eslint-disable-next-line prefer-const
          let x = i;
          return x;
        } }],
      }), {})],
      ['loop', /pattern bad-loop, region all, queryPosition: unsupported statement ForStatement/, () => compilePattern(definePattern({
        name: 'bad-loop', summary: '', params: {}, keyPosition: (j) => j,
        regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: (i) => {
          for (let k = 0; k < 2; k++) i += k;
          return i;
        } }],
      }), {})],
      ['boolean as position', /pattern bad-bool, region all, queryPosition: must yield an integer, but this is a boolean/, () => compilePattern(definePattern({
        name: 'bad-bool', summary: '', params: {}, keyPosition: (j) => j,
        regions: [{ name: 'all', when: everyPair, mask: 'causal', queryPosition: ((i: number) => i > 2) as unknown as (i: number) => number }],
      }), {})],
    ];
    for (const [what, message, run] of cases) {
      let caught: unknown;
      try {
        run();
      } catch (err) {
        caught = err;
      }
      expect(caught, what).toBeInstanceOf(DslError);
      expect((caught as Error).message, what).toMatch(message);
    }
  });
});

describe('DSL reader: source locations', () => {
  it('maps a construct to file:line:col from the registered function position', () => {
    // The function starts at line 10, column 20 of some file; the bad construct is on its second line.
    const text = '(i, p) => {\n  const r = i % p.L;\n  return Math.sqrt(r);\n}';
    try {
      readSource({ text, file: 'pat.ts', line: 10, column: 20 }, queryOptions);
      expect.unreachable('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(DslError);
      const e = err as DslError;
      expect(e.location).toMatchObject({ file: 'pat.ts', line: 12, column: 10 });
      expect(e.message).toBe('pat.ts:12:10 (pattern t, region r, queryPosition): unsupported call "Math.sqrt(…)"; allowed calls are Math.floor, Math.min and Math.max');
    }
  });

  it('computes the column from the function start when the construct is on its first line', () => {
    const text = '(i, p) => i + p.zz';
    try {
      readSource({ text, file: 'x.ts', line: 3, column: 18 }, queryOptions);
      expect.unreachable('should have thrown');
    } catch (err) {
      expect((err as DslError).location).toMatchObject({ file: 'x.ts', line: 3, column: 18 + text.indexOf('p.zz') });
    }
  });
});
