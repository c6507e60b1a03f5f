// What the signed-in user may do, from the API server's own answers: a SelfSubjectRulesReview per
// namespace (the rules RBAC grants there, matched here as Kubernetes matches them) and a
// SelfSubjectAccessReview for questions no namespace answers (cluster-scoped kinds, "all
// namespaces"). Answers are cached per namespace and dropped on sign-in/out, every 60 s and when a
// write is refused (403), so the views follow role changes without a reload.
//
// `useCan` answers true, false, or undefined while unknown: views render an unknown action disabled
// (never hidden and then shown), a refused one hidden (or disabled with "You may not …").

import { useEffect, useState } from 'preact/hooks';
import { onForbidden, onSignOut, request, token } from './client';
import { namespace as selectedNamespace } from '../state';
import type { Resource } from './resources';
import { useList } from './watch';
import type { ListOptions, LiveList } from './watch';
import type { K8sObject } from './resources';

export interface ResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}

export interface Who {
  username: string;
  groups: string[];
}

/** The resource part of a question: its API group and plural (`{group: 'apps', plural: 'deployments'}`). */
export interface ResourceRef {
  group: string;
  plural: string;
}

const REFRESH_MS = 60_000;

interface Entry<T> {
  value?: T;
  pending?: Promise<void>;
  error?: boolean;
  /** The refresh epoch the value (or error) is of: an older one is asked again, its value kept meanwhile. */
  epoch?: number;
}

let sessionToken: string | null = null;
let generation = 0;
let epoch = 0;
const rules = new Map<string, Entry<ResourceRule[]>>();
const reviews = new Map<string, Entry<boolean>>();
const whoami = new Map<string, Entry<Who>>();
const listeners = new Set<() => void>();

function notify() {
  generation++;
  listeners.forEach((l) => l());
}

function forget() {
  rules.clear();
  reviews.clear();
  whoami.clear();
}

/** Asks the server again (a refused write, a namespace chosen, the periodic refresh). Answers known
 *  so far stay until the new ones come, so actions neither flicker nor go disabled meanwhile. */
export function refreshAccess() {
  epoch++;
  notify();
}

/** The cache belongs to one token: another one (sign-in as someone else) starts afresh. */
function checkSession() {
  const t = token();
  if (t !== sessionToken) {
    sessionToken = t;
    forget();
  }
}

// Signing out forgets everything: the next sign-in (even with the same token) asks afresh.
onSignOut(() => {
  sessionToken = null;
  forget();
});

let timer: ReturnType<typeof setInterval> | null = null;
let unsubscribeForbidden: (() => void) | null = null;
let unsubscribeNamespace: (() => void) | null = null;

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  if (!timer) timer = setInterval(refreshAccess, REFRESH_MS);
  if (!unsubscribeForbidden) unsubscribeForbidden = onForbidden(refreshAccess);
  // Another namespace chosen: its rules, and fresh ones of the rest.
  if (!unsubscribeNamespace) unsubscribeNamespace = selectedNamespace.subscribe(refreshAccess);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) {
      if (timer) clearInterval(timer);
      timer = null;
      unsubscribeForbidden?.();
      unsubscribeForbidden = null;
      unsubscribeNamespace?.();
      unsubscribeNamespace = null;
    }
  };
}

/** Starts asking for `key` unless its answer is of this epoch or a question is on its way. */
function load<T>(map: Map<string, Entry<T>>, key: string, fetcher: () => Promise<T>) {
  let entry = map.get(key);
  if (entry && (entry.pending || entry.epoch === epoch)) return;
  if (!entry) {
    entry = {};
    map.set(key, entry);
  }
  const current = entry;
  const session = sessionToken;
  const asked = epoch;
  current.pending = fetcher()
    .then((v) => {
      if (sessionToken !== session || map.get(key) !== current) return;
      current.value = v;
      current.error = false;
    })
    .catch(() => {
      if (sessionToken !== session || map.get(key) !== current) return;
      // Not known (a value from before stays): asked again at the next refresh.
      current.error = true;
    })
    .finally(() => {
      current.epoch = asked;
      current.pending = undefined;
      notify();
    });
}

function rulesReview(namespace: string): Promise<ResourceRule[]> {
  return request<{ status?: { resourceRules?: ResourceRule[] } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', {
    body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } },
  }).then((r) => r.status?.resourceRules ?? []);
}

interface Question {
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  name: string;
  namespace: string;
}

function accessReview(q: Question): Promise<boolean> {
  return request<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: q },
    },
  }).then((r) => !!r.status?.allowed);
}

function selfReview(): Promise<Who> {
  return request<{ status?: { userInfo?: { username?: string; groups?: string[] } } }>(
    'POST',
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
  ).then((r) => ({ username: r.status?.userInfo?.username ?? '', groups: r.status?.userInfo?.groups ?? [] }));
}

const has = (list: string[] | undefined, value: string) => !!list && (list.includes('*') || list.includes(value));

