// YAML documents with their line positions, field paths mapped to lines, and diffs: loaded with
// a dynamic import() (the yaml and diff packages stay out of the first page's chunk).

import { structuredPatch } from 'diff';
import { isMap, isSeq, LineCounter, parseAllDocuments, stringify } from 'yaml';
import type { Document, Node } from 'yaml';

/** A problem at a 1-based line of the text. */
export interface LineProblem {
  line: number;
  message: string;
}

/** One object of a (multi-document) YAML text. */
export interface ParsedObject {
  value: unknown;
  /** The line its content starts on. */
  line: number;
  /** The line of a Kubernetes field path (`spec.template.spec.containers[0].image`): the deepest
   *  part of the path the document has, else the object's first line. */
  lineOf(field: string): number;
}

/** The parts of a field path: `a.b[0].c` → a, b, 0, c; `metadata.labels[app.kubernetes.io/name]` keeps the key whole. */
export function fieldPath(field: string): (string | number)[] {
  const parts: (string | number)[] = [];
  for (const m of field.matchAll(/\[([^\]]*)\]|([^.[\]]+)/g)) {
    if (m[1] !== undefined) parts.push(/^\d+$/.test(m[1]) ? Number(m[1]) : m[1]);
    else parts.push(m[2]);
  }
  return parts;
}

function lineOfPath(doc: Document, counter: LineCounter, fallback: number, field: string): number {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  for (const part of fieldPath(field)) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const key = p.key as { value?: unknown } | null;
        return key !== null && typeof key === 'object' && String(key.value) === String(part);
      });
      if (!pair) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof part === 'number' && part < node.items.length) {
      node = node.items[part];
      offset = (node as Node | null)?.range?.[0] ?? offset;
    } else break;
  }
  return offset === undefined ? fallback : counter.linePos(offset).line;
}

/** The objects of a YAML text (`---` separates documents; empty documents are skipped), or the
 *  parser's problems with their lines. */
export function parseObjects(text: string): { objects: ParsedObject[]; problems: LineProblem[] } {
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: false });
  const problems: LineProblem[] = [];
  const objects: ParsedObject[] = [];
  if (!Array.isArray(docs)) return { objects, problems };
  for (const doc of docs) {
    for (const error of doc.errors) {
      const line = counter.linePos(error.pos[0]).line;
      problems.push({ line, message: error.message.split('\n')[0] });
    }
    if (doc.errors.length || doc.contents === null) continue;
    const start = (doc.contents as Node).range?.[0] ?? doc.range[0];
    const line = counter.linePos(start).line;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      problems.push({ line, message: (e as Error).message });
      continue;
    }
    if (value === null || value === undefined) continue;
    objects.push({ value, line, lineOf: (field) => lineOfPath(doc, counter, line, field) });
  }
  return { objects, problems };
}

/** The field paths quoted in a strict-decoding error: `unknown field "spec.replica"`. */
export function fieldsInMessage(message: string): string[] {
  return [...message.matchAll(/(?:unknown|duplicate) field "([^"]+)"/g)].map((m) => m[1]);
}

export function toYaml(value: unknown): string {
  return value === null || value === undefined ? '' : stringify(value, { lineWidth: 0 });
}

export interface DiffLine {
  kind: 'add' | 'del' | 'same' | 'hunk';
  text: string;
}

/** A unified diff (3 lines of context) from `before` to `after`; empty when they are equal. */
export function diffLines(before: string, after: string): DiffLine[] {
  const patch = structuredPatch('stored', 'dry run', before, after, '', '', { context: 3 });
  const out: DiffLine[] = [];
  for (const hunk of patch.hunks) {
    out.push({ kind: 'hunk', text: `@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@` });
    for (const line of hunk.lines) {
      if (line.startsWith('\\')) continue;
      out.push({ kind: line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : 'same', text: line });
    }
  }
  return out;
}
