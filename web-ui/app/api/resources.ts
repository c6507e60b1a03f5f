// The kinds the dashboard shows, and their API paths.

export interface Resource {
  /** Plural name, as in the URL (`pods`). */
  name: string;
  group: string;
  version: string;
  kind: string;
  namespaced: boolean;
  /** What the navigation calls them. */
  title: string;
}

const r = (name: string, group: string, version: string, kind: string, namespaced: boolean, title: string): Resource => ({
  name,
  group,
  version,
  kind,
  namespaced,
  title,
});

export const RESOURCES = {
  nodes: r('nodes', '', 'v1', 'Node', false, 'Nodes'),
  namespaces: r('namespaces', '', 'v1', 'Namespace', false, 'Namespaces'),
  pods: r('pods', '', 'v1', 'Pod', true, 'Pods'),
  services: r('services', '', 'v1', 'Service', true, 'Services'),
  endpoints: r('endpoints', '', 'v1', 'Endpoints', true, 'Endpoints'),
  configmaps: r('configmaps', '', 'v1', 'ConfigMap', true, 'ConfigMaps'),
  secrets: r('secrets', '', 'v1', 'Secret', true, 'Secrets'),
  events: r('events', '', 'v1', 'Event', true, 'Events'),
  deployments: r('deployments', 'apps', 'v1', 'Deployment', true, 'Deployments'),
  replicasets: r('replicasets', 'apps', 'v1', 'ReplicaSet', true, 'ReplicaSets'),
  daemonsets: r('daemonsets', 'apps', 'v1', 'DaemonSet', true, 'DaemonSets'),
  statefulsets: r('statefulsets', 'apps', 'v1', 'StatefulSet', true, 'StatefulSets'),
  controllerrevisions: r('controllerrevisions', 'apps', 'v1', 'ControllerRevision', true, 'ControllerRevisions'),
  jobs: r('jobs', 'batch', 'v1', 'Job', true, 'Jobs'),
  cronjobs: r('cronjobs', 'batch', 'v1', 'CronJob', true, 'CronJobs'),
  endpointslices: r('endpointslices', 'discovery.k8s.io', 'v1', 'EndpointSlice', true, 'EndpointSlices'),
  functions: r('functions', 'wharf.dev', 'v1', 'Function', true, 'Functions'),
} as const;

export type ResourceName = keyof typeof RESOURCES;

export function resource(name: string): Resource | undefined {
  return (RESOURCES as Record<string, Resource>)[name];
}

/** The Resource of an object's apiVersion and kind (owner references, involved objects). */
export function resourceOfKind(apiVersion: string | undefined, kind: string | undefined): Resource | undefined {
  if (!kind) return undefined;
  const group = apiVersion?.includes('/') ? apiVersion.split('/')[0] : '';
  return Object.values(RESOURCES).find((res) => res.kind === kind && res.group === group);
}

export function apiVersionOf(res: Resource): string {
  return res.group ? `${res.group}/${res.version}` : res.version;
}

function base(res: Resource): string {
  return res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
}

/** The collection: all namespaces when `namespace` is null or the kind is cluster-scoped. */
export function collectionPath(res: Resource, namespace?: string | null): string {
  return res.namespaced && namespace ? `${base(res)}/namespaces/${namespace}/${res.name}` : `${base(res)}/${res.name}`;
}

export function objectPath(res: Resource, namespace: string | undefined | null, name: string, subresource?: string): string {
  const path = `${collectionPath(res, res.namespaced ? namespace : null)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

/** Any Kubernetes object (the dashboard reads them as JSON). */
export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    managedFields?: { manager?: string; operation?: string; time?: string }[];
  };
  spec?: any;
  status?: any;
  [key: string]: any;
}

/** The dashboard's link to an object's detail page. */
export function detailHref(res: Resource, namespace: string | undefined | null, name: string): string {
  return `/object/${res.name}/${res.namespaced ? namespace ?? 'default' : '_'}/${encodeURIComponent(name)}`;
}

/** Where the dashboard lists objects of a kind. */
export function listHref(res: Resource): string {
  if (['pods', 'deployments', 'replicasets', 'daemonsets', 'statefulsets', 'jobs', 'cronjobs'].includes(res.name)) return `/workloads/${res.name}`;
  if (res.name === 'nodes') return '/nodes';
  if (res.name === 'functions') return '/functions';
  if (res.name === 'services' || res.name === 'endpoints' || res.name === 'endpointslices') return '/services';
  if (res.name === 'configmaps' || res.name === 'secrets') return '/config';
  if (res.name === 'events') return '/events';
  return '/';
}

/** A LabelSelector (`matchLabels`, `matchExpressions`) as the API's `labelSelector` text. */
export function selectorText(selector: any): string {
  if (!selector) return '';
  const parts = Object.entries((selector.matchLabels ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`);
  for (const e of (selector.matchExpressions ?? []) as { key: string; operator: string; values?: string[] }[]) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
