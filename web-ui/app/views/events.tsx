// The Events timeline: core/v1 Events of the selected namespace, live, newest first, with a Warning/Normal filter; and
// ObjectEvents, the events of one object (its detail page's Events tab).

import { useMemo, useState } from 'preact/hooks';
import { RESOURCES, detailHref, resourceOfKind } from '../api/resources';
import type { K8sObject } from '../api/resources';
import { useList } from '../api/watch';
import type { LiveList } from '../api/watch';
import { Age, Pill } from '../components/badges';
import { ErrorBox, Loading, Page } from '../components/page';
import { DataTable } from '../components/table';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import type { Column } from '../components/table';
import { Link } from '../router';
import { namespace, parseSearch, search, useShared } from '../state';
import '../styles/events.css';

/** When an event last happened: lastTimestamp, else the series' or the event's time, else its creation. */
export function lastSeen(e: K8sObject): string | undefined {
  return e.lastTimestamp ?? e.series?.lastObservedTime ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp;
}

function lastSeenMs(e: K8sObject): number {
  return Date.parse(lastSeen(e) ?? '') || 0;
}

function count(e: K8sObject): number {
  return e.count ?? e.series?.count ?? 1;
}

/** A link to the object an event is about (plain text when the dashboard has no page for its kind). */
export function InvolvedObject(props: { event: K8sObject }) {
  const o = props.event.involvedObject ?? props.event.regarding ?? {};
  const text = `${o.kind ?? '?'}/${o.name ?? '?'}`;
  const res = resourceOfKind(o.apiVersion, o.kind);
  if (!res || !o.name) return <span>{text}</span>;
  return (
    <Link href={detailHref(res, o.namespace ?? props.event.metadata.namespace, o.name)} title={o.fieldPath}>
      {text}
    </Link>
  );
}

type TypeFilter = 'all' | 'Warning' | 'Normal';

function columns(withNamespace: boolean, withObject: boolean): Column<K8sObject>[] {
  const list: Column<K8sObject>[] = [
    { key: 'last', title: 'Last seen', width: '90px', render: (e) => <Age since={lastSeen(e)} />, sort: lastSeenMs },
    { key: 'type', title: 'Type', width: '90px', render: (e) => <Pill text={e.type ?? 'Normal'} />, sort: (e) => e.type ?? '' },
    { key: 'reason', title: 'Reason', width: '160px', render: (e) => e.reason ?? '', sort: (e) => e.reason ?? '' },
  ];
  if (withNamespace)
    list.push({ key: 'namespace', title: 'Namespace', width: '130px', render: (e) => e.metadata.namespace, sort: (e) => e.metadata.namespace ?? '' });
  if (withObject)
    list.push({
      key: 'object',
      title: 'Object',
      width: '220px',
      render: (e) => <InvolvedObject event={e} />,
      sort: (e) => `${e.involvedObject?.kind}/${e.involvedObject?.name}`,
    });
  list.push(
    { key: 'message', title: 'Message', render: (e) => <span title={e.message}>{e.message}</span> },
    { key: 'count', title: 'Count', width: '70px', align: 'right', render: (e) => count(e), sort: count },
  );
  return list;
}

function searchText(e: K8sObject): string {
  return `${e.involvedObject?.name ?? ''} ${e.reason ?? ''} ${e.message ?? ''}`;
}

function TypeSelect(props: { value: TypeFilter; onChange: (v: TypeFilter) => void; counts: { Warning: number; Normal: number } }) {
  return (
    <label class="events-filter">
      <span>Type</span>
      <select value={props.value} onChange={(e) => props.onChange(e.currentTarget.value as TypeFilter)}>
        <option value="all">All</option>
        <option value="Warning">Warning ({props.counts.Warning})</option>
        <option value="Normal">Normal ({props.counts.Normal})</option>
      </select>
    </label>
  );
}

function useFiltered(items: K8sObject[], filter: TypeFilter) {
  return useMemo(() => {
    const counts = { Warning: 0, Normal: 0 };
    for (const e of items) {
      if (e.type === 'Warning') counts.Warning++;
      else counts.Normal++;
    }
    const rows = filter === 'all' ? items : items.filter((e) => (e.type ?? 'Normal') === filter);
    return { rows, counts };
  }, [items, filter]);
}

export function EventsTimeline() {
  const ns = useShared(namespace);
  const { labelSelector } = parseSearch(useShared(search));
  const list = useAllowedList(RESOURCES.events, { namespace: ns, labelSelector: labelSelector || undefined });
  const [filter, setFilter] = useState<TypeFilter>('all');
  const { rows, counts } = useFiltered(list.items, filter);
  const cols = useMemo(() => columns(ns === null, true), [ns]);
  return (
    <Page
      title="Events"
      subtitle={`${ns === null ? 'All namespaces' : `Namespace ${ns}`} · live, newest first`}
      actions={<TypeSelect value={filter} onChange={setFilter} counts={counts} />}
    >
      <EventsTable list={list} namespace={ns} rows={rows} columns={cols} searchText={searchText} empty={filter === 'all' ? 'No events.' : `No ${filter} events.`} />
    </Page>
  );
}

/** A live list of events, newest first, once loaded (its error shows only until then: the informer retries). */
function EventsTable(props: {
  list: LiveList & { denied?: boolean };
  namespace?: string | null;
  rows: K8sObject[];
  columns: Column<K8sObject>[];
  searchText?: (e: K8sObject) => string;
  empty: string;
  maxHeight?: number;
}) {
  const { list } = props;
  return (
    <>
      <ErrorBox error={list.loaded ? null : list.error} />
      {list.denied ? (
        <NoAccess res={RESOURCES.events} namespace={props.namespace ?? null} />
      ) : !list.loaded && !list.error ? (
        <Loading />
      ) : (
        <DataTable
          label="Events"
          rows={props.rows}
          columns={props.columns}
          rowKey={(e) => `${e.metadata.namespace}/${e.metadata.name}`}
          searchText={props.searchText}
          initialSort={{ key: 'last', desc: true }}
          empty={props.empty}
          maxHeight={props.maxHeight}
        />
      )}
    </>
  );
}

/** The events about one object: by involvedObject.uid (the server's field selector), or by kind and name for an
 *  object without a uid. Cluster-scoped objects' events may be in any namespace. */
export function ObjectEvents(props: { object: K8sObject }) {
  const { metadata, kind } = props.object;
  const res = resourceOfKind(props.object.apiVersion, kind);
  const ns = res && !res.namespaced ? null : metadata.namespace ?? null;
  const fieldSelector = metadata.uid
    ? `involvedObject.uid=${metadata.uid}`
    : `involvedObject.name=${metadata.name}${kind ? `,involvedObject.kind=${kind}` : ''}`;
  const list = useList(RESOURCES.events, { namespace: ns, fieldSelector });
  const [filter, setFilter] = useState<TypeFilter>('all');
  const { rows, counts } = useFiltered(list.items, filter);
  const cols = useMemo(() => columns(false, false), []);
  return (
    <div class="object-events">
      <div class="object-events-head">
        <TypeSelect value={filter} onChange={setFilter} counts={counts} />
      </div>
      <EventsTable list={list} namespace={ns} rows={rows} columns={cols} empty={`No events about this ${kind ?? 'object'}.`} maxHeight={420} />
    </div>
  );
}
