// The YAML editor (CodeMirror 6): loaded with a dynamic import() by yaml.tsx, so it is a chunk of
// its own and the dashboard's first page does not carry it.

import { basicSetup, EditorView } from 'codemirror';
import { yaml } from '@codemirror/lang-yaml';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { tags } from '@lezer/highlight';
import { lintGutter, setDiagnostics } from '@codemirror/lint';
import { EditorState } from '@codemirror/state';
import { placeholder } from '@codemirror/view';

/** A problem at a 1-based line of the document. */
export interface LineDiagnostic {
  line: number;
  message: string;
}

export interface EditorHandle {
  text(): string;
  setText(text: string): void;
  /** Replaces the lint diagnostics (an empty list clears them). */
  setProblems(problems: LineDiagnostic[]): void;
  focus(): void;
  destroy(): void;
}

/** The colours come from the dashboard's theme variables, so light and dark both work. */
const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '6px' },
  '&.cm-focused': { outline: '2px solid var(--accent)' },
  '.cm-content': { fontFamily: 'var(--mono)', fontSize: '13px', caretColor: 'var(--text)' },
  '.cm-gutters': { backgroundColor: 'var(--code-bg)', color: 'var(--muted)', borderRight: '1px solid var(--border)' },
  '.cm-activeLine': { backgroundColor: 'var(--row-hover)' },
  '.cm-activeLineGutter': { backgroundColor: 'var(--row-hover)' },
  '.cm-cursor': { borderLeftColor: 'var(--text)' },
  '.cm-scroller': { overflow: 'auto' },
});

/** Token colours from the theme's variables (readable on both backgrounds); replaces basicSetup's fallback style. */
const highlight = HighlightStyle.define([
  { tag: [tags.propertyName, tags.definition(tags.propertyName)], color: 'var(--accent)' },
  { tag: [tags.string, tags.special(tags.string)], color: 'var(--ok)' },
  { tag: [tags.number, tags.bool, tags.null, tags.atom], color: 'var(--wasm)' },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: 'var(--muted)', fontStyle: 'italic' },
  { tag: [tags.meta, tags.labelName, tags.typeName], color: 'var(--linux)' },
  { tag: [tags.punctuation, tags.separator, tags.squareBracket, tags.brace], color: 'var(--muted)' },
]);

export function createEditor(
  parent: HTMLElement,
  doc: string,
  options: { label: string; onChange?: (text: string) => void },
): EditorHandle {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        basicSetup,
        yaml(),
        syntaxHighlighting(highlight),
        lintGutter(),
        theme,
        placeholder('Paste or type YAML here (several objects separated by ---)'),
        EditorView.contentAttributes.of({ 'aria-label': options.label }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange?.(update.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setProblems(problems) {
      const doc = view.state.doc;
      const diagnostics = problems.map((p) => {
        const line = doc.line(Math.min(Math.max(1, p.line), doc.lines));
        return { from: line.from, to: line.to, severity: 'error' as const, message: p.message, source: 'wharf' };
      });
      view.dispatch(setDiagnostics(view.state, diagnostics));
    },
    focus: () => view.focus(),
    destroy: () => view.destroy(),
  };
}
