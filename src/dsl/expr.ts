// The position-expression tree: the typed IR every backend renders. Built by the DSL reader from a
// pattern's TypeScript functions, and by the plan for loop bounds and masks. Integer-valued
// expressions over the query index `i`, the key index `j` and named constants; comparisons and
// logic yield booleans. Parameters are folded to integer constants before rendering.

/**
 * Integer variables an expression may read: the query index `i` and key index `j` (absolute
 * positions in the key sequence), and the tile-level values the plan uses for loop bounds and mask
 * decisions: the first and last query index of a tile and the first key index of a key tile.
 */
export type IndexVariable = 'i' | 'j' | 'rowFirst' | 'rowLast' | 'keyTile';
export type ArithmeticOp = '+' | '-' | '*' | '%' | 'floordiv';
export type CompareOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

export type Expr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'var'; readonly name: IndexVariable }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'arith'; readonly op: ArithmeticOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'neg'; readonly operand: Expr }
  | { readonly kind: 'minmax'; readonly fn: 'min' | 'max'; readonly args: readonly Expr[] }
  | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'logic'; readonly op: '&&' | '||'; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'not'; readonly operand: Expr }
  | { readonly kind: 'select'; readonly cond: Expr; readonly then: Expr; readonly otherwise: Expr };

export type ExprType = 'int' | 'bool';

// Small constructors keep plan code readable.
export const int = (value: number): Expr => ({ kind: 'int', value });
export const variable = (name: IndexVariable): Expr => ({ kind: 'var', name });
export const param = (name: string): Expr => ({ kind: 'param', name });
export const add = (left: Expr, right: Expr): Expr => ({ kind: 'arith', op: '+', left, right });
export const sub = (left: Expr, right: Expr): Expr => ({ kind: 'arith', op: '-', left, right });
export const mul = (left: Expr, right: Expr): Expr => ({ kind: 'arith', op: '*', left, right });
export const floorDiv = (left: Expr, right: Expr): Expr => ({ kind: 'arith', op: 'floordiv', left, right });
export const mod = (left: Expr, right: Expr): Expr => ({ kind: 'arith', op: '%', left, right });
export const min = (...args: Expr[]): Expr => ({ kind: 'minmax', fn: 'min', args });
export const max = (...args: Expr[]): Expr => ({ kind: 'minmax', fn: 'max', args });
export const compare = (op: CompareOp, left: Expr, right: Expr): Expr => ({ kind: 'compare', op, left, right });
export const and = (left: Expr, right: Expr): Expr => ({ kind: 'logic', op: '&&', left, right });
export const or = (left: Expr, right: Expr): Expr => ({ kind: 'logic', op: '||', left, right });
export const select = (cond: Expr, then: Expr, otherwise: Expr): Expr => ({ kind: 'select', cond, then, otherwise });

export interface Bindings {
  readonly i?: number;
  readonly j?: number;
  readonly rowFirst?: number;
  readonly rowLast?: number;
  readonly keyTile?: number;
  readonly params?: Readonly<Record<string, number>>;
}

/** Integer division rounding towards −∞, as `Math.floor(a / b)` does for integers. */
export function floorDivide(a: number, b: number): number {
  return Math.floor(a / b);
}

/** Evaluates an expression (numbers for int, booleans for bool). Used by tests and the plan. */
export function evaluate(e: Expr, env: Bindings): number | boolean {
  switch (e.kind) {
    case 'int':
    case 'bool':
      return e.value;
    case 'var': {
      const v = env[e.name];
      if (v === undefined) throw new Error(`expression uses ${e.name}, which is not bound here`);
      return v;
    }
    case 'param': {
      const v = env.params?.[e.name];
      if (v === undefined) throw new Error(`expression uses parameter ${e.name}, which is not bound`);
      return v;
    }
    case 'arith': {
      const a = evaluate(e.left, env) as number;
      const b = evaluate(e.right, env) as number;
      switch (e.op) {
        case '+': return a + b;
        case '-': return a - b;
        case '*': return a * b;
        case '%': return a % b;
        case 'floordiv': return floorDivide(a, b);
      }
      break;
    }
    case 'neg':
      return -(evaluate(e.operand, env) as number);
    case 'minmax': {
      const values = e.args.map((a) => evaluate(a, env) as number);
      return e.fn === 'min' ? Math.min(...values) : Math.max(...values);
    }
    case 'compare': {
      const a = evaluate(e.left, env) as number;
      const b = evaluate(e.right, env) as number;
      switch (e.op) {
        case '<': return a < b;
        case '<=': return a <= b;
        case '>': return a > b;
        case '>=': return a >= b;
        case '==': return a === b;
        case '!=': return a !== b;
      }
      break;
    }
    case 'logic': {
      const a = evaluate(e.left, env) as boolean;
      return e.op === '&&' ? a && (evaluate(e.right, env) as boolean) : a || (evaluate(e.right, env) as boolean);
    }
    case 'not':
      return !(evaluate(e.operand, env) as boolean);
    case 'select':
      return (evaluate(e.cond, env) as boolean) ? evaluate(e.then, env) : evaluate(e.otherwise, env);
  }
  throw new Error('unreachable expression kind');
}

