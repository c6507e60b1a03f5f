// Nodes: capacity, allocatable, requested and used, runtimes, conditions, taints, pods; cordon and uncordon.

import { useMemo, useState } from 'preact/hooks';
import { again, request } from '../api/client';
import type { K8sObject } from '../api/resources';
import { RESOURCES, detailHref, objectPath } from '../api/resources';
import { useList, useObject } from '../api/watch';
import type { Runtime } from '../components/badges';
import { Conditions } from '../components/conditions';
import type { Condition } from '../components/conditions';
import { Age, Pill, RuntimeBadge, ageSort, containerRuntimes, podStatus } from '../components/badges';
import { ErrorBox, Loading, Page, Tabs } from '../components/page';
import type { Column } from '../components/table';
import { DataTable } from '../components/table';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import { ref, useCan } from '../api/access';
import { Link } from '../router';
import { NodeMetricsPanel, formatBytes, formatCpu, parseQuantity, useAllNodeMetrics, useNodeMetrics } from './metrics';
import '../styles/nodes.css';

// ---- What a node says about itself ----

interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export function isReady(node: K8sObject): boolean {
  return (node.status?.conditions ?? []).some((c: Condition) => c.type === 'Ready' && c.status === 'True');
}

/** What kubectl's STATUS column says, word by word: Ready or NotReady, then SchedulingDisabled when cordoned. */
export function nodeStatus(node: K8sObject): string[] {
  const words = [isReady(node) ? 'Ready' : 'NotReady'];
  if (node.spec?.unschedulable) words.push('SchedulingDisabled');
  return words;
}

export function nodeRoles(node: K8sObject): string[] {
  const roles: string[] = [];
  for (const [k, v] of Object.entries(node.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/')) roles.push(k.slice('node-role.kubernetes.io/'.length));
    else if (k === 'kubernetes.io/role') roles.push(v);
  }
  return roles.sort();
}

const RUNTIME_LABEL = 'runtime.wharf.dev/';

/** The runtime handlers a node offers: its `runtime.wharf.dev/HANDLER=true` labels (what the agent
 *  writes and the scheduler matches), else its nodeInfo.containerRuntimeVersion (`wasmtime://,youki://`). */
export function nodeRuntimes(node: K8sObject): string[] {
  const labelled = Object.entries(node.metadata.labels ?? {})
    .filter(([k, v]) => k.startsWith(RUNTIME_LABEL) && v === 'true')
    .map(([k]) => k.slice(RUNTIME_LABEL.length));
  if (labelled.length) return labelled.sort();
  const version: string = node.status?.nodeInfo?.containerRuntimeVersion ?? '';
  return version
    .split(',')
    .map((v) => v.split('://')[0].trim())
    .filter(Boolean)
    .sort();
}

export function NodeRuntimes(props: { node: K8sObject }) {
  const runtimes = nodeRuntimes(props.node);
  if (!runtimes.length) return <span class="muted">—</span>;
  return (
    <span class="node-runtimes">
      {runtimes.map((r) =>
        r === 'wasmtime' || r === 'youki' ? <RuntimeBadge runtime={r as Runtime} /> : <Pill text={r} tone="muted" />,
      )}
    </span>
  );
}

export function NodeStatus(props: { node: K8sObject }) {
  return (
    <span class="node-status">
      {nodeStatus(props.node).map((w) => (
        <Pill text={w} />
      ))}
    </span>
  );
}

// ---- Pod requests per node ----

export interface NodeLoad {
  /** Pods bound to the node (any phase). */
  pods: number;
  /** Summed requests of its pods that still hold resources (not Succeeded or Failed). */
  cpu: number;
  memory: number;
}

interface Resources {
  requests?: { cpu?: string; memory?: string };
}

/** A pod's effective requests, as the scheduler counts them: the larger of its containers' sum and
 *  its largest init container, plus its overhead. */
export function podRequests(pod: K8sObject): { cpu: number; memory: number } {
  const out = { cpu: 0, memory: 0 };
  for (const k of ['cpu', 'memory'] as const) {
    let containers = 0;
    for (const c of (pod.spec?.containers ?? []) as { resources?: Resources }[]) containers += parseQuantity(c.resources?.requests?.[k]) || 0;
    let init = 0;
    for (const c of (pod.spec?.initContainers ?? []) as { resources?: Resources }[]) {
      init = Math.max(init, parseQuantity(c.resources?.requests?.[k]) || 0);
    }
    out[k] = Math.max(containers, init) + (parseQuantity(pod.spec?.overhead?.[k]) || 0);
  }
  return out;
}

export function holdsResources(pod: K8sObject): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed';
}

