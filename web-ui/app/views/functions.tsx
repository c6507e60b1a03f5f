// Functions: their URL, replicas, invocations, request rate and latency; deploying one from an image or from a .wasm
// file (pushed to the embedded registry from the browser, as `wharf fn deploy --wasm` does); the invoke panel, which
// calls a function through the API server's proxy and shows the response.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, again, authHeaders, request, send } from '../api/client';
import { RESOURCES, collectionPath, detailHref, objectPath } from '../api/resources';
import type { K8sObject } from '../api/resources';
import { useList, useObject } from '../api/watch';
import { Age, RuntimeBadge, ageSort } from '../components/badges';
import type { Runtime } from '../components/badges';
import { Modal } from '../components/modal';
import { ErrorBox, Page } from '../components/page';
import { DataTable } from '../components/table';
import type { Column } from '../components/table';
import { Link } from '../router';
import { namespace, parseSearch, search, useNow, useShared } from '../state';
import { SAMPLE_INTERVAL_MS, formatRate, formatSeconds, useFunctionLatency } from './metrics';
import { invocationRate, recordInvocations } from '../components/rates';
import '../styles/functions.css';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import { ref, useCan } from '../api/access';

/** The label on a Linux-image Function's Deployment and pods (control/src/controllers/function.rs). */
const FUNCTION_LABEL = 'wharf.dev/function';

// ---- How a Function runs ----

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

