// Services with their endpoints: type, cluster IP, ports and node ports, selector, and the ready endpoints the
// EndpointSlices list (kubernetes.io/service-name), each a pod IP linking to its pod.

import { useMemo, useState } from 'preact/hooks';
import { RESOURCES, detailHref, resourceOfKind, selectorText } from '../api/resources';
import type { K8sObject } from '../api/resources';
import { Age, ageSort } from '../components/badges';
import { ErrorBox, Loading, Page } from '../components/page';
import { DataTable } from '../components/table';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import type { Column } from '../components/table';
import { Link } from '../router';
import { namespace, parseSearch, search, useShared } from '../state';
import '../styles/services.css';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

interface Endpoint {
  address: string;
  ready: boolean;
  terminating: boolean;
  nodeName?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string; apiVersion?: string };
}

interface ServiceEndpoints {
  endpoints: Endpoint[];
  ports: string[];
}

const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

/** The endpoints of each Service (namespace/name), from its EndpointSlices. */
function endpointsByService(slices: K8sObject[]): Map<string, ServiceEndpoints> {
  const out = new Map<string, ServiceEndpoints>();
  for (const slice of slices) {
    const service = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    const key = keyOf(slice.metadata.namespace, service);
    const entry = out.get(key) ?? { endpoints: [], ports: [] };
    for (const e of (slice.endpoints ?? []) as any[]) {
      for (const address of (e.addresses ?? []) as string[]) {
        entry.endpoints.push({
          address,
          // As in Kubernetes, an unknown readiness counts as ready.
          ready: e.conditions?.ready !== false,
          terminating: e.conditions?.terminating === true,
          nodeName: e.nodeName,
          targetRef: e.targetRef,
        });
      }
    }
    for (const p of (slice.ports ?? []) as any[]) {
      const text = `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol ?? 'TCP'}`;
      if (!entry.ports.includes(text)) entry.ports.push(text);
    }
    out.set(key, entry);
  }
  for (const entry of out.values()) entry.endpoints.sort((a, b) => a.address.localeCompare(b.address, undefined, { numeric: true }));
  return out;
}

function ports(svc: K8sObject): string {
  return ((svc.spec?.ports ?? []) as any[])
    .map((p) => `${p.name ? `${p.name}:` : ''}${p.port}${p.targetPort !== undefined && p.targetPort !== p.port ? `→${p.targetPort}` : ''}/${p.protocol ?? 'TCP'}`)
    .join(', ');
}

function nodePorts(svc: K8sObject): string {
  return ((svc.spec?.ports ?? []) as any[])
    .filter((p) => p.nodePort)
    .map((p) => String(p.nodePort))
    .join(', ');
}

const serviceSelector = (svc: K8sObject) => selectorText({ matchLabels: svc.spec?.selector });

function clusterIP(svc: K8sObject): string {
  if (svc.spec?.type === 'ExternalName') return svc.spec?.externalName ?? '';
  return svc.spec?.clusterIP ?? '';
}

function EndpointLink(props: { endpoint: Endpoint; namespace?: string }) {
  const { endpoint } = props;
  const ref = endpoint.targetRef;
  const res = ref?.kind ? resourceOfKind(ref.apiVersion ?? 'v1', ref.kind) : undefined;
  const title = `${endpoint.ready ? 'Ready' : 'Not ready'}${endpoint.terminating ? ', terminating' : ''}${ref?.name ? ` · ${ref.kind} ${ref.name}` : ''}${
    endpoint.nodeName ? ` on ${endpoint.nodeName}` : ''
  }`;
  const cls = `endpoint ${endpoint.ready ? 'ready' : 'not-ready'}`;
  if (res && ref?.name)
    return (
      <Link class={cls} href={detailHref(res, ref.namespace ?? props.namespace, ref.name)} title={title}>
        {endpoint.address}
      </Link>
    );
  return (
    <span class={cls} title={title}>
      {endpoint.address}
    </span>
  );
}

function EndpointCount(props: { entry?: ServiceEndpoints; selected: boolean; name: string; onSelect: () => void }) {
  const all = props.entry?.endpoints ?? [];
  const ready = all.filter((e) => e.ready).length;
  const tone = all.length === 0 ? 'muted' : ready === all.length ? 'ok' : ready === 0 ? 'bad' : 'warn';
  return (
    <button
      class={`link endpoint-count pill ${tone}`}
      aria-pressed={props.selected}
      aria-label={`${ready}/${all.length} endpoints of ${props.name} ready`}
      onClick={props.onSelect}
    >
      {`${ready}/${all.length}`}
    </button>
  );
}

