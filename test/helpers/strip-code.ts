// Small lexers that keep only the code of an emitted file: comments are dropped and every string
// literal becomes an empty one. The escaping tests compare what is left for a hostile and a benign
// text: equal code means the hostile text changed nothing but comment and string contents.
//
// Each lexer ends a line comment at any character some compiler of the language might take as a
// line end (\n \r \v \f U+0085 U+2028 U+2029: stricter than any one compiler), so a raw line break
// the escapers let through shows up as code. The C-family lexer also applies trigraphs and line
// splices (backslash, optional blanks, line end) first, as a C preprocessor would.
// JavaScript and TypeScript go through the TypeScript parser instead (template literals, regexes).

import { ts } from 'ts-morph';

export type CodeLanguage = 'c' | 'wgsl' | 'python' | 'swift' | 'js' | 'ts';

const LINE_END = /[\n\r\v\f\u0085\u2028\u2029]/;

/** A lexing failure: an unterminated comment or string (the file would not compile either). */
export class LexError extends Error {}

export function stripCode(language: CodeLanguage, text: string): string {
  switch (language) {
    case 'c':
      return stripC(text);
    case 'wgsl':
      return stripSlashes(text, { nested: true, strings: null });
    case 'swift':
      return stripSlashes(text, { nested: true, strings: '"' });
    case 'python':
      return stripPython(text);
    case 'js':
    case 'ts':
      return stripScript(text, language);
  }
}

/** The language of an emitted file, by its name. */
export function languageOf(fileName: string): CodeLanguage {
  if (/\.(cu|h|metal|cpp)$/.test(fileName)) return 'c';
  if (fileName.endsWith('.wgsl')) return 'wgsl';
  if (fileName.endsWith('.py')) return 'python';
  if (fileName.endsWith('.swift')) return 'swift';
  if (fileName.endsWith('.d.ts')) return 'ts';
  if (fileName.endsWith('.js')) return 'js';
  throw new Error(`no lexer for ${fileName}`);
}

const TRIGRAPHS: Record<string, string> = { '=': '#', '/': '\\', "'": '^', '(': '[', ')': ']', '!': '|', '<': '{', '>': '}', '-': '~' };

function stripC(source: string): string {
  // Translation phases 1 and 2: trigraphs (C++14 and older in strict modes), then line splices.
  const text = source
    .replace(/\?\?([=/'()!<>-])/g, (_, c: string) => TRIGRAPHS[c]!)
    .replace(/\\[ \t]*(?:\r\n|\n|\r)/g, '');
  return stripSlashes(text, { nested: false, strings: '"\'' });
}

/** `//` and block comments (nesting or not), and quoted strings with backslash escapes. */
function stripSlashes(text: string, options: { nested: boolean; strings: string | null }): string {
  let out = '';
  let k = 0;
  while (k < text.length) {
    const c = text[k]!;
    const two = text.slice(k, k + 2);
    if (two === '//') {
      k += 2;
      while (k < text.length && !LINE_END.test(text[k]!)) k++;
      out += ' ';
    } else if (two === '/*') {
      let depth = 1;
      k += 2;
      while (depth > 0) {
        if (k >= text.length) throw new LexError('unterminated block comment');
        const t = text.slice(k, k + 2);
        if (t === '*/') {
          depth--;
          k += 2;
        } else if (options.nested && t === '/*') {
          depth++;
          k += 2;
        } else k++;
      }
      out += ' ';
    } else if (options.strings !== null && options.strings.includes(c)) {
      k++;
      while (text[k] !== c) {
        if (k >= text.length || LINE_END.test(text[k]!)) throw new LexError(`unterminated ${c} literal`);
        k += text[k] === '\\' ? 2 : 1;
      }
      k++;
      out += c + c;
    } else {
      out += c;
      k++;
    }
  }
  return out;
}

function stripPython(text: string): string {
  let out = '';
  let k = 0;
  while (k < text.length) {
    const c = text[k]!;
    if (c === '#') {
      while (k < text.length && !LINE_END.test(text[k]!)) k++;
      out += ' ';
      continue;
    }
    // A string prefix (r, b, f, rb, …) is kept; the literal itself becomes empty.
    const prefix = /^[rRbBuUfF]{0,2}(?="|')/.exec(text.slice(k, k + 3));
    const prev = text[k - 1];
    if (prefix !== null && (prev === undefined || !/[A-Za-z0-9_]/.test(prev))) {
      k += prefix[0].length;
      const q = text[k]!;
      const triple = text.slice(k, k + 3) === q.repeat(3);
      const close = triple ? q.repeat(3) : q;
      k += close.length;
      while (text.slice(k, k + close.length) !== close) {
        if (k >= text.length) throw new LexError('unterminated string');
        if (!triple && LINE_END.test(text[k]!)) throw new LexError('line break in a one-line string');
        k += text[k] === '\\' ? 2 : 1;
      }
      k += close.length;
      out += `${prefix[0]}${close}${close}`;
      continue;
    }
    // Identifiers whole, so a prefix letter inside one is not a string start.
    const word = /^[A-Za-z0-9_]+/.exec(text.slice(k, k + 200));
    if (word !== null) {
      out += word[0];
      k += word[0].length;
      continue;
    }
    out += c;
    k++;
  }
  return out;
}

/** JavaScript / TypeScript: parse, empty every string and template piece, print without comments. */
function stripScript(text: string, language: 'js' | 'ts'): string {
  const file = ts.createSourceFile(language === 'ts' ? 'x.d.ts' : 'x.js', text, ts.ScriptTarget.ES2022, true, language === 'ts' ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const diagnostics = (file as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics ?? [];
  if (diagnostics.length > 0) throw new LexError(`syntax error: ${ts.flattenDiagnosticMessageText(diagnostics[0]!.messageText, ' ')}`);
  const empty: ts.TransformerFactory<ts.SourceFile> = (context) => {
    const f = context.factory;
    const visit = (node: ts.Node): ts.Node => {
      if (ts.isStringLiteral(node)) return f.createStringLiteral('');
      if (ts.isNoSubstitutionTemplateLiteral(node)) return f.createNoSubstitutionTemplateLiteral('');
      if (ts.isTemplateExpression(node)) {
        return f.createTemplateExpression(f.createTemplateHead(''), node.templateSpans.map((span, n) => f.createTemplateSpan(
          ts.visitNode(span.expression, visit) as ts.Expression,
          n === node.templateSpans.length - 1 ? f.createTemplateTail('') : f.createTemplateMiddle(''))));
      }
      return ts.visitEachChild(node, visit, context);
    };
    return (sf) => ts.visitNode(sf, visit) as ts.SourceFile;
  };
  const result = ts.transform(file, [empty]);
  try {
    return ts.createPrinter({ removeComments: true }).printFile(result.transformed[0]!);
  } finally {
    result.dispose();
  }
}