function readyCondition(fn: K8sObject): Condition | undefined {
  return (fn.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Ready');
}

/** The controller's rule, read from what it did: a forced runtimeClassName; else a Linux image runs as a Deployment the
 *  Function owns; else, once the controller has looked at it (Ready, or NoGateway), in the nodes' gateways (Wasm). */
export function functionRuntime(fn: K8sObject, deployments: K8sObject[]): Runtime | undefined {
  const forced = fn.spec?.runtimeClassName;
  if (forced === 'wasmtime' || forced === 'youki') return forced;
  const owned = deployments.some(
    (d) => d.metadata.namespace === fn.metadata.namespace && d.metadata.ownerReferences?.some((o) => o.kind === 'Function' && o.uid === fn.metadata.uid),
  );
  if (owned) return 'youki';
  const reason = readyCondition(fn)?.reason;
  return reason === 'Ready' || reason === 'NoGateway' ? 'wasmtime' : undefined;
}

function routePath(fn: K8sObject): string {
  return fn.spec?.route?.path ?? `/${fn.metadata.name}`;
}

// ---- The list ----

function ReadyPill(props: { fn: K8sObject }) {
  const c = readyCondition(props.fn);
  if (!c) return <span class="pill muted">Unknown</span>;
  const text = c.reason || (c.status === 'True' ? 'Ready' : 'NotReady');
  const tone = c.status === 'True' ? (c.reason === 'ScaledToZero' ? 'info' : 'ok') : c.reason === 'Deploying' ? 'warn' : 'bad';
  return (
    <span class={`pill ${tone}`} title={c.message}>
      {text}
    </span>
  );
}

function Replicas(props: { fn: K8sObject; runtime?: Runtime }) {
  const replicas: number | undefined = props.fn.status?.replicas;
  const ready: number = props.fn.status?.readyReplicas ?? 0;
  if (replicas === undefined) return <span class="muted">—</span>;
  if (replicas === 0) return <span class="muted">scaled to zero</span>;
  const title = props.runtime === 'wasmtime' ? 'Node gateways serving it (ready / all)' : 'Replicas (ready / all)';
  return <span title={title}>{`${ready}/${replicas}`}</span>;
}

/** The latest p50 / p99 the nodes' gateways measured (a 10 s window), while the function has requests. */
function Latency(props: { fn: K8sObject }) {
  const { samples, error } = useFunctionLatency(props.fn.metadata.namespace ?? 'default', props.fn.metadata.name);
  const last = samples[samples.length - 1];
  const recent = [...samples].reverse().find((s) => !Number.isNaN(s.p50) && s.t >= (last?.t ?? 0) - 6 * SAMPLE_INTERVAL_MS);
  if (!recent)
    return (
      <span class="muted" title={error ? `metrics not available: ${error.message}` : 'No requests in the last minute'}>
        —
      </span>
    );
  return (
    <span title={`Over the ${SAMPLE_INTERVAL_MS / 1000} s before ${new Date(recent.t).toLocaleTimeString()}`}>
      {formatSeconds(recent.p50)} / {formatSeconds(recent.p99)}
    </span>
  );
}

export function FunctionsList() {
  const ns = useShared(namespace);
  const { labelSelector } = parseSearch(useShared(search));
  const list = useAllowedList(RESOURCES.functions, { namespace: ns, labelSelector: labelSelector || undefined });
  const deployments = useList(RESOURCES.deployments, { namespace: ns, labelSelector: FUNCTION_LABEL });
  const now = useNow(2000);
  // Note each new invocation count as the watch brings it, before this render reads the rates.
  useMemo(() => recordInvocations(list.items, Date.now()), [list.items]);
  const [deploying, setDeploying] = useState(false);
  const [invoking, setInvoking] = useState<K8sObject | null>(null);

  const runtimeOf = (f: K8sObject) => functionRuntime(f, deployments.items);
  const columns: Column<K8sObject>[] = [
    {
      key: 'name',
      title: 'Name',
      render: (f) => <Link href={detailHref(RESOURCES.functions, f.metadata.namespace, f.metadata.name)}>{f.metadata.name}</Link>,
      sort: (f) => f.metadata.name,
    },
    ...(ns === null
      ? [{ key: 'namespace', title: 'Namespace', render: (f: K8sObject) => f.metadata.namespace, sort: (f: K8sObject) => f.metadata.namespace ?? '' }]
      : []),
    { key: 'runtime', title: 'Runtime', render: (f) => <RuntimeBadge runtime={runtimeOf(f)} />, sort: (f) => runtimeOf(f) ?? '' },
    {
      key: 'url',
      title: 'URL',
      render: (f) =>
        f.status?.url ? (
          <a class="fn-url" href={f.status.url} title={f.status.url} target="_blank" rel="noreferrer">
            {f.status.url}
          </a>
        ) : (
          <span class="muted">{routePath(f)}</span>
        ),
    },
    { key: 'replicas', title: 'Replicas', render: (f) => <Replicas fn={f} runtime={runtimeOf(f)} />, sort: (f) => f.status?.replicas ?? -1 },
    { key: 'ready', title: 'Ready', render: (f) => <ReadyPill fn={f} />, sort: (f) => readyCondition(f)?.reason ?? '' },
    { key: 'invocations', title: 'Invocations', render: (f) => String(f.status?.invocations ?? 0), sort: (f) => f.status?.invocations ?? 0, align: 'right' },
    { key: 'rate', title: 'Request rate', render: (f) => formatRate(invocationRate(f, now) ?? NaN), sort: (f) => invocationRate(f, now) ?? -1, align: 'right' },
    { key: 'latency', title: 'Latency p50 / p99', render: (f) => <Latency fn={f} />, align: 'right' },
    { key: 'age', title: 'Age', render: (f) => <Age since={f.metadata.creationTimestamp} />, sort: ageSort },
    {
      key: 'actions',
      title: 'Actions',
      render: (f) => <InvokeButton fn={f} onClick={() => setInvoking(f)} />,
    },
  ];

  return (
    <Page
      title="Functions"
      subtitle={ns === null ? 'All namespaces' : `Namespace ${ns}`}
      actions={<DeployButton namespace={ns ?? 'default'} onClick={() => setDeploying(true)} />}
    >
      <ErrorBox error={list.error} />
      {list.denied ? (
        <NoAccess res={RESOURCES.functions} namespace={ns} />
      ) : (
        <DataTable
          label="Functions"
          rows={list.items}
          columns={columns}
          rowKey={(f) => `${f.metadata.namespace}/${f.metadata.name}`}
          searchText={(f) => f.metadata.name}
          initialSort={{ key: 'name' }}
          empty={list.loaded ? 'No functions here. Deploy one from an image or a .wasm component.' : 'Loading…'}
        />
      )}
      {deploying && <DeployDialog namespace={ns ?? 'default'} onClose={() => setDeploying(false)} />}
      {invoking && (
        <Modal title={`Invoke ${invoking.metadata.name}`} wide onClose={() => setInvoking(null)}>
          <InvokePanel fn={invoking} />
        </Modal>
      )}
    </Page>
  );
}

// ---- Deploy: the embedded registry (OCI distribution API at /v2/ on this origin) ----

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const WASM_CONFIG = 'application/vnd.wasm.config.v0+json';
const WASM_LAYER_TYPES = ['application/wasm', 'application/vnd.wasm.content.layer.v1+wasm', 'application/vnd.bytecodealliance.wasm.component.layer.v0+wasm'];
const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

/** The message of a failed call: the Status's, or the first of a registry's `{"errors":[...]}`. */
function messageOf(e: unknown): string {
  if (e instanceof ApiError) {
    try {
      const body = JSON.parse(e.message);
      const first = body?.errors?.[0];
      if (first?.message) return `${first.code ? `${first.code}: ` : ''}${first.message}`;
    } catch {
      /* not a registry error */
    }
    return e.message;
  }
  return (e as Error)?.message ?? String(e);
}

/** `(repository, tag or digest)` in the embedded registry, or null for another registry's image (as the server reads it). */
function embeddedReference(image: string): { repository: string; reference: string } | null {
  let name = image;
  let reference = 'latest';
  const at = image.indexOf('@');
  if (at >= 0) {
    name = image.slice(0, at);
    reference = image.slice(at + 1);
  } else {
    const colon = image.lastIndexOf(':');
    if (colon >= 0 && !image.slice(colon + 1).includes('/')) {
      name = image.slice(0, colon);
      reference = image.slice(colon + 1);
    }
  }
  const first = name.split('/')[0];
  if (name.includes('/') && (/[.:]/.test(first) || first === 'localhost')) return null;
  return { repository: name, reference };
}

/** The parts of an OCI manifest or index read here. */
interface Manifest {
  config?: { mediaType?: string };
  layers?: { mediaType?: string }[];
  manifests?: { platform?: { architecture?: string } }[];
}

type ImageCheck = { runtime?: Runtime; note: string };

/** What the embedded registry says an image runs on (its manifest's media types; an index is Wasm only when every entry is). */
async function checkImage(image: string, signal: AbortSignal): Promise<ImageCheck> {
  const ref = embeddedReference(image);
  if (!ref) return { runtime: 'youki', note: 'from another registry: runs as a Linux container unless it is a Wasm artifact' };
  try {
    const response = await send('GET', `/v2/${ref.repository}/manifests/${ref.reference}`, { accept: MANIFEST_ACCEPT, signal });
    const m = (await response.json()) as Manifest;
    if (Array.isArray(m.manifests)) {
      const all = m.manifests.length > 0 && m.manifests.every((d) => d.platform?.architecture === 'wasm');
      return all ? { runtime: 'wasmtime', note: 'a Wasm index in the cluster registry' } : { runtime: 'youki', note: 'a multi-platform image' };
    }
    const wasm = m.config?.mediaType === WASM_CONFIG || (m.layers ?? []).some((l) => WASM_LAYER_TYPES.includes(l.mediaType ?? ''));
    return wasm ? { runtime: 'wasmtime', note: 'a Wasm artifact in the cluster registry' } : { runtime: 'youki', note: 'a Linux image in the cluster registry' };
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    if (e instanceof ApiError && e.code === 404) return { note: 'not in the cluster registry' };
    return { note: `cannot read it: ${messageOf(e)}` };
  }
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  if (!crypto.subtle) throw new Error('uploading needs a secure context (HTTPS) for the browser to compute SHA-256 digests');
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function pushBlob(repository: string, digest: string, bytes: Uint8Array<ArrayBuffer>) {
  try {
    await again(() => send('HEAD', `/v2/${repository}/blobs/${digest}`));
    return; // the registry has it already
  } catch (e) {
    if (!(e instanceof ApiError && e.code === 404)) throw e;
  }
  const started = await again(() => send('POST', `/v2/${repository}/blobs/uploads/`));
  const location = started.headers.get('Location');
  if (!location) throw new Error('the registry accepted the upload without a Location');
  const url = new URL(location, window.location.href);
  if (url.origin !== window.location.origin) throw new Error(`the registry sent the upload elsewhere (${url.origin})`);
  url.searchParams.set('digest', digest);
  await again(() => send('PUT', url.pathname + url.search, { body: new Blob([bytes]), contentType: 'application/octet-stream' }));
}

/** Pushes a wasi:http component as the Wasm OCI artifact `fn-NAME:<first 12 hex of its SHA-256>` (the same bytes
 *  `wharf fn deploy --wasm` pushes, so the same file gets the same digest); returns the reference. */
export async function pushWasm(name: string, file: File, progress: (text: string) => void): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const head = Array.from(bytes.slice(0, 8));
  if (head.slice(0, 4).join() !== '0,97,115,109') throw new Error(`${file.name}: not a WebAssembly file`);
  if (head.slice(4, 8).join() !== '13,0,1,0')
    throw new Error(`${file.name}: a core module; a function needs a component of the wasi:http/proxy world`);
  const hex = await sha256Hex(bytes);
  const layerDigest = `sha256:${hex}`;
  const repository = `fn-${name}`;
  const tag = hex.slice(0, 12);
  const config = new TextEncoder().encode(JSON.stringify({ architecture: 'wasm', os: 'wasip2', layerDigests: [layerDigest] }));
  const configDigest = `sha256:${await sha256Hex(config)}`;
  progress(`Pushing ${repository}:${tag} (${formatSize(bytes.length)}) to the cluster registry…`);
  await pushBlob(repository, configDigest, config);
  await pushBlob(repository, layerDigest, bytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: WASM_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: WASM_LAYER_TYPES[0], digest: layerDigest, size: bytes.length }],
  };
  await again(() => send('PUT', `/v2/${repository}/manifests/${tag}`, { body: JSON.stringify(manifest), contentType: OCI_MANIFEST }));
  return `${repository}:${tag}`;
}

