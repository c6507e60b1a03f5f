// Every watch of the tab over one WebSocket to the API server's /dashboard/v1/watch, which runs
// each one through the same dispatch as a plain watch request (so authn, authz and selectors are
// kubectl's). A dropped socket ends every open watch with an error, so informers resume from
// their resourceVersion once it is back; the socket reconnects with backoff.

import { ApiError, bearerProtocol } from './client';
import type { Status } from './client';
import type { WatchTransport } from './transport';
import type { WatchEvent } from './watch';

const PATH = '/dashboard/v1/watch';
const PROTOCOL = 'wharf.watch.v1';
/** How long a socket without watches stays open (a view change re-watches right away). */
const IDLE_MS = 30_000;
const MAX_BACKOFF_MS = 10_000;

interface Watch {
  onEvent: (event: WatchEvent) => void;
  onEnd: (error?: ApiError) => void;
}

interface ServerMessage {
  id: number;
  event?: WatchEvent;
  error?: Status;
  end?: boolean;
}

function networkError(message: string): ApiError {
  return new ApiError({ code: 0, reason: 'NetworkError', message });
}

export class MuxTransport implements WatchTransport {
  private socket: WebSocket | null = null;
  private readonly watches = new Map<number, Watch>();
  /** Messages written while the socket connects. */
  private queued: string[] = [];
  private nextId = 1;
  private failures = 0;
  private reconnectAt = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly url: () => string = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${PATH}`) {}

  watch(path: string, onEvent: (event: WatchEvent) => void, onEnd: (error?: ApiError) => void): () => void {
    const id = this.nextId++;
    this.watches.set(id, { onEvent, onEnd });
    this.write({ op: 'watch', id, path });
    return () => {
      if (!this.watches.delete(id)) return;
      this.write({ op: 'cancel', id });
      this.idleCheck();
    };
  }

  private write(message: object) {
    const text = JSON.stringify(message);
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
    if (this.socket?.readyState === WebSocket.OPEN) return this.socket.send(text);
    this.queued.push(text);
    if (this.socket || this.connectTimer) return;
    // After failures, wait before connecting again: the watches queue meanwhile.
    const wait = this.reconnectAt - Date.now();
    if (wait <= 0) return this.connect();
    this.connectTimer = setTimeout(() => {
      this.connectTimer = null;
      this.connect();
    }, wait);
  }

  private connect() {
    const bearer = bearerProtocol();
    const protocols = bearer ? [PROTOCOL, bearer] : [PROTOCOL];
    const socket = new WebSocket(this.url(), protocols);
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      for (const text of this.queued) socket.send(text);
      this.queued = [];
    };
    socket.onmessage = (e: MessageEvent<string>) => this.receive(e.data);
    socket.onclose = (e) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.queued = [];
      this.failures++;
      this.reconnectAt = Date.now() + Math.min(250 * 2 ** this.failures, MAX_BACKOFF_MS);
      const ended = [...this.watches.values()];
      this.watches.clear();
      const error = networkError(`the watch connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
      for (const w of ended) w.onEnd(error);
    };
  }

  private receive(data: string) {
    let message: ServerMessage;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const watch = this.watches.get(message.id);
    if (!watch) return;
    if (message.event) return watch.onEvent(message.event);
    this.watches.delete(message.id);
    this.idleCheck();
    watch.onEnd(message.error ? new ApiError(message.error) : undefined);
  }

  /** Closes the socket once it has carried no watch for a while. */
  private idleCheck() {
    if (this.watches.size || this.idleTimer || !this.socket) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.watches.size || !this.socket) return;
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, 'idle');
    }, IDLE_MS);
  }
}

/** The tab's multiplexed transport; `setTransport(muxTransport)` makes the informers use it. */
export const muxTransport: WatchTransport = new MuxTransport();
