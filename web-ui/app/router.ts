// Client-side routes under /ui/ (the server answers index.html for any of them).

import { h } from 'preact';
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui';

/** The current route: the path without the /ui prefix, and the query. */
export interface Route {
  path: string;
  query: URLSearchParams;
}

function current(): Route {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) || '/' : '/';
  return { path, query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach((l) => l()));

/** Goes to a dashboard path (`/nodes`, `/object/pods/default/web?tab=logs`). */
export function navigate(to: string, options: { replace?: boolean } = {}) {
  const url = BASE + (to.startsWith('/') ? to : `/${to}`);
  if (options.replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  listeners.forEach((l) => l());
  if (!options.replace) window.scrollTo(0, 0);
}

/** Replaces one query parameter of the current route (tabs, filters), without a new history entry. */
export function setQuery(key: string, value: string | null) {
  const { path, query } = current();
  if (value === null || value === '') query.delete(key);
  else query.set(key, value);
  const s = query.toString();
  navigate(s ? `${path}?${s}` : path, { replace: true });
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const l = () => setRoute(current());
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return route;
}

/** Matches `/object/:resource/:namespace/:name` against a path; params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].endsWith('?') && s[i] === undefined) continue;
    if (s[i] === undefined) return null;
    if (p[i].startsWith(':')) params[p[i].slice(1).replace(/\?$/, '')] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return s.length > p.length ? null : params;
}

/** A link to a dashboard path that navigates without reloading. */
export function Link(props: { href: string; class?: string; title?: string; children: ComponentChildren; 'aria-current'?: 'page' | undefined }) {
  const { href, children, ...rest } = props;
  return h(
    'a',
    {
      ...rest,
      href: BASE + href,
      onClick: (e: MouseEvent) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      },
    },
    children,
  );
}
