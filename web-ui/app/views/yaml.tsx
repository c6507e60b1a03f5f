// Create and edit from YAML: server-side dry run, a diff, then apply; errors at their line.
// The editor (CodeMirror) and the YAML/diff code are loaded on demand, in chunks of their own.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, request, send, withQuery } from '../api/client';
import type { K8sObject, Resource } from '../api/resources';
import { collectionPath, detailHref, objectPath, resourceOfKind } from '../api/resources';
import { Link } from '../router';
import { namespace as selectedNamespace, useShared } from '../state';
import { mayNot, ref, useCan, useMayCreateIn } from '../api/access';
import { Page } from '../components/page';
import type { EditorHandle } from './yaml-editor';
import type { DiffLine, LineProblem, ParsedObject } from './yaml-text';
import '../styles/yaml.css';

const loadText = () => import('./yaml-text');

const FIELD_MANAGER = 'wharf-dashboard';

/** An object of the document, ready to send. */
interface Item {
  object: K8sObject;
  res: Resource;
  namespace: string | null;
  parsed: ParsedObject;
}

interface ObjectRef {
  res: Resource;
  namespace: string | null;
  name: string;
}

interface Outcome {
  problems: LineProblem[];
  /** A create that found the object already there: offer to edit it instead. */
  existing: ObjectRef[];
  diffs: { title: string; lines: DiffLine[] }[];
  warnings: string[];
  applied: ObjectRef[];
  note?: string;
}

const empty: Outcome = { problems: [], existing: [], diffs: [], warnings: [], applied: [] };

function describe(res: Resource, name: string) {
  return `${res.kind} ${name}`;
}

/** What the stored object and a dry run's answer are compared on: without the server's bookkeeping. */
function withoutNoise(o: K8sObject | null): unknown {
  if (!o) return null;
  const { managedFields: _m, resourceVersion: _r, uid: _u, creationTimestamp: _c, ...metadata } = o.metadata ?? {};
  return { ...o, metadata };
}

/** The object as shown in the editor: everything but managedFields. */
export function editable(o: K8sObject): K8sObject {
  const { managedFields: _m, ...metadata } = o.metadata;
  return { ...o, metadata };
}

/** The API's rejection, as problems at the lines of the fields it names. */
function problemsOf(error: unknown, item: Item, fieldsInMessage: (m: string) => string[]): LineProblem[] {
  if (!(error instanceof ApiError)) return [{ line: item.parsed.line, message: String(error) }];
  const causes = (error.status.details?.causes ?? []).filter((c) => c.message || c.field);
  if (causes.length)
    return causes.map((c) => ({
      line: c.field ? item.parsed.lineOf(c.field) : item.parsed.line,
      message: c.field ? `${c.field}: ${c.message ?? c.reason ?? 'invalid'}` : c.message ?? c.reason ?? 'invalid',
    }));
  const fields = fieldsInMessage(error.message);
  if (fields.length) return fields.map((f) => ({ line: item.parsed.lineOf(f), message: error.message }));
  // Errors without a field path: the field they are about, where the message or reason says it.
  let field = '';
  if (/API version/i.test(error.message)) field = 'apiVersion';
  else if (/the kind in the data/i.test(error.message)) field = 'kind';
  else if (error.reason === 'NotFound' && error.status.details?.kind === 'namespaces') field = 'metadata.namespace';
  else if (error.reason === 'AlreadyExists') field = 'metadata.name';
  else if (error.reason === 'Conflict') field = 'metadata.resourceVersion';
  return [{ line: field ? item.parsed.lineOf(field) : item.parsed.line, message: error.message }];
}

async function stored(ref: ObjectRef): Promise<K8sObject | null> {
  try {
    return await request<K8sObject>('GET', objectPath(ref.res, ref.namespace, ref.name));
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) return null;
    throw e;
  }
}

