// Workloads: Deployments, ReplicaSets, DaemonSets, StatefulSets, Jobs, CronJobs and Pods, with
// the columns `kubectl get -o wide` prints. One live list per view; rows are computed once per
// object version (a WeakMap keyed by the informer's object), so 5,000 pods stay fast.

import { useMemo } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { RESOURCES, detailHref, resourceOfKind, selectorText } from '../api/resources';
import type { K8sObject, Resource } from '../api/resources';
import { Age, Pill, RuntimeBadge, ageSort, containerRuntimes, managedBy, podStatus } from '../components/badges';
import type { Runtime } from '../components/badges';
import { ErrorBox, Page } from '../components/page';
import { DataTable } from '../components/table';
import type { Column } from '../components/table';
import { Link } from '../router';
import { namespace as namespaceState, parseSearch, search, useShared } from '../state';
import { ObjectActions } from './actions';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import '../styles/workloads.css';

const KINDS = ['deployments', 'replicasets', 'daemonsets', 'statefulsets', 'jobs', 'cronjobs', 'pods'] as const;
type Kind = (typeof KINDS)[number];

export function Workloads(props: { resource: string }) {
  const kind = (KINDS as readonly string[]).includes(props.resource) ? (props.resource as Kind) : null;
  const res = kind ? RESOURCES[kind] : null;
  return (
    <Page title="Workloads">
      <nav class="kind-switcher" aria-label="Workload kinds">
        {KINDS.map((k) => (
          <Link href={`/workloads/${k}`} aria-current={k === kind ? 'page' : undefined}>
            {RESOURCES[k].title}
          </Link>
        ))}
      </nav>
      {kind && res ? <KindTable key={kind} kind={kind} res={res} /> : <p role="alert">There is no workload kind “{props.resource}”.</p>}
    </Page>
  );
}

function KindTable(props: { kind: Kind; res: Resource }) {
  const { kind, res } = props;
  const ns = useShared(namespaceState);
  const { labelSelector } = parseSearch(useShared(search));
  const list = useAllowedList(res, { namespace: ns, labelSelector: labelSelector || undefined });
  // Deployments show the runtimes their pods run on: from the pods of the same namespace.
  const pods = useAllowedList(kind === 'deployments' ? RESOURCES.pods : null, { namespace: ns });
  const podRuntimes = useMemo(() => (kind === 'deployments' ? runtimesByDeployment(pods.items) : null), [kind, pods.items]);
  const columns = useMemo(() => columnsFor(kind, res, ns === null, podRuntimes), [kind, res, ns, podRuntimes]);
  return (
    <>
      {/* Once listed, the informer retries a broken watch by itself (and keeps its last error until the next change). */}
      <ErrorBox error={list.loaded ? null : list.error} />
      {list.denied ? (
        <NoAccess res={res} namespace={ns} />
      ) : (
        <DataTable
          label={res.title}
          rows={list.items}
          columns={columns}
          rowKey={(o) => o.metadata.uid ?? `${o.metadata.namespace}/${o.metadata.name}`}
          searchText={(o) => o.metadata.name}
          initialSort={{ key: 'name' }}
          empty={
            list.loaded ? (
              <>
                No {res.title.toLowerCase()}
                {ns ? ` in namespace ${ns}` : ''}
                {labelSelector ? ` matching ${labelSelector}` : ''}.
              </>
            ) : (
              'Loading…'
            )
          }
        />
      )}
    </>
  );
}

// ---------------------------------------------------------------------------------------------
// Columns

type Col = Column<K8sObject>;

const nameCol = (res: Resource): Col => ({
  key: 'name',
  title: 'Name',
  render: (o) => (
    <span class="name-cell">
      <Link href={detailHref(res, o.metadata.namespace, o.metadata.name)}>{o.metadata.name}</Link>
      {o.metadata.deletionTimestamp && res.name !== 'pods' && <Pill text="Terminating" tone="warn" />}
    </span>
  ),
  sort: (o) => o.metadata.name,
});

const namespaceCol: Col = {
  key: 'namespace',
  title: 'Namespace',
  render: (o) => o.metadata.namespace,
  sort: (o) => o.metadata.namespace ?? '',
};

const ageCol: Col = {
  key: 'age',
  title: 'Age',
  render: (o) => <Age since={o.metadata.creationTimestamp} />,
  sort: ageSort,
  align: 'right',
};

const num = (key: string, title: string, value: (o: K8sObject) => number | undefined): Col => ({
  key,
  title,
  render: (o) => value(o) ?? 0,
  sort: (o) => value(o) ?? 0,
  align: 'right',
});

