// Typed errors that carry the user-facing message. The CLI prints `message` as one line and exits
// with `exitCode`; nothing else about an error reaches the user (no stack traces).

/** Base class: a problem the user can fix (bad input, missing tool). */
export class DcagenError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Where a DSL construct sits: a file position when the pattern comes from a file, else a description. */
export interface SourceLocation {
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;
  /** "pattern dca, region intra, queryPosition" when no file is known. */
  readonly context: string;
}

export function formatLocation(at: SourceLocation): string {
  if (at.file !== undefined && at.line !== undefined) {
    return `${at.file}:${at.line}:${at.column ?? 1} (${at.context})`;
  }
  return at.context;
}

/** A pattern uses something outside the DSL subset, or is ill-typed. */
export class DslError extends DcagenError {
  readonly location: SourceLocation;
  constructor(problem: string, location: SourceLocation) {
    super(`${formatLocation(location)}: ${problem}`);
    this.location = location;
  }
}

/** A parameter is missing, not an integer, or violates a constraint of the pattern. */
export class ParameterError extends DcagenError {}

/** Command-line usage problems: unknown flag, missing value, unknown pattern. */
export class UsageError extends DcagenError {}

/** Tensor file problems: not NumPy, truncated, unsupported dtype or order, wrong rank or shape. */
export class TensorFileError extends DcagenError {}

/** Shapes that do not fit together (Hq not a multiple of Hk, Sq > Sk, head dims differ). */
export class ShapeError extends DcagenError {}

/** A kernel configuration a backend cannot build: head dim, tile sizes, a pattern feature it lacks. */
export class ConfigurationError extends DcagenError {}

/** A required tool, adapter or device is not available here (nvcc, WebGPU adapter, GPU driver). */
export class UnavailableError extends DcagenError {}

/** A kernel ran but its result disagrees with the reference, or a compile failed. */
export class KernelError extends DcagenError {
  constructor(message: string) {
    super(message, 1);
  }
}
