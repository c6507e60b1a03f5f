// Metrics: small dependency-free SVG charts, and the samplers behind them. Resource metrics
// (metrics.k8s.io) and the agents' Prometheus text are not watchable, so these are the
// dashboard's one poll: every 10 s while the page is visible, keeping the last 60 samples.

import type { ComponentChildren } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { get, send } from '../api/client';
import type { K8sObject } from '../api/resources';
import { RESOURCES } from '../api/resources';
import { useList } from '../api/watch';
import '../styles/metrics.css';

export const SAMPLE_INTERVAL_MS = 10_000;
export const MAX_SAMPLES = 60;

// ---- Quantities and formats ----

const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity (`250m`, `1.5`, `128Mi`, `1e3`) as a number; NaN when malformed. */
export function parseQuantity(q: string | number | undefined | null): number {
  if (q === undefined || q === null || q === '') return NaN;
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$/.exec(q.trim());
  if (!m || !(m[2] in SUFFIXES)) return NaN;
  return parseFloat(m[1]) * SUFFIXES[m[2]];
}

/** CPU cores as kubectl shows them: `250m` below one core, `1.5` above. */
export function formatCpu(cores: number): string {
  if (!Number.isFinite(cores)) return '—';
  if (cores === 0) return '0';
  if (cores < 1) return `${Math.max(1, Math.round(cores * 1000))}m`;
  return `${+cores.toFixed(2)}`;
}

/** Bytes in binary units (`512 MiB`). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : +v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Seconds as milliseconds or seconds. */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '—';
  if (s < 1) return `${+(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${+s.toFixed(2)} s`;
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '—';
  return `${+perSecond.toFixed(perSecond < 10 ? 2 : 1)}/s`;
}

// ---- Charts ----

export interface Series {
  name: string;
  /** One value per sample; null where the sample has none. */
  values: (number | null)[];
  /** A CSS class of the line (`s-0`..`s-3`), default by position. */
  tone?: string;
}

function extent(values: (number | null)[]): { min: number; max: number; last: number | null; count: number } {
  let min = Infinity;
  let max = -Infinity;
  let last: number | null = null;
  let count = 0;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    last = v;
    count++;
  }
  return { min, max, last, count };
}

/** The points of an SVG polyline for `values` in a `width`×`height` box scaled to [lo, hi]; gaps split it. */
function paths(values: (number | null)[], width: number, height: number, lo: number, hi: number, slots: number): string[] {
  const span = hi - lo || 1;
  const step = slots > 1 ? width / (slots - 1) : 0;
  const offset = slots - values.length;
  const out: string[] = [];
  let current: string[] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      if (current.length) out.push(current.join(' '));
      current = [];
      return;
    }
    const x = (i + offset) * step;
    const y = height - ((v - lo) / span) * height;
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (current.length) out.push(current.join(' '));
  return out;
}

function summary(label: string, values: (number | null)[], format: (v: number) => string): string {
  const e = extent(values);
  if (e.count === 0) return `${label}: no samples yet`;
  return `${label}: last ${format(e.last!)}, min ${format(e.min)}, max ${format(e.max)} over ${e.count} sample${e.count === 1 ? '' : 's'}`;
}

/** A tiny inline line of one value series, with its last value. */
export function Sparkline(props: { values: (number | null)[]; label: string; format?: (v: number) => string; width?: number; height?: number }) {
  const format = props.format ?? ((v: number) => String(+v.toFixed(2)));
  const width = props.width ?? 80;
  const height = props.height ?? 20;
  const e = extent(props.values);
  const lines = e.count ? paths(props.values, width, height - 2, Math.min(0, e.min), e.max, Math.max(props.values.length, 2)) : [];
  return (
    <span class="sparkline">
      <svg role="img" aria-label={summary(props.label, props.values, format)} width={width} height={height} viewBox={`0 -1 ${width} ${height}`}>
        {lines.map((points) =>
          points.includes(' ') ? (
            <polyline points={points} class="line s-0" />
          ) : (
            <circle cx={points.split(',')[0]} cy={points.split(',')[1]} r="1.5" class="dot s-0" />
          ),
        )}
      </svg>
      <span class="spark-value">{e.last === null ? '—' : format(e.last)}</span>
    </span>
  );
}

