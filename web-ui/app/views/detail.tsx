// An object's page: summary, YAML, events, related objects, and the kind's own panels.

import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { K8sObject, Resource } from '../api/resources';
import { detailHref, listHref, resource as resourceNamed, selectorText, resourceOfKind, RESOURCES } from '../api/resources';
import { useList, useObject } from '../api/watch';
import { Conditions } from '../components/conditions';
import { Age, ageSort, containerRuntimes, Pill, podStatus, RuntimeBadge } from '../components/badges';
import { Modal } from '../components/modal';
import { ErrorBox, Loading, Page, Tabs } from '../components/page';
import type { Column } from '../components/table';
import { DataTable } from '../components/table';
import { Link, setQuery, useRoute } from '../router';
import { ObjectActions } from './actions';
import { canNow, mayNot, ref, useAccess } from '../api/access';
import { ObjectEvents } from './events';
import { InvokePanel } from './functions';
import { ContainerLogs, MergedLogs, Terminal } from './logs';
import { FunctionMetricsPanel, PodMetricsPanel } from './metrics';
import { YamlEditor } from './yaml';
import '../styles/detail.css';

type OwnerRef = NonNullable<K8sObject['metadata']['ownerReferences']>[number];

// ---------------------------------------------------------------------------------------------
// Selectors

function matches(map: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(map ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/** Where the list of a kind is. */
function ObjectLink(props: { apiVersion?: string; kind: string; namespace?: string | null; name: string }) {
  const res = resourceOfKind(props.apiVersion, props.kind);
  const text = `${props.kind}/${props.name}`;
  return res ? <Link href={detailHref(res, props.namespace, props.name)}>{text}</Link> : <span>{text}</span>;
}

// ---------------------------------------------------------------------------------------------
// Summary

function Labels(props: { labels?: Record<string, string> }) {
  const entries = Object.entries(props.labels ?? {});
  if (!entries.length) return <span class="muted">none</span>;
  return (
    <span class="labels">
      {entries.map(([k, v]) => (
        <code class="label">
          {k}={v}
        </code>
      ))}
    </span>
  );
}

function Facts(props: { rows: [string, ComponentChildren][] }) {
  const rows = props.rows.filter(([, v]) => v !== undefined && v !== null && v !== '');
  if (!rows.length) return null;
  return (
    <dl class="kv">
      {rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </>
      ))}
    </dl>
  );
}

function quantities(map: Record<string, string> | undefined): string | undefined {
  const entries = Object.entries(map ?? {});
  return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : undefined;
}

