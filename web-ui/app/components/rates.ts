// Functions' request rates, from the changes of status.invocations the watch brings (the
// controller sums the nodes' load reports into it). One history per page load, shared by the
// Overview and the Functions list so they agree.

import type { K8sObject } from '../api/resources';

const RATE_WINDOW_MS = 30_000;
/** Invocation counts seen per Function uid (the newest sample older than the window, then the newer ones). */
const counts = new Map<string, { t: number; n: number }[]>();

const keyOf = (fn: K8sObject) => fn.metadata.uid ?? `${fn.metadata.namespace}/${fn.metadata.name}`;

/** Notes the functions' invocation counts as of `now` (call when the list changes). */
export function recordInvocations(functions: K8sObject[], now: number) {
  for (const fn of functions) {
    const n = fn.status?.invocations;
    if (typeof n !== 'number') continue;
    let list = counts.get(keyOf(fn)) ?? [];
    const last = list[list.length - 1];
    if (last && n < last.n) list = []; // a gateway restarted: its count starts again
    if (!last || last.n !== n) list.push({ t: now, n });
    while (list.length > 2 && list[1].t <= now - RATE_WINDOW_MS) list.shift();
    counts.set(keyOf(fn), list);
  }
}

/** Requests per second over the last 30 s (or since the page first saw the function); undefined until 2 s have passed. */
export function invocationRate(fn: K8sObject, now: number): number | undefined {
  const list = counts.get(keyOf(fn));
  if (!list?.length) return undefined;
  const last = list[list.length - 1];
  const from = now - RATE_WINDOW_MS;
  // The count at the window's start: the newest sample at or before it, else the oldest sample there is.
  const older = list.filter((s) => s.t <= from);
  const base = older.length ? { t: from, n: older[older.length - 1].n } : list[0];
  const seconds = (now - base.t) / 1000;
  if (seconds < 2) return undefined;
  return (last.n - base.n) / seconds;
}