/** A line chart of one or more series sharing a scale: title, last values, min and max, a legend. */
export function LineChart(props: {
  title: string;
  series: Series[];
  format: (v: number) => string;
  /** A ceiling drawn as a dashed line (allocatable, limit). */
  ceiling?: { label: string; value: number };
  /** Seconds between samples, to say how long the chart spans. */
  intervalSeconds?: number;
  height?: number;
}) {
  const width = 300;
  const height = props.height ?? 90;
  const all = props.series.flatMap((s) => s.values);
  const e = extent(all);
  const ceiling = props.ceiling && Number.isFinite(props.ceiling.value) ? props.ceiling.value : undefined;
  // Start at zero; leave headroom, and include the ceiling only when the data comes near it.
  const hi = Math.max(e.count ? e.max * 1.15 : 1, ceiling !== undefined && e.max > ceiling * 0.5 ? ceiling * 1.05 : 0) || 1;
  const slots = Math.max(MAX_SAMPLES, ...props.series.map((s) => s.values.length));
  const span = props.intervalSeconds ? Math.round(((slots - 1) * props.intervalSeconds) / 60) : 0;
  const label = props.series
    .map((s) => summary(props.series.length > 1 ? `${props.title}, ${s.name}` : props.title, s.values, props.format))
    .join('; ');
  return (
    <figure class="chart">
      <figcaption>
        <span class="chart-title">{props.title}</span>
        <span class="chart-last">
          {props.series.map((s, i) => {
            const last = extent(s.values).last;
            return (
              <span class={`legend ${s.tone ?? `s-${i}`}`}>
                {props.series.length > 1 && <span class="swatch" aria-hidden="true" />}
                {props.series.length > 1 && `${s.name} `}
                <strong>{last === null ? '—' : props.format(last)}</strong>
              </span>
            );
          })}
        </span>
      </figcaption>
      <div class="chart-plot">
        <svg role="img" aria-label={label} viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none">
          <line x1="0" x2={width} y1={height - 0.5} y2={height - 0.5} class="axis" />
          {ceiling !== undefined && ceiling <= hi && (
            <line x1="0" x2={width} y1={height - (ceiling / hi) * height} y2={height - (ceiling / hi) * height} class="ceiling" />
          )}
          {props.series.map((s, i) =>
            paths(s.values, width, height, 0, hi, slots).map((points) =>
              points.includes(' ') ? (
                <polyline points={points} class={`line ${s.tone ?? `s-${i}`}`} />
              ) : (
                <circle cx={points.split(',')[0]} cy={points.split(',')[1]} r="2" class={`dot ${s.tone ?? `s-${i}`}`} />
              ),
            ),
          )}
        </svg>
        <span class="chart-max" aria-hidden="true">
          {props.format(hi)}
        </span>
      </div>
      <div class="chart-foot" aria-hidden="true">
        <span>{span ? `${span} min ago` : ''}</span>
        <span>
          {e.count ? `min ${props.format(e.min)} · max ${props.format(e.max)}` : 'waiting for samples…'}
          {ceiling !== undefined && ` · ${props.ceiling!.label} ${props.format(ceiling)}`}
        </span>
        <span>now</span>
      </div>
    </figure>
  );
}

// ---- Samplers ----

type Listener = () => void;

/** Takes a sample every 10 s while someone watches and the page is visible; keeps the last 60. */
class Sampler<T extends { t: number }> {
  samples: T[] = [];
  error: Error | null = null;
  version = 0;
  private listeners = new Set<Listener>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running = false;
  private lastAt = 0;

