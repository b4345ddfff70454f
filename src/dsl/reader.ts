// Reads a pattern function's source (via ts-morph) into the expression tree. Accepts the DSL subset:
// integer literals, the function's parameters, parameter access (`p.name` or destructured names),
// + - * %, Math.floor(a / b), Math.min, Math.max, comparisons, && || !, `? :`, parentheses, unary
// minus, and block bodies made of `const` declarations and one `return`. Anything else is a
// DslError naming the construct and where it is.

import { Node, Project, SyntaxKind, type SourceFile } from 'ts-morph';
import { DslError, type SourceLocation } from '../errors.js';
import type { Expr, ExprType, IndexVariable } from './expr.js';
import { functionSource, type FunctionSource } from './source-registry.js';

export interface ReadOptions {
  /** Index variables bound to the function's leading parameters, in order (e.g. ['i'] or ['i', 'j']). */
  readonly indices: readonly IndexVariable[];
  /** Names of the pattern's parameters (base and derived) that `p.name` may refer to. */
  readonly paramNames: readonly string[];
  /** Type the function must return. */
  readonly returns: ExprType;
  /** "pattern dca, region intra, queryPosition": used in every message. */
  readonly context: string;
}

let project: Project | undefined;
function sharedProject(): Project {
  project ??= new Project({ useInMemoryFileSystem: true, compilerOptions: { allowJs: true } });
  return project;
}

const PREFIX = 'const __dcagen_fn = (';

/** Parses `fn` and returns its body as an expression tree (parameters stay symbolic). */
export function readFunction(fn: (...args: never[]) => unknown, options: ReadOptions): Expr {
  return readSource(functionSource(fn), options);
}

export function readSource(source: FunctionSource, options: ReadOptions): Expr {
  // One scratch file, replaced per function: the project only ever holds the function being read.
  const file: SourceFile = sharedProject().createSourceFile('__dcagen_function.ts', `${PREFIX}${source.text}\n);`, { overwrite: true });
  try {
    return new FunctionReader(file, source, options).read();
  } finally {
    sharedProject().removeSourceFile(file);
  }
}

type Scope = Map<string, { kind: 'index'; name: IndexVariable } | { kind: 'params' } | { kind: 'param'; name: string } | { kind: 'local'; expr: Expr; type: ExprType }>;

class FunctionReader {
  constructor(
    private readonly file: SourceFile,
    private readonly source: FunctionSource,
    private readonly options: ReadOptions,
  ) {}

  read(): Expr {
    const decl = this.file.getVariableDeclarationOrThrow('__dcagen_fn');
    let init = decl.getInitializerOrThrow();
    while (Node.isParenthesizedExpression(init)) init = init.getExpression();
    if (!Node.isArrowFunction(init) && !Node.isFunctionExpression(init)) {
      throw this.error(init, `expected an arrow function, found ${init.getKindName()}`);
    }
    const scope: Scope = new Map();
    const params = init.getParameters();
    const expected = this.options.indices.length + 1;
    if (params.length > expected) {
      throw this.error(params[expected]!, `takes ${params.length} parameters; a position function takes (${[...this.options.indices, 'p'].join(', ')})`);
    }
    params.forEach((param, k) => {
      const nameNode = param.getNameNode();
      if (k < this.options.indices.length) {
        if (!Node.isIdentifier(nameNode)) throw this.error(nameNode, 'an index parameter must be a plain name');
        scope.set(nameNode.getText(), { kind: 'index', name: this.options.indices[k]! });
      } else if (Node.isIdentifier(nameNode)) {
        scope.set(nameNode.getText(), { kind: 'params' });
      } else if (Node.isObjectBindingPattern(nameNode)) {
        for (const element of nameNode.getElements()) {
          const local = element.getNameNode();
          if (!Node.isIdentifier(local) || element.getInitializer() || element.getDotDotDotToken()) {
            throw this.error(element, 'only plain destructuring of parameters is supported ({ a, b: alias })');
          }
          const key = element.getPropertyNameNode()?.getText() ?? local.getText();
          this.checkParamName(key, element);
          scope.set(local.getText(), { kind: 'param', name: key });
        }
      } else {
        throw this.error(nameNode, `unsupported parameter form ${nameNode.getKindName()}`);
      }
    });
    const body = init.getBody();
    if (body === undefined) throw this.error(init, 'function has no body');
    if (Node.isBlock(body)) return this.readBlock(body, scope);
    return this.typed(this.expr(body, scope), this.options.returns, body);
  }

