// How watch streams reach the browser. `fetchTransport` opens one streaming request per watch;
// over HTTP/2 (which the API server speaks) they share the tab's one connection.

import { ApiError, authHeaders, errorOf } from './client';
import type { WatchEvent } from './watch';

export interface WatchTransport {
  /** Starts a watch of `path`; returns its cancel. `onEnd` is called once, unless cancelled. */
  watch(path: string, onEvent: (event: WatchEvent) => void, onEnd: (error?: ApiError) => void): () => void;
}

export const fetchTransport: WatchTransport = {
  watch(path, onEvent, onEnd) {
    const abort = new AbortController();
    let cancelled = false;
    (async () => {
      const response = await fetch(path, { headers: { ...authHeaders(), Accept: 'application/json' }, signal: abort.signal });
      if (!response.ok) throw await errorOf(response);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line) onEvent(JSON.parse(line));
          if (cancelled) return;
        }
      }
    })().then(
      () => !cancelled && onEnd(),
      (e) => {
        if (cancelled) return;
        onEnd(e instanceof ApiError ? e : new ApiError({ code: 0, reason: 'NetworkError', message: String(e?.message ?? e) }));
      },
    );
    return () => {
      cancelled = true;
      abort.abort();
    };
  },
};

let current: WatchTransport = fetchTransport;

export function transport(): WatchTransport {
  return current;
}

/** Replaces the transport (the benchmark compares them). */
export function setTransport(t: WatchTransport) {
  current = t;
}