function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// ---- Deploy: the Function ----

export interface DeployFields {
  name: string;
  image: string;
  path: string;
  min: string;
  max: string;
  memory: string;
  port: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const QUANTITY = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

/** Field errors, by field; empty when the form can be sent. */
export function validate(f: DeployFields, hasFile: boolean, wantsPort: boolean): Partial<Record<keyof DeployFields, string>> {
  const errors: Partial<Record<keyof DeployFields, string>> = {};
  if (!DNS_LABEL.test(f.name) || f.name.length > 63)
    errors.name = 'A DNS label: lowercase letters, digits and "-", starting and ending with a letter or digit, at most 63 characters.';
  if (!hasFile && !f.image.trim()) errors.image = 'Give an image reference or choose a .wasm file.';
  if (/\s/.test(f.image.trim())) errors.image = 'An image reference has no spaces.';
  if (f.path && (!f.path.startsWith('/') || /\s/.test(f.path))) errors.path = 'The path starts with / and has no spaces.';
  const int = (s: string) => (/^\d+$/.test(s.trim()) ? Number(s) : NaN);
  if (f.min.trim() && Number.isNaN(int(f.min))) errors.min = 'A whole number, 0 or more.';
  if (f.max.trim() && (Number.isNaN(int(f.max)) || int(f.max) < 1)) errors.max = 'A whole number, 1 or more.';
  if (!errors.min && !errors.max && f.min.trim() && f.max.trim() && int(f.min) > int(f.max)) errors.max = 'At least Min.';
  if (f.memory.trim() && !QUANTITY.test(f.memory.trim())) errors.memory = 'A quantity such as 64Mi or 1Gi.';
  if (wantsPort && f.port.trim() && !(int(f.port) >= 1 && int(f.port) <= 65535)) errors.port = 'A port, 1 to 65535.';
  return errors;
}

/** The spec to store: the dialog's fields over the existing spec (its env, command and other fields are kept). */
/** The parts of a Function's spec the dialog writes (control/src/registry/function.rs); others are kept as they are. */
export interface FunctionSpec {
  image: string;
  port?: number;
  route?: { path?: string; host?: string };
  scale?: { minReplicas?: number; maxReplicas?: number; targetConcurrency?: number; idleTimeout?: string };
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  [field: string]: unknown;
}

export function specFrom(old: FunctionSpec | null | undefined, f: DeployFields, image: string, wantsPort: boolean): FunctionSpec {
  const spec: FunctionSpec = { ...(old ?? {}), image };
  if (wantsPort && f.port.trim()) spec.port = Number(f.port);
  else delete spec.port;
  spec.route = { ...(old?.route ?? {}), path: f.path.trim() || `/${f.name}` };
  const scale = { ...(old?.scale ?? {}) };
  if (f.min.trim()) scale.minReplicas = Number(f.min);
  else delete scale.minReplicas;
  if (f.max.trim()) scale.maxReplicas = Number(f.max);
  else delete scale.maxReplicas;
  if (Object.keys(scale).length) spec.scale = scale;
  else delete spec.scale;
  const limits = { ...(old?.resources?.limits ?? {}) };
  if (f.memory.trim()) limits.memory = f.memory.trim();
  else delete limits.memory;
  const resources: NonNullable<FunctionSpec['resources']> = { ...(old?.resources ?? {}), limits };
  if (!Object.keys(limits).length) delete resources.limits;
  if (Object.keys(resources).length) spec.resources = resources;
  else delete spec.resources;
  return spec;
}

/** Creates the Function, or replaces the spec of the one there (again when it changed meanwhile, as `wharf fn deploy`). */
async function createOrUpdate(ns: string, f: DeployFields, image: string, wantsPort: boolean): Promise<'created' | 'updated'> {
  const path = objectPath(RESOURCES.functions, ns, f.name);
  for (let attempt = 0; ; attempt++) {
    let existing: K8sObject | null = null;
    try {
      existing = await again(() => request<K8sObject>('GET', path));
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 404)) throw e;
    }
    try {
      if (!existing) {
        const body = { apiVersion: 'wharf.dev/v1', kind: 'Function', metadata: { name: f.name, namespace: ns }, spec: specFrom(null, f, image, wantsPort) };
        await again(() => request('POST', collectionPath(RESOURCES.functions, ns), { body }));
        return 'created';
      }
      const updated = { ...existing, spec: specFrom(existing.spec as FunctionSpec, f, image, wantsPort) };
      await again(() => request('PUT', path, { body: updated }));
      return 'updated';
    } catch (e) {
      if (e instanceof ApiError && e.code === 409 && attempt < 4) continue;
      throw e;
    }
  }
}