/** `x/y`, coloured when not all are there (`done`: nothing more is expected, e.g. a completed pod). */
function Ratio(props: { have: number; want: number; done?: boolean }) {
  const tone = props.have >= props.want ? 'ok' : props.have === 0 ? 'bad' : 'warn';
  return (
    <span class={`ratio ${props.want === 0 || props.done ? 'muted' : tone}`}>
      {props.have}/{props.want}
    </span>
  );
}

const ratioCol = (key: string, title: string, have: (o: K8sObject) => number, want: (o: K8sObject) => number): Col => ({
  key,
  title,
  render: (o) => <Ratio have={have(o)} want={want(o)} />,
  sort: (o) => (want(o) ? have(o) / want(o) : 2) * 1e6 + want(o),
});

function templateContainers(o: K8sObject): { name: string; image?: string }[] {
  const spec = o.kind === 'CronJob' || o.spec?.jobTemplate ? o.spec?.jobTemplate?.spec?.template?.spec : o.spec?.template?.spec;
  return spec?.containers ?? [];
}

const containersCol: Col = {
  key: 'containers',
  title: 'Containers',
  render: (o) => templateContainers(o).map((c) => c.name).join(', '),
};

const imagesCol: Col = {
  key: 'images',
  title: 'Images',
  render: (o) => {
    const images = templateContainers(o).map((c) => c.image ?? '');
    return (
      <span class="mono clip" title={images.join('\n')}>
        {images.join(', ')}
      </span>
    );
  },
  sort: (o) => templateContainers(o).map((c) => c.image).join(','),
};

const selectorCol: Col = {
  key: 'selector',
  title: 'Selector',
  render: (o) => {
    const text = selectorText(o.spec?.selector) || '<none>';
    return (
      <span class="mono muted clip" title={text}>
        {text}
      </span>
    );
  },
};

const SHORT_KINDS: Record<string, string> = {
  Deployment: 'deploy',
  ReplicaSet: 'rs',
  DaemonSet: 'ds',
  StatefulSet: 'sts',
  Job: 'job',
  CronJob: 'cj',
  Node: 'node',
  Function: 'fn',
};

/** A link to the object's controller (ReplicaSet → Deployment, Pod → ReplicaSet/Job/...). */
function OwnerLink(props: { object: K8sObject }) {
  const o = props.object;
  const owner = o.metadata.ownerReferences?.find((r) => r.controller) ?? o.metadata.ownerReferences?.[0];
  if (!owner) return <span class="muted">—</span>;
  const res = resourceOfKind(owner.apiVersion, owner.kind);
  // kubectl's short kind names keep the column narrow; the full kind is in the title.
  const text = (
    <>
      <span class="muted">{SHORT_KINDS[owner.kind] ?? owner.kind}/</span>
      {owner.name}
    </>
  );
  return (
    <span class="clip owner" title={`${owner.kind}/${owner.name}`}>
      {res ? <Link href={detailHref(res, o.metadata.namespace, owner.name)}>{text}</Link> : text}
    </span>
  );
}

const ownerCol: Col = {
  key: 'owner',
  title: 'Controlled by',
  render: (o) => <OwnerLink object={o} />,
  sort: (o) => managedBy(o) ?? '',
};

/** The "managed by" marker: the controller owner (a link), or the managing tool's label. */
function ManagedBy(props: { object: K8sObject }) {
  const by = managedBy(props.object);
  if (!by) return null;
  const owner = props.object.metadata.ownerReferences?.find((r) => r.controller);
  const res = owner && resourceOfKind(owner.apiVersion, owner.kind);
  return (
    <span class="managed-by" title={`Managed by ${by}: changes made here may be undone by it`}>
      <span class="muted">by </span>
      {res && owner ? <Link href={detailHref(res, props.object.metadata.namespace, owner.name)}>{by}</Link> : by}
    </span>
  );
}

const actionsCol = (res: Resource): Col => ({
  key: 'actions',
  title: 'Actions',
  render: (o) => <ObjectActions resource={res} object={o} compact />,
});

function Runtimes(props: { runtimes: (Runtime | undefined)[] }) {
  return (
    <span class="runtimes">
      {props.runtimes.map((r) => (
        <RuntimeBadge runtime={r} />
      ))}
    </span>
  );
}

