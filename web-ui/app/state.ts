// State shared across views: the namespace, the search text, the theme.

import { useEffect, useState } from 'preact/hooks';

/** A value views can read and follow. */
export class Shared<T> {
  private listeners = new Set<(v: T) => void>();
  constructor(
    private value: T,
    private readonly persist?: (v: T) => void,
  ) {}
  get(): T {
    return this.value;
  }
  set(v: T) {
    this.value = v;
    this.persist?.(v);
    this.listeners.forEach((l) => l(v));
  }
  subscribe(l: (v: T) => void): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }
}

export function useShared<T>(shared: Shared<T>): T {
  const [value, setValue] = useState(shared.get());
  useEffect(() => shared.subscribe(setValue), [shared]);
  return value;
}

/** The selected namespace; null means all namespaces. */
export const namespace = new Shared<string | null>(
  localStorage.getItem('wharf.namespace') === '*' ? null : localStorage.getItem('wharf.namespace') ?? 'default',
  (v) => localStorage.setItem('wharf.namespace', v ?? '*'),
);

/** The top bar's search text: a name filter, or a label selector when it has = or !=, or both (`web app=x`). */
export const search = new Shared<string>('');

export type Theme = 'light' | 'dark' | 'auto';
export const theme = new Shared<Theme>((localStorage.getItem('wharf.theme') as Theme) || 'auto', (v) => {
  localStorage.setItem('wharf.theme', v);
  applyTheme(v);
});

export function applyTheme(v: Theme) {
  const dark = v === 'dark' || (v === 'auto' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
}

/** Splits the search text into a name filter and a label selector for the server. */
export function parseSearch(text: string): { name: string; labelSelector: string } {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const selector = words.filter((w) => /[=!]|^!?[\w./-]+\s*$/.test(w) && /[=!]/.test(w));
  const names = words.filter((w) => !selector.includes(w));
  return { name: names.join(' ').toLowerCase(), labelSelector: selector.join(',') };
}

/** The time now, renewed every `everyMs` (rates over a sliding window). */
export function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
