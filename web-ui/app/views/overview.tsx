// The Overview: nodes, pods by phase, Wasm and Linux counts, recent warnings, top functions.
// Everything is live from watches; the counts over all pods are made in one pass per change.

import { useMemo } from 'preact/hooks';
import type { K8sObject } from '../api/resources';
import { RESOURCES, detailHref, resourceOfKind } from '../api/resources';
import { Age, Pill, containerRuntimes } from '../components/badges';
import { ErrorBox, Loading, Page } from '../components/page';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import { Link } from '../router';
import { namespace, useNow, useShared } from '../state';
import { formatRate } from './metrics';
import { invocationRate, recordInvocations } from '../components/rates';
import type { NodeLoad } from './nodes';
import { NodeRuntimes, NodeStatus, addLoad, isReady } from './nodes';
import { lastSeen } from './events';
import '../styles/overview.css';

export const PHASES = ['Running', 'Pending', 'Succeeded', 'Failed', 'Unknown'] as const;
type Phase = (typeof PHASES)[number];

export interface PodStats {
  /** Pods per node, over all namespaces. */
  byNode: Map<string, NodeLoad>;
  /** In the selected namespace (or all). */
  total: number;
  phases: Record<Phase, number>;
  containers: { wasm: number; linux: number; unknown: number };
  pods: { wasm: number; linux: number; mixed: number };
}

/** What one pod adds to the counts; cached per object (a watch event replaces the object, so a
 *  change recomputes only the pods that changed). */
interface Contribution {
  namespace: string | undefined;
  phase: Phase;
  wasm: number;
  linux: number;
  unknown: number;
}

const contributions = new WeakMap<K8sObject, Contribution>();

function contribution(pod: K8sObject): Contribution {
  let c = contributions.get(pod);
  if (c) return c;
  const phase = (pod.status?.phase ?? 'Pending') as Phase;
  c = { namespace: pod.metadata.namespace, phase: PHASES.includes(phase) ? phase : 'Unknown', wasm: 0, linux: 0, unknown: 0 };
  for (const r of Object.values(containerRuntimes(pod))) {
    if (r === 'wasmtime') c.wasm++;
    else if (r === 'youki') c.linux++;
    else c.unknown++;
  }
  contributions.set(pod, c);
  return c;
}

/** Counts everything the Overview shows about pods in one pass over them. */
export function podStats(pods: K8sObject[], ns: string | null): PodStats {
  const stats: PodStats = {
    byNode: new Map(),
    total: 0,
    phases: { Running: 0, Pending: 0, Succeeded: 0, Failed: 0, Unknown: 0 },
    containers: { wasm: 0, linux: 0, unknown: 0 },
    pods: { wasm: 0, linux: 0, mixed: 0 },
  };
  for (const pod of pods) {
    addLoad(stats.byNode, pod);
    const c = contribution(pod);
    if (ns !== null && c.namespace !== ns) continue;
    stats.total++;
    stats.phases[c.phase]++;
    stats.containers.wasm += c.wasm;
    stats.containers.linux += c.linux;
    stats.containers.unknown += c.unknown;
    if (c.wasm && c.linux) stats.pods.mixed++;
    else if (c.wasm) stats.pods.wasm++;
    else if (c.linux) stats.pods.linux++;
  }
  return stats;
}

// ---- The page ----

export function Overview() {
  const ns = useShared(namespace);
  const nodes = useAllowedList(RESOURCES.nodes);
  // One informer of all pods serves the per-node counts and, filtered, the selected namespace's.
  const allPods = useAllowedList(RESOURCES.pods);
  // A user who may not list pods in every namespace still sees the selected one's.
  const narrow = (allPods.denied || allPods.error?.code === 403) && !!ns;
  const scoped = useAllowedList(narrow ? RESOURCES.pods : null, { namespace: ns });
  const pods = narrow ? scoped : allPods;
  const stats = useMemo(() => podStats(pods.items, ns), [pods.items, ns]);
  const scope = ns === null ? 'all namespaces' : `namespace ${ns}`;
  return (
    <Page title="Overview" subtitle={`Pods, warnings and functions of ${scope}; nodes of the cluster.`}>
      <div class="overview">
        <NodesCard nodes={nodes.items} loaded={nodes.loaded} error={nodes.error} byNode={stats.byNode} denied={nodes.denied} />
        <PodsCard stats={stats} loaded={pods.loaded} error={pods.error} denied={pods.denied} ns={ns} />
        <RuntimesCard stats={stats} loaded={pods.loaded} denied={pods.denied} ns={ns} />
        <WarningsCard ns={ns} />
        <TopFunctionsCard ns={ns} />
      </div>
    </Page>
  );
}

function Card(props: { id: string; title: string; more?: { href: string; text: string }; children: preact.ComponentChildren; wide?: boolean }) {
  return (
    <section class={`card overview-card${props.wide ? ' wide' : ''}`} aria-labelledby={`card-${props.id}`}>
      <header>
        <h2 id={`card-${props.id}`}>{props.title}</h2>
        {props.more && <Link href={props.more.href}>{props.more.text}</Link>}
      </header>
      {props.children}
    </section>
  );
}

