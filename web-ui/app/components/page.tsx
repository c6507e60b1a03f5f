// Page furniture: headings, tabs, error boxes.

import type { ComponentChildren } from 'preact';
import type { ApiError } from '../api/client';
import { setQuery, useRoute } from '../router';

export function Page(props: { title: ComponentChildren; actions?: ComponentChildren; children: ComponentChildren; subtitle?: ComponentChildren }) {
  return (
    <section class="page">
      <header class="page-head">
        <div>
          <h1>{props.title}</h1>
          {props.subtitle && <div class="subtitle">{props.subtitle}</div>}
        </div>
        {props.actions && <div class="actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** Tabs kept in the URL's `tab` query parameter. */
export function Tabs(props: { tabs: { id: string; title: string; render: () => ComponentChildren }[] }) {
  const { query } = useRoute();
  const active = props.tabs.find((t) => t.id === query.get('tab')) ?? props.tabs[0];
  return (
    <div class="tabs">
      <div role="tablist">
        {props.tabs.map((t) => (
          <button
            role="tab"
            id={`tab-${t.id}`}
            aria-selected={t === active}
            aria-controls={`panel-${t.id}`}
            onClick={() => setQuery('tab', t.id === props.tabs[0].id ? null : t.id)}
          >
            {t.title}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${active.id}`} aria-labelledby={`tab-${active.id}`}>
        {active.render()}
      </div>
    </div>
  );
}

export function ErrorBox(props: { error: ApiError | Error | null | undefined }) {
  if (!props.error) return null;
  return (
    <div class="error" role="alert">
      {props.error.message}
    </div>
  );
}

export function Loading() {
  return <div class="loading" aria-busy="true">Loading…</div>;
}