export function evaluateInt(e: Expr, env: Bindings): number {
  return evaluate(e, env) as number;
}

/** Replaces parameters by their values and folds constant sub-expressions. */
export function bindParams(e: Expr, params: Readonly<Record<string, number>>): Expr {
  return fold(substitute(e, params));
}

function substitute(e: Expr, params: Readonly<Record<string, number>>): Expr {
  switch (e.kind) {
    case 'param': {
      const v = params[e.name];
      if (v === undefined) throw new Error(`unknown parameter ${e.name}`);
      return int(v);
    }
    case 'int': case 'bool': case 'var':
      return e;
    case 'arith': case 'compare': case 'logic':
      return { ...e, left: substitute(e.left, params), right: substitute(e.right, params) };
    case 'neg': case 'not':
      return { ...e, operand: substitute(e.operand, params) };
    case 'minmax':
      return { ...e, args: e.args.map((a) => substitute(a, params)) };
    case 'select':
      return { ...e, cond: substitute(e.cond, params), then: substitute(e.then, params), otherwise: substitute(e.otherwise, params) };
  }
}

const isConst = (e: Expr): e is { kind: 'int'; value: number } | { kind: 'bool'; value: boolean } =>
  e.kind === 'int' || e.kind === 'bool';

/** Constant folding plus the algebraic identities that keep generated code short (x+0, x*1, …). */
export function fold(e: Expr): Expr {
  switch (e.kind) {
    case 'int': case 'bool': case 'var': case 'param':
      return e;
    case 'arith': {
      const left = fold(e.left);
      const right = fold(e.right);
      const folded: Expr = { ...e, left, right };
      if (isConst(left) && isConst(right)) return int(evaluateInt(folded, {}));
      if (e.op === '+' && right.kind === 'int' && right.value === 0) return left;
      if (e.op === '+' && left.kind === 'int' && left.value === 0) return right;
      if (e.op === '-' && right.kind === 'int' && right.value === 0) return left;
      if (e.op === '-' && right.kind === 'int' && right.value < 0) return { ...e, op: '+', left, right: int(-right.value) };
      if (e.op === '*' && right.kind === 'int' && right.value === 1) return left;
      if (e.op === '*' && left.kind === 'int' && left.value === 1) return right;
      if (e.op === 'floordiv' && right.kind === 'int' && right.value === 1) return left;
      return folded;
    }
    case 'neg': {
      const operand = fold(e.operand);
      return operand.kind === 'int' ? int(-operand.value) : { ...e, operand };
    }
    case 'minmax': {
      const args = e.args.map(fold);
      const consts = args.filter((a): a is { kind: 'int'; value: number } => a.kind === 'int');
      const rest = args.filter((a) => a.kind !== 'int');
      if (consts.length === 0) return args.length === 1 ? args[0]! : { ...e, args };
      const c = e.fn === 'min' ? Math.min(...consts.map((a) => a.value)) : Math.max(...consts.map((a) => a.value));
      if (rest.length === 0) return int(c);
      return { ...e, args: [...rest, int(c)] };
    }
    case 'compare': {
      const folded: Expr = { ...e, left: fold(e.left), right: fold(e.right) };
      return isConst(folded.left) && isConst(folded.right) ? { kind: 'bool', value: evaluate(folded, {}) as boolean } : folded;
    }
    case 'logic': {
      const left = fold(e.left);
      const right = fold(e.right);
      if (left.kind === 'bool') {
        if (e.op === '&&') return left.value ? right : left;
        return left.value ? left : right;
      }
      if (right.kind === 'bool') {
        if (e.op === '&&') return right.value ? left : { ...e, left, right };
        return right.value ? { ...e, left, right } : left;
      }
      return { ...e, left, right };
    }
    case 'not': {
      const operand = fold(e.operand);
      return operand.kind === 'bool' ? { kind: 'bool', value: !operand.value } : { ...e, operand };
    }
    case 'select': {
      const cond = fold(e.cond);
      const then = fold(e.then);
      const otherwise = fold(e.otherwise);
      if (cond.kind === 'bool') return cond.value ? then : otherwise;
      return { ...e, cond, then, otherwise };
    }
  }
}

/** Replaces an index variable by an expression (e.g. i by the first row of a tile). */
export function substituteVar(e: Expr, name: IndexVariable, by: Expr): Expr {
  switch (e.kind) {
    case 'var':
      return e.name === name ? by : e;
    case 'int': case 'bool': case 'param':
      return e;
    case 'arith': case 'compare': case 'logic':
      return { ...e, left: substituteVar(e.left, name, by), right: substituteVar(e.right, name, by) };
    case 'neg': case 'not':
      return { ...e, operand: substituteVar(e.operand, name, by) };
    case 'minmax':
      return { ...e, args: e.args.map((a) => substituteVar(a, name, by)) };
    case 'select':
      return { ...e, cond: substituteVar(e.cond, name, by), then: substituteVar(e.then, name, by), otherwise: substituteVar(e.otherwise, name, by) };
  }
}