function columnsFor(kind: Kind, res: Resource, allNamespaces: boolean, podRuntimes: Map<string, Runtime[]> | null): Col[] {
  const head = allNamespaces ? [namespaceCol, nameCol(res)] : [nameCol(res)];
  const tail = [ageCol, actionsCol(res)];
  switch (kind) {
    case 'deployments':
      return [
        ...head,
        ratioCol('ready', 'Ready', (o) => o.status?.readyReplicas ?? 0, (o) => o.spec?.replicas ?? 1),
        num('updated', 'Up-to-date', (o) => o.status?.updatedReplicas),
        num('available', 'Available', (o) => o.status?.availableReplicas),
        {
          key: 'runtime',
          title: 'Runtime',
          render: (o) => <Runtimes runtimes={deploymentRuntimes(o, podRuntimes)} />,
          sort: (o) => deploymentRuntimes(o, podRuntimes).join(','),
        },
        imagesCol,
        { key: 'managed', title: 'Managed by', render: (o) => <ManagedBy object={o} />, sort: (o) => managedBy(o) ?? '' },
        ...tail,
      ];
    case 'replicasets':
      return [
        ...head,
        num('desired', 'Desired', (o) => o.spec?.replicas ?? 1),
        num('current', 'Current', (o) => o.status?.replicas),
        num('ready', 'Ready', (o) => o.status?.readyReplicas),
        containersCol,
        imagesCol,
        selectorCol,
        ownerCol,
        ...tail,
      ];
    case 'daemonsets':
      return [
        ...head,
        num('desired', 'Desired', (o) => o.status?.desiredNumberScheduled),
        num('current', 'Current', (o) => o.status?.currentNumberScheduled),
        num('ready', 'Ready', (o) => o.status?.numberReady),
        num('updated', 'Up-to-date', (o) => o.status?.updatedNumberScheduled),
        num('available', 'Available', (o) => o.status?.numberAvailable),
        {
          key: 'nodeSelector',
          title: 'Node selector',
          render: (o) => <span class="mono muted clip">{labelsText(o.spec?.template?.spec?.nodeSelector)}</span>,
          sort: (o) => labelsText(o.spec?.template?.spec?.nodeSelector),
        },
        imagesCol,
        ...tail,
      ];
    case 'statefulsets':
      return [
        ...head,
        ratioCol('ready', 'Ready', (o) => o.status?.readyReplicas ?? 0, (o) => o.spec?.replicas ?? 1),
        containersCol,
        imagesCol,
        ...tail,
      ];
    case 'jobs':
      return [
        ...head,
        { key: 'status', title: 'Status', render: (o) => <Pill text={jobStatus(o)} />, sort: jobStatus },
        { key: 'completions', title: 'Completions', render: jobCompletions, sort: (o) => o.status?.succeeded ?? 0 },
        {
          key: 'duration',
          title: 'Duration',
          render: (o) => <Duration job={o} />,
          sort: (o) => jobDurationMs(o) ?? -1,
          align: 'right',
        },
        containersCol,
        imagesCol,
        ownerCol,
        ...tail,
      ];
    case 'cronjobs':
      return [
        ...head,
        { key: 'schedule', title: 'Schedule', render: (o) => <code>{o.spec?.schedule}</code>, sort: (o) => o.spec?.schedule ?? '' },
        {
          key: 'suspend',
          title: 'Suspend',
          render: (o) => (o.spec?.suspend ? <Pill text="Suspended" tone="warn" /> : <span class="muted">False</span>),
          sort: (o) => (o.spec?.suspend ? 1 : 0),
        },
        num('active', 'Active', (o) => o.status?.active?.length ?? 0),
        {
          key: 'last',
          title: 'Last schedule',
          render: (o) => (o.status?.lastScheduleTime ? <Age since={o.status.lastScheduleTime} /> : <span class="muted">never</span>),
          sort: (o) => -(Date.parse(o.status?.lastScheduleTime ?? '') || 0),
          align: 'right',
        },
        containersCol,
        imagesCol,
        ...tail,
      ];
    case 'pods':
      return podColumns(head, [actionsCol(res)]);
  }
}

function labelsText(labels: Record<string, string> | undefined): string {
  const parts = Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(',') : '<none>';
}

// ---------------------------------------------------------------------------------------------
// Deployments' runtimes, from their pods (pod → ReplicaSet `NAME-HASH` → Deployment NAME).

function runtimesByDeployment(pods: K8sObject[]): Map<string, Runtime[]> {
  const out = new Map<string, Runtime[]>();
  for (const pod of pods) {
    const owner = pod.metadata.ownerReferences?.find((r) => r.controller && r.kind === 'ReplicaSet');
    const hash = pod.metadata.labels?.['pod-template-hash'];
    if (!owner || !hash || !owner.name.endsWith(`-${hash}`)) continue;
    const key = `${pod.metadata.namespace}/${owner.name.slice(0, -hash.length - 1)}`;
    if (out.has(key)) continue;
    const runtimes = Object.values(containerRuntimes(pod));
    if (runtimes.every((r) => r)) out.set(key, runtimes as Runtime[]);
  }
  return out;
}

function deploymentRuntimes(o: K8sObject, podRuntimes: Map<string, Runtime[]> | null): (Runtime | undefined)[] {
  const known = podRuntimes?.get(`${o.metadata.namespace}/${o.metadata.name}`);
  if (known) return known;
  const spec = o.spec?.template?.spec;
  const byClass: Runtime | undefined = /wasm/i.test(spec?.runtimeClassName ?? '') ? 'wasmtime' : spec?.runtimeClassName ? 'youki' : undefined;
  return (spec?.containers ?? []).map(() => byClass);
}

