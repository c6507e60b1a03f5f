// Logs and terminals: a container's log followed live, the merged logs of a set of pods (or of a
// Function), and a shell in a Linux container over the exec WebSocket. Logs are streamed with one
// `follow=true` request per container (no polling); the view keeps the last MAX_LINES lines and
// renders only the rows on screen.

import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, again, bearerProtocol, send, withQuery } from '../api/client';
import type { K8sObject } from '../api/resources';
import { RESOURCES, objectPath } from '../api/resources';
import { useList } from '../api/watch';
import { containerRuntimes } from '../components/badges';
import '../styles/logs.css';

/** Lines kept per view; older ones are dropped (and the view says so). */
const MAX_LINES = 10000;
/** Lines asked for when a log is first opened. */
const TAIL_LINES = 500;
/** Height of one rendered line in px (matches `.log-line` in logs.css). */
const ROW = 18;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 30;

// ---------------------------------------------------------------------------------------------
// The buffer of lines a view shows.

interface LogLine {
  /** RFC 3339 time from the server, or '' when the stream carries none. */
  ts: string;
  text: string;
  /** The pod (or node) a merged log's line came from. */
  source?: string;
}

class LogBuffer {
  lines: LogLine[] = [];
  /** Lines ever added (the absolute index after the last line). */
  total = 0;
  version = 0;
  private listeners = new Set<() => void>();
  private scheduled = false;

  /** Absolute index of `lines[0]`. */
  get first(): number {
    return this.total - this.lines.length;
  }

  get dropped(): number {
    return this.first;
  }

  /** Appends a line; `byTime` places it after the latest line not newer than it instead (a merged log's pods
   *  send their recent lines in one burst each when followed). */
  push(line: LogLine, byTime = false) {
    let at = this.lines.length;
    if (byTime && line.ts) {
      const stop = Math.max(0, at - 2000);
      while (at > stop && this.lines[at - 1].ts && compareTimes(this.lines[at - 1].ts, line.ts) > 0) at--;
    }
    if (at === this.lines.length) this.lines.push(line);
    else this.lines.splice(at, 0, line);
    this.total++;
    this.schedule();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Trims and tells the view at most once per frame (logs can arrive by the thousand). */
  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
      this.version++;
      this.listeners.forEach((l) => l());
    };
    if (document.visibilityState === 'visible') requestAnimationFrame(flush);
    else setTimeout(flush, 250);
  }
}

// ---------------------------------------------------------------------------------------------
// Following one log stream.

type StreamState =
  | { kind: 'connecting' }
  | { kind: 'live' }
  | { kind: 'ended'; message: string }
  | { kind: 'error'; message: string; code?: number };

/** Compares two RFC 3339 times with any number of fraction digits. */
function compareTimes(a: string, b: string): number {
  const split = (t: string) => {
    const m = /^([^.Z+]*)(?:\.(\d+))?/.exec(t);
    return [m?.[1] ?? t, (m?.[2] ?? '').padEnd(9, '0')];
  };
  const [as, af] = split(a);
  const [bs, bf] = split(b);
  if (as !== bs) return as < bs ? -1 : 1;
  return af === bf ? 0 : af < bf ? -1 : 1;
}

interface StreamOptions {
  /** The URL to follow; `since` is the time of the last line seen when resuming. */
  url: (since: string | null) => string;
  /** Whether lines start with an RFC 3339 time (`timestamps=true`). */
  timestamps: boolean;
  onLine: (ts: string, text: string) => void;
  /** Whether to reconnect when the stream ends (the container still runs). */
  resume: () => boolean;
  onState?: (state: StreamState) => void;
}

/** One followed log: reconnects while `resume()` says so, continuing after the last line's time
 *  and skipping the lines of that time already seen, so nothing is shown twice. */
class LogStream {
  private abort: AbortController | null = null;
  private stopped = false;
  private running = false;
  private lastTs = '';
  private atLastTs = 0;
  private retry = 1000;
  /** Whether the last connection brought any line. */
  private gotLines = false;