const requestsOf = new WeakMap<K8sObject, { cpu: number; memory: number }>();

/** Adds one pod to the load of its node (`loads` keyed by node name). Requests are cached per object. */
export function addLoad(loads: Map<string, NodeLoad>, pod: K8sObject) {
  const node: string | undefined = pod.spec?.nodeName;
  if (!node) return;
  let load = loads.get(node);
  if (!load) loads.set(node, (load = { pods: 0, cpu: 0, memory: 0 }));
  load.pods++;
  if (!holdsResources(pod)) return;
  let r = requestsOf.get(pod);
  if (!r) requestsOf.set(pod, (r = podRequests(pod)));
  load.cpu += r.cpu;
  load.memory += r.memory;
}

// ---- Cordon ----

/** Marks a node (un)schedulable, as kubectl cordon/uncordon do (a merge patch of spec.unschedulable). */
export async function setUnschedulable(name: string, unschedulable: boolean) {
  // Idempotent, so a request the browser dropped is simply sent again.
  return again(() =>
    request('PATCH', objectPath(RESOURCES.nodes, null, name), {
      body: { spec: { unschedulable: unschedulable ? true : null } },
      contentType: 'application/merge-patch+json',
    }),
  );
}

export function CordonButton(props: { node: K8sObject }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const cordoned = !!props.node.spec?.unschedulable;
  const name = props.node.metadata.name;
  // kubectl cordon patches the Node: hidden for users who may not.
  const allowed = useCan('patch', ref(RESOURCES.nodes), null, '', name);
  const toggle = async () => {
    setBusy(true);
    setError(null);
    try {
      await setUnschedulable(name, !cordoned);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  if (allowed === false) return null;
  return (
    <span class="cordon">
      <button
        onClick={toggle}
        disabled={busy || allowed === undefined}
        title={cordoned ? `Let the scheduler place new pods on ${name} again` : `Stop the scheduler from placing new pods on ${name}`}
      >
        {cordoned ? 'Uncordon' : 'Cordon'}
      </button>
      {error && (
        <span class="inline-error" role="alert">
          {error}
        </span>
      )}
    </span>
  );
}

// ---- The list ----

function quantity(node: K8sObject, field: 'capacity' | 'allocatable', k: string): number {
  return parseQuantity(node.status?.[field]?.[k]);
}

function percent(v: number | undefined, of: number): string {
  return v === undefined || !(of > 0) ? '' : ` (${Math.round((v / of) * 100)}%)`;
}

/** One resource of a node in a list cell: requested and used over allocatable and capacity. */
function Resource(props: { node: K8sObject; k: 'cpu' | 'memory'; requested: number; used: number | undefined; format: (v: number) => string }) {
  const alloc = quantity(props.node, 'allocatable', props.k);
  const cap = quantity(props.node, 'capacity', props.k);
  return (
    <span class="resource-cell">
      <span>
        {props.format(props.requested)} <abbr title="requested by the node's pods">req</abbr>
        <span class="muted">{percent(props.requested, alloc)}</span> ·{' '}
        {props.used === undefined ? (
          <span class="muted">— used</span>
        ) : (
          <>
            {props.format(props.used)} used<span class="muted">{percent(props.used, alloc)}</span>
          </>
        )}
      </span>
      <span class="muted">
        {props.format(alloc)} <abbr title="allocatable">alloc</abbr> · {props.format(cap)} <abbr title="capacity">cap</abbr>
      </span>
    </span>
  );
}

export function NodesList() {
  const nodes = useAllowedList(RESOURCES.nodes);
  const pods = useAllowedList(RESOURCES.pods);
  const metrics = useAllNodeMetrics();
  const loads = useMemo(() => {
    const loads = new Map<string, NodeLoad>();
    for (const pod of pods.items) addLoad(loads, pod);
    return loads;
  }, [pods.items]);
  const load = (n: K8sObject) => loads.get(n.metadata.name) ?? { pods: 0, cpu: 0, memory: 0 };
  const used = (n: K8sObject) => metrics.usage.get(n.metadata.name);

  const columns = useMemo<Column<K8sObject>[]>(
    () => [
      {
        key: 'name',
        title: 'Name',
        render: (n) => <Link href={`/nodes/${encodeURIComponent(n.metadata.name)}`}>{n.metadata.name}</Link>,
        sort: (n) => n.metadata.name,
      },
      { key: 'status', title: 'Status', render: (n) => <NodeStatus node={n} />, sort: (n) => nodeStatus(n).join(',') },
      { key: 'actions', title: 'Actions', render: (n) => <CordonButton node={n} /> },
      { key: 'roles', title: 'Roles', render: (n) => nodeRoles(n).join(', ') || <span class="muted">—</span>, sort: (n) => nodeRoles(n).join(',') },
      { key: 'runtimes', title: 'Runtimes', render: (n) => <NodeRuntimes node={n} />, sort: (n) => nodeRuntimes(n).join(',') },
      {
        key: 'cpu',
        title: 'CPU',
        render: (n) => <Resource node={n} k="cpu" requested={load(n).cpu} used={used(n)?.cpu} format={formatCpu} />,
        sort: (n) => load(n).cpu / (quantity(n, 'allocatable', 'cpu') || 1),
      },
      {
        key: 'memory',
        title: 'Memory',
        render: (n) => <Resource node={n} k="memory" requested={load(n).memory} used={used(n)?.memory} format={formatBytes} />,
        sort: (n) => load(n).memory / (quantity(n, 'allocatable', 'memory') || 1),
      },
      {
        key: 'pods',
        title: 'Pods',
        align: 'right',
        render: (n) => (
          <span title={`${load(n).pods} of ${n.status?.allocatable?.pods ?? '?'} allocatable`}>{load(n).pods}</span>
        ),
        sort: (n) => load(n).pods,
      },
      { key: 'taints', title: 'Taints', align: 'right', render: (n) => (n.spec?.taints ?? []).length, sort: (n) => (n.spec?.taints ?? []).length },
      { key: 'age', title: 'Age', render: (n) => <Age since={n.metadata.creationTimestamp} />, sort: ageSort },
      {
        key: 'version',
        title: 'Version',
        render: (n) => n.status?.nodeInfo?.kubeletVersion ?? '',
        sort: (n) => n.status?.nodeInfo?.kubeletVersion ?? '',
      },
    ],
    [loads, metrics.usage],
  );

  return (
    <Page
      title="Nodes"
      subtitle={
        <>
          {nodes.items.length} node{nodes.items.length === 1 ? '' : 's'}, {nodes.items.filter(isReady).length} Ready
          {metrics.error && <span class="muted"> · usage: metrics not available: {metrics.error.message}</span>}
        </>
      }
    >
      <ErrorBox error={nodes.error} />
      {nodes.denied ? (
        <NoAccess res={RESOURCES.nodes} namespace={null} />
      ) : !nodes.loaded && !nodes.error ? (
        <Loading />
      ) : (
        <DataTable
          label="Nodes"
          rows={nodes.items}
          columns={columns}
          rowKey={(n) => n.metadata.name}
          searchText={(n) => n.metadata.name}
          initialSort={{ key: 'name' }}
          empty="No nodes have registered. Start a node with `wharf agent`, or `wharf server` without --no-agent."
        />
      )}
    </Page>
  );
}

// ---- One node ----

export function NodeDetail(props: { name: string }) {
  const { object: node, loaded, error } = useObject(RESOURCES.nodes, null, props.name);
  return (
    <Page
      title={props.name}
      subtitle={node ? <NodeStatus node={node} /> : undefined}
      actions={
        node && (
          <>
            <CordonButton node={node} />
            <Link class="button" href={`/object/nodes/_/${encodeURIComponent(props.name)}`}>
              YAML
            </Link>
          </>
        )
      }
    >
      <ErrorBox error={error} />
      {!loaded && !error && <Loading />}
      {loaded && !node && (
        <div class="error" role="alert">
          Node {props.name} does not exist. <Link href="/nodes">All nodes</Link>
        </div>
      )}
      {node && (
        <Tabs
          tabs={[
            { id: 'summary', title: 'Summary', render: () => <NodeSummary node={node} /> },
            { id: 'pods', title: 'Pods', render: () => <NodePods name={node.metadata.name} /> },
            { id: 'metrics', title: 'Metrics', render: () => <NodeMetricsPanel node={node} /> },
          ]}
        />
      )}
    </Page>
  );
}

function NodeSummary(props: { node: K8sObject }) {
  const node = props.node;
  const pods = useList(RESOURCES.pods, { fieldSelector: `spec.nodeName=${node.metadata.name}` });
  const load = useMemo(() => {
    const loads = new Map<string, NodeLoad>();
    for (const pod of pods.items) addLoad(loads, pod);
    return loads.get(node.metadata.name) ?? { pods: 0, cpu: 0, memory: 0 };
  }, [pods.items, node.metadata.name]);
  const metrics = useNodeMetrics(node.metadata.name);
  const used = metrics.samples[metrics.samples.length - 1];
  const info: Record<string, string> = node.status?.nodeInfo ?? {};
  const conditions: Condition[] = node.status?.conditions ?? [];
  const taints: Taint[] = node.spec?.taints ?? [];
  const addresses: { type: string; address: string }[] = node.status?.addresses ?? [];
  const resources = ['cpu', 'memory', 'pods', 'ephemeral-storage'];
  const format = (k: string, v: number) => (k === 'cpu' ? formatCpu(v) : k === 'pods' ? String(v) : formatBytes(v));
  const requested: Record<string, number | undefined> = { cpu: load.cpu, memory: load.memory, pods: load.pods };
  const usedOf: Record<string, number | undefined> = { cpu: used?.cpu, memory: used?.memory };
  const gateway = node.metadata.annotations?.['wharf.dev/gateway'];
  const share = (v: number | undefined, of: number) => (v === undefined || !(of > 0) ? 'unknown' : `${Math.round((v / of) * 100)}%`);
  return (
    <div class="node-summary">
      <div class="grid">
        <section class="card" aria-labelledby="node-addresses">
          <h2 id="node-addresses">Addresses</h2>
          <dl class="kv">
            {addresses.map((a) => (
              <>
                <dt>{a.type}</dt>
                <dd class="mono">{a.address}</dd>
              </>
            ))}
            {gateway && (
              <>
                <dt>Gateway</dt>
                <dd class="mono">{gateway}</dd>
              </>
            )}
            {node.spec?.podCIDR && (
              <>
                <dt>Pod CIDR</dt>
                <dd class="mono">{node.spec.podCIDR}</dd>
              </>
            )}
            <dt>Runtimes</dt>
            <dd>
              <NodeRuntimes node={node} />
            </dd>
            <dt>Created</dt>
            <dd>
              <Age since={node.metadata.creationTimestamp} /> ago
            </dd>
          </dl>
        </section>
        <section class="card" aria-labelledby="node-info">
          <h2 id="node-info">System</h2>
          <dl class="kv">
            {Object.entries(info)
              .filter(([, v]) => v !== '' && typeof v === 'string')
              .map(([k, v]) => (
                <>
                  <dt>{k}</dt>
                  <dd class="mono">{v}</dd>
                </>
              ))}
          </dl>
        </section>
      </div>

      <section class="card" aria-labelledby="node-resources">
        <h2 id="node-resources">Resources</h2>
        <table class="plain" aria-labelledby="node-resources">
          <thead>
            <tr>
              <th>Resource</th>
              <th class="num">Capacity</th>
              <th class="num">Allocatable</th>
              <th class="num">Requested</th>
              <th class="num">Used</th>
              <th>Of allocatable</th>
            </tr>
          </thead>
          <tbody>
            {resources.map((k) => {
              const alloc = parseQuantity(node.status?.allocatable?.[k]);
              const bar = (v: number | undefined, cls: string) =>
                v !== undefined && alloc > 0 ? <span class={`meter-fill ${cls}`} style={{ width: `${Math.min(100, (v / alloc) * 100)}%` }} /> : null;
              return (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  <td class="num">{format(k, parseQuantity(node.status?.capacity?.[k]))}</td>
                  <td class="num">{format(k, alloc)}</td>
                  <td class="num">
                    {requested[k] === undefined ? '—' : format(k, requested[k]!)}
                    {requested[k] !== undefined && alloc > 0 && <span class="muted"> ({Math.round((requested[k]! / alloc) * 100)}%)</span>}
                  </td>
                  <td class="num">
                    {usedOf[k] === undefined ? (
                      <span class="muted" title={metrics.error ? `metrics not available: ${metrics.error.message}` : undefined}>
                        —
                      </span>
                    ) : (
                      <>
                        {format(k, usedOf[k]!)}
                        {alloc > 0 && <span class="muted"> ({Math.round((usedOf[k]! / alloc) * 100)}%)</span>}
                      </>
                    )}
                  </td>
                  <td class="meter-cell">
                    <span
                      class="meter"
                      role="img"
                      aria-label={`${k}: ${share(requested[k], alloc)} requested, ${share(usedOf[k], alloc)} used`}
                    >
                      {bar(requested[k], 'requested')}
                      {bar(usedOf[k], 'used')}
                    </span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {metrics.error && <p class="muted small">Used: metrics not available: {metrics.error.message}</p>}
      </section>

      <Conditions conditions={conditions} />

      <div class="grid">
        <section class="card" aria-labelledby="node-taints">
          <h2 id="node-taints">Taints</h2>
          {taints.length === 0 ? (
            <p class="muted">No taints.</p>
          ) : (
            <ul class="chips">
              {taints.map((t) => (
                <li class="chip mono">
                  {t.key}
                  {t.value ? `=${t.value}` : ''}:{t.effect}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section class="card" aria-labelledby="node-labels">
          <h2 id="node-labels">Labels</h2>
          <ul class="chips">
            {Object.entries(node.metadata.labels ?? {}).map(([k, v]) => (
              <li class="chip mono">
                {k}={v}
              </li>
            ))}
          </ul>
        </section>
      </div>
      <section class="card" aria-labelledby="node-annotations">
        <h2 id="node-annotations">Annotations</h2>
        {Object.keys(node.metadata.annotations ?? {}).length === 0 ? (
          <p class="muted">No annotations.</p>
        ) : (
          <dl class="kv">
            {Object.entries(node.metadata.annotations ?? {}).map(([k, v]) => (
              <>
                <dt class="mono">{k}</dt>
                <dd class="mono">{v}</dd>
              </>
            ))}
          </dl>
        )}
      </section>
    </div>
  );
}

function NodePods(props: { name: string }) {
  const pods = useList(RESOURCES.pods, { fieldSelector: `spec.nodeName=${props.name}` });
  const columns = useMemo<Column<K8sObject>[]>(
    () => [
      {
        key: 'name',
        title: 'Name',
        render: (p) => <Link href={detailHref(RESOURCES.pods, p.metadata.namespace, p.metadata.name)}>{p.metadata.name}</Link>,
        sort: (p) => p.metadata.name,
      },
      { key: 'namespace', title: 'Namespace', render: (p) => p.metadata.namespace ?? '', sort: (p) => p.metadata.namespace ?? '' },
      { key: 'status', title: 'Status', render: (p) => <Pill text={podStatus(p)} />, sort: podStatus },
      {
        key: 'runtimes',
        title: 'Runtimes',
        render: (p) => (
          <span class="node-runtimes">
            {Object.entries(containerRuntimes(p)).map(([, r]) => (
              <RuntimeBadge runtime={r} />
            ))}
          </span>
        ),
      },
      {
        key: 'ready',
        title: 'Ready',
        render: (p) => {
          const statuses: { ready?: boolean }[] = p.status?.containerStatuses ?? [];
          return `${statuses.filter((s) => s.ready).length}/${(p.spec?.containers ?? []).length}`;
        },
      },
      {
        key: 'restarts',
        title: 'Restarts',
        align: 'right',
        render: (p) => restarts(p),
        sort: restarts,
      },
      { key: 'cpu', title: 'CPU requested', align: 'right', render: (p) => formatCpu(podRequests(p).cpu), sort: (p) => podRequests(p).cpu },
      {
        key: 'memory',
        title: 'Memory requested',
        align: 'right',
        render: (p) => formatBytes(podRequests(p).memory),
        sort: (p) => podRequests(p).memory,
      },
      { key: 'ip', title: 'IP', render: (p) => <span class="mono">{p.status?.podIP ?? ''}</span> },
      { key: 'age', title: 'Age', render: (p) => <Age since={p.metadata.creationTimestamp} />, sort: ageSort },
    ],
    [],
  );
  return (
    <div class="node-pods">
      <ErrorBox error={pods.error} />
      {!pods.loaded && !pods.error ? (
        <Loading />
      ) : (
        <DataTable
          label="Pods"
          rows={pods.items}
          columns={columns}
          rowKey={(p) => `${p.metadata.namespace}/${p.metadata.name}`}
          searchText={(p) => p.metadata.name}
          initialSort={{ key: 'name' }}
          empty="No pods run on this node."
        />
      )}
    </div>
  );
}

function restarts(pod: K8sObject): number {
  return ((pod.status?.containerStatuses ?? []) as { restartCount?: number }[]).reduce((a, s) => a + (s.restartCount ?? 0), 0);
}
