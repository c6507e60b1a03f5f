// Calls to the Wharf API with the signed-in user's bearer token. Every call goes through the
// API server's authentication and authorization, exactly as kubectl's do.

/** A Kubernetes `Status`, the body of every API error. */
export interface Status {
  kind?: 'Status';
  apiVersion?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
}

/** An API call that failed, with the server's Status. */
export class ApiError extends Error {
  readonly status: Status;
  constructor(status: Status) {
    super(status.message || status.reason || `HTTP ${status.code}`);
    this.status = status;
  }
  get code(): number {
    return this.status.code ?? 0;
  }
  get reason(): string {
    return this.status.reason ?? '';
  }
}

const TOKEN_KEY = 'wharf.token';

/** The token of this browser session (sessionStorage: gone when the tab's session ends). */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

const signOutListeners = new Set<() => void>();

export function setToken(value: string | null) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (!value) signOutListeners.forEach((f) => f());
}

/** Called when the server refuses the token (401), so the app can ask for it again. */
export function onSignOut(listener: () => void): () => void {
  signOutListeners.add(listener);
  return () => signOutListeners.delete(listener);
}

export interface RequestOptions {
  /** A JSON value (sent as JSON) or a string (sent as is, with `contentType`). */
  body?: unknown;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** The headers every call carries. */
export function authHeaders(): Record<string, string> {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** Sends a request and returns the raw Response when it succeeded; throws ApiError otherwise. */
export async function send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders(), ...options.headers };
  if (options.accept) headers.Accept = options.accept;
  let body: BodyInit | undefined;
  if (options.body !== undefined) {
    if (typeof options.body === 'string' || options.body instanceof Blob || options.body instanceof ArrayBuffer) {
      body = options.body as BodyInit;
      headers['Content-Type'] = options.contentType ?? 'application/json';
    } else {
      body = JSON.stringify(options.body);
      headers['Content-Type'] = options.contentType ?? 'application/json';
    }
  }
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body, signal: options.signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError({ code: 0, reason: 'NetworkError', message: `cannot reach the API server: ${(e as Error).message}` });
  }
  if (!response.ok) {
    const error = await errorOf(response);
    // A refused write means what the dashboard knows of the user's rights is stale (not the reviews asking it).
    if (error.code === 403 && method !== 'GET' && !path.includes('/selfsubject')) forbiddenListeners.forEach((f) => f());
    throw error;
  }
  return response;
}

const forbiddenListeners = new Set<() => void>();

/** Called when a write is refused (403): api/access.ts asks the server again what the user may do. */
export function onForbidden(listener: () => void): () => void {
  forbiddenListeners.add(listener);
  return () => forbiddenListeners.delete(listener);
}

/** The ApiError of a failed response, from its Status body when it has one. */
export async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  let status: Status | null = null;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && parsed.kind === 'Status') status = parsed;
  } catch {
    /* not JSON */
  }
  const error = new ApiError(status ?? { code: response.status, reason: response.statusText, message: text || response.statusText });
  if (error.status.code === undefined) error.status.code = response.status;
  if (response.status === 401) setToken(null);
  return error;
}

/** A JSON API call. */
export async function request<T = any>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const response = await send(method, path, { accept: 'application/json', ...options });
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const get = <T = any>(path: string, signal?: AbortSignal) => request<T>('GET', path, { signal });

/** Appends query parameters (skipping undefined ones) to a path. */
export function withQuery(path: string, query: Record<string, string | number | boolean | undefined | null>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const s = params.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** Sends a call again (6 tries in all, over about 7 s) when it did not reach the server: Chromium drops
 *  requests in flight when an IP address of the machine changes (a local pod's veth coming up, say).
 *  Only for calls that may be repeated. `done` tells the errors a repeat meets when an earlier try did
 *  reach the server (a delete's 404, a create's 409): the call then counts as done, giving undefined. */
export async function again<T>(call: () => Promise<T>): Promise<T>;
export async function again<T>(call: () => Promise<T>, done: (e: ApiError) => boolean): Promise<T | undefined>;
export async function again<T>(call: () => Promise<T>, done?: (e: ApiError) => boolean): Promise<T | undefined> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (attempt > 1 && e instanceof ApiError && done?.(e)) return undefined;
      if (!(e instanceof ApiError && e.reason === 'NetworkError') || attempt >= 6) throw e;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

/** The WebSocket subprotocol carrying the session's bearer token (browsers cannot set headers on
 *  WebSockets), as kube-apiserver reads it; null when signed out. */
export function bearerProtocol(): string | null {
  const t = token();
  if (!t) return null;
  let binary = '';
  for (const byte of new TextEncoder().encode(t)) binary += String.fromCharCode(byte);
  return `base64url.bearer.authorization.k8s.io.${btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`;
}