  constructor(private readonly options: StreamOptions) {}

  start() {
    if (this.running || this.stopped) return;
    this.running = true;
    void this.loop();
  }

  /** Starts again if the stream had ended (the container started again). */
  kick() {
    this.retry = 1000;
    this.start();
  }

  stop() {
    this.stopped = true;
    this.abort?.abort();
  }

  private state(s: StreamState) {
    if (!this.stopped) this.options.onState?.(s);
  }

  private async loop() {
    try {
      while (!this.stopped) {
        const result = await this.once();
        if (this.stopped) return;
        if (result !== null) {
          this.state(result);
          if (!this.options.resume()) return;
          await new Promise((r) => setTimeout(r, this.retry));
          this.retry = Math.min(this.retry * 2, 10000);
        } else if (!this.options.resume()) {
          this.state({ kind: 'ended', message: 'The log ended.' });
          return;
        } else if (this.gotLines) {
          await new Promise((r) => setTimeout(r, 500));
        } else {
          // A stream that keeps ending without a line: back off rather than poll.
          await new Promise((r) => setTimeout(r, this.retry));
          this.retry = Math.min(this.retry * 2, 10000);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Follows the stream once; null when it ended normally, else what went wrong. */
  private async once(): Promise<StreamState | null> {
    this.state({ kind: 'connecting' });
    this.abort = new AbortController();
    const resuming = this.lastTs !== '';
    let skip = this.atLastTs;
    let response: Response;
    try {
      response = await send('GET', this.options.url(resuming ? this.lastTs : null), { signal: this.abort.signal });
    } catch (e) {
      if (e instanceof ApiError) return { kind: 'error', message: e.message, code: e.code || undefined };
      return { kind: 'error', message: (e as Error).message };
    }
    this.state({ kind: 'live' });
    this.gotLines = false;
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    const take = (raw: string) => {
      let ts = '';
      let text = raw;
      if (this.options.timestamps) {
        const space = raw.indexOf(' ');
        if (space > 0 && /^\d{4}-\d\d-\d\dT/.test(raw)) {
          ts = raw.slice(0, space);
          text = raw.slice(space + 1);
        }
      }
      if (resuming && ts && skip >= 0) {
        const order = compareTimes(ts, this.lastTs);
        if (order < 0) return;
        if (order === 0 && skip > 0) {
          skip--;
          return;
        }
        skip = -1;
      }
      if (ts) {
        if (ts === this.lastTs) this.atLastTs++;
        else {
          this.lastTs = ts;
          this.atLastTs = 1;
        }
      }
      if (!this.gotLines) {
        this.gotLines = true;
        this.retry = 1000;
      }
      this.options.onLine(ts, text);
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (rest + value).split('\n');
        rest = parts.pop() ?? '';
        for (const p of parts) take(p);
      }
      if (rest) take(rest);
    } catch (e) {
      if (this.stopped) return null;
      return { kind: 'error', message: `the log stream broke: ${(e as Error).message}` };
    }
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

interface ContainerState {
  started: boolean;
  running: boolean;
  restarted: boolean;
  /** Why it is not running, when it is not. */
  reason: string;
  id: string;
}

function containerState(pod: K8sObject, container: string): ContainerState {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const s = statuses.find((c: { name: string }) => c.name === container);
  const state = s?.state ?? {};
  const restarted = (s?.restartCount ?? 0) > 0 || !!s?.lastState?.terminated;
  const started = !!state.running || !!state.terminated || restarted;
  let reason = '';
  if (state.waiting) reason = state.waiting.reason ?? 'Waiting';
  else if (state.terminated) {
    const t = state.terminated;
    reason = `${t.reason ?? 'Terminated'}, exit code ${t.exitCode ?? '?'}`;
  } else if (!s) reason = pod.status?.phase === 'Pending' ? 'the pod is pending' : 'no status yet';
  return { started, running: !!state.running, restarted, reason, id: s?.containerID ?? '' };
}

function containersOf(pod: K8sObject): { name: string; init: boolean }[] {
  return [
    ...(pod.spec?.initContainers ?? []).map((c: { name: string }) => ({ name: c.name, init: true })),
    ...(pod.spec?.containers ?? []).map((c: { name: string }) => ({ name: c.name, init: false })),
  ];
}

function defaultContainer(pod: K8sObject): string {
  return pod.spec?.containers?.[0]?.name ?? pod.spec?.initContainers?.[0]?.name ?? '';
}

function podLogPath(pod: K8sObject, query: Record<string, string | number | boolean | undefined>): string {
  return withQuery(objectPath(RESOURCES.pods, pod.metadata.namespace, pod.metadata.name, 'log'), query);
}

/** Reads a whole (not followed) log, again when the request did not reach the server. */
function fetchText(url: string): Promise<string> {
  return again(async () => (await send('GET', url, { accept: 'text/plain' })).text());
}

function save(text: string, filename: string) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** A stable colour (one of 8) for a pod or node name. */
function colourOf(source: string): number {
  let h = 0;
  for (let i = 0; i < source.length; i++) h = (h * 31 + source.charCodeAt(i)) >>> 0;
  return h % 8;
}

function ContainerPicker(props: { pod: K8sObject; value: string; onChange: (c: string) => void }) {
  const all = containersOf(props.pod);
  return (
    <label class="log-field">
      Container{' '}
      <select value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {all.map((c) => (
          <option value={c.name}>{c.init ? `${c.name} (init)` : c.name}</option>
        ))}
      </select>
    </label>
  );
}

/** The container chosen: `preferred` (a prop) when it changes, else the user's choice. */
function useContainer(pod: K8sObject, preferred?: string): [string, (c: string) => void] {
  const [container, setContainer] = useState(preferred ?? defaultContainer(pod));
  useEffect(() => {
    if (preferred) setContainer(preferred);
  }, [preferred]);
  useEffect(() => {
    if (!containersOf(pod).some((c) => c.name === container)) setContainer(defaultContainer(pod));
  }, [pod.metadata.uid]);
  return [container, setContainer];
}

function describeState(s: StreamState | null): string {
  if (!s) return '';
  switch (s.kind) {
    case 'connecting':
      return 'Connecting…';
    case 'live':
      return 'Live';
    case 'ended':
    case 'error':
      return s.message;
  }
}

// ---------------------------------------------------------------------------------------------
// The log view: toolbar (pause, search, timestamps, download) and the virtualised lines.

function LogViewer(props: {
  buffer: LogBuffer;
  label: string;
  filename: string;
  /** Produces the whole log as text for the Download button. */
  download: (timestamps: boolean) => Promise<string>;
  toolbar?: ComponentChildren;
  status?: ComponentChildren;
  hasTimestamps?: boolean;
}) {
  const buf = props.buffer;
  const [, setTick] = useState(0);
  useEffect(() => buf.subscribe(() => setTick((t) => t + 1)), [buf]);
  const [pausedAt, setPausedAt] = useState<number | null>(null);
  const [showTs, setShowTs] = useState(false);
  const [query, setQuery] = useState('');
  const [current, setCurrent] = useState(0);
  const [downloading, setDownloading] = useState(false);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  /** Whether the view follows the end (false once the user scrolls up). */
  const stick = useRef(true);
  const [following, setFollowing] = useState(true);
  const [viewport, setViewport] = useState({ top: 0, height: 480 });

  useEffect(() => {
    setPausedAt(null);
    stick.current = true;
    setFollowing(true);
  }, [buf]);

  const shown = pausedAt === null ? buf.lines.length : Math.max(0, Math.min(buf.lines.length, pausedAt - buf.first));
  const arrived = pausedAt === null ? 0 : buf.total - pausedAt;
  const needle = query.toLowerCase();
  const matches = useMemo(() => {
    if (!needle) return [] as number[];
    const out: number[] = [];
    for (let i = 0; i < shown; i++) {
      const line = buf.lines[i];
      if (line.text.toLowerCase().includes(needle) || line.source?.toLowerCase().includes(needle)) out.push(i);
    }
    return out;
  }, [buf, buf.version, shown, needle]);
  const currentMatch = matches.length ? Math.min(current, matches.length - 1) : -1;

  // Following: stay at the end. Reading older lines: keep them in place when the oldest are dropped.
  const firstSeen = useRef(buf.first);
  useLayoutEffect(() => {
    const el = scroller.current;
    const dropped = buf.first - firstSeen.current;
    firstSeen.current = buf.first;
    if (!el) return;
    if (stick.current && pausedAt === null) el.scrollTop = el.scrollHeight;
    else if (dropped > 0) el.scrollTop = Math.max(0, el.scrollTop - dropped * ROW);
  });

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const measure = () => setViewport({ top: el.scrollTop, height: el.clientHeight });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const onScroll = () => {
    const el = scroller.current!;
    const atEnd = el.scrollTop + el.clientHeight >= el.scrollHeight - ROW;
    stick.current = atEnd;
    if (atEnd !== following) setFollowing(atEnd);
    setViewport({ top: el.scrollTop, height: el.clientHeight });
  };

  const jump = (to: number) => {
    if (!matches.length) return;
    const n = ((to % matches.length) + matches.length) % matches.length;
    setCurrent(n);
    const el = scroller.current;
    if (!el) return;
    stick.current = false;
    setFollowing(false);
    el.scrollTop = Math.max(0, matches[n] * ROW - el.clientHeight / 2);
  };

  // A new search goes to its most recent match.
  useEffect(() => {
    if (needle && matches.length) jump(matches.length - 1);
  }, [needle]);

  const toEnd = () => {
    const el = scroller.current;
    stick.current = true;
    setFollowing(true);
    if (el) el.scrollTop = el.scrollHeight;
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.target instanceof HTMLInputElement) {
      if (e.key === 'Enter' && e.target.type === 'search') {
        e.preventDefault();
        jump(currentMatch + (e.shiftKey ? -1 : 1));
      }
      return;
    }
    if (e.target !== scroller.current) return;
    if (e.key === 'n' && !e.ctrlKey && !e.metaKey && !e.altKey) jump(currentMatch + 1);
    else if (e.key === 'N' && !e.ctrlKey && !e.metaKey && !e.altKey) jump(currentMatch - 1);
    else return;
    e.preventDefault();
  };

  const download = async () => {
    setDownloading(true);
    setDownloadError(null);
    try {
      save(await props.download(showTs), props.filename);
    } catch (e) {
      setDownloadError((e as Error).message);
    } finally {
      setDownloading(false);
    }
  };

  const start = Math.max(0, Math.floor(viewport.top / ROW) - OVERSCAN);
  const end = Math.min(shown, Math.ceil((viewport.top + viewport.height) / ROW) + OVERSCAN);
  const rows = [];
  for (let i = start; i < end; i++) {
    const line = buf.lines[i];
    rows.push(
      <div class={`log-line${i === matches[currentMatch] ? ' current' : ''}`} style={{ top: i * ROW }} key={buf.first + i}>
        {showTs && line.ts && <span class="log-ts">{line.ts} </span>}
        {line.source && <span class={`log-src c${colourOf(line.source)}`}>{line.source} </span>}
        <Highlighted text={line.text} needle={needle} />
      </div>,
    );
  }

  return (
    <div class="logs" onKeyDown={onKey}>
      <div class="log-toolbar">
        {props.toolbar}
        {pausedAt === null ? (
          <button onClick={() => setPausedAt(buf.total)}>Pause</button>
        ) : (
          <button class="primary" onClick={() => setPausedAt(null)}>
            Resume
          </button>
        )}
        {pausedAt !== null && (
          <span class="log-arrived" role="status">
            {arrived === 1 ? '1 new line' : `${arrived.toLocaleString()} new lines`} while paused
          </span>
        )}
        <span class="log-search">
          <input
            type="search"
            aria-label="Search log"
            placeholder="Search log"
            value={query}
            onInput={(e) => {
              setQuery((e.target as HTMLInputElement).value);
            }}
          />
          <span class="log-count" aria-live="polite">
            {needle ? (matches.length ? `${currentMatch + 1} of ${matches.length}` : 'no match') : ''}
          </span>
          <button class="icon" aria-label="Previous match" title="Previous match (N)" disabled={!matches.length} onClick={() => jump(currentMatch - 1)}>
            ↑
          </button>
          <button class="icon" aria-label="Next match" title="Next match (n, Enter)" disabled={!matches.length} onClick={() => jump(currentMatch + 1)}>
            ↓
          </button>
        </span>
        {props.hasTimestamps !== false && (
          <label class="log-field">
            <input type="checkbox" checked={showTs} onChange={(e) => setShowTs((e.target as HTMLInputElement).checked)} /> Timestamps
          </label>
        )}
        <button onClick={download} disabled={downloading}>
          {downloading ? 'Downloading…' : 'Download'}
        </button>
      </div>
      {downloadError && (
        <div class="error" role="alert">
          Download failed: {downloadError}
        </div>
      )}
      <div class="log-status">
        {props.status}
        {buf.dropped > 0 && (
          <span class="muted"> Showing the last {MAX_LINES.toLocaleString()} lines ({buf.dropped.toLocaleString()} earlier ones dropped; Download has them all).</span>
        )}
      </div>
      <div class="log-frame">
        <div class="log-scroll" role="region" aria-label={props.label} tabIndex={0} ref={scroller} onScroll={onScroll}>
          <div class="log-lines" style={{ height: shown * ROW }}>
            {rows}
          </div>
          {shown === 0 && <div class="log-empty muted">No log lines yet.</div>}
        </div>
        {!following && pausedAt === null && (
          <button class="log-follow" onClick={toEnd}>
            Follow ↓
          </button>
        )}
      </div>
    </div>
  );
}

function Highlighted(props: { text: string; needle: string }) {
  const { text, needle } = props;
  if (!needle) return <>{text}</>;
  const lower = text.toLowerCase();
  const parts: ComponentChildren[] = [];
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, i + needle.length)) {
    if (i > at) parts.push(text.slice(at, i));
    parts.push(<mark>{text.slice(i, i + needle.length)}</mark>);
    at = i + needle.length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return <>{parts}</>;
}

// ---------------------------------------------------------------------------------------------
// One container's log.

export function ContainerLogs(props: { pod: K8sObject; container?: string }) {
  const pod = props.pod;
  const [container, setContainer] = useContainer(pod, props.container);
  const [previous, setPrevious] = useState(false);
  const state = containerState(pod, container);
  const running = useRef(state.running);
  running.current = state.running;
  const [streamState, setStreamState] = useState<StreamState | null>(null);
  const key = `${pod.metadata.uid}/${container}/${previous}`;
  const buffer = useMemo(() => new LogBuffer(), [key]);
  const stream = useRef<LogStream | null>(null);
  const canStream = previous ? state.restarted : state.started;

  useEffect(() => {
    setStreamState(null);
    if (!canStream) return;
    const s = new LogStream({
      url: (since) =>
        podLogPath(pod, {
          container,
          follow: previous ? undefined : true,
          previous: previous || undefined,
          tailLines: since || previous ? undefined : TAIL_LINES,
          timestamps: true,
          sinceTime: since ?? undefined,
        }),
      timestamps: true,
      onLine: (ts, text) => buffer.push({ ts, text }),
      resume: () => !previous && running.current,
      onState: setStreamState,
    });
    stream.current = s;
    s.start();
    return () => s.stop();
  }, [buffer, canStream]);

  // A container that (re)started: follow its new output.
  useEffect(() => {
    if (state.running) stream.current?.kick();
  }, [state.id, state.running]);

  const picker = (
    <>
      <ContainerPicker pod={pod} value={container} onChange={setContainer} />
      <label class="log-field" title={state.restarted ? 'The log of the container before its last restart' : 'The container has not restarted'}>
        <input
          type="checkbox"
          checked={previous}
          disabled={!state.restarted && !previous}
          onChange={(e) => setPrevious((e.target as HTMLInputElement).checked)}
        />{' '}
        Previous
      </label>
    </>
  );

  if (!canStream)
    return (
      <div class="logs">
        <div class="log-toolbar">{picker}</div>
        <p class="log-note" role="status">
          Container {container} has not started yet{state.reason ? ` (${state.reason})` : ''}: its log appears here once it runs.
        </p>
      </div>
    );

  const status = (
    <span role="status">
      {describeState(streamState)}
      {!state.running && state.reason && !previous ? ` · container ${state.reason}` : ''}
    </span>
  );
  return (
    <LogViewer
      buffer={buffer}
      label={`Log of ${container}`}
      filename={`${pod.metadata.name}_${container}${previous ? '_previous' : ''}.log`}
      download={(timestamps) => fetchText(podLogPath(pod, { container, previous: previous || undefined, timestamps: timestamps || undefined }))}
      toolbar={picker}
      status={status}
    />
  );
}

// ---------------------------------------------------------------------------------------------
// Merged logs of many pods.

export function MergedLogs(props: { namespace: string; selector: string; title: string } | { fn: K8sObject }) {
  if ('fn' in props) return <FunctionLogs fn={props.fn} />;
  return <SelectorLogs namespace={props.namespace} selector={props.selector} title={props.title} />;
}

/** A pod's followed containers' name as shown at the start of their lines. */
function sourceName(pod: K8sObject, container: string): string {
  return (pod.spec?.containers?.length ?? 0) > 1 ? `${pod.metadata.name}/${container}` : pod.metadata.name;
}

function SelectorLogs(props: { namespace: string; selector: string; title: string }) {
  const pods = useList(RESOURCES.pods, { namespace: props.namespace, labelSelector: props.selector });
  const buffer = useMemo(() => new LogBuffer(), [props.namespace, props.selector]);
  const streams = useRef(new Map<string, { stream: LogStream; id: string }>());
  /** The latest pods, for the streams' resume checks. */
  const latest = useRef(new Map<string, K8sObject>());

  useEffect(() => {
    const map = streams.current;
    return () => {
      map.forEach((s) => s.stream.stop());
      map.clear();
    };
  }, [buffer]);

  useEffect(() => {
    latest.current = new Map(pods.items.map((p) => [p.metadata.name, p]));
    const wanted = new Set<string>();
    for (const pod of pods.items) {
      for (const c of pod.spec?.containers ?? []) {
        const key = `${pod.metadata.uid}/${c.name}`;
        const state = containerState(pod, c.name);
        if (!state.started) continue;
        wanted.add(key);
        const known = streams.current.get(key);
        if (known) {
          if (state.running && known.id !== state.id) {
            known.id = state.id;
            known.stream.kick();
          }
          continue;
        }
        const source = sourceName(pod, c.name);
        const name = pod.metadata.name;
        const stream = new LogStream({
          url: (since) =>
            podLogPath(pod, { container: c.name, follow: true, tailLines: since ? undefined : TAIL_LINES, timestamps: true, sinceTime: since ?? undefined }),
          timestamps: true,
          onLine: (ts, text) => buffer.push({ ts, text, source }, true),
          resume: () => {
            const now = latest.current.get(name);
            return !!now && containerState(now, c.name).running;
          },
        });
        streams.current.set(key, { stream, id: state.id });
        stream.start();
      }
    }
    for (const [key, s] of streams.current)
      if (!wanted.has(key)) {
        s.stream.stop();
        streams.current.delete(key);
      }
  }, [pods.items, buffer]);

  const download = async (timestamps: boolean) => {
    const logs = await Promise.all(
      pods.items.flatMap((pod) =>
        (pod.spec?.containers ?? []).map(async (c: { name: string }) => {
          const text = await fetchText(podLogPath(pod, { container: c.name, timestamps: true })).catch(() => '');
          const source = sourceName(pod, c.name);
          return text
            .split('\n')
            .filter((l) => l)
            .map((l) => {
              const space = l.indexOf(' ');
              return { ts: l.slice(0, space), text: l.slice(space + 1), source };
            });
        }),
      ),
    );
    const lines = logs.flat().sort((a, b) => compareTimes(a.ts, b.ts));
    return lines.map((l) => `${timestamps ? `${l.ts} ` : ''}${l.source} ${l.text}\n`).join('');
  };

  const names = pods.items.map((p) => p.metadata.name).sort();
  // "Logs of web" or "web" both name the log "Log of web".
  const what = props.title.replace(/^logs? of /i, '');
  const status = (
    <span role="status">
      {pods.error ? (
        <span class="error-text">{pods.error.message}</span>
      ) : !pods.loaded ? (
        'Loading pods…'
      ) : names.length === 0 ? (
        `No pods match ${props.selector}.`
      ) : (
        <>
          Following {names.length === 1 ? '1 pod' : `${names.length} pods`}:{' '}
          {names.map((n) => (
            <span class={`log-src c${colourOf(n)}`}>{n} </span>
          ))}
        </>
      )}
    </span>
  );
  return (
    <LogViewer
      buffer={buffer}
      label={`Log of ${what}`}
      filename={`${what.replace(/[^\w.-]+/g, '_')}.log`}
      download={download}
      status={status}
    />
  );
}

/** A Function's log: the server's function log API, or (until the server has it) the pods of a
 *  Linux-image Function's Deployment. */
function FunctionLogs(props: { fn: K8sObject }) {
  const fn = props.fn;
  const namespace = fn.metadata.namespace ?? 'default';
  const name = fn.metadata.name;
  const [mode, setMode] = useState<'api' | 'pods'>('api');
  const [streamState, setStreamState] = useState<StreamState | null>(null);
  const [attempt, setAttempt] = useState(0);
  const buffer = useMemo(() => new LogBuffer(), [fn.metadata.uid]);
  const base = `${objectPath(RESOURCES.functions, namespace, name)}/log`;
  const deployments = useList(mode === 'pods' ? RESOURCES.deployments : null, { namespace, labelSelector: `wharf.dev/function=${name}` });

  useEffect(() => {
    if (mode !== 'api') return;
    let missing = false;
    let connected = false;
    const s = new LogStream({
      // Recent lines the first time; only new ones when following again after the stream ended.
      url: () => {
        const url = withQuery(base, { follow: true, tailLines: connected ? 0 : TAIL_LINES });
        connected = true;
        return url;
      },
      timestamps: false,
      onLine: (_ts, raw) => {
        const m = /^\[([^\]]+)\] ?(.*)$/.exec(raw);
        buffer.push(m ? { ts: '', text: m[2], source: m[1] } : { ts: '', text: raw });
      },
      resume: () => !missing,
      onState: (st) => {
        // A server without the function log API answers 404 (no such route) or 405.
        if (st.kind === 'error' && (st.code === 404 || st.code === 405) && buffer.total === 0) {
          missing = true;
          setMode('pods');
        } else if (!missing) setStreamState(st);
      },
    });
    s.start();
    return () => s.stop();
  }, [buffer, mode, attempt]);

  if (mode === 'pods') {
    const owned = deployments.items.find((d) => d.metadata.ownerReferences?.some((r) => r.kind === 'Function' && r.name === name));
    const labels = owned?.spec?.selector?.matchLabels as Record<string, string> | undefined;
    if (owned && labels)
      return (
        <SelectorLogs
          namespace={namespace}
          selector={Object.entries(labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(',')}
          title={name}
        />
      );
    return (
      <p class="log-note" role="status">
        {deployments.loaded
          ? 'This function has no pods: logs of Wasm functions need the server\'s function log API.'
          : 'Loading…'}
      </p>
    );
  }
  const ended = streamState?.kind === 'ended' || streamState?.kind === 'error';
  return (
    <LogViewer
      buffer={buffer}
      label={`Log of ${name}`}
      filename={`${name}.log`}
      download={() => fetchText(base)}
      hasTimestamps={false}
      status={
        <span role="status">
          {describeState(streamState)}{' '}
          {ended && (
            <button class="link" onClick={() => setAttempt((a) => a + 1)}>
              Reconnect
            </button>
          )}
        </span>
      }
    />
  );
}

// ---------------------------------------------------------------------------------------------
// Terminal.

export function Terminal(props: { pod: K8sObject; container?: string }) {
  const pod = props.pod;
  const [container, setContainer] = useContainer(pod, props.container);
  const state = containerState(pod, container);
  const runtime = containerRuntimes(pod)[container];
  const host = useRef<HTMLDivElement>(null);
  const [session, setSession] = useState(0);
  const [status, setStatus] = useState<{ kind: 'loading' | 'open' | 'ended'; text: string }>({ kind: 'loading', text: '' });
  const usable = state.running && runtime !== 'wasmtime';

  useEffect(() => {
    if (!usable || !host.current) return;
    let disposed = false;
    let dispose: (() => void) | null = null;
    setStatus({ kind: 'loading', text: 'Connecting…' });
    const url = withQuery(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${objectPath(RESOURCES.pods, pod.metadata.namespace, pod.metadata.name, 'exec')}`, {
      container,
      command: 'sh',
      stdin: true,
      stdout: true,
      stderr: true,
      tty: true,
    });
    import('./terminal')
      .then((m) => {
        if (disposed || !host.current) return;
        const t = m.openTerminal(host.current, {
          url,
          protocols: ['v5.channel.k8s.io', 'v4.channel.k8s.io', bearerProtocol() ?? ''].filter(Boolean),
          onOpen: () => !disposed && setStatus({ kind: 'open', text: 'Connected' }),
          onEnd: (text) => !disposed && setStatus({ kind: 'ended', text }),
        });
        dispose = () => t.dispose();
      })
      .catch((e: Error) => setStatus({ kind: 'ended', text: `cannot load the terminal: ${e.message}` }));
    return () => {
      disposed = true;
      dispose?.();
    };
  }, [pod.metadata.uid, container, session, usable]);

  let note: string | null = null;
  if (runtime === 'wasmtime')
    note = `Exec is for Linux containers: ${container} is a Wasm container on wasmtime, for which the node answers “cannot exec in container "${container}": exec is not supported by this runtime”.`;
  else if (!state.running) note = `Container ${container} is not running${state.reason ? ` (${state.reason})` : ''}: a terminal needs a running container.`;

  return (
    <div class="terminal-panel">
      <div class="log-toolbar">
        <ContainerPicker pod={pod} value={container} onChange={setContainer} />
        {usable && (
          <span role="status" class={status.kind === 'ended' ? 'term-ended' : 'muted'}>
            {status.kind === 'ended' ? `Session ended: ${status.text}` : status.text}
          </span>
        )}
        {usable && status.kind === 'ended' && (
          <button class="primary" onClick={() => setSession((s) => s + 1)}>
            Reconnect
          </button>
        )}
      </div>
      {note ? (
        <p class="log-note" role="status">
          {note}
        </p>
      ) : (
        <div class="terminal-host" ref={host} aria-label={`Terminal of ${container}`} role="group" key={`${container}-${session}`} />
      )}
    </div>
  );
}