/** Sends one object: POST (create) or PUT (edit), optionally as a server-side dry run. */
async function write(item: Item, mode: 'create' | 'edit', dryRun: boolean): Promise<{ object: K8sObject; warnings: string[] }> {
  const query = { dryRun: dryRun ? 'All' : undefined, fieldManager: FIELD_MANAGER, fieldValidation: 'Strict' };
  const path =
    mode === 'create'
      ? withQuery(collectionPath(item.res, item.namespace), query)
      : withQuery(objectPath(item.res, item.namespace, item.object.metadata.name), query);
  const response = await send(mode === 'create' ? 'POST' : 'PUT', path, { body: item.object, accept: 'application/json' });
  const warnings = (response.headers.get('Warning') ?? '')
    .split(/,\s*(?=\d{3} )/)
    .map((w) => w.replace(/^\d{3} \S+ /, '').replace(/^"|"$/g, '').replace(/\\"/g, '"'))
    .filter(Boolean);
  return { object: (await response.json()) as K8sObject, warnings };
}

/** A `kind: List` (what `kubectl get -o yaml` prints) as its items, each with lines inside the list. */
function listItems(parsed: ParsedObject): ParsedObject[] {
  const value = parsed.value as { kind?: unknown; items?: unknown } | null;
  if (!value || typeof value !== 'object' || value.kind !== 'List' || !Array.isArray(value.items)) return [parsed];
  return value.items.map((item, i) => ({
    value: item,
    line: parsed.lineOf(`items[${i}]`),
    lineOf: (field: string) => parsed.lineOf(field ? `items[${i}].${field}` : `items[${i}]`),
  }));
}

/** Reads the document into items; problems for YAML errors and for what the dashboard cannot send. */
async function prepare(text: string, edit: { res: Resource; object: K8sObject } | null) {
  const { parseObjects } = await loadText();
  const { objects, problems } = parseObjects(text);
  const items: Item[] = [];
  if (problems.length) return { items, problems };
  if (!objects.length) return { items, problems: [{ line: 1, message: 'the document has no objects' }] };
  if (edit && objects.length > 1) return { items, problems: [{ line: objects[1].line, message: 'edit one object: remove the other documents' }] };
  for (const parsed of objects.flatMap(listItems)) {
    const value = parsed.value;
    if (typeof value !== 'object' || Array.isArray(value) || value === null) {
      problems.push({ line: parsed.line, message: 'an object must be a mapping with apiVersion, kind and metadata' });
      continue;
    }
    const object = value as K8sObject;
    const res = resourceOfKind(object.apiVersion, object.kind);
    if (!res) {
      problems.push({
        line: parsed.lineOf(object.kind ? 'kind' : 'apiVersion'),
        message: object.kind ? `the dashboard does not know the kind ${object.apiVersion ?? ''} ${object.kind}`.replace(/\s+/g, ' ') : 'kind is missing',
      });
      continue;
    }
    object.metadata = object.metadata ?? ({} as K8sObject['metadata']);
    let ns: string | null = null;
    if (res.namespaced) ns = object.metadata.namespace || edit?.object.metadata.namespace || selectedNamespace.get() || 'default';
    if (edit) {
      if (res !== edit.res || object.metadata.name !== edit.object.metadata.name) {
        problems.push({ line: parsed.lineOf('metadata.name'), message: `this editor edits ${describe(edit.res, edit.object.metadata.name)}: kind and name cannot change` });
        continue;
      }
      if (!object.metadata.resourceVersion) object.metadata.resourceVersion = edit.object.metadata.resourceVersion;
    }
    items.push({ object, res, namespace: ns, parsed });
  }
  return { items, problems };
}

/** Dry-runs every object; the outcome has a diff per object, or the problems. */
async function dryRunAll(items: Item[], mode: 'create' | 'edit'): Promise<Outcome> {
  const { diffLines, fieldsInMessage, toYaml } = await loadText();
  const out: Outcome = { ...empty, problems: [], existing: [], diffs: [], warnings: [], applied: [] };
  for (const item of items) {
    const name = item.object.metadata.name;
    try {
      const current = name ? await stored({ res: item.res, namespace: item.namespace, name }) : null;
      if (mode === 'create' && current) {
        out.problems.push({ line: item.parsed.lineOf('metadata.name'), message: `${describe(item.res, name)} already exists` });
        out.existing.push({ res: item.res, namespace: item.namespace, name });
        continue;
      }
      if (mode === 'edit' && !current) {
        out.problems.push({ line: item.parsed.line, message: `${describe(item.res, name)} was deleted` });
        continue;
      }
      const result = await write(item, mode, true);
      out.warnings.push(...result.warnings.map((w) => `${describe(item.res, result.object.metadata.name)}: ${w}`));
      out.diffs.push({
        title: `${describe(item.res, result.object.metadata.name ?? name)}${current ? '' : ' (new)'}`,
        lines: diffLines(toYaml(withoutNoise(current)), toYaml(withoutNoise(result.object))),
      });
    } catch (e) {
      out.problems.push(...problemsOf(e, item, fieldsInMessage));
    }
  }
  return out;
}

/** The editor, loaded on demand; `onReady` gets its handle. */
function CodeEditor(props: { initial: string; label: string; onReady: (h: EditorHandle) => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [loaded, setLoaded] = useState(false);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    let handle: EditorHandle | null = null;
    let gone = false;
    import('./yaml-editor')
      .then((m) => {
        if (gone || !host.current) return;
        handle = m.createEditor(host.current, props.initial, { label: props.label });
        setLoaded(true);
        props.onReady(handle);
      })
      .catch((e: Error) => setFailed(`The editor did not load: ${e.message}`));
    return () => {
      gone = true;
      handle?.destroy();
    };
  }, []);
  return (
    <div class="yaml-editor">
      {!loaded && !failed && <div class="loading" aria-busy="true">Loading the editor…</div>}
      {failed && <div class="error" role="alert">{failed}</div>}
      <div ref={host} />
    </div>
  );
}

function Results(props: { outcome: Outcome; mode: 'create' | 'edit'; onEditExisting?: (ref: ObjectRef) => void }) {
  const o = props.outcome;
  return (
    <div class="yaml-results">
      {o.problems.length > 0 && (
        <div class="error" role="alert">
          <strong>{o.applied.length ? 'Stopped: ' : 'Nothing was applied: '}</strong>
          <ul>
            {o.problems.map((p) => (
              <li>
                line {p.line}: {p.message}
              </li>
            ))}
          </ul>
          {o.existing.map((ref) => (
            <div>
              {describe(ref.res, ref.name)} already exists:{' '}
              <Link href={`${detailHref(ref.res, ref.namespace, ref.name)}?edit=1`}>edit {ref.name}</Link>
            </div>
          ))}
        </div>
      )}
      {o.warnings.length > 0 && (
        <div class="yaml-warnings" role="status">
          {o.warnings.map((w) => (
            <div>Warning: {w}</div>
          ))}
        </div>
      )}
      {o.applied.length > 0 && (
        <div class="yaml-applied" role="status">
          {props.mode === 'create' ? 'Created' : 'Saved'}:{' '}
          {o.applied.map((ref, i) => (
            <>
              {i > 0 && ', '}
              <Link href={detailHref(ref.res, ref.namespace, ref.name)}>{describe(ref.res, ref.name)}</Link>
            </>
          ))}
        </div>
      )}
      {o.note && <div role="status">{o.note}</div>}
      {o.diffs.map((d) => (
        <section class="yaml-diff">
          <h3>Dry run: {d.title}</h3>
          {d.lines.length === 0 ? (
            <p class="muted">No changes.</p>
          ) : (
            <pre tabIndex={0} aria-label={`Diff of ${d.title}`}>
              {d.lines.map((l) => (
                <div class={`diff-${l.kind}`}>{l.text || ' '}</div>
              ))}
            </pre>
          )}
        </section>
      ))}
    </div>
  );
}

/** The editor with its Dry run and Apply buttons, for creating (several objects) or editing one. */
function YamlWorkbench(props: {
  mode: 'create' | 'edit';
  initial: string;
  edit: { res: Resource; object: K8sObject } | null;
  onApplied?: (refs: ObjectRef[]) => void;
  /** What RBAC says of writing here: false disables Dry run and Apply with `deniedMessage`; undefined (not known yet) disables them. */
  allowed?: boolean | undefined;
  deniedMessage?: string;
}) {
  const editor = useRef<EditorHandle | null>(null);
  const [ready, setReady] = useState(false);
  const [busy, setBusy] = useState<'' | 'dry' | 'apply'>('');
  const [outcome, setOutcome] = useState<Outcome>(empty);

  const show = (o: Outcome) => {
    setOutcome(o);
    editor.current?.setProblems(o.problems);
  };

  const run = async (apply: boolean) => {
    if (!editor.current) return;
    show(empty);
    setBusy(apply ? 'apply' : 'dry');
    try {
      const { items, problems } = await prepare(editor.current.text(), props.edit);
      if (problems.length) return show({ ...empty, problems });
      const dry = await dryRunAll(items, props.mode);
      if (!apply || dry.problems.length) return show(dry);
      const { fieldsInMessage } = await loadText();
      const applied: ObjectRef[] = [];
      const warnings: string[] = [];
      for (const item of items) {
        try {
          const result = await write(item, props.mode, false);
          warnings.push(...result.warnings);
          applied.push({ res: item.res, namespace: item.namespace, name: result.object.metadata.name });
        } catch (e) {
          const note = e instanceof ApiError && e.code === 409 && props.mode === 'edit' ? 'The object changed since it was loaded: close and edit again.' : undefined;
          return show({ ...empty, applied, warnings, note, problems: problemsOf(e, item, fieldsInMessage) });
        }
      }
      show({ ...empty, applied, warnings });
      props.onApplied?.(applied);
    } catch (e) {
      show({ ...empty, problems: [{ line: 1, message: (e as Error).message }] });
    } finally {
      setBusy('');
    }
  };

  return (
    <div class="yaml-workbench">
      <CodeEditor
        initial={props.initial}
        label={props.mode === 'create' ? 'YAML to create' : 'YAML of the object'}
        onReady={(h) => {
          editor.current = h;
          setReady(true);
        }}
      />
      <div class="actions">
        <button
          disabled={!ready || busy !== '' || props.allowed !== true}
          title={props.allowed === false ? props.deniedMessage : undefined}
          onClick={() => run(false)}
        >
          {busy === 'dry' ? 'Dry running…' : 'Dry run'}
        </button>
        <button
          class="primary"
          disabled={!ready || busy !== '' || props.allowed !== true}
          title={props.allowed === false ? props.deniedMessage : undefined}
          onClick={() => run(true)}
        >
          {busy === 'apply' ? 'Applying…' : 'Apply'}
        </button>
        {props.allowed === false ? (
          <span class="muted no-access" role="note">
            {props.deniedMessage}
          </span>
        ) : (
          <span class="muted">Dry run asks the server (dryRun=All) and shows what would change; Apply dry-runs every object first.</span>
        )}
      </div>
      <Results outcome={outcome} mode={props.mode} />
    </div>
  );
}

export function CreateFromYaml() {
  const ns = useShared(selectedNamespace) ?? 'default';
  const allowed = useMayCreateIn(ns);
  return (
    <Page title="Create from YAML" subtitle="One or more objects, separated by ---; objects without a namespace go to the selected one.">
      <YamlWorkbench
        mode="create"
        initial=""
        edit={null}
        allowed={allowed}
        deniedMessage={mayNot(`create objects in namespace ${ns}.`)}
      />
    </Page>
  );
}

/** Edits one object's YAML (PUT with its resourceVersion); `onDone` after a successful save. */
export function YamlEditor(props: { resource: Resource; object: K8sObject; onDone: () => void }) {
  const [initial, setInitial] = useState<string | null>(null);
  useEffect(() => {
    void loadText().then(({ toYaml }) => setInitial(toYaml(editable(props.object))));
  }, []);
  const allowed = useCan('update', ref(props.resource), props.object.metadata.namespace ?? null, '', props.object.metadata.name);
  if (initial === null) return <div class="loading" aria-busy="true">Loading…</div>;
  return (
    <YamlWorkbench
      allowed={allowed}
      deniedMessage={mayNot(`update ${props.resource.kind} ${props.object.metadata.name}.`)}
      mode="edit"
      initial={initial}
      edit={{ res: props.resource, object: props.object }}
      onApplied={() => props.onDone()}
    />
  );
}
