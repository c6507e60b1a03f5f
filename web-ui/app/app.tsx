// The dashboard's shell: sign-in, navigation, the top bar (namespace, search, theme) and the
// route table. Views live in views/, one area per file.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, again, onSignOut, request, setToken, token } from './api/client';
import { RESOURCES } from './api/resources';
import { canNow, ref, useAccess, useAllowedList, useMayCreateIn, useWhoAmI } from './api/access';
import { Modal } from './components/modal';
import { Link, match, navigate, useRoute } from './router';
import { namespace, search, theme, useShared } from './state';
import type { Theme } from './state';
import { Overview } from './views/overview';
import { NodeDetail, NodesList } from './views/nodes';
import { Workloads } from './views/workloads';
import { FunctionsList } from './views/functions';
import { ServicesList } from './views/services';
import { ConfigList } from './views/config';
import { EventsTimeline } from './views/events';
import { ObjectDetail } from './views/detail';
import { CreateFromYaml } from './views/yaml';

// `list`: the list the entry's page shows first (its "No access" note when the user may not list it).
const NAV: { href: string; title: string; key: string; list?: keyof typeof RESOURCES }[] = [
  { href: '/', title: 'Overview', key: 'o' },
  { href: '/nodes', title: 'Nodes', key: 'n', list: 'nodes' },
  { href: '/workloads', title: 'Workloads', key: 'w', list: 'deployments' },
  { href: '/functions', title: 'Functions', key: 'f', list: 'functions' },
  { href: '/services', title: 'Services', key: 's', list: 'services' },
  { href: '/config', title: 'Config & Secrets', key: 'c', list: 'configmaps' },
  { href: '/events', title: 'Events', key: 'e', list: 'events' },
];

/** Whether the user may list the nav entry's kind where the switcher points; undefined while not known. */
function mayList(can: typeof canNow, entry: (typeof NAV)[number], ns: string | null): boolean | undefined {
  if (!entry.list) return true;
  const res = RESOURCES[entry.list];
  return can('list', ref(res), res.namespaced ? ns : null);
}

const ROUTES: { pattern: string; view: (p: Record<string, string>) => preact.ComponentChildren }[] = [
  { pattern: '/', view: () => <Overview /> },
  { pattern: '/nodes', view: () => <NodesList /> },
  { pattern: '/nodes/:name', view: (p) => <NodeDetail name={p.name} /> },
  { pattern: '/workloads/:resource?', view: (p) => <Workloads resource={p.resource ?? 'deployments'} /> },
  { pattern: '/functions', view: () => <FunctionsList /> },
  { pattern: '/services', view: () => <ServicesList /> },
  { pattern: '/config', view: () => <ConfigList /> },
  { pattern: '/events', view: () => <EventsTimeline /> },
  { pattern: '/create', view: () => <CreateFromYaml /> },
  {
    pattern: '/object/:resource/:namespace/:name',
    view: (p) => <ObjectDetail resource={p.resource} namespace={p.namespace === '_' ? null : p.namespace} name={p.name} />,
  },
];

export function App() {
  const [signedIn, setSignedIn] = useState(!!token());
  useEffect(() => onSignOut(() => setSignedIn(false)), []);
  return signedIn ? <Shell /> : <SignIn onSignedIn={() => setSignedIn(true)} />;
}