function Field(props: { id: string; label: string; error?: string; hint?: preact.ComponentChildren; children: preact.ComponentChildren }) {
  return (
    <div class="fn-field">
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.hint && (
        <div class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </div>
      )}
      {props.error && (
        <div class="field-error" id={`${props.id}-error`}>
          {props.error}
        </div>
      )}
    </div>
  );
}

function DeployDialog(props: { namespace: string; onClose: () => void }) {
  const namespaces = useList(RESOURCES.namespaces);
  const [ns, setNs] = useState(props.namespace);
  const [fields, setFields] = useState<DeployFields>({ name: '', image: '', path: '', min: '', max: '', memory: '', port: '' });
  const [file, setFile] = useState<File | null>(null);
  const [check, setCheck] = useState<ImageCheck | null>(null);
  const [errors, setErrors] = useState<Partial<Record<keyof DeployFields, string>>>({});
  const [progress, setProgress] = useState('');
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const set = (k: keyof DeployFields) => (e: Event) => setFields((f) => ({ ...f, [k]: (e.currentTarget as HTMLInputElement).value }));

  // What the image runs on, once the user stops typing (Port matters only for a Linux image).
  useEffect(() => {
    setCheck(null);
    const image = fields.image.trim();
    if (file || !image) return;
    const abort = new AbortController();
    const timer = setTimeout(() => {
      checkImage(image, abort.signal).then(setCheck, () => {});
    }, 400);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [fields.image, file]);
  const wantsPort = !file && check?.runtime !== 'wasmtime';

  const existing = useList(RESOURCES.functions, { namespace: ns });
  const exists = existing.items.some((f) => f.metadata.name === fields.name);

  const submit = async (e: Event) => {
    e.preventDefault();
    const found = validate(fields, !!file, wantsPort);
    setErrors(found);
    setFailure(null);
    const first = Object.keys(found)[0];
    if (first) return void document.getElementById(`fn-${first}`)?.focus();
    setBusy(true);
    try {
      const image = file ? await pushWasm(fields.name, file, setProgress) : fields.image.trim();
      setProgress(`Saving function ${ns}/${fields.name}…`);
      await createOrUpdate(ns, fields, image, wantsPort);
      // Show the namespace it went to, so its row appears.
      if (namespace.get() !== null && namespace.get() !== ns) namespace.set(ns);
      props.onClose();
    } catch (err) {
      setFailure(messageOf(err));
      setProgress('');
    } finally {
      setBusy(false);
    }
  };

  const names = namespaces.items.map((n) => n.metadata.name).sort();
  if (!names.includes(ns)) names.unshift(ns);
  const invalid = (k: keyof DeployFields, hint?: string) => ({
    'aria-invalid': errors[k] ? (true as const) : undefined,
    'aria-describedby': [hint, errors[k] ? `fn-${k}-error` : ''].filter(Boolean).join(' ') || undefined,
  });

  return (
    <Modal title="Deploy function" onClose={props.onClose}>
      <form class="fn-deploy" onSubmit={submit} noValidate>
        <div class="fn-row">
          <Field id="fn-name" label="Name" error={errors.name}>
            <input id="fn-name" value={fields.name} onInput={set('name')} autoComplete="off" spellcheck={false} required {...invalid('name')} />
          </Field>
          <Field id="fn-namespace" label="Namespace">
            <select id="fn-namespace" value={ns} onChange={(e) => setNs(e.currentTarget.value)}>
              {names.map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          </Field>
        </div>
        <fieldset class="fn-source">
          <legend>Code: an image, or a Wasm component to upload</legend>
          <Field
            id="fn-image"
            label="Image"
            error={errors.image}
            hint={
              file ? (
                'The uploaded file is used.'
              ) : check ? (
                <>
                  {check.runtime && <RuntimeBadge runtime={check.runtime} />}
                  {check.note}
                </>
              ) : (
                'A reference such as hello:v1 (the cluster registry) or registry.example/app:1.'
              )
            }
          >
            <input
              id="fn-image"
              value={fields.image}
              onInput={set('image')}
              disabled={!!file}
              autoComplete="off"
              spellcheck={false}
              placeholder="hello:v1"
              {...invalid('image', 'fn-image-hint')}
            />
          </Field>
          <Field
            id="fn-wasm"
            label=".wasm file"
            hint={file ? `${file.name}, ${formatSize(file.size)}: pushed as fn-${fields.name || 'NAME'}:<digest> to the cluster registry.` : undefined}
          >
            <div class="fn-file">
              <input
                id="fn-wasm"
                ref={fileInput}
                type="file"
                accept=".wasm,application/wasm"
                onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
              />
              {file && (
                <button
                  type="button"
                  onClick={() => {
                    setFile(null);
                    if (fileInput.current) fileInput.current.value = '';
                  }}
                >
                  Remove file
                </button>
              )}
            </div>
          </Field>
        </fieldset>
        <div class="fn-row">
          <Field id="fn-path" label="Path" error={errors.path}>
            <input id="fn-path" value={fields.path} onInput={set('path')} placeholder={`/${fields.name || 'NAME'}`} spellcheck={false} {...invalid('path')} />
          </Field>
          {wantsPort && (
            <Field id="fn-port" label="Port" error={errors.port}>
              <input id="fn-port" inputMode="numeric" value={fields.port} onInput={set('port')} placeholder="8080" {...invalid('port')} />
            </Field>
          )}
        </div>
        <div class="fn-row">
          <Field id="fn-min" label="Min" error={errors.min}>
            <input id="fn-min" inputMode="numeric" value={fields.min} onInput={set('min')} placeholder="0" {...invalid('min')} />
          </Field>
          <Field id="fn-max" label="Max" error={errors.max}>
            <input id="fn-max" inputMode="numeric" value={fields.max} onInput={set('max')} placeholder="10" {...invalid('max')} />
          </Field>
          <Field id="fn-memory" label="Memory" error={errors.memory}>
            <input id="fn-memory" value={fields.memory} onInput={set('memory')} placeholder="64Mi" spellcheck={false} {...invalid('memory')} />
          </Field>
        </div>
        {exists && <p class="hint">Function {ns}/{fields.name} exists: deploying replaces its image, route, scale and memory.</p>}
        {progress && (
          <p class="hint" role="status">
            {progress}
          </p>
        )}
        {failure && (
          <div class="error" role="alert">
            {failure}
          </div>
        )}
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Deploy
          </button>
        </div>
      </form>
    </Modal>
  );
}

// ---- Invoke ----

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'];

interface InvokeRequest {
  method: string;
  path: string;
  headers: string;
  body: string;
}

interface InvokeResult {
  request: InvokeRequest;
  status: number;
  statusText: string;
  ms: number;
  headers: [string, string][];
  body: { kind: 'empty' | 'text' | 'json' | 'binary'; text: string; size: number };
  at: number;
}

const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

/** `Name: value` lines into headers; throws naming the first line that is not one. */
export function parseHeaders(text: string): [string, string][] {
  const out: [string, string][] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new Error(`Headers, line ${i + 1}: want "Name: value"`);
    out.push([name, line.slice(colon + 1).trim()]);
  });
  return out;
}

