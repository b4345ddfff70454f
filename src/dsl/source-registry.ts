// Remembers where a pattern function was written. Pattern files are loaded through a transform that
// registers every arrow function with its original TypeScript text and file position, so DSL errors
// can name file:line:col; built-in patterns fall back to Function.prototype.toString().

export interface FunctionSource {
  readonly text: string;
  readonly file?: string;
  /** 1-based position of the function's first character in `file`. */
  readonly line?: number;
  readonly column?: number;
}

const registry = new WeakMap<object, FunctionSource>();

export function registerFunctionSource(fn: object, source: FunctionSource): void {
  registry.set(fn, source);
}

export function functionSource(fn: (...args: never[]) => unknown): FunctionSource {
  return registry.get(fn) ?? { text: fn.toString() };
}
