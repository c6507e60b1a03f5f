// ConfigMaps and Secrets: live tables, and a dialog with an object's data. Secret values stay hidden (•••) until their
// own "Reveal" button is pressed; they are shown base64-decoded (binary ones as their size).

import { useMemo, useState } from 'preact/hooks';
import { RESOURCES, detailHref } from '../api/resources';
import type { K8sObject, Resource } from '../api/resources';
import { Age, ageSort } from '../components/badges';
import { Modal } from '../components/modal';
import { ErrorBox, Loading, Page } from '../components/page';
import { DataTable } from '../components/table';
import type { Column } from '../components/table';
import { Link } from '../router';
import { namespace, parseSearch, search, useShared } from '../state';
import { useAllowedList } from '../api/access';
import { NoAccess } from './no-access';
import '../styles/config.css';

interface Entry {
  key: string;
  /** The text to show, or null when the value is binary. */
  text: string | null;
  bytes: number;
}

function decodeBase64(value: string): Uint8Array {
  try {
    const binary = atob(value);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return new TextEncoder().encode(value);
  }
}

function fromBytes(key: string, bytes: Uint8Array): Entry {
  try {
    return { key, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), bytes: bytes.length };
  } catch {
    return { key, text: null, bytes: bytes.length };
  }
}

/** An object's keys and values: a ConfigMap's data and binaryData, a Secret's data (base64) and stringData. */
export function entries(o: K8sObject): Entry[] {
  const out: Entry[] = [];
  const secret = o.kind === 'Secret' || o.type !== undefined;
  for (const [key, value] of Object.entries((o.data ?? {}) as Record<string, string>))
    out.push(secret ? fromBytes(key, decodeBase64(value)) : { key, text: value, bytes: new TextEncoder().encode(value).length });
  for (const [key, value] of Object.entries((o.binaryData ?? {}) as Record<string, string>)) out.push(fromBytes(key, decodeBase64(value)));
  for (const [key, value] of Object.entries((o.stringData ?? {}) as Record<string, string>))
    if (!out.some((e) => e.key === key)) out.push({ key, text: value, bytes: value.length });
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

function keyCount(o: K8sObject): number {
  return Object.keys(o.data ?? {}).length + Object.keys(o.binaryData ?? {}).length;
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function Value(props: { entry: Entry; hidden: boolean }) {
  const { entry } = props;
  if (props.hidden) return <span class="secret-mask" aria-label="hidden value">•••</span>;
  if (entry.text === null) return <span class="muted">binary, {formatBytes(entry.bytes)}</span>;
  return <pre class="config-value">{entry.text}</pre>;
}

/** The data of a ConfigMap or Secret; a Secret's values each behind a Reveal button. */
function DataDialog(props: { object: K8sObject; secret: boolean; onClose: () => void }) {
  const { object, secret } = props;
  const list = entries(object);
  const [revealed, setRevealed] = useState<Set<string>>(new Set());
  const toggle = (key: string) =>
    setRevealed((r) => {
      const next = new Set(r);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });
  const res = secret ? RESOURCES.secrets : RESOURCES.configmaps;
  return (
    <Modal title={`${res.kind} ${object.metadata.name}`} onClose={props.onClose} wide>
      <div class="config-meta">
        <Link href={detailHref(res, object.metadata.namespace, object.metadata.name)}>Open {object.metadata.name}</Link>
        {secret && <span class="pill info">{object.type ?? 'Opaque'}</span>}
        <span class="muted">
          {list.length} {list.length === 1 ? 'key' : 'keys'}
        </span>
      </div>
      {list.length === 0 ? (
        <p class="muted">No data.</p>
      ) : (
        <dl class="config-data">
          {list.map((entry) => {
            const hidden = secret && !revealed.has(entry.key);
            return (
              <div class="config-entry" key={entry.key}>
                <dt>
                  <code>{entry.key}</code>
                  <span class="muted">{formatBytes(entry.bytes)}</span>
                  {secret && (
                    <button aria-label={`${hidden ? 'Reveal' : 'Hide'} ${entry.key}`} onClick={() => toggle(entry.key)}>
                      {hidden ? 'Reveal' : 'Hide'}
                    </button>
                  )}
                </dt>
                <dd>
                  <Value entry={entry} hidden={hidden} />
                </dd>
              </div>
            );
          })}
        </dl>
      )}
    </Modal>
  );
}

function columns(res: Resource, withNamespace: boolean, open: (o: K8sObject) => void): Column<K8sObject>[] {
  const secret = res === RESOURCES.secrets;
  const list: Column<K8sObject>[] = [
    {
      key: 'name',
      title: 'Name',
      render: (o) => <Link href={detailHref(res, o.metadata.namespace, o.metadata.name)}>{o.metadata.name}</Link>,
      sort: (o) => o.metadata.name,
    },
  ];
  if (withNamespace) list.push({ key: 'namespace', title: 'Namespace', render: (o) => o.metadata.namespace, sort: (o) => o.metadata.namespace ?? '' });
  if (secret) list.push({ key: 'type', title: 'Type', render: (o) => o.type ?? 'Opaque', sort: (o) => o.type ?? 'Opaque' });
  list.push(
    { key: 'keys', title: 'Keys', width: '70px', align: 'right', render: keyCount, sort: keyCount },
    {
      key: 'data',
      title: 'Data',
      width: '110px',
      render: (o) => (
        <button class="small" aria-label={`${secret ? 'Show keys' : 'Show data'} of ${o.metadata.name}`} onClick={() => open(o)}>
          {secret ? 'Show keys' : 'Show data'}
        </button>
      ),
    },
    { key: 'age', title: 'Age', width: '70px', render: (o) => <Age since={o.metadata.creationTimestamp} />, sort: ageSort },
  );
  return list;
}

function ConfigTable(props: { res: Resource; ns: string | null; labelSelector: string }) {
  const { res, ns } = props;
  const list = useAllowedList(res, { namespace: ns, labelSelector: props.labelSelector || undefined });
  // The dialog follows the live object (its name), so an edit shows while it is open.
  const [openName, setOpenName] = useState<{ namespace?: string; name: string } | null>(null);
  const cols = useMemo(() => columns(res, ns === null, (o) => setOpenName({ namespace: o.metadata.namespace, name: o.metadata.name })), [res, ns]);
  const open = openName && list.items.find((o) => o.metadata.name === openName.name && o.metadata.namespace === openName.namespace);
  return (
    <section class="config-section" aria-labelledby={`config-${res.name}`}>
      <h2 id={`config-${res.name}`}>{res.title}</h2>
      <ErrorBox error={list.loaded ? null : list.error} />
      {list.denied ? (
        <NoAccess res={res} namespace={ns} />
      ) : !list.loaded && !list.error ? (
        <Loading />
      ) : (
        <DataTable
          label={res.title}
          rows={list.items}
          columns={cols}
          rowKey={(o) => `${o.metadata.namespace}/${o.metadata.name}`}
          searchText={(o) => o.metadata.name}
          initialSort={{ key: 'name' }}
          empty={`No ${res.title}.`}
          maxHeight={380}
        />
      )}
      {open && <DataDialog object={open} secret={res === RESOURCES.secrets} onClose={() => setOpenName(null)} />}
    </section>
  );
}

export function ConfigList() {
  const ns = useShared(namespace);
  const { labelSelector } = parseSearch(useShared(search));
  return (
    <Page title="Config & Secrets" subtitle={ns === null ? 'All namespaces' : `Namespace ${ns}`}>
      <ConfigTable res={RESOURCES.configmaps} ns={ns} labelSelector={labelSelector} />
      <ConfigTable res={RESOURCES.secrets} ns={ns} labelSelector={labelSelector} />
    </Page>
  );
}
