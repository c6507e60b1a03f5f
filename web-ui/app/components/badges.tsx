// Small markers: runtime badges, status pills, "managed by", ages.

import { useEffect, useState } from 'preact/hooks';
import type { K8sObject } from '../api/resources';

export type Runtime = 'wasmtime' | 'youki';

/** The runtime of each of a pod's containers: from the container ID's scheme once it runs
 *  (`wasmtime://`, `youki://`), else the pod's runtimeClassName, else unknown. */
export function containerRuntimes(pod: K8sObject): Record<string, Runtime | undefined> {
  const out: Record<string, Runtime | undefined> = {};
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const byClass: Runtime | undefined = /wasm/i.test(pod.spec?.runtimeClassName ?? '') ? 'wasmtime' : undefined;
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    const scheme = statuses.find((s: any) => s.name === c.name)?.containerID?.split('://')[0];
    out[c.name] = scheme === 'wasmtime' || scheme === 'youki' ? scheme : byClass;
  }
  return out;
}

export function RuntimeBadge(props: { runtime?: Runtime }) {
  if (!props.runtime) return <span class="badge muted" title="Runtime not known yet">?</span>;
  const wasm = props.runtime === 'wasmtime';
  return (
    <span class={`badge ${wasm ? 'wasm' : 'linux'}`} title={wasm ? 'WebAssembly on wasmtime' : 'Linux container on youki'}>
      {wasm ? 'Wasm' : 'Linux'}
    </span>
  );
}

/** A status word coloured by what it means. */
export function Pill(props: { text: string; tone?: 'ok' | 'warn' | 'bad' | 'info' | 'muted' }) {
  return <span class={`pill ${props.tone ?? toneOf(props.text)}`}>{props.text}</span>;
}

export function toneOf(text: string): 'ok' | 'warn' | 'bad' | 'info' | 'muted' {
  if (/^(Running|Ready|True|Succeeded|Complete|Active|Bound|Normal|Available)$/i.test(text)) return 'ok';
  if (/^(Pending|ContainerCreating|Terminating|Unknown|SchedulingDisabled|Suspended|Progressing|ScaledToZero)$/i.test(text)) return 'warn';
  if (/(Fail|Error|BackOff|NotReady|Warning|Evicted|OOM|False)/i.test(text)) return 'bad';
  return 'info';
}

/** The STATUS column of `kubectl get pods`, computed as kubectl's printer does. */
export function podStatus(pod: K8sObject): string {
  const status = pod.status ?? {};
  let reason: string = status.reason || status.phase || 'Pending';
  let initializing = false;
  const inits: any[] = status.initContainerStatuses ?? [];
  const initCount = pod.spec?.initContainers?.length ?? 0;
  for (let i = 0; i < inits.length; i++) {
    const c = inits[i];
    const t = c.state?.terminated;
    const w = c.state?.waiting;
    if (t && t.exitCode === 0) continue;
    if (c.started && c.state?.running && pod.spec?.initContainers?.[i]?.restartPolicy === 'Always') continue;
    if (t) reason = t.reason ? `Init:${t.reason}` : t.signal ? `Init:Signal:${t.signal}` : `Init:ExitCode:${t.exitCode}`;
    else if (w?.reason && w.reason !== 'PodInitializing') reason = `Init:${w.reason}`;
    else reason = `Init:${i}/${initCount}`;
    initializing = true;
    break;
  }
  if (!initializing) {
    let hasRunning = false;
    const containers: any[] = status.containerStatuses ?? [];
    for (let i = containers.length - 1; i >= 0; i--) {
      const c = containers[i];
      const w = c.state?.waiting;
      const t = c.state?.terminated;
      if (w?.reason) reason = w.reason;
      else if (t?.reason) reason = t.reason;
      else if (t) reason = t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`;
      else if (c.ready && c.state?.running) hasRunning = true;
    }
    if (reason === 'Completed' && hasRunning) {
      const ready = (status.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
      reason = ready ? 'Running' : 'NotReady';
    }
  }
  if (pod.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return reason;
}

/** Who manages an object: its controller owner, or the last field manager. */
export function managedBy(o: K8sObject): string | undefined {
  const owner = o.metadata.ownerReferences?.find((r) => r.controller);
  if (owner) return `${owner.kind}/${owner.name}`;
  return o.metadata.labels?.['app.kubernetes.io/managed-by'];
}

function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

const ticks = new Set<() => void>();
setInterval(() => ticks.forEach((t) => t()), 5000);

/** Time since `since` (an RFC 3339 time), kept current. */
export function Age(props: { since?: string }) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = () => setTick((n) => n + 1);
    ticks.add(t);
    return () => void ticks.delete(t);
  }, []);
  if (!props.since) return <span class="muted">—</span>;
  const at = new Date(props.since);
  return <time dateTime={props.since} title={at.toLocaleString()}>{formatAge(Date.now() - at.getTime())}</time>;
}

export function ageSort(o: K8sObject): number {
  return -(Date.parse(o.metadata.creationTimestamp ?? '') || 0);
}
