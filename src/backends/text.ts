// Free text (pattern summaries, region summaries, parameter descriptions, the recorded command
// line) reaches emitted files only through these escapers (DESIGN.md §2, "one boundary for names
// and text"). Each target language gets two:
//
//   comment(text)        the text as it may stand inside a comment of that language, line or
//                        block: one line (no character any compiler of the language ends a line
//                        at), nothing that ends or opens a comment (*/, /*), no line splice (a C
//                        backslash before the line end) and no trigraph.
//   stringLiteral(text)  a complete literal, quotes included, whose value is exactly `text`.
//
// Characters that would break a line or hide as invisible controls are written as escapes (\n,
// \r, \x85, \u2028, \u202e …), a backslash as \\ (or \x5c where it would end the text or stand
// before blank space), so the comment reads like the original and stays on its line. Ordinary
// text, non-ASCII letters and symbols included, passes unchanged.
//
// Names never need these: src/dsl/names.ts restricts them to identifiers.

export interface TextEscaper {
  /** Text for inside a `//` or block comment: one line, nothing that ends, opens or splices it. */
  comment(text: string): string;
  /** A string literal, quotes included, holding exactly `text`. */
  stringLiteral(text: string): string;
}

/**
 * Code points written as escapes everywhere: controls (but tab), format characters (bidi overrides
 * and isolates, zero-width characters, BOM), line and paragraph separators, lone surrogates.
 */
const ESCAPED = /^(?:(?![\t])\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}|\p{Cs})$/u;
/** After a backslash, these would let a compiler read it as a line continuation (or end the text). */
const BLANK_AFTER = /^(?:\s|\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp})$/u;

/** One code point as a visible escape: \n, \r, \xNN, \uNNNN, and above the BMP \U0001NNNN (Python) or \u{1NNNN}. */
function hexEscape(c: string, python = false): string {
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  const code = c.codePointAt(0)!;
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, '0')}`;
  return python ? `\\U${code.toString(16).padStart(8, '0')}` : `\\u{${code.toString(16)}}`;
}

interface CommentRules {
  /** The language has block comments (C family, WGSL, JavaScript, Swift): the two markers are split by a backslash. */
  readonly blockComments?: boolean;
  /** C and C++ (CUDA, Metal): `??` starts a trigraph (??/ is a backslash, so a line splice). */
  readonly trigraphs?: boolean;
  /** Python: the text may stand in a """docstring""", so quotes are escaped too; and no coding cookie. */
  readonly python?: boolean;
}

function commentText(text: string, rules: CommentRules): string {
  const chars = [...text];
  let out = '';
  for (let k = 0; k < chars.length; k++) {
    const c = chars[k]!;
    const next = chars[k + 1];
    if (c === '\\') out += next === undefined || BLANK_AFTER.test(next) ? '\\x5c' : '\\\\';
    else if (ESCAPED.test(c)) out += hexEscape(c, rules.python);
    else if (rules.blockComments && c === '*' && next === '/') out += '*\\';
    else if (rules.blockComments && c === '/' && next === '*') out += '/\\';
    else if (c === '?' && rules.trigraphs && out.endsWith('?')) out += '\\?';
    else if (c === '"' && rules.python) out += '\\"';
    else out += c;
  }
  // PEP 263: "coding:" in a comment on a module's first two lines would choose its encoding.
  if (rules.python) out = out.replace(/(?<=codin)g(?=[:=])/g, '\\x67');
  return out;
}

/** C, C++ and CUDA; Metal (C++14) too. String literals are plain ASCII (octal escapes for UTF-8 bytes). */
export const cText: TextEscaper = {
  comment: (text) => commentText(text, { blockComments: true, trigraphs: true }),
  stringLiteral: (text) => {
    let out = '"';
    for (const byte of new TextEncoder().encode(text)) {
      const c = String.fromCharCode(byte);
      if (c === '\\' || c === '"' || c === '?') out += `\\${c}`;  // \? keeps ?? from forming a trigraph
      else if (c === '\n') out += '\\n';
      else if (c === '\r') out += '\\r';
      else if (c === '\t') out += '\\t';
      else if (byte >= 0x20 && byte < 0x7f) out += c;
      else out += `\\${byte.toString(8).padStart(3, '0')}`;  // always three digits: the next character cannot extend it
    }
    return `${out}"`;
  },
};
export const cudaText: TextEscaper = cText;
export const metalText: TextEscaper = cText;

/** WGSL: comments only (block comments nest, so /* is escaped too); the language has no string literals. */
export const wgslText: TextEscaper = {
  comment: (text) => commentText(text, { blockComments: true }),
  stringLiteral: () => {
    throw new Error('WGSL has no string literals');
  },
};

/** JavaScript (the WebGPU launcher); TypeScript declarations use the same. */
export const jsText: TextEscaper = {
  comment: (text) => commentText(text, { blockComments: true }),
  stringLiteral: (text) => jsonForJs(text),
};
export const tsText: TextEscaper = jsText;

/** JSON.stringify for JavaScript source: also escapes U+2028/U+2029 (line terminators to pre-2019 parsers) and invisible format characters. */
export function jsonForJs(value: unknown, space?: number): string {
  const json = JSON.stringify(value, null, space);
  if (json === undefined) throw new Error('value has no JSON form');
  // Outside its strings JSON has only ASCII, so every non-ASCII match is inside a string literal.
  return json.replace(/(?![\u0000-\u007f])(?:\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp})/gu,
    (c) => [...Array(c.length).keys()].map((k) => `\\u${c.charCodeAt(k).toString(16).padStart(4, '0')}`).join(''));
}

/** Python (the PyTorch and MLX modules): comment text is also safe inside a """docstring""". */
export const pythonText: TextEscaper = {
  comment: (text) => commentText(text, { python: true }),
  stringLiteral: (text) => {
    let out = '"';
    for (const c of text) {
      if (c === '\\' || c === '"') out += `\\${c}`;
      else if (c === '\t') out += '\\t';
      else if (ESCAPED.test(c)) out += hexEscape(c, true);
      else out += c;
    }
    return `${out}"`;
  },
};

/** Swift (the Metal host program): block comments nest; strings take \u{…} escapes. */
export const swiftText: TextEscaper = {
  comment: (text) => commentText(text, { blockComments: true }),
  stringLiteral: (text) => {
    let out = '"';
    for (const c of text) {
      if (c === '\\' || c === '"') out += `\\${c}`;
      else if (c === '\n') out += '\\n';
      else if (c === '\r') out += '\\r';
      else if (c === '\t') out += '\\t';
      // A lone surrogate has no Swift form; it becomes U+FFFD, as in any UTF-8 file.
      else if (ESCAPED.test(c)) out += `\\u{${(/\p{Cs}/u.test(c) ? 0xfffd : c.codePointAt(0)!).toString(16)}}`;
      else out += c;
    }
    return `${out}"`;
  },
};