const NODES_SHOWN = 12;

function NodesCard(props: { nodes: K8sObject[]; loaded: boolean; error: Error | null; byNode: Map<string, NodeLoad>; denied: boolean }) {
  const sorted = useMemo(() => [...props.nodes].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)), [props.nodes]);
  const ready = props.nodes.filter(isReady).length;
  return (
    <Card id="nodes" title="Nodes" more={{ href: '/nodes', text: 'All nodes' }}>
      <ErrorBox error={props.error} />
      {props.denied ? (
        <NoAccess res={RESOURCES.nodes} namespace={null} />
      ) : !props.loaded && !props.error ? (
        <Loading />
      ) : (
        <>
          <p class="card-stat">
            <span class="stat">{ready}</span>
            <span class="muted"> of {props.nodes.length} Ready</span>
          </p>
          {sorted.length === 0 ? (
            <p class="muted">No nodes have registered yet.</p>
          ) : (
            <ul class="overview-nodes">
              {sorted.slice(0, NODES_SHOWN).map((n) => {
                const pods = props.byNode.get(n.metadata.name)?.pods ?? 0;
                return (
                  <li key={n.metadata.name}>
                    <Link href={`/nodes/${encodeURIComponent(n.metadata.name)}`} class="node-name">
                      {n.metadata.name}
                    </Link>
                    <NodeStatus node={n} />
                    <NodeRuntimes node={n} />
                    <span class="muted node-pods-count">
                      {pods} pod{pods === 1 ? '' : 's'}
                    </span>
                  </li>
                );
              })}
              {sorted.length > NODES_SHOWN && (
                <li>
                  <Link href="/nodes">and {sorted.length - NODES_SHOWN} more…</Link>
                </li>
              )}
            </ul>
          )}
        </>
      )}
    </Card>
  );
}

/** A bar split into parts, with an accessible summary. */
function Stacked(props: { label: string; parts: { name: string; value: number; cls: string }[] }) {
  const total = props.parts.reduce((a, p) => a + p.value, 0);
  return (
    <div class="stacked" role="img" aria-label={`${props.label}: ${props.parts.map((p) => `${p.value} ${p.name}`).join(', ')}`}>
      {total > 0 && props.parts.map((p) => p.value > 0 && <span class={p.cls} style={{ flexGrow: p.value }} />)}
    </div>
  );
}

function PodsCard(props: { stats: PodStats; loaded: boolean; error: Error | null; denied: boolean; ns: string | null }) {
  const { phases, total } = props.stats;
  return (
    <Card id="pods" title="Pods" more={{ href: '/workloads/pods', text: 'All pods' }}>
      <ErrorBox error={props.error} />
      {props.denied ? (
        <NoAccess res={RESOURCES.pods} namespace={props.ns} />
      ) : !props.loaded && !props.error ? (
        <Loading />
      ) : (
        <>
          <p class="card-stat">
            <span class="stat">
              {total}
            </span>
            <span class="muted"> pod{total === 1 ? '' : 's'}</span>
          </p>
          <Stacked label="Pods by phase" parts={PHASES.map((p) => ({ name: p, value: phases[p], cls: `phase-${p.toLowerCase()}` }))} />
          <dl class="counts">
            {PHASES.map((p) => (
              <div key={p} class={phases[p] ? '' : 'zero'}>
                <dt>
                  <span class={`dot phase-${p.toLowerCase()}`} aria-hidden="true" />
                  {p}
                </dt>
                <dd data-phase={p}>{phases[p]}</dd>
              </div>
            ))}
          </dl>
        </>
      )}
    </Card>
  );
}

function RuntimesCard(props: { stats: PodStats; loaded: boolean; denied: boolean; ns: string | null }) {
  const { containers, pods } = props.stats;
  return (
    <Card id="runtimes" title="Runtimes">
      {props.denied ? (
        <NoAccess res={RESOURCES.pods} namespace={props.ns} />
      ) : !props.loaded ? (
        <Loading />
      ) : (
        <>
          <div class="runtime-split">
            <div>
              <span class="badge wasm">Wasm</span>
              <span class="stat">
                {containers.wasm}
              </span>
              <span class="muted"> container{containers.wasm === 1 ? '' : 's'}</span>
            </div>
            <div>
              <span class="badge linux">Linux</span>
              <span class="stat">
                {containers.linux}
              </span>
              <span class="muted"> container{containers.linux === 1 ? '' : 's'}</span>
            </div>
          </div>
          <Stacked
            label="Containers by runtime"
            parts={[
              { name: 'Wasm', value: containers.wasm, cls: 'rt-wasm' },
              { name: 'Linux', value: containers.linux, cls: 'rt-linux' },
              { name: 'not known yet', value: containers.unknown, cls: 'rt-unknown' },
            ]}
          />
          <p class="muted small">
            Pods: {pods.wasm} Wasm only, {pods.linux} Linux only, {pods.mixed} mixed
            {containers.unknown > 0 && `; ${containers.unknown} container${containers.unknown === 1 ? '' : 's'} not started yet`}.
          </p>
        </>
      )}
    </Card>
  );
}