// ---------------------------------------------------------------------------------------------
// Jobs

function condition(o: K8sObject, type: string): boolean {
  return (o.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === type && c.status === 'True');
}

/** kubectl's STATUS of a Job. */
function jobStatus(o: K8sObject): string {
  if (condition(o, 'Failed')) return 'Failed';
  if (condition(o, 'Complete')) return 'Complete';
  if (o.metadata.deletionTimestamp) return 'Terminating';
  if (condition(o, 'Suspended')) return 'Suspended';
  if (condition(o, 'FailureTarget')) return 'FailureTarget';
  if (condition(o, 'SuccessCriteriaMet')) return 'SuccessCriteriaMet';
  return 'Running';
}

/** kubectl's COMPLETIONS: `succeeded/completions`, or `succeeded/1 of parallelism` when no count is set. */
function jobCompletions(o: K8sObject): string {
  const succeeded = o.status?.succeeded ?? 0;
  if (o.spec?.completions != null) return `${succeeded}/${o.spec.completions}`;
  const parallelism = o.spec?.parallelism ?? 1;
  return parallelism > 1 ? `${succeeded}/1 of ${parallelism}` : `${succeeded}/1`;
}

function jobDurationMs(o: K8sObject): number | undefined {
  const start = Date.parse(o.status?.startTime ?? '');
  if (!start) return undefined;
  const end = Date.parse(o.status?.completionTime ?? '') || Date.now();
  return end - start;
}

function Duration(props: { job: K8sObject }) {
  const ms = jobDurationMs(props.job);
  if (ms === undefined) return <span class="muted">—</span>;
  // A running job's duration grows: Age keeps it current.
  if (!props.job.status?.completionTime) return <Age since={props.job.status.startTime} />;
  return <span>{formatDuration(ms)}</span>;
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  const h = Math.floor(m / 60);
  return `${h}h${m % 60 ? `${m % 60}m` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Pods

interface PodRow {
  status: string;
  ready: number;
  total: number;
  restarts: number;
  runtimes: [string, Runtime | undefined][];
}

const podRows = new WeakMap<K8sObject, PodRow>();

/** A pod's computed columns, once per version of the pod (watch events replace the object). */
function podRow(pod: K8sObject): PodRow {
  let row = podRows.get(pod);
  if (!row) {
    const statuses: any[] = pod.status?.containerStatuses ?? [];
    row = {
      status: podStatus(pod),
      ready: statuses.filter((s) => s.ready).length,
      total: pod.spec?.containers?.length ?? 0,
      restarts: statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0),
      runtimes: Object.entries(containerRuntimes(pod)),
    };
    podRows.set(pod, row);
  }
  return row;
}

function podColumns(head: Col[], tail: Col[]): Col[] {
  return [
    ...head,
    {
      key: 'ready',
      title: 'Ready',
      render: (o) => {
        const r = podRow(o);
        return <Ratio have={r.ready} want={r.total} done={r.status === 'Completed' || r.status === 'Succeeded'} />;
      },
      sort: (o) => podRow(o).ready * 1000 + podRow(o).total,
    },
    { key: 'status', title: 'Status', render: (o) => <Pill text={podRow(o).status} />, sort: (o) => podRow(o).status },
    { key: 'restarts', title: 'Restarts', render: (o) => podRow(o).restarts, sort: (o) => podRow(o).restarts, align: 'right' },
    ageCol,
    {
      key: 'runtime',
      title: 'Runtime',
      render: (o) => (
        <span class="runtimes">
          {podRow(o).runtimes.map(([name, r]) => (
            <span title={name} key={name}>
              <RuntimeBadge runtime={r} />
            </span>
          ))}
        </span>
      ),
      sort: (o) => podRow(o).runtimes.map(([, r]) => r ?? '').join(','),
    },
    { key: 'ip', title: 'IP', render: (o) => <span class="mono">{o.status?.podIP ?? ''}</span>, sort: (o) => ipSort(o.status?.podIP) },
    {
      key: 'node',
      title: 'Node',
      render: (o): ComponentChildren =>
        o.spec?.nodeName ? <Link href={`/nodes/${encodeURIComponent(o.spec.nodeName)}`}>{o.spec.nodeName}</Link> : <span class="muted">—</span>,
      sort: (o) => o.spec?.nodeName ?? '',
    },
    ownerCol,
    ...tail,
  ];
}

function ipSort(ip: string | undefined): string {
  return (ip ?? '').split('.').map((p) => p.padStart(3, '0')).join('.');
}
