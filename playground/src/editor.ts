// The pattern editor: CodeMirror 6 with TypeScript highlighting, undo history and the lint
// gutter. The page reports a located problem (DSL reader, transpiler, imports) as one diagnostic
// at its line and column, with the message the CLI prints.

import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { javascript } from '@codemirror/lang-javascript';
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';
import { EditorState } from '@codemirror/state';
import { EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view';

export interface PatternEditor {
  readonly view: EditorView;
  text(): string;
  /** Replaces the whole text (an example chosen). */
  setText(text: string): void;
  /** Shows one error at a 1-based line and column (clamped to the document), or clears it. */
  showProblem(problem: { line: number; column: number; message: string } | undefined): void;
}

export function createEditor(parent: HTMLElement, text: string, onChange: () => void): PatternEditor {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: text,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightActiveLine(),
        history(),
        indentOnInput(),
        bracketMatching(),
        syntaxHighlighting(defaultHighlightStyle),
        javascript({ typescript: true }),
        lintGutter(),
        keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange();
        }),
        EditorView.theme({ '&': { height: '100%', fontSize: '13px' }, '.cm-scroller': { fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace' } }),
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText: (next) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } }),
    showProblem: (problem) => {
      const diagnostics: Diagnostic[] = [];
      if (problem !== undefined) {
        const doc = view.state.doc;
        const line = doc.line(Math.min(Math.max(1, problem.line), doc.lines));
        const from = Math.min(line.from + Math.max(0, problem.column - 1), line.to);
        // Underline the word (or operator) the message points at, at least one character.
        const rest = doc.sliceString(from, line.to);
        const token = /^([A-Za-z_$][\w$.]*|\d+|\S)/.exec(rest)?.[0].length ?? 0;
        diagnostics.push({ from, to: Math.min(line.to, from + Math.max(1, token)), severity: 'error', message: problem.message, source: 'dcagen' });
      }
      view.dispatch(setDiagnostics(view.state, diagnostics));
    },
  };
}