  constructor(private readonly take: (previous: T | undefined) => Promise<T>) {}

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) {
      // Samples older than the window (from an earlier visit) would be drawn as if recent.
      const oldest = Date.now() - MAX_SAMPLES * SAMPLE_INTERVAL_MS;
      if (this.samples.length && this.samples[0].t < oldest) this.samples = this.samples.filter((x) => x.t >= oldest);
      activeSamplers.add(this);
      this.schedule(Date.now() - this.lastAt >= SAMPLE_INTERVAL_MS ? 0 : SAMPLE_INTERVAL_MS - (Date.now() - this.lastAt));
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        activeSamplers.delete(this);
        if (this.timer) clearTimeout(this.timer);
        this.timer = null;
      }
    };
  }

  /** Samples now if the last sample is due (the page became visible again). */
  wake() {
    if (Date.now() - this.lastAt >= SAMPLE_INTERVAL_MS) this.schedule(0);
  }

  private schedule(delay: number) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  private async tick() {
    this.timer = null;
    if (this.listeners.size === 0) return;
    if (document.visibilityState !== 'visible') return; // wake() resumes
    if (this.running) return;
    this.running = true;
    this.lastAt = Date.now();
    try {
      const sample = await this.take(this.samples[this.samples.length - 1]);
      this.samples = [...this.samples, sample].slice(-MAX_SAMPLES);
      this.error = null;
    } catch (e) {
      this.error = e instanceof Error ? e : new Error(String(e));
    } finally {
      this.running = false;
    }
    this.version++;
    this.listeners.forEach((l) => l());
    if (this.listeners.size) this.schedule(SAMPLE_INTERVAL_MS);
  }
}

const activeSamplers = new Set<{ wake(): void }>();
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') activeSamplers.forEach((s) => s.wake());
});

const samplers = new Map<string, unknown>();

function sampler<T extends { t: number }>(key: string, take: (previous: T | undefined) => Promise<T>): Sampler<T> {
  let found = samplers.get(key) as Sampler<T> | undefined;
  if (!found) {
    found = new Sampler(take);
    samplers.set(key, found);
  }
  return found;
}

export interface Sampled<T> {
  samples: T[];
  error: Error | null;
}

function useSampler<T extends { t: number }>(s: Sampler<T> | null): Sampled<T> {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!s) return;
    setTick((t) => t + 1);
    return s.subscribe(() => setTick((t) => t + 1));
  }, [s]);
  return { samples: s?.samples ?? [], error: s?.error ?? null };
}

// ---- metrics.k8s.io ----

const METRICS_API = '/apis/metrics.k8s.io/v1beta1';

export interface UsageSample {
  /** When the sample was taken (ms since the epoch). */
  t: number;
  /** CPU in cores. */
  cpu: number;
  /** Memory in bytes. */
  memory: number;
}

export interface PodUsageSample extends UsageSample {
  containers: Record<string, { cpu: number; memory: number }>;
}

interface Usage {
  cpu?: string;
  memory?: string;
}

function usage(u: Usage | undefined): { cpu: number; memory: number } {
  return { cpu: parseQuantity(u?.cpu) || 0, memory: parseQuantity(u?.memory) || 0 };
}

/** A node's CPU and memory (NodeMetrics), sampled every 10 s. */
export function useNodeMetrics(name: string): Sampled<UsageSample> {
  const s = useMemo(
    () =>
      sampler<UsageSample>(`node/${name}`, async () => {
        const m = await get<{ usage?: Usage }>(`${METRICS_API}/nodes/${encodeURIComponent(name)}`);
        return { t: Date.now(), ...usage(m.usage) };
      }),
    [name],
  );
  return useSampler(s);
}