const WARNINGS_SHOWN = 8;

function WarningsCard(props: { ns: string | null }) {
  const events = useAllowedList(RESOURCES.events, { namespace: props.ns, fieldSelector: 'type=Warning' });
  const recent = useMemo(
    () =>
      events.items
        .map((e) => ({ e, t: Date.parse(lastSeen(e) ?? '') || 0 }))
        .sort((a, b) => b.t - a.t)
        .slice(0, WARNINGS_SHOWN)
        .map((x) => x.e),
    [events.items],
  );
  return (
    <Card id="warnings" title="Warnings" more={{ href: '/events', text: 'All events' }} wide>
      <ErrorBox error={events.error} />
      {events.denied ? (
        <NoAccess res={RESOURCES.events} namespace={props.ns} />
      ) : !events.loaded && !events.error ? (
        <Loading />
      ) : recent.length === 0 ? (
        <p class="muted">No warnings. All quiet.</p>
      ) : (
        <ul class="warnings">
          {recent.map((e) => {
            const o = e.involvedObject ?? e.regarding ?? {};
            const res = resourceOfKind(o.apiVersion, o.kind);
            const target = `${o.kind ?? '?'}/${o.name ?? '?'}`;
            const count = e.count ?? e.series?.count ?? 1;
            return (
              <li key={`${e.metadata.namespace}/${e.metadata.name}`}>
                <Pill text={e.reason ?? 'Warning'} tone="bad" />
                {res && o.name ? (
                  <Link
                    href={o.kind === 'Node' ? `/nodes/${encodeURIComponent(o.name)}` : detailHref(res, o.namespace ?? e.metadata.namespace, o.name)}
                  >
                    {target}
                  </Link>
                ) : (
                  <span>{target}</span>
                )}
                <span class="message" title={e.message}>
                  {e.message}
                </span>
                <span class="muted when">
                  {count > 1 && `×${count} · `}
                  <Age since={lastSeen(e)} />
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </Card>
  );
}

const FUNCTIONS_SHOWN = 8;

function TopFunctionsCard(props: { ns: string | null }) {
  const functions = useAllowedList(RESOURCES.functions, { namespace: props.ns });
  // Rates decay while no change comes: recompute them every 5 s as well.
  const tick = useNow(5000);
  // Record a change when a watch event brings one (the list changes), not on the clock's tick.
  useMemo(() => recordInvocations(functions.items, Date.now()), [functions.items]);
  const top = useMemo(
    () =>
      functions.items
        .map((f) => ({
          f,
          rate: invocationRate(f, Date.now()) ?? NaN,
          invocations: Number(f.status?.invocations ?? 0),
        }))
        .sort(
          (a, b) =>
            (b.rate || 0) - (a.rate || 0) || b.invocations - a.invocations || a.f.metadata.name.localeCompare(b.f.metadata.name),
        )
        .slice(0, FUNCTIONS_SHOWN),
    [functions.items, tick],
  );
  return (
    <Card id="functions" title="Top functions" more={{ href: '/functions', text: 'All functions' }}>
      <ErrorBox error={functions.error} />
      {functions.denied ? (
        <NoAccess res={RESOURCES.functions} namespace={props.ns} />
      ) : !functions.loaded && !functions.error ? (
        <Loading />
      ) : top.length === 0 ? (
        <p class="muted">
          No functions{props.ns ? ` in ${props.ns}` : ''}. <Link href="/functions">Deploy one</Link>.
        </p>
      ) : (
        <table class="plain top-functions" aria-label="Top functions by request rate">
          <thead>
            <tr>
              <th>Function</th>
              {props.ns === null && <th>Namespace</th>}
              <th class="num">Rate</th>
              <th class="num">Invocations</th>
              <th class="num">Ready</th>
            </tr>
          </thead>
          <tbody>
            {top.map(({ f, rate, invocations }) => (
              <tr key={`${f.metadata.namespace}/${f.metadata.name}`}>
                <td>
                  <Link href={detailHref(RESOURCES.functions, f.metadata.namespace, f.metadata.name)}>{f.metadata.name}</Link>
                </td>
                {props.ns === null && <td class="muted">{f.metadata.namespace}</td>}
                <td class="num" title={Number.isNaN(rate) ? 'Measured from the changes of the invocation count the page sees' : undefined}>
                  {formatRate(rate)}
                </td>
                <td class="num">{invocations}</td>
                <td class="num">
                  {f.status?.readyReplicas ?? 0}/{f.status?.replicas ?? 0}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}
