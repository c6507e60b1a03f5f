// Live lists: a shared informer per (kind, namespace, selectors) that lists once, then follows
// a watch from that resourceVersion (with bookmarks), relisting when the server says the
// version is too old (410). Views subscribe with `useList`/`useObject`; an informer stops a
// few seconds after its last subscriber leaves. No polling anywhere.

import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, get, withQuery } from './client';
import type { K8sObject, Resource } from './resources';
import { collectionPath } from './resources';
import { transport } from './transport';

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: any;
}

export interface ListOptions {
  /** null or undefined: all namespaces. */
  namespace?: string | null;
  labelSelector?: string;
  fieldSelector?: string;
}

type Listener = () => void;

const LINGER_MS = 5000;

class Informer {
  readonly items = new Map<string, K8sObject>();
  loaded = false;
  error: ApiError | null = null;
  /** Bumped on every change; hooks recompute their arrays from it. */
  version = 0;
  private resourceVersion = '';
  private listeners = new Set<Listener>();
  private cancelWatch: (() => void) | null = null;
  private abort: AbortController | null = null;
  private stopped = true;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;
  private notifyScheduled = false;
  private retryDelay = 500;

  constructor(
    private readonly res: Resource,
    private readonly options: ListOptions,
    private readonly key: string,
  ) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    if (this.stopped) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0)
        this.lingerTimer = setTimeout(() => {
          this.stop();
          informers.delete(this.key);
        }, LINGER_MS);
    };
  }

  private path(extra: Record<string, string | number | boolean | undefined>): string {
    return withQuery(collectionPath(this.res, this.options.namespace), {
      labelSelector: this.options.labelSelector,
      fieldSelector: this.options.fieldSelector,
      ...extra,
    });
  }

  private start() {
    this.stopped = false;
    void this.list();
  }

  private stop() {
    this.stopped = true;
    this.cancelWatch?.();
    this.cancelWatch = null;
    this.abort?.abort();
  }

  private async list() {
    this.abort = new AbortController();
    try {
      const list = await get<{ metadata: { resourceVersion: string }; items: K8sObject[] }>(this.path({}), this.abort.signal);
      if (this.stopped) return;
      this.items.clear();
      for (const item of list.items) this.items.set(keyOf(item), item);
      this.resourceVersion = list.metadata.resourceVersion;
      this.loaded = true;
      this.error = null;
      this.retryDelay = 500;
      this.changed(true);
      this.watch();
    } catch (e) {
      if (this.stopped || (e as Error).name === 'AbortError') return;
      this.error = e instanceof ApiError ? e : new ApiError({ message: String(e) });
      this.changed(true);
      this.retryLater(() => this.list());
    }
  }

  private watch() {
    const path = this.path({ watch: 1, resourceVersion: this.resourceVersion, allowWatchBookmarks: true });
    this.cancelWatch = transport().watch(
      path,
      (event) => this.apply(event),
      (error) => {
        this.cancelWatch = null;
        if (this.stopped) return;
        if (error && error.code === 410) return void this.list();
        if (error) {
          this.error = error;
          this.changed(true);
          return this.retryLater(() => this.watch());
        }
        // The server ended the watch (timeout): resume from the last version seen.
        this.watch();
      },
    );
  }

  private retryLater(again: () => void) {
    setTimeout(() => !this.stopped && again(), this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, 10000);
  }

  private apply(event: WatchEvent) {
    if (event.type === 'ERROR') {
      const status = event.object ?? {};
      this.cancelWatch?.();
      this.cancelWatch = null;
      if (status.code === 410) void this.list();
      else {
        this.error = new ApiError(status);
        this.retryLater(() => this.watch());
      }
      return;
    }
    const object = event.object as K8sObject;
    if (object?.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
    this.retryDelay = 500;
    if (this.error) {
      // The watch is back: a quiet list must not keep showing the last error.
      this.error = null;
      this.changed(false);
    }
    if (event.type === 'BOOKMARK') return;
    if (event.type === 'DELETED') this.items.delete(keyOf(object));
    else this.items.set(keyOf(object), object);
    this.changed(false);
  }

  /** Tells subscribers, at most once per animation frame (watch events can come in bursts). */
  private changed(now: boolean) {
    this.version++;
    if (now) return this.listeners.forEach((l) => l());
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    const flush = () => {
      this.notifyScheduled = false;
      this.listeners.forEach((l) => l());
    };
    if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') requestAnimationFrame(flush);
    else setTimeout(flush, 100);
  }
}

function keyOf(o: K8sObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
}

const informers = new Map<string, Informer>();

function informer(res: Resource, options: ListOptions): Informer {
  const key = JSON.stringify([res.group, res.name, res.namespaced ? options.namespace ?? null : null, options.labelSelector ?? '', options.fieldSelector ?? '']);
  let found = informers.get(key);
  if (!found) {
    found = new Informer(res, options, key);
    informers.set(key, found);
  }
  return found;
}

export interface LiveList<T = K8sObject> {
  items: T[];
  loaded: boolean;
  error: ApiError | null;
}

/** The live list of `res`, kept current by a watch; `null` res subscribes to nothing. */
export function useList<T extends K8sObject = K8sObject>(res: Resource | null, options: ListOptions = {}): LiveList<T> {
  const inf = useMemo(() => (res ? informer(res, options) : null), [res, options.namespace, options.labelSelector, options.fieldSelector]);
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!inf) return;
    setTick((t) => t + 1);
    return inf.subscribe(() => setTick((t) => t + 1));
  }, [inf]);
  const version = inf?.version ?? 0;
  const items = useMemo(() => (inf ? ([...inf.items.values()] as T[]) : []), [inf, version]);
  return { items, loaded: inf?.loaded ?? false, error: inf?.error ?? null };
}

/** One live object (a watch on its name), or null while loading or when it does not exist. */
export function useObject<T extends K8sObject = K8sObject>(res: Resource | null, namespace: string | null | undefined, name: string) {
  const list = useList<T>(res, { namespace: res?.namespaced ? namespace : null, fieldSelector: `metadata.name=${name}` });
  return { object: list.items[0] ?? null, loaded: list.loaded, error: list.error };
}