/** The key facts of each kind. */
function kindFacts(res: Resource, o: K8sObject): [string, ComponentChildren][] {
  const s = o.spec ?? {};
  const st = o.status ?? {};
  switch (res.name) {
    case 'pods':
      return [
        ['Status', <Pill text={o.metadata.deletionTimestamp ? 'Terminating' : st.reason ?? st.phase ?? 'Pending'} />],
        ['Node', s.nodeName ? <Link href={detailHref(RESOURCES.nodes, null, s.nodeName)}>{s.nodeName}</Link> : 'not scheduled'],
        ['Pod IP', st.podIP],
        ['QoS class', st.qosClass],
        ['Runtime class', s.runtimeClassName],
        ['Restart policy', s.restartPolicy],
        ['Service account', s.serviceAccountName],
        ['Message', st.message],
      ];
    case 'deployments':
    case 'statefulsets':
    case 'replicasets':
      return [
        ['Replicas', `${st.readyReplicas ?? 0} ready of ${s.replicas ?? 1} desired`],
        ['Updated', st.updatedReplicas !== undefined ? String(st.updatedReplicas) : undefined],
        ['Available', st.availableReplicas !== undefined ? String(st.availableReplicas) : undefined],
        ['Revision', o.metadata.annotations?.['deployment.kubernetes.io/revision']],
        ['Strategy', s.strategy?.type ?? s.updateStrategy?.type],
        ['Selector', <code>{selectorText(s.selector)}</code>],
      ];
    case 'daemonsets':
      return [
        ['Scheduled', `${st.currentNumberScheduled ?? 0} of ${st.desiredNumberScheduled ?? 0}`],
        ['Ready', String(st.numberReady ?? 0)],
        ['Selector', <code>{selectorText(s.selector)}</code>],
      ];
    case 'jobs':
      return [
        ['Completions', `${st.succeeded ?? 0} of ${s.completions ?? 1}`],
        ['Active', String(st.active ?? 0)],
        ['Failed', String(st.failed ?? 0)],
        ['Started', st.startTime && <Age since={st.startTime} />],
      ];
    case 'cronjobs':
      return [
        ['Schedule', <code>{s.schedule}</code>],
        ['Suspended', s.suspend ? 'yes' : 'no'],
        ['Last schedule', st.lastScheduleTime && <Age since={st.lastScheduleTime} />],
      ];
    case 'services':
      return [
        ['Type', s.type ?? 'ClusterIP'],
        ['Cluster IP', (s.clusterIPs ?? [s.clusterIP]).filter(Boolean).join(', ')],
        [
          'Ports',
          (s.ports ?? [])
            .map((p: any) => `${p.name ? `${p.name} ` : ''}${p.port}→${p.targetPort ?? p.port}/${p.protocol ?? 'TCP'}${p.nodePort ? ` (node ${p.nodePort})` : ''}`)
            .join(', '),
        ],
        ['Selector', <Labels labels={s.selector} />],
      ];
    case 'configmaps':
      return [['Keys', Object.keys({ ...o.data, ...o.binaryData }).join(', ') || 'none']];
    case 'secrets':
      return [
        ['Type', o.type],
        ['Keys', Object.keys(o.data ?? {}).join(', ') || 'none'],
      ];
    case 'nodes':
      return [
        ['Pods and usage', <Link href={`/nodes/${encodeURIComponent(o.metadata.name)}`}>the node's page</Link>],
        ['Addresses', (st.addresses ?? []).map((a: any) => `${a.type} ${a.address}`).join(', ')],
        ['Version', st.nodeInfo?.kubeletVersion],
        ['Schedulable', s.unschedulable ? 'no (cordoned)' : 'yes'],
        ['Capacity', quantities(st.capacity)],
        ['Allocatable', quantities(st.allocatable)],
        ['Taints', (s.taints ?? []).map((t: any) => `${t.key}${t.value ? `=${t.value}` : ''}:${t.effect}`).join(', ')],
      ];
    case 'functions':
      return [
        ['URL', st.url && <a href={st.url}>{st.url}</a>],
        ['Image', <code>{s.image}</code>],
        ['Replicas', `${st.readyReplicas ?? 0} ready of ${st.replicas ?? 0}`],
        ['Invocations', String(st.invocations ?? 0)],
        ['Scale', s.scale && `min ${s.scale.min ?? s.scale.minReplicas ?? 0}, max ${s.scale.max ?? s.scale.maxReplicas ?? '—'}`],
        ['Runtime class', s.runtimeClassName],
      ];
    case 'events':
      return [
        ['Type', <Pill text={o.type ?? 'Normal'} />],
        ['Reason', o.reason],
        ['Object', o.involvedObject && <ObjectLink {...o.involvedObject} />],
        ['Message', o.message],
        ['Count', o.count !== undefined ? String(o.count) : undefined],
      ];
    default:
      return [];
  }
}

function containerState(status: any): { text: string; detail?: string } {
  const state = status?.state ?? {};
  if (state.running) return { text: 'Running', detail: state.running.startedAt };
  if (state.waiting) return { text: state.waiting.reason ?? 'Waiting', detail: state.waiting.message };
  if (state.terminated) return { text: state.terminated.reason ?? 'Terminated', detail: `exit code ${state.terminated.exitCode}` };
  return { text: 'Pending' };
}

function Containers(props: { pod: K8sObject }) {
  const pod = props.pod;
  const runtimes = containerRuntimes(pod);
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const containers = [
    ...(pod.spec?.initContainers ?? []).map((c: any) => ({ ...c, init: true })),
    ...(pod.spec?.containers ?? []),
  ];
  return (
    <section class="card">
      <h2>Containers</h2>
      <table class="data plain" aria-label="Containers">
        <thead>
          <tr>
            <th>Name</th>
            <th>Image</th>
            <th>Runtime</th>
            <th>State</th>
            <th>Ready</th>
            <th>Restarts</th>
            <th>Ports</th>
            <th>Resources</th>
          </tr>
        </thead>
        <tbody>
          {containers.map((c: any) => {
            const status = statuses.find((s: any) => s.name === c.name);
            const state = containerState(status);
            return (
              <tr>
                <td>
                  {c.name}
                  {c.init && <span class="muted"> (init)</span>}
                </td>
                <td class="mono wrap">{c.image}</td>
                <td>
                  <RuntimeBadge runtime={runtimes[c.name]} />
                </td>
                <td title={state.detail}>
                  <Pill text={state.text} />
                </td>
                <td>{status?.ready ? 'yes' : 'no'}</td>
                <td>{status?.restartCount ?? 0}</td>
                <td>{(c.ports ?? []).map((p: any) => `${p.containerPort}/${p.protocol ?? 'TCP'}`).join(', ') || '—'}</td>
                <td class="wrap">
                  {[
                    quantities(c.resources?.requests) && `requests: ${quantities(c.resources?.requests)}`,
                    quantities(c.resources?.limits) && `limits: ${quantities(c.resources?.limits)}`,
                  ]
                    .filter(Boolean)
                    .join('; ') || '—'}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}

const podColumns: Column<K8sObject>[] = [
  {
    key: 'name',
    title: 'Name',
    render: (p) => <Link href={detailHref(RESOURCES.pods, p.metadata.namespace, p.metadata.name)}>{p.metadata.name}</Link>,
    sort: (p) => p.metadata.name,
  },
  {
    key: 'ready',
    title: 'Ready',
    render: (p) => {
      const s = p.status?.containerStatuses ?? [];
      return `${s.filter((c: any) => c.ready).length}/${p.spec?.containers?.length ?? 0}`;
    },
  },
  { key: 'status', title: 'Status', render: (p) => <Pill text={podStatus(p)} />, sort: podStatus },
  {
    key: 'restarts',
    title: 'Restarts',
    render: (p) => (p.status?.containerStatuses ?? []).reduce((n: number, c: any) => n + (c.restartCount ?? 0), 0),
    align: 'right',
  },
  {
    key: 'runtime',
    title: 'Runtime',
    render: (p) => Object.values(containerRuntimes(p)).map((r) => <RuntimeBadge runtime={r} />),
  },
  { key: 'node', title: 'Node', render: (p) => p.spec?.nodeName ?? '', sort: (p) => p.spec?.nodeName ?? '' },
  { key: 'age', title: 'Age', render: (p) => <Age since={p.metadata.creationTimestamp} />, sort: ageSort },
];

/** Pods chosen by a label selector, live. */
function PodsTable(props: { namespace: string; selector: string; empty?: string }) {
  const pods = useList(props.selector ? RESOURCES.pods : null, { namespace: props.namespace, labelSelector: props.selector });
  if (!props.selector) return <p class="muted">{props.empty ?? 'No selector.'}</p>;
  return (
    <>
      <ErrorBox error={pods.error} />
      <DataTable
        label="Pods"
        rows={pods.items}
        columns={podColumns}
        rowKey={(p) => p.metadata.name}
        initialSort={{ key: 'name' }}
        maxHeight={360}
        empty={pods.loaded ? 'No pods.' : <Loading />}
      />
    </>
  );
}

function Summary(props: { res: Resource; object: K8sObject }) {
  const { res, object: o } = props;
  const conditions: any[] = Array.isArray(o.status?.conditions) ? o.status.conditions : [];
  const owners = o.metadata.ownerReferences ?? [];
  const annotations = Object.entries(o.metadata.annotations ?? {}).filter(([k]) => k !== 'kubectl.kubernetes.io/last-applied-configuration');
  const hasPods = ['deployments', 'replicasets', 'statefulsets', 'daemonsets', 'jobs'].includes(res.name);
  return (
    <div class="detail-summary">
      <div class="grid">
        <section class="card">
          <h2>{res.kind}</h2>
          <Facts
            rows={[
              ...kindFacts(res, o),
              ['Created', <Age since={o.metadata.creationTimestamp} />],
              ['UID', <code>{o.metadata.uid}</code>],
            ]}
          />
        </section>
        <section class="card">
          <h2>Metadata</h2>
          <dl class="kv">
            <dt>Labels</dt>
            <dd>
              <Labels labels={o.metadata.labels} />
            </dd>
            <dt>Annotations</dt>
            <dd>
              {annotations.length ? (
                <dl class="annotations">
                  {annotations.map(([k, v]) => (
                    <>
                      <dt class="mono">{k}</dt>
                      <dd class="mono">{v}</dd>
                    </>
                  ))}
                </dl>
              ) : (
                <span class="muted">none</span>
              )}
            </dd>
            <dt>Owners</dt>
            <dd>
              {owners.length ? (
                owners.map((r) => (
                  <div>
                    <ObjectLink apiVersion={r.apiVersion} kind={r.kind} namespace={o.metadata.namespace} name={r.name} />
                    {r.controller && <span class="muted"> (controller)</span>}
                  </div>
                ))
              ) : (
                <span class="muted">none</span>
              )}
            </dd>
          </dl>
        </section>
      </div>
      {res.name === 'pods' && <Containers pod={o} />}
      {conditions.length > 0 && <Conditions conditions={conditions} />}
      {hasPods && (
        <section class="card">
          <h2>Pods</h2>
          <PodsTable namespace={o.metadata.namespace ?? 'default'} selector={selectorText(o.spec?.selector)} />
        </section>
      )}
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// YAML

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** A Secret with its values (and the last-applied annotation, which repeats them) masked. */
function maskSecret(o: K8sObject): K8sObject {
  const mask = (values?: Record<string, string>) =>
    values && Object.fromEntries(Object.keys(values).map((k) => [k, '•••']));
  const annotations = o.metadata.annotations && { ...o.metadata.annotations };
  if (annotations?.[LAST_APPLIED]) annotations[LAST_APPLIED] = '•••';
  return { ...o, data: mask(o.data), stringData: mask(o.stringData), metadata: { ...o.metadata, annotations } };
}

function ObjectYaml(props: { object: K8sObject }) {
  const [showManaged, setShowManaged] = useState(false);
  const secret = props.object.kind === 'Secret';
  const [reveal, setReveal] = useState(false);
  const can = useAccess();
  const mayReveal = secret && can('get', ref(RESOURCES.secrets), props.object.metadata.namespace ?? null, '', props.object.metadata.name) === true;
  const [text, setText] = useState<string | null>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => {
    let gone = false;
    const o = secret && !(reveal && mayReveal) ? maskSecret(props.object) : props.object;
    const shown = showManaged ? o : { ...o, metadata: { ...o.metadata, managedFields: undefined } };
    void import('./yaml-text').then(({ toYaml }) => !gone && setText(toYaml(JSON.parse(JSON.stringify(shown)))));
    return () => void (gone = true);
  }, [props.object, showManaged, reveal, mayReveal]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text ?? '');
      setCopied('Copied');
    } catch {
      setCopied('Copy failed: the browser refused the clipboard');
    }
    setTimeout(() => setCopied(''), 2000);
  };
  return (
    <div class="detail-yaml">
      <div class="actions">
        <label>
          <input type="checkbox" checked={showManaged} onChange={(e) => setShowManaged((e.currentTarget as HTMLInputElement).checked)} /> Show
          managedFields
        </label>
        {secret && (
          <label title={mayReveal ? undefined : mayNot('read the values of this Secret.')}>
            <input type="checkbox" checked={reveal && mayReveal} disabled={!mayReveal} onChange={(e) => setReveal((e.currentTarget as HTMLInputElement).checked)} /> Reveal
            values
          </label>
        )}
        <button onClick={copy} disabled={text === null}>
          Copy
        </button>
        <span role="status" class="muted">
          {copied}
        </span>
      </div>
      {text === null ? <Loading /> : <pre tabIndex={0} aria-label={`YAML of ${props.object.metadata.name}`}>{text}</pre>}
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// Related

/** An owner, then its own controller owner, up the chain. */
function OwnerChain(props: { owner: OwnerRef; namespace?: string; depth: number }) {
  const res = resourceOfKind(props.owner.apiVersion, props.owner.kind) ?? null;
  const { object, loaded } = useObject(res, props.namespace, props.owner.name);
  const next = object?.metadata.ownerReferences?.find((r) => r.controller);
  return (
    <>
      <li>
        <ObjectLink apiVersion={props.owner.apiVersion} kind={props.owner.kind} namespace={props.namespace} name={props.owner.name} />
        {res && loaded && !object && <span class="muted"> (gone)</span>}
      </li>
      {next && props.depth < 8 && <OwnerChain owner={next} namespace={props.namespace} depth={props.depth + 1} />}
    </>
  );
}

/** The kinds that objects of a kind own (a Function's Deployment for Linux images); a kind not listed here looks
 *  through every namespaced kind (one watch each, so the usual owners are listed). */
const OWNED: Record<string, string[]> = {
  deployments: ['replicasets'],
  replicasets: ['pods'],
  statefulsets: ['pods', 'controllerrevisions'],
  daemonsets: ['pods', 'controllerrevisions'],
  jobs: ['pods'],
  cronjobs: ['jobs'],
  functions: ['deployments'],
  services: ['endpointslices', 'endpoints'],
  pods: [],
  configmaps: [],
  secrets: [],
  events: [],
  endpoints: [],
  endpointslices: [],
  controllerrevisions: [],
};

function ownedKinds(res: Resource): Resource[] {
  const names = OWNED[res.name] ?? Object.values(RESOURCES).filter((r) => r.namespaced && r.name !== 'events').map((r) => r.name);
  return names.map((n) => resourceNamed(n)).filter((r): r is Resource => !!r);
}

function OwnedOfKind(props: { res: Resource; namespace: string; uid: string }) {
  const list = useList(props.res, { namespace: props.namespace });
  const owned = list.items.filter((o) => o.metadata.ownerReferences?.some((r) => r.uid === props.uid));
  const revision = (o: K8sObject) => Number(o.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
  if (props.res.name === 'replicasets') owned.sort((a, b) => revision(b) - revision(a));
  else owned.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  // Many pods belong in the Summary tab's table (virtualised); here a few and a count.
  const shown = owned.slice(0, OWNED_LISTED);
  return (
    <>
      {shown.map((o) => (
        <li>
          <Link href={detailHref(props.res, o.metadata.namespace, o.metadata.name)}>
            {props.res.kind}/{o.metadata.name}
          </Link>
          {props.res.name === 'replicasets' && (
            <span class="muted">
              {' '}
              revision {revision(o) || '?'} · {o.status?.readyReplicas ?? 0}/{o.spec?.replicas ?? 0} ready
            </span>
          )}
          {props.res.name === 'pods' && <span class="muted"> {podStatus(o)}</span>}
        </li>
      ))}
      {owned.length > shown.length && (
        <li class="muted">
          and {owned.length - shown.length} more {props.res.title} (all of them on the Summary tab)
        </li>
      )}
    </>
  );
}

const OWNED_LISTED = 50;

function ServicesOfPod(props: { pod: K8sObject }) {
  const services = useList(RESOURCES.services, { namespace: props.pod.metadata.namespace });
  const selecting = services.items.filter((s) => matches(s.spec?.selector, props.pod.metadata.labels));
  if (!selecting.length) return <p class="muted">{services.loaded ? 'No Service selects this pod.' : 'Loading…'}</p>;
  return (
    <ul class="related">
      {selecting.map((s) => (
        <li>
          <Link href={detailHref(RESOURCES.services, s.metadata.namespace, s.metadata.name)}>Service/{s.metadata.name}</Link>
          <span class="muted"> selector {selectorText({ matchLabels: s.spec?.selector })}</span>
        </li>
      ))}
    </ul>
  );
}

function Related(props: { res: Resource; object: K8sObject }) {
  const { res, object: o } = props;
  const ns = o.metadata.namespace;
  const owner = o.metadata.ownerReferences?.find((r) => r.controller) ?? o.metadata.ownerReferences?.[0];
  const kinds = useMemo(() => (res.namespaced ? ownedKinds(res) : []), [res]);
  return (
    <div class="detail-related">
      <section class="card">
        <h2>Owned by</h2>
        {owner ? (
          <ul class="related chain">
            <OwnerChain owner={owner} namespace={ns} depth={0} />
          </ul>
        ) : (
          <p class="muted">No owner: nothing manages this {res.kind}.</p>
        )}
      </section>
      {res.namespaced && ns && o.metadata.uid && kinds.length > 0 && (
        <section class="card">
          <h2>{res.name === 'deployments' ? 'ReplicaSets (newest revision first)' : 'Owns'}</h2>
          <ul class="related">
            {kinds.map((k) => (
              <OwnedOfKind res={k} namespace={ns} uid={o.metadata.uid!} />
            ))}
          </ul>
        </section>
      )}
      {res.name === 'pods' && (
        <section class="card">
          <h2>Services</h2>
          <ServicesOfPod pod={o} />
        </section>
      )}
      {res.name === 'services' && ns && (
        <section class="card">
          <h2>Pods of this Service</h2>
          <PodsTable namespace={ns} selector={selectorText({ matchLabels: o.spec?.selector })} empty="This Service has no selector." />
        </section>
      )}
    </div>
  );
}

// ---------------------------------------------------------------------------------------------
// The page

/** A tab the user may not use is left out; while RBAC's answer is not known it says so. */
function guarded(allowed: boolean | undefined, render: () => ComponentChildren): (() => ComponentChildren) | null {
  if (allowed === false) return null;
  if (allowed === undefined) return () => <Loading />;
  return render;
}

function tabsOf(res: Resource, o: K8sObject, can: typeof canNow) {
  const tabs: { id: string; title: string; render: () => ComponentChildren }[] = [
    { id: 'summary', title: 'Summary', render: () => <Summary res={res} object={o} /> },
    { id: 'yaml', title: 'YAML', render: () => <ObjectYaml object={o} /> },
    { id: 'events', title: 'Events', render: () => <ObjectEvents object={o} /> },
    { id: 'related', title: 'Related', render: () => <Related res={res} object={o} /> },
  ];
  const ns = o.metadata.namespace ?? 'default';
  if (res.name === 'pods') {
    tabs.push({ id: 'logs', title: 'Logs', render: () => <ContainerLogs pod={o} /> });
    // `kubectl exec` is a create of pods/exec.
    const terminal = guarded(can('create', ref(res), ns, 'exec', o.metadata.name), () => <Terminal pod={o} />);
    if (terminal) tabs.push({ id: 'terminal', title: 'Terminal', render: terminal });
    tabs.push({ id: 'metrics', title: 'Metrics', render: () => <PodMetricsPanel pod={o} /> });
  }
  if (res.name === 'deployments')
    tabs.push({
      id: 'logs',
      title: 'Logs',
      render: () => <MergedLogs namespace={ns} selector={selectorText(o.spec?.selector)} title={`Logs of ${o.metadata.name}`} />,
    });
  if (res.name === 'functions') {
    tabs.push(
      { id: 'logs', title: 'Logs', render: () => <MergedLogs fn={o} /> },
      { id: 'metrics', title: 'Metrics', render: () => <FunctionMetricsPanel fn={o} /> },
    );
    // Invoking goes through functions/proxy (a POST is a create, a GET a get).
    const get = can('get', ref(res), ns, 'proxy', o.metadata.name);
    const create = can('create', ref(res), ns, 'proxy', o.metadata.name);
    const invoke = guarded(get === true || create === true ? true : get === false && create === false ? false : undefined, () => (
      <InvokePanel fn={o} />
    ));
    if (invoke) tabs.push({ id: 'invoke', title: 'Invoke', render: invoke });
  }
  return tabs;
}

function Subtitle(props: { res: Resource; object: K8sObject }) {
  const o = props.object;
  const controller = o.metadata.ownerReferences?.find((r) => r.controller);
  const managedLabel = o.metadata.labels?.['app.kubernetes.io/managed-by'];
  return (
    <span class="detail-subtitle">
      <span>{props.res.kind}</span>
      {o.metadata.namespace && (
        <span>
          namespace <strong>{o.metadata.namespace}</strong>
        </span>
      )}
      <span>
        age <Age since={o.metadata.creationTimestamp} />
      </span>
      {(controller || managedLabel) && (
        <span class="managed-by">
          managed by{' '}
          {controller ? (
            <ObjectLink apiVersion={controller.apiVersion} kind={controller.kind} namespace={o.metadata.namespace} name={controller.name} />
          ) : (
            managedLabel
          )}
        </span>
      )}
      {o.metadata.deletionTimestamp && <Pill text="Terminating" />}
    </span>
  );
}

export function ObjectDetail(props: { resource: string; namespace: string | null; name: string }) {
  const res = resourceNamed(props.resource) ?? null;
  const { object, loaded, error } = useObject(res, props.namespace, props.name);
  const { query } = useRoute();
  const seen = useRef<string | null>(null);
  const can = useAccess();
  const key = `${props.resource}/${props.namespace}/${props.name}`;
  if (object) seen.current = key;
  const editing = query.get('edit') === '1';
  const [snapshot, setSnapshot] = useState<K8sObject | null>(null);
  useEffect(() => {
    if (editing && object && !snapshot) setSnapshot(object);
    if (!editing && snapshot) setSnapshot(null);
  }, [editing, object]);

  if (!res)
    return (
      <Page title={props.name}>
        <ErrorBox error={new Error(`The dashboard does not know the resource "${props.resource}".`)} />
      </Page>
    );
  if (!object) {
    if (!loaded)
      return (
        <Page title={props.name} subtitle={res.kind}>
          {error ? <ErrorBox error={error} /> : <Loading />}
        </Page>
      );
    return (
      <Page title={props.name} subtitle={res.kind}>
        <div class="gone" role="status">
          {seen.current === key ? (
            <p>
              This {res.kind} was deleted.
            </p>
          ) : (
            <p>
              There is no {res.kind} named {props.name}
              {props.namespace ? ` in namespace ${props.namespace}` : ''}: it was deleted or never existed.
            </p>
          )}
          <Link href={listHref(res)}>Back to {res.title}</Link>
        </div>
      </Page>
    );
  }

  return (
    <Page
      title={object.metadata.name}
      subtitle={<Subtitle res={res} object={object} />}
      actions={
        <>
          <ObjectActions resource={res} object={object} />
          <EditYamlButton res={res} object={object} allowed={can('update', ref(res), object.metadata.namespace ?? null, '', object.metadata.name)} />
        </>
      }
    >
      <Tabs tabs={tabsOf(res, object, can)} />
      {editing && snapshot && (
        <Modal title={`Edit ${res.kind} ${object.metadata.name}`} wide onClose={() => setQuery('edit', null)}>
          <YamlEditor resource={res} object={snapshot} onDone={() => setQuery('edit', null)} />
        </Modal>
      )}
    </Page>
  );
}

/** "Edit YAML" (a PUT of the object): hidden when the user may not update it, disabled while not known. */
function EditYamlButton(props: { res: Resource; object: K8sObject; allowed: boolean | undefined }) {
  if (props.allowed === false) return null;
  return (
    <button disabled={props.allowed === undefined} onClick={() => setQuery('edit', '1')}>
      Edit YAML
    </button>
  );
}