  private readBlock(block: Node, scope: Scope): Expr {
    const statements = Node.isBlock(block) ? block.getStatements() : [];
    for (let k = 0; k < statements.length; k++) {
      const st = statements[k]!;
      if (Node.isVariableStatement(st)) {
        if (st.getDeclarationKind() !== 'const') throw this.error(st, `only const declarations are allowed, found ${st.getDeclarationKind()}`);
        for (const d of st.getDeclarations()) {
          const nameNode = d.getNameNode();
          const init = d.getInitializer();
          if (!Node.isIdentifier(nameNode) || init === undefined) throw this.error(d, 'a const declaration must bind one name to a value');
          const [expr, type] = this.expr(init, scope);
          scope.set(nameNode.getText(), { kind: 'local', expr, type });
        }
      } else if (Node.isReturnStatement(st)) {
        if (k !== statements.length - 1) throw this.error(statements[k + 1]!, 'unreachable code after return');
        const value = st.getExpression();
        if (value === undefined) throw this.error(st, 'return needs a value');
        return this.typed(this.expr(value, scope), this.options.returns, value);
      } else {
        throw this.error(st, `unsupported statement ${describe(st)}; use const declarations and one return`);
      }
    }
    throw this.error(block, 'function body has no return statement');
  }

  private typed([expr, type]: [Expr, ExprType], want: ExprType, at: Node): Expr {
    if (type !== want) throw this.error(at, `must yield ${want === 'int' ? 'an integer' : 'a boolean'}, but this is ${type === 'int' ? 'an integer' : 'a boolean'}`);
    return expr;
  }

  private int(node: Node, scope: Scope): Expr {
    return this.typed(this.expr(node, scope), 'int', node);
  }

  private bool(node: Node, scope: Scope): Expr {
    return this.typed(this.expr(node, scope), 'bool', node);
  }

  private expr(node: Node, scope: Scope): [Expr, ExprType] {
    if (Node.isParenthesizedExpression(node)) return this.expr(node.getExpression(), scope);
    if (Node.isAsExpression(node) || Node.isNonNullExpression(node) || Node.isTypeAssertion(node)) {
      return this.expr(node.getExpression(), scope);
    }
    if (Node.isNumericLiteral(node)) {
      const value = node.getLiteralValue();
      if (!Number.isSafeInteger(value)) throw this.error(node, `only integer literals are allowed, found ${node.getText()}`);
      return [{ kind: 'int', value }, 'int'];
    }
    if (node.getKind() === SyntaxKind.TrueKeyword || node.getKind() === SyntaxKind.FalseKeyword) {
      return [{ kind: 'bool', value: node.getKind() === SyntaxKind.TrueKeyword }, 'bool'];
    }
    if (Node.isIdentifier(node)) {
      const entry = scope.get(node.getText());
      if (entry === undefined) throw this.error(node, `unknown name "${node.getText()}"; only the function's parameters, parameter fields and local consts are in scope`);
      switch (entry.kind) {
        case 'index': return [{ kind: 'var', name: entry.name }, 'int'];
        case 'param': return [{ kind: 'param', name: entry.name }, 'int'];
        case 'local': return [entry.expr, entry.type];
        case 'params': throw this.error(node, 'the parameter object must be read field by field (p.name)');
      }
    }
    if (Node.isPropertyAccessExpression(node)) {
      const target = node.getExpression();
      if (Node.isIdentifier(target) && scope.get(target.getText())?.kind === 'params') {
        const name = node.getName();
        this.checkParamName(name, node);
        return [{ kind: 'param', name }, 'int'];
      }
      throw this.error(node, `unsupported property access "${node.getText()}"; only parameter fields (p.name) are allowed`);
    }
    if (Node.isPrefixUnaryExpression(node)) {
      const op = node.getOperatorToken();
      if (op === SyntaxKind.MinusToken) return [{ kind: 'neg', operand: this.int(node.getOperand(), scope) }, 'int'];
      if (op === SyntaxKind.PlusToken) return [this.int(node.getOperand(), scope), 'int'];
      if (op === SyntaxKind.ExclamationToken) return [{ kind: 'not', operand: this.bool(node.getOperand(), scope) }, 'bool'];
      throw this.error(node, `unsupported operator in "${node.getText()}"`);
    }
    if (Node.isBinaryExpression(node)) return this.binary(node, scope);
    if (Node.isConditionalExpression(node)) {
      const cond = this.bool(node.getCondition(), scope);
      const [then, thenType] = this.expr(node.getWhenTrue(), scope);
      const [otherwise, elseType] = this.expr(node.getWhenFalse(), scope);
      if (thenType !== elseType) throw this.error(node, 'both branches of ?: must have the same type');
      return [{ kind: 'select', cond, then, otherwise }, thenType];
    }
    if (Node.isCallExpression(node)) return this.call(node, scope);
    throw this.error(node, `unsupported construct ${describe(node)}`);
  }