/** The endpoints of one Service, in full. */
function EndpointsPanel(props: { service: K8sObject; entry?: ServiceEndpoints; onClose: () => void }) {
  const { service, entry } = props;
  const name = service.metadata.name;
  const rows = entry?.endpoints ?? [];
  return (
    <section class="card endpoints-panel" aria-label={`Endpoints of ${name}`}>
      <header>
        <h2>
          Endpoints of <Link href={detailHref(RESOURCES.services, service.metadata.namespace, name)}>{name}</Link>
        </h2>
        <button class="icon" aria-label="Close endpoints" onClick={props.onClose}>
          ✕
        </button>
      </header>
      {entry?.ports.length ? <div class="muted">Ports: {entry.ports.join(', ')}</div> : null}
      {rows.length === 0 ? (
        <p class="muted">
          {service.spec?.selector ? `No pod matches ${serviceSelector(service)} yet.` : 'This Service has no selector: its endpoints are managed by hand.'}
        </p>
      ) : (
        <table class="endpoints">
          <thead>
            <tr>
              <th>Address</th>
              <th>Ready</th>
              <th>Target</th>
              <th>Node</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.address}>
                <td>
                  <EndpointLink endpoint={e} namespace={service.metadata.namespace} />
                </td>
                <td>{e.terminating ? 'Terminating' : e.ready ? 'Ready' : 'Not ready'}</td>
                <td>{e.targetRef?.name ? `${e.targetRef.kind}/${e.targetRef.name}` : '—'}</td>
                <td>{e.nodeName ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function ServicesList() {
  const ns = useShared(namespace);
  const { labelSelector } = parseSearch(useShared(search));
  const services = useAllowedList(RESOURCES.services, { namespace: ns, labelSelector: labelSelector || undefined });
  const slices = useAllowedList(RESOURCES.endpointslices, { namespace: ns });
  const byService = useMemo(() => endpointsByService(slices.items), [slices.items]);
  const [selected, setSelected] = useState<string | null>(null);
  const selectedService = selected ? services.items.find((s) => keyOf(s.metadata.namespace, s.metadata.name) === selected) : undefined;

  const columns = useMemo(() => {
    const list: Column<K8sObject>[] = [
      {
        key: 'name',
        title: 'Name',
        render: (s) => <Link href={detailHref(RESOURCES.services, s.metadata.namespace, s.metadata.name)}>{s.metadata.name}</Link>,
        sort: (s) => s.metadata.name,
      },
    ];
    if (ns === null)
      list.push({ key: 'namespace', title: 'Namespace', render: (s) => s.metadata.namespace, sort: (s) => s.metadata.namespace ?? '' });
    list.push(
      { key: 'type', title: 'Type', width: '110px', render: (s) => s.spec?.type ?? 'ClusterIP', sort: (s) => s.spec?.type ?? 'ClusterIP' },
      { key: 'clusterIP', title: 'Cluster IP', width: '130px', render: (s) => <span class="mono">{clusterIP(s)}</span>, sort: clusterIP },
      { key: 'ports', title: 'Ports', render: (s) => <span title={ports(s)}>{ports(s)}</span> },
      { key: 'nodePorts', title: 'NodePorts', width: '100px', render: (s) => nodePorts(s) || <span class="muted">—</span> },
      {
        key: 'selector',
        title: 'Selector',
        render: (s) => (serviceSelector(s) ? <code title={serviceSelector(s)}>{serviceSelector(s)}</code> : <span class="muted">none</span>),
        sort: serviceSelector,
      },
      {
        key: 'endpoints',
        title: 'Endpoints',
        width: '100px',
        render: (s) => {
          const key = keyOf(s.metadata.namespace, s.metadata.name);
          return (
            <EndpointCount
              entry={byService.get(key)}
              name={s.metadata.name}
              selected={selected === key}
              onSelect={() => setSelected(selected === key ? null : key)}
            />
          );
        },
        sort: (s) => byService.get(keyOf(s.metadata.namespace, s.metadata.name))?.endpoints.filter((e) => e.ready).length ?? 0,
      },
      {
        key: 'addresses',
        title: 'Pod IPs',
        render: (s) => {
          const entry = byService.get(keyOf(s.metadata.namespace, s.metadata.name));
          if (!entry?.endpoints.length) return <span class="muted">—</span>;
          return (
            <span class="endpoint-list">
              {entry.endpoints.map((e) => (
                <EndpointLink key={e.address} endpoint={e} namespace={s.metadata.namespace} />
              ))}
            </span>
          );
        },
      },
      { key: 'age', title: 'Age', width: '70px', render: (s) => <Age since={s.metadata.creationTimestamp} />, sort: ageSort },
    );
    return list;
  }, [ns, byService, selected]);

  return (
    <Page title="Services" subtitle={ns === null ? 'All namespaces' : `Namespace ${ns}`}>
      <ErrorBox error={(services.loaded ? null : services.error) ?? (slices.loaded ? null : slices.error)} />
      {services.denied ? (
        <NoAccess res={RESOURCES.services} namespace={ns} />
      ) : !services.loaded && !services.error ? (
        <Loading />
      ) : (
        <DataTable
          label="Services"
          rows={services.items}
          columns={columns}
          rowKey={(s) => keyOf(s.metadata.namespace, s.metadata.name)}
          searchText={(s) => s.metadata.name}
          initialSort={{ key: 'name' }}
          empty="No Services."
          maxHeight={selectedService ? 360 : undefined}
        />
      )}
      {selectedService && (
        <EndpointsPanel
          service={selectedService}
          entry={byService.get(selected!)}
          onClose={() => setSelected(null)}
        />
      )}
    </Page>
  );
}