const MAX_SHOWN = 256 * 1024;

function describeBody(bytes: ArrayBuffer, contentType: string): InvokeResult['body'] {
  const size = bytes.byteLength;
  if (size === 0) return { kind: 'empty', text: '', size };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { kind: 'binary', text: '', size };
  }
  if (/\bjson\b|\+json/i.test(contentType) || /^\s*[[{]/.test(text)) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(text), null, 2), size };
    } catch {
      /* not JSON after all */
    }
  }
  return { kind: 'text', text, size };
}

/** The proxy URL of a path relative to the function's route (`items/1?x=y`). */
function proxyPath(fn: K8sObject, path: string): string {
  const base = objectPath(RESOURCES.functions, fn.metadata.namespace, fn.metadata.name, 'proxy');
  const rest = path.trim().replace(/^\/+/, '');
  if (!rest) return base;
  return rest.startsWith('?') ? base + rest : `${base}/${rest}`;
}

async function invoke(fn: K8sObject, req: InvokeRequest, signal: AbortSignal): Promise<InvokeResult> {
  const headers = new Headers(parseHeaders(req.headers));
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const sendsBody = req.method !== 'GET' && req.body !== '';
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch(proxyPath(fn, req.path), { method: req.method, headers, body: sendsBody ? req.body : undefined, signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new Error(`cannot reach the API server: ${(e as Error).message}`);
  }
  const bytes = await response.arrayBuffer();
  const ms = performance.now() - started;
  return {
    request: req,
    status: response.status,
    statusText: response.statusText || REASONS[response.status] || '',
    ms,
    headers: [...response.headers.entries()],
    body: describeBody(bytes, response.headers.get('content-type') ?? ''),
    at: Date.now(),
  };
}

/** What a request reaches, as the user reads it: the route and the path under it. */
function requestTarget(fn: K8sObject, path: string): string {
  const rest = path.trim().replace(/^\/+/, '');
  const route = routePath(fn).replace(/\/$/, '');
  return rest ? (rest.startsWith('?') ? route + rest : `${route}/${rest}`) : route || '/';
}

function statusTone(status: number): string {
  if (status < 300) return 'ok';
  if (status < 400) return 'info';
  if (status < 500) return 'warn';
  return 'bad';
}

/** The last invocations of each function, kept while the tab lives (the panel may be closed and opened again). */
const histories = new Map<string, InvokeResult[]>();

function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

export function InvokePanel(props: { fn: K8sObject }) {
  const ns = props.fn.metadata.namespace ?? 'default';
  const name = props.fn.metadata.name;
  const key = `${ns}/${name}`;
  const live = useObject(RESOURCES.functions, ns, name).object ?? props.fn;
  const [form, setForm] = useState<InvokeRequest>({ method: 'GET', path: '', headers: '', body: '' });
  const [result, setResult] = useState<InvokeResult | null>(histories.get(key)?.[0] ?? null);
  const [history, setHistory] = useState<InvokeResult[]>(histories.get(key) ?? []);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);

  const run = async (req: InvokeRequest) => {
    abort.current?.abort();
    abort.current = new AbortController();
    setBusy(true);
    setError(null);
    try {
      const r = await invoke(live, req, abort.current.signal);
      const next = [r, ...(histories.get(key) ?? [])].slice(0, 10);
      histories.set(key, next);
      setHistory(next);
      setResult(r);
    } catch (e) {
      if ((e as Error).name !== 'AbortError') setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const set = (k: keyof InvokeRequest) => (e: Event) => setForm((f) => ({ ...f, [k]: (e.currentTarget as HTMLInputElement).value }));

  return (
    <form
      class="invoke"
      onSubmit={(e) => {
        e.preventDefault();
        void run(form);
      }}
    >
      <div class="invoke-line">
        <label class="sr-only" for="invoke-method">
          Method
        </label>
        <select id="invoke-method" value={form.method} onChange={set('method')}>
          {METHODS.map((m) => (
            <option value={m}>{m}</option>
          ))}
        </select>
        <div class="invoke-url">
          <span class="invoke-route mono" title="The function's route">
            {routePath(live).replace(/\/$/, '')}/
          </span>
          <label class="sr-only" for="invoke-path">
            Path
          </label>
          <input id="invoke-path" class="mono" value={form.path} onInput={set('path')} placeholder="path?query" spellcheck={false} autoComplete="off" />
        </div>
        <button class="primary" type="submit" disabled={busy}>
          Invoke
        </button>
      </div>
      <div class="invoke-request">
        <label for="invoke-headers">Headers</label>
        <textarea id="invoke-headers" class="mono" rows={3} value={form.headers} onInput={set('headers')} placeholder="Content-Type: application/json" spellcheck={false} />
        <label for="invoke-body">Body</label>
        <textarea
          id="invoke-body"
          class="mono"
          rows={5}
          value={form.body}
          onInput={set('body')}
          placeholder={form.method === 'GET' ? 'GET sends no body' : '{"hello": "world"}'}
          spellcheck={false}
          disabled={form.method === 'GET'}
        />
        <dl class="kv invoke-count">
          <dt>Invocations</dt>
          <dd>{String(live.status?.invocations ?? 0)}</dd>
          <dt>URL</dt>
          <dd>{live.status?.url ?? <span class="muted">not served yet</span>}</dd>
        </dl>
        {history.length > 0 && (
          <div class="invoke-history">
            <h3 id="invoke-history-title">Recent invocations</h3>
            <ol aria-labelledby="invoke-history-title">
              {history.map((h) => (
                <li key={h.at}>
                  <button
                    type="button"
                    class="link"
                    title="Run again"
                    onClick={() => {
                      setForm(h.request);
                      void run(h.request);
                    }}
                  >
                    <span class="mono">
                      {h.request.method} {requestTarget(live, h.request.path)}
                    </span>
                  </button>{' '}
                  <span class={`pill ${statusTone(h.status)}`}>{h.status}</span> <span class="muted">{formatMs(h.ms)}</span>
                </li>
              ))}
            </ol>
          </div>
        )}
      </div>
      <section class="invoke-response" aria-labelledby="invoke-response-title" aria-busy={busy}>
        <h3 id="invoke-response-title">Response</h3>
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        {!result && !error && <p class="muted">Send a request to see the function's answer.</p>}
        {result && (
          <>
            <div class="invoke-summary">
              <output class={`pill ${statusTone(result.status)}`} aria-label="Response status">
                {`${result.status} ${result.statusText}`.trim()}
              </output>
              <output aria-label="Response time">{formatMs(result.ms)}</output>
              <span class="muted">
                {result.body.kind === 'empty' ? 'no body' : formatSize(result.body.size)} · {new Date(result.at).toLocaleTimeString()}
              </span>
            </div>
            <details class="invoke-headers" open>
              <summary>Headers ({result.headers.length})</summary>
              <table class="headers" aria-label="Response headers">
                <tbody>
                  {result.headers.map(([k, v]) => (
                    <tr>
                      <th scope="row">{k}</th>
                      <td class="mono">{v}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </details>
            <pre aria-label="Response body" tabIndex={0} class={result.body.kind === 'text' || result.body.kind === 'json' ? '' : 'muted'}>
              {result.body.kind === 'empty'
                ? '(empty)'
                : result.body.kind === 'binary'
                  ? `(${formatSize(result.body.size)} of binary data)`
                  : result.body.text.length > MAX_SHOWN
                    ? `${result.body.text.slice(0, MAX_SHOWN)}\n… (${formatSize(result.body.size)} in all)`
                    : result.body.text}
            </pre>
          </>
        )}
      </section>
    </form>
  );
}

/** "Deploy function" (a create of a Function): hidden when the user may not, disabled while not known. */
function DeployButton(props: { namespace: string; onClick: () => void }) {
  const allowed = useCan('create', ref(RESOURCES.functions), props.namespace);
  if (allowed === false) return null;
  return (
    <button class="primary" disabled={allowed === undefined} onClick={props.onClick}>
      Deploy function
    </button>
  );
}

/** A row's Invoke (through functions/proxy): hidden when the user may not. */
function InvokeButton(props: { fn: K8sObject; onClick: () => void }) {
  const ns = props.fn.metadata.namespace ?? null;
  const get = useCan('get', ref(RESOURCES.functions), ns, 'proxy', props.fn.metadata.name);
  const create = useCan('create', ref(RESOURCES.functions), ns, 'proxy', props.fn.metadata.name);
  if (get === false && create === false) return null;
  return (
    <button class="small" aria-label={`Invoke ${props.fn.metadata.name}`} disabled={get !== true && create !== true} onClick={props.onClick}>
      Invoke
    </button>
  );
}