function SignIn(props: { onSignedIn: () => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    setToken(value.trim());
    try {
      // Who the token is (SelfSubjectReview): every authenticated user may ask, whatever RBAC grants them.
      await again(() =>
        request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
          body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
        }),
      );
      props.onSignedIn();
    } catch (err) {
      setToken(null);
      setError(err instanceof ApiError && err.code === 401 ? 'The API server did not accept this token.' : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Wharf</h1>
        <p>
          Paste a bearer token: the admin token (<code>admin.token</code> in the server's data dir) or a user's token.
          It is kept for this browser session only.
        </p>
        <label for="token">Token</label>
        <input id="token" type="password" autoComplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} required />
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
        <button class="primary" type="submit" disabled={busy || !value.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}

function Shell() {
  const route = useRoute();
  const [help, setHelp] = useState(false);
  const searchInput = useRef<HTMLInputElement>(null);
  useShortcuts(searchInput, () => setHelp(true));
  useEffect(() => search.set(''), [route.path]);
  let content: preact.ComponentChildren = <NotFound />;
  for (const r of ROUTES) {
    const params = match(r.pattern, route.path);
    if (params) {
      content = r.view(params);
      break;
    }
  }
  const section = '/' + (route.path.split('/')[1] ?? '');
  const can = useAccess();
  const ns = useShared(namespace);
  const mayCreate = useMayCreateIn(ns ?? 'default');
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav class="sidebar" aria-label="Main">
        <div class="brand">
          <Link href="/">⚓ Wharf</Link>
        </div>
        <ul>
          {NAV.map((n) => (
            <li key={n.href}>
              <Link href={n.href} aria-current={section === n.href || (n.href === '/object' && section === '/object') ? 'page' : undefined}>
                {n.title}
                {mayList(can, n, ns) === false && <span class="nav-note"> · No access</span>}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <div class="main-column">
        <header class="topbar">
          <NamespaceSwitcher />
          <input
            ref={searchInput}
            class="search"
            type="search"
            placeholder="Filter by name or label (app=web)   /"
            aria-label="Filter by name or label"
            value={useShared(search)}
            onInput={(e) => search.set(e.currentTarget.value)}
          />
          {mayCreate !== false && (
            <button class="primary" onClick={() => navigate('/create')}>
              + Create
            </button>
          )}
          <ThemeSwitch />
          <button class="icon" aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)" onClick={() => setHelp(true)}>
            ?
          </button>
          <AccountMenu />
        </header>
        <main id="main" tabIndex={-1}>
          {content}
        </main>
      </div>
      {help && <Shortcuts onClose={() => setHelp(false)} />}
    </div>
  );
}

function NamespaceSwitcher() {
  const current = useShared(namespace);
  const { items } = useAllowedList(RESOURCES.namespaces);
  const names = items.map((n) => n.metadata.name).sort();
  if (current && !names.includes(current)) names.unshift(current);
  return (
    <label class="ns">
      <span>Namespace</span>
      <select value={current ?? '*'} onChange={(e) => namespace.set(e.currentTarget.value === '*' ? null : e.currentTarget.value)}>
        <option value="*">All namespaces</option>
        {names.map((n) => (
          <option value={n}>{n}</option>
        ))}
      </select>
    </label>
  );
}

/** Who is signed in (SelfSubjectReview: name and groups), and Sign out. */
function AccountMenu() {
  const who = useWhoAmI();
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const route = useRoute();
  useEffect(() => setOpen(false), [route.path]);
  useEffect(() => {
    if (!open) return;
    // Closes on a click elsewhere or Escape, as menus do.
    const onClick = (e: MouseEvent) => !box.current?.contains(e.target as Node) && setOpen(false);
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('click', onClick);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('click', onClick);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);
  return (
    <div class="account" ref={box}>
      <button
        aria-haspopup="true"
        aria-expanded={open}
        aria-controls="account-menu"
        aria-label={`Account: ${who?.username ?? 'signed in'}`}
        onClick={() => setOpen(!open)}
      >
        {who?.username ?? '…'}
        <span aria-hidden="true"> ▾</span>
      </button>
      {open && (
        <div id="account-menu" class="account-menu" role="group" aria-label="Account">
          <p>
            Signed in as <strong class="account-user">{who?.username ?? 'unknown'}</strong>
          </p>
          <p class="muted">
            Groups: <span class="account-groups">{(who?.groups ?? []).join(', ') || 'none'}</span>
          </p>
          <button onClick={() => setToken(null)}>Sign out</button>
        </div>
      )}
    </div>
  );
}

function ThemeSwitch() {
  const current = useShared(theme);
  return (
    <label class="theme">
      <span class="sr-only">Theme</span>
      <select value={current} onChange={(e) => theme.set(e.currentTarget.value as Theme)} aria-label="Theme">
        <option value="auto">Auto theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function useShortcuts(searchInput: preact.RefObject<HTMLInputElement>, showHelp: () => void) {
  useEffect(() => {
    let pendingG = false;
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (target.closest('input, textarea, select, [contenteditable], .cm-editor, .xterm')) {
        if (e.key === 'Escape' && target === searchInput.current) target.blur();
        return;
      }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === '/') {
        e.preventDefault();
        searchInput.current?.focus();
      } else if (e.key === '?') {
        showHelp();
      } else if (e.key === 'g') {
        pendingG = true;
        setTimeout(() => (pendingG = false), 1000);
        return;
      } else if (pendingG) {
        const nav = NAV.find((n) => n.key === e.key);
        if (nav) navigate(nav.href);
      }
      pendingG = false;
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
}

function Shortcuts(props: { onClose: () => void }) {
  return (
    <Modal title="Keyboard shortcuts" onClose={props.onClose}>
      <dl class="shortcuts">
        <dt>
          <kbd>/</kbd>
        </dt>
        <dd>Focus the filter</dd>
        <dt>
          <kbd>?</kbd>
        </dt>
        <dd>Show this list</dd>
        <dt>
          <kbd>Esc</kbd>
        </dt>
        <dd>Leave the filter, close a dialog</dd>
        {NAV.map((n) => (
          <>
            <dt>
              <kbd>g</kbd> <kbd>{n.key}</kbd>
            </dt>
            <dd>Go to {n.title}</dd>
          </>
        ))}
      </dl>
    </Modal>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        This page does not exist. <Link href="/">Go to the overview</Link>.
      </p>
    </section>
  );
}