  private binary(node: Node & { getOperatorToken(): Node; getLeft(): Node; getRight(): Node }, scope: Scope): [Expr, ExprType] {
    const op = node.getOperatorToken().getText();
    const arith: Record<string, '+' | '-' | '*' | '%'> = { '+': '+', '-': '-', '*': '*', '%': '%' };
    const cmp: Record<string, '<' | '<=' | '>' | '>=' | '==' | '!='> = { '<': '<', '<=': '<=', '>': '>', '>=': '>=', '===': '==', '!==': '!=', '==': '==', '!=': '!=' };
    const arithOp = arith[op];
    if (arithOp !== undefined) {
      return [{ kind: 'arith', op: arithOp, left: this.int(node.getLeft(), scope), right: this.int(node.getRight(), scope) }, 'int'];
    }
    const cmpOp = cmp[op];
    if (cmpOp !== undefined) {
      return [{ kind: 'compare', op: cmpOp, left: this.int(node.getLeft(), scope), right: this.int(node.getRight(), scope) }, 'bool'];
    }
    if (op === '&&' || op === '||') {
      return [{ kind: 'logic', op, left: this.bool(node.getLeft(), scope), right: this.bool(node.getRight(), scope) }, 'bool'];
    }
    if (op === '/') throw this.error(node, `division must be written Math.floor(a / b) (integer division), found "${node.getText()}"`);
    throw this.error(node.getOperatorToken(), `unsupported operator "${op}"`);
  }

  private call(node: Node, scope: Scope): [Expr, ExprType] {
    if (!Node.isCallExpression(node)) throw this.error(node, 'expected a call');
    const callee = node.getExpression().getText().replace(/\s+/g, '');
    const args = node.getArguments();
    if (callee === 'Math.floor') {
      if (args.length !== 1) throw this.error(node, 'Math.floor takes one argument');
      let inner = args[0]!;
      while (Node.isParenthesizedExpression(inner)) inner = inner.getExpression();
      if (Node.isBinaryExpression(inner) && inner.getOperatorToken().getText() === '/') {
        return [{ kind: 'arith', op: 'floordiv', left: this.int(inner.getLeft(), scope), right: this.int(inner.getRight(), scope) }, 'int'];
      }
      // Math.floor of an integer is the integer itself.
      return [this.int(inner, scope), 'int'];
    }
    if (callee === 'Math.min' || callee === 'Math.max') {
      if (args.length < 1) throw this.error(node, `${callee} needs at least one argument`);
      return [{ kind: 'minmax', fn: callee === 'Math.min' ? 'min' : 'max', args: args.map((a) => this.int(a, scope)) }, 'int'];
    }
    throw this.error(node, `unsupported call "${callee}(…)"; allowed calls are Math.floor, Math.min and Math.max`);
  }

  private checkParamName(name: string, at: Node): void {
    if (!this.options.paramNames.includes(name)) {
      throw this.error(at, `unknown parameter "${name}"; this pattern has ${this.options.paramNames.join(', ')}`);
    }
  }

  private error(node: Node, problem: string): DslError {
    return new DslError(problem, this.locate(node));
  }

  /** Maps a node back to the original file when the function came from one. */
  private locate(node: Node): SourceLocation {
    const context = this.options.context;
    const offset = node.getStart() - PREFIX.length;
    if (this.source.file === undefined || this.source.line === undefined) return { context };
    const before = this.source.text.slice(0, Math.max(0, offset));
    const lines = before.split('\n');
    const line = this.source.line + lines.length - 1;
    const column = lines.length === 1 ? (this.source.column ?? 1) + before.length : lines[lines.length - 1]!.length + 1;
    return { file: this.source.file, line, column, context };
  }
}

function describe(node: Node): string {
  const text = node.getText().replace(/\s+/g, ' ');
  return `${node.getKindName()} "${text.length > 40 ? `${text.slice(0, 37)}...` : text}"`;
}