/** A pod's CPU and memory (PodMetrics, summed over its containers and per container), sampled every 10 s. */
export function usePodMetrics(namespace: string, name: string): Sampled<PodUsageSample> {
  const s = useMemo(
    () =>
      sampler<PodUsageSample>(`pod/${namespace}/${name}`, async () => {
        const m = await get<{ containers?: { name: string; usage?: Usage }[] }>(
          `${METRICS_API}/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
        );
        const containers: PodUsageSample['containers'] = {};
        let cpu = 0;
        let memory = 0;
        for (const c of m.containers ?? []) {
          const u = usage(c.usage);
          containers[c.name] = u;
          cpu += u.cpu;
          memory += u.memory;
        }
        return { t: Date.now(), cpu, memory, containers };
      }),
    [namespace, name],
  );
  return useSampler(s);
}

/** The latest usage of every node (the NodeMetrics list), sampled every 10 s: name → usage. */
export function useAllNodeMetrics(): { usage: Map<string, { cpu: number; memory: number }>; error: Error | null } {
  const s = useMemo(
    () =>
      sampler<{ t: number; nodes: Map<string, { cpu: number; memory: number }> }>('nodes', async () => {
        const list = await get<{ items?: { metadata: { name: string }; usage?: Usage }[] }>(`${METRICS_API}/nodes`);
        return { t: Date.now(), nodes: new Map((list.items ?? []).map((m) => [m.metadata.name, usage(m.usage)])) };
      }),
    [],
  );
  const { samples, error } = useSampler(s);
  return { usage: samples[samples.length - 1]?.nodes ?? new Map(), error };
}

// ---- The agents' Prometheus text: function latency ----

/** A function's counters summed over the scraped nodes. */
export interface FunctionCounters {
  requests: number;
  count: number;
  sum: number;
  /** Cumulative bucket counts by upper bound (Infinity last). */
  buckets: Map<number, number>;
}

/** One Prometheus text sample line: name, labels, value. */
export function parsePrometheusLine(line: string): { name: string; labels: Record<string, string>; value: number } | null {
  if (!line || line.startsWith('#')) return null;
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
  if (!m) return null;
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let l: RegExpExecArray | null;
  while ((l = re.exec(m[2] ?? ''))) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : parseFloat(m[3]);
  return { name: m[1], labels, value };
}

/** Adds the `wharf_function_*` counters of one node's metrics text into `into` (key `namespace/function`). */
export function parseFunctionMetrics(text: string, into: Map<string, FunctionCounters> = new Map()): Map<string, FunctionCounters> {
  for (const line of text.split('\n')) {
    if (!line.startsWith('wharf_function_')) continue;
    const s = parsePrometheusLine(line);
    if (!s || s.labels.namespace === undefined || s.labels.function === undefined) continue;
    const key = `${s.labels.namespace}/${s.labels.function}`;
    let c = into.get(key);
    if (!c) into.set(key, (c = { requests: 0, count: 0, sum: 0, buckets: new Map() }));
    switch (s.name) {
      case 'wharf_function_requests_total':
        c.requests += s.value;
        break;
      case 'wharf_function_request_duration_seconds_count':
        c.count += s.value;
        break;
      case 'wharf_function_request_duration_seconds_sum':
        c.sum += s.value;
        break;
      case 'wharf_function_request_duration_seconds_bucket': {
        const le = s.labels.le === '+Inf' ? Infinity : parseFloat(s.labels.le);
        if (!Number.isNaN(le)) c.buckets.set(le, (c.buckets.get(le) ?? 0) + s.value);
        break;
      }
    }
  }
  return into;
}

/** The q-quantile of cumulative `buckets` (as Prometheus' histogram_quantile: linear within a bucket). */
export function quantile(q: number, buckets: Map<number, number>): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = bounds.length ? buckets.get(bounds[bounds.length - 1])! : 0;
  if (!total) return NaN;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of bounds) {
    const count = buckets.get(b)!;
    if (count >= rank) {
      if (b === Infinity) return lower; // slower than every bound: the highest finite one
      const inBucket = count - below;
      return inBucket > 0 ? lower + ((b - lower) * (rank - below)) / inBucket : b;
    }
    lower = b;
    below = count;
  }
  return lower;
}

/** The change of cumulative buckets between two scrapes (counters that went back count from zero). */
function bucketDelta(now: Map<number, number>, before: Map<number, number> | undefined): Map<number, number> {
  const out = new Map<number, number>();
  for (const [le, v] of now) {
    const prev = before?.get(le) ?? 0;
    out.set(le, v >= prev ? v - prev : v);
  }
  return out;
}

export interface Scrape {
  t: number;
  functions: Map<string, FunctionCounters>;
  /** Nodes whose metrics could not be read, with why. */
  failed: string[];
}

/** Ready nodes, for the scrape; set by the hooks from their live node list. */
let readyNodes: string[] = [];

const scrape = () =>
  sampler<Scrape>('scrape', async () => {
    const nodes = readyNodes;
    const functions = new Map<string, FunctionCounters>();
    const failed: string[] = [];
    let firstError: Error | null = null;
    await Promise.all(
      nodes.map(async (node) => {
        try {
          const response = await send('GET', `/api/v1/nodes/${encodeURIComponent(node)}/proxy/metrics`, { accept: 'text/plain' });
          parseFunctionMetrics(await response.text(), functions);
        } catch (e) {
          failed.push(`${node}: ${(e as Error).message}`);
          firstError ??= e as Error;
        }
      }),
    );
    if (nodes.length && failed.length === nodes.length) throw firstError!;
    return { t: Date.now(), functions, failed };
  });

export interface LatencySample {
  t: number;
  /** Seconds; NaN when no request was answered between the two scrapes. */
  p50: number;
  p99: number;
  /** Requests per second since the scrape before. */
  rate: number;
  /** Requests counted by the scraped gateways (since they started). */
  requests: number;
}

function isReady(node: K8sObject): boolean {
  return (node.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
}

/** A function's p50/p99 latency and request rate from the Ready nodes' gateways, sampled every 10 s. */
export function useFunctionLatency(namespace: string, name: string): Sampled<LatencySample> & { failed: string[] } {
  const nodes = useList(RESOURCES.nodes);
  readyNodes = nodes.items.filter(isReady).map((n) => n.metadata.name);
  const s = useMemo(scrape, []);
  const { samples: scrapes, error } = useSampler(nodes.loaded ? s : null);
  const key = `${namespace}/${name}`;
  const samples = useMemo(() => {
    const out: LatencySample[] = [];
    for (let i = 1; i < scrapes.length; i++) {
      const now = scrapes[i].functions.get(key);
      const before = scrapes[i - 1].functions.get(key);
      const seconds = (scrapes[i].t - scrapes[i - 1].t) / 1000;
      const requests = now?.requests ?? 0;
      const delta = requests >= (before?.requests ?? 0) ? requests - (before?.requests ?? 0) : requests;
      const buckets = bucketDelta(now?.buckets ?? new Map(), before?.buckets);
      out.push({ t: scrapes[i].t, p50: quantile(0.5, buckets), p99: quantile(0.99, buckets), rate: seconds > 0 ? delta / seconds : 0, requests });
    }
    return out;
  }, [scrapes, key]);
  return { samples, error, failed: scrapes[scrapes.length - 1]?.failed ?? [] };
}

// ---- Panels (the Metrics tabs) ----

function Unavailable(props: { error: Error }) {
  return (
    <div class="metrics-unavailable" role="status">
      metrics not available: {props.error.message}
    </div>
  );
}

function MetricsPanel(props: { error: Error | null; empty: boolean; children: ComponentChildren; note?: ComponentChildren }) {
  return (
    <div class="metrics-panel">
      {props.error && <Unavailable error={props.error} />}
      {!(props.error && props.empty) && <div class="charts">{props.children}</div>}
      <p class="muted metrics-note">
        Sampled every {SAMPLE_INTERVAL_MS / 1000} s while this page is visible; the last {MAX_SAMPLES} samples.{props.note}
      </p>
    </div>
  );
}

function sum(values: (number | undefined)[]): number {
  return values.reduce<number>((a, v) => a + (v ?? 0), 0);
}

/** A pod's limits (cpu cores, memory bytes) when every container sets one. */
function podLimits(pod: K8sObject): { cpu?: number; memory?: number } {
  const containers: { resources?: { limits?: Usage } }[] = pod.spec?.containers ?? [];
  const all = (k: 'cpu' | 'memory') =>
    containers.length && containers.every((c) => c.resources?.limits?.[k])
      ? sum(containers.map((c) => parseQuantity(c.resources!.limits![k])))
      : undefined;
  return { cpu: all('cpu'), memory: all('memory') };
}

type Ceiling = { label: string; value: number } | undefined;

/** The CPU and memory charts of a pod or a node, each against its ceiling (limit, allocatable). */
function UsageCharts(props: { samples: { cpu: number | null; memory: number | null }[]; cpu: Ceiling; memory: Ceiling }) {
  return (
    <>
      <LineChart
        title="CPU"
        series={[{ name: 'CPU', values: props.samples.map((s) => s.cpu) }]}
        format={formatCpu}
        ceiling={props.cpu}
        intervalSeconds={SAMPLE_INTERVAL_MS / 1000}
      />
      <LineChart
        title="Memory"
        series={[{ name: 'Memory', values: props.samples.map((s) => s.memory), tone: 's-1' }]}
        format={formatBytes}
        ceiling={props.memory}
        intervalSeconds={SAMPLE_INTERVAL_MS / 1000}
      />
    </>
  );
}

export function PodMetricsPanel(props: { pod: K8sObject }) {
  const { namespace = 'default', name } = props.pod.metadata;
  const { samples, error } = usePodMetrics(namespace, name);
  const limits = podLimits(props.pod);
  const last = samples[samples.length - 1];
  const names = Object.keys(last?.containers ?? {});
  return (
    <MetricsPanel error={error} empty={samples.length === 0}>
      <UsageCharts
        samples={samples}
        cpu={limits.cpu ? { label: 'limit', value: limits.cpu } : undefined}
        memory={limits.memory ? { label: 'limit', value: limits.memory } : undefined}
      />
      {names.length > 1 && (
        <table class="metrics-containers" aria-label="Container usage">
          <thead>
            <tr>
              <th>Container</th>
              <th>CPU</th>
              <th>Memory</th>
            </tr>
          </thead>
          <tbody>
            {names.map((c) => (
              <tr key={c}>
                <td>{c}</td>
                <td>
                  <Sparkline label={`CPU of ${c}`} values={samples.map((s) => s.containers[c]?.cpu ?? null)} format={formatCpu} />
                </td>
                <td>
                  <Sparkline label={`Memory of ${c}`} values={samples.map((s) => s.containers[c]?.memory ?? null)} format={formatBytes} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </MetricsPanel>
  );
}

export function NodeMetricsPanel(props: { node: K8sObject }) {
  const { samples, error } = useNodeMetrics(props.node.metadata.name);
  const allocatable = props.node.status?.allocatable ?? {};
  return (
    <MetricsPanel error={error} empty={samples.length === 0}>
      <UsageCharts
        samples={samples}
        cpu={{ label: 'allocatable', value: parseQuantity(allocatable.cpu) }}
        memory={{ label: 'allocatable', value: parseQuantity(allocatable.memory) }}
      />
    </MetricsPanel>
  );
}

export function FunctionMetricsPanel(props: { fn: K8sObject }) {
  const { namespace = 'default', name } = props.fn.metadata;
  const { samples, error, failed } = useFunctionLatency(namespace, name);
  return (
    <MetricsPanel
      error={error}
      empty={samples.length === 0}
      note={failed.length > 0 ? ` Some nodes did not answer: ${failed.join('; ')}.` : samples.length === 0 ? ' Rates need two samples.' : undefined}
    >
      <LineChart
        title="Latency"
        series={[
          { name: 'p50', values: samples.map((s) => (Number.isNaN(s.p50) ? null : s.p50)) },
          { name: 'p99', values: samples.map((s) => (Number.isNaN(s.p99) ? null : s.p99)), tone: 's-2' },
        ]}
        format={formatSeconds}
        intervalSeconds={SAMPLE_INTERVAL_MS / 1000}
      />
      <LineChart
        title="Requests"
        series={[{ name: 'Requests', values: samples.map((s) => s.rate), tone: 's-1' }]}
        format={formatRate}
        intervalSeconds={SAMPLE_INTERVAL_MS / 1000}
      />
    </MetricsPanel>
  );
}