/** Whether one rule allows the request, as RBAC's RuleAllows: verbs, API groups, `resource`,
 *  `resource/subresource` or `* /subresource`, and resourceNames (which never allow a request
 *  without a name: list, create). */
export function ruleAllows(rule: ResourceRule, q: Omit<Question, 'namespace'>): boolean {
  if (!has(rule.verbs, q.verb) || !has(rule.apiGroups, q.group)) return false;
  const combined = q.subresource ? `${q.resource}/${q.subresource}` : q.resource;
  const resources = rule.resources ?? [];
  const resourceOk = resources.some(
    (r) => r === '*' || r === combined || (q.subresource !== '' && r === `*/${q.subresource}`),
  );
  if (!resourceOk) return false;
  const names = rule.resourceNames ?? [];
  return names.length === 0 || (q.name !== '' && names.includes(q.name));
}

function answer(q: Question, clusterScoped: boolean): boolean | undefined {
  // No resource (useAllowedList of nothing): nothing to ask.
  if (!q.resource) return undefined;
  checkSession();
  if (whoami.get('')?.value?.groups.includes('system:masters')) return true;
  if (!clusterScoped && q.namespace) {
    load(rules, q.namespace, () => rulesReview(q.namespace));
    const found = rules.get(q.namespace)?.value;
    return found === undefined ? undefined : found.some((rule) => ruleAllows(rule, q));
  }
  const key = JSON.stringify([q.verb, q.group, q.resource, q.subresource, q.name, q.namespace]);
  load(reviews, key, () => accessReview(q));
  return reviews.get(key)?.value;
}

function useGeneration(): number {
  const [, set] = useState(0);
  useEffect(() => subscribe(() => set((n) => n + 1)), []);
  return generation;
}

/** Who is signed in (SelfSubjectReview), or undefined while unknown. */
export function useWhoAmI(): Who | undefined {
  useGeneration();
  checkSession();
  load(whoami, '', selfReview);
  return whoami.get('')?.value;
}

/**
 * May the signed-in user `verb` the resource? `namespace`: the namespace asked about; null or
 * undefined for a cluster-scoped kind or for all namespaces. True, false, or undefined while the
 * server has not answered.
 */
export function useCan(
  verb: string,
  resource: ResourceRef,
  namespace?: string | null,
  subresource = '',
  name = '',
): boolean | undefined {
  useGeneration();
  useWhoAmI();
  return canNow(verb, resource, namespace, subresource, name);
}

/** useCan without the subscription, for callers that already subscribe (several answers in one component). */
export function canNow(verb: string, resource: ResourceRef, namespace?: string | null, subresource = '', name = ''): boolean | undefined {
  const q: Question = { verb, group: resource.group, resource: resource.plural, subresource, name, namespace: namespace ?? '' };
  return answer(q, !namespace);
}

/** Several answers at once: `can(verb, resource, namespace?, subresource?, name?)`, re-rendering as they come. */
export function useAccess(): typeof canNow {
  useGeneration();
  useWhoAmI();
  return canNow;
}

/** The ResourceRef of one of the dashboard's Resources. */
export function ref(res: Resource): ResourceRef {
  return { group: res.group, plural: res.name };
}

/** The tooltip of an action the user may not take. */
export function mayNot(what: string): string {
  return `You may not ${what}`;
}

/**
 * useList, but only once the user may list the resource there: a list they may not read is
 * `denied` (views show "No access") instead of a request answered 403, retried for ever.
 */
export function useAllowedList<T extends K8sObject = K8sObject>(
  res: Resource | null,
  options: ListOptions = {},
): LiveList<T> & { denied: boolean; unknown: boolean } {
  const ns = res?.namespaced ? options.namespace ?? null : null;
  const listOk = useCan('list', res ? ref(res) : { group: '', plural: '' }, ns);
  const watchOk = useCan('watch', res ? ref(res) : { group: '', plural: '' }, ns);
  const allowed = !!res && listOk === true && watchOk !== false;
  const list = useList<T>(allowed ? res : null, options);
  const denied = !!res && (listOk === false || watchOk === false);
  return { ...list, denied, unknown: !!res && listOk === undefined };
}

const REVIEW_GROUPS = new Set(['authorization.k8s.io', 'authentication.k8s.io']);

/** May the user create anything at all in the namespace (the /create page's Dry run and Apply)?
 *  Any rule granting `create` on a resource (not only on the self reviews every user may make). */
export function useMayCreateIn(namespace: string): boolean | undefined {
  useGeneration();
  const who = useWhoAmI();
  checkSession();
  if (who?.groups.includes('system:masters')) return true;
  load(rules, namespace, () => rulesReview(namespace));
  const found = rules.get(namespace)?.value;
  if (found === undefined) return undefined;
  return found.some(
    (r) =>
      has(r.verbs, 'create') &&
      (r.resourceNames ?? []).length === 0 &&
      (r.apiGroups ?? []).some((g) => !REVIEW_GROUPS.has(g)) &&
      (r.resources ?? []).some((x) => x === '*' || !x.includes('/')),
  );
}
