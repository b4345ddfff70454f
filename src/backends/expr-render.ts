// Renders position expressions into a C-family kernel language. One renderer serves every backend;
// a language only supplies the handful of spellings that differ (min/max, select, integer
// division), like tinygrad's renderers.

import type { Expr, IndexVariable } from '../dsl/expr.js';
import type { KernelPlan } from '../plan/kernel-plan.js';

export interface ExprLanguage {
  /** An integer literal in the kernel's signed 32-bit type. */
  int(value: number): string;
  bool(value: boolean): string;
  min(a: string, b: string): string;
  max(a: string, b: string): string;
  /** Floor division of signed integers (⌊a/b⌋, rounding towards −∞). */
  floorDiv(a: string, b: string): string;
  /** Truncated remainder, as JavaScript's % (and C's, WGSL's, Metal's). */
  mod(a: string, b: string): string;
  select(cond: string, then: string, otherwise: string): string;
}

export interface RenderNames {
  variable(name: IndexVariable): string;
  param(name: string): string;
}

const PRECEDENCE: Record<string, number> = { '||': 1, '&&': 2, '==': 3, '!=': 3, '<': 4, '<=': 4, '>': 4, '>=': 4, '+': 5, '-': 5, '*': 6, '%': 6 };

export function renderExpr(e: Expr, lang: ExprLanguage, names: RenderNames): string {
  return render(e, lang, names, 0);
}

function render(e: Expr, lang: ExprLanguage, names: RenderNames, parent: number): string {
  const wrap = (text: string, own: number): string => (own < parent ? `(${text})` : text);
  switch (e.kind) {
    case 'int':
      return e.value < 0 ? `(${lang.int(e.value)})` : lang.int(e.value);
    case 'bool':
      return lang.bool(e.value);
    case 'var':
      return names.variable(e.name);
    case 'param':
      return names.param(e.name);
    case 'neg':
      return `-${render(e.operand, lang, names, 7)}`;
    case 'not':
      return `!${render(e.operand, lang, names, 7)}`;
    case 'arith': {
      if (e.op === 'floordiv') return lang.floorDiv(render(e.left, lang, names, 0), render(e.right, lang, names, 0));
      const own = PRECEDENCE[e.op]!;
      if (e.op === '%') return wrap(lang.mod(render(e.left, lang, names, own), render(e.right, lang, names, own + 1)), own);
      // Left-associative: the right operand needs parentheses at equal precedence.
      return wrap(`${render(e.left, lang, names, own)} ${e.op} ${render(e.right, lang, names, own + 1)}`, own);
    }
    case 'compare':
    case 'logic': {
      const own = PRECEDENCE[e.op]!;
      return wrap(`${render(e.left, lang, names, own + 1)} ${e.op} ${render(e.right, lang, names, own + 1)}`, own);
    }
    case 'minmax': {
      const args = e.args.map((a) => render(a, lang, names, 0));
      const combine = e.fn === 'min' ? lang.min : lang.max;
      return args.reduce((acc, a) => combine(acc, a));
    }
    case 'select':
      return lang.select(render(e.cond, lang, names, 0), render(e.then, lang, names, 0), render(e.otherwise, lang, names, 0));
  }
}

/** The spellings shared by C-like kernel languages (CUDA, Metal, C++ emulation). */
export const cFamily: ExprLanguage = {
  int: (v) => String(v),
  bool: (v) => (v ? 'true' : 'false'),
  min: (a, b) => `imin(${a}, ${b})`,
  max: (a, b) => `imax(${a}, ${b})`,
  floorDiv: (a, b) => `floor_div(${a}, ${b})`,
  mod: (a, b) => `${a} % ${b}`,
  select: (c, t, f) => `(${c} ? ${t} : ${f})`,
};

/** The names every kernel language gives the index variables of the plan's expressions. */
const PLAN_VARIABLES: Record<IndexVariable, string> = { i: 'i', j: 'j', rowFirst: 'row_first', rowLast: 'row_last', keyTile: 'key_tile' };

/** Variables by their kernel names, parameters by the plan's named constants. */
export function planNames(plan: KernelPlan): RenderNames {
  const byParam = new Map(Object.keys(plan.pattern.params).map((p, k) => [p, plan.constants[k]!.name]));
  return {
    variable: (v) => PLAN_VARIABLES[v],
    param: (p) => {
      const name = byParam.get(p);
      if (name === undefined) throw new Error(`no constant for parameter ${p}`);
      return name;
    },
  };
}
