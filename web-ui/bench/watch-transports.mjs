// Measures the dashboard's two watch transports in one run against a running `wharf server`:
// `fetch` (one streaming request per watch; over HTTP/2 they share a connection) and `mux` (every
// watch over one WebSocket to /dashboard/v1/watch). For each, a fresh headless Chromium opens
// WATCHES watches (4 kinds × 2 namespaces) through the real transport modules of app/api/, while
// this script PATCHes those objects at RATE writes/s for SECONDS s, and reports: delivery latency
// (write sent / write acknowledged → event seen in the page) p50/p99, events/s delivered, events
// lost, TCP connections the browser holds to the server, the page's JS heap after GC, and the
// server's RSS and CPU time.
//
//   WHARF_URL=https://127.0.0.1:PORT WHARF_TOKEN=... WHARF_PID=<server pid> \
//     node web-ui/bench/watch-transports.mjs [--seconds 30] [--rate 200] [--order fetch,mux]

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { build } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    rate: { type: 'string', default: '200' },
    order: { type: 'string', default: 'fetch,mux' },
    objects: { type: 'string', default: '5' },
  },
});
const URL = (process.env.WHARF_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.WHARF_TOKEN ?? '';
const PID = process.env.WHARF_PID ?? '';
if (!URL || !TOKEN) throw new Error('set WHARF_URL and WHARF_TOKEN (and WHARF_PID for the server RSS)');
const PORT = new globalThis.URL(URL).port;
const SECONDS = Number(args.seconds);
const RATE = Number(args.rate);
const OBJECTS = Number(args.objects);
const NAMESPACES = ['bench-watch-a', 'bench-watch-b'];
const KINDS = ['configmaps', 'secrets', 'serviceaccounts', 'events'];
const TARGETS = NAMESPACES.flatMap((ns) => KINDS.map((kind) => ({ ns, kind })));

const agent = new https.Agent({ keepAlive: true, maxSockets: 16, rejectUnauthorized: false });

function call(method, path, body, contentType = 'application/json') {
  return new Promise((resolveCall, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      `${URL}${path}`,
      {
        method,
        agent,
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          Accept: 'application/json',
          ...(data ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) } : {}),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolveCall({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function object(kind, ns, name) {
  const metadata = { name, namespace: ns };
  if (kind === 'configmaps') return { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { a: 'b' } };
  if (kind === 'secrets') return { apiVersion: 'v1', kind: 'Secret', metadata, stringData: { a: 'b' } };
  if (kind === 'serviceaccounts') return { apiVersion: 'v1', kind: 'ServiceAccount', metadata };
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata,
    involvedObject: { kind: 'ConfigMap', namespace: ns, name: 'obj-0', apiVersion: 'v1' },
    reason: 'Bench',
    message: 'watch transport benchmark',
    type: 'Normal',
    count: 1,
  };
}

async function setup() {
  for (const ns of NAMESPACES) {
    await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    for (const kind of KINDS)
      for (let i = 0; i < OBJECTS; i++) {
        const r = await call('POST', `/api/v1/namespaces/${ns}/${kind}`, object(kind, ns, `obj-${i}`));
        if (r.status !== 201 && r.status !== 409) throw new Error(`create ${kind} ${ns}/obj-${i}: ${r.status} ${r.body}`);
      }
  }
}

/** The transports' code, bundled from app/api/ by Vite into one script for the page. */
async function bundle() {
  const out = await build({
    configFile: false,
    root: resolve(here, '..'),
    logLevel: 'warn',
    build: {
      write: false,
      minify: false,
      lib: { entry: resolve(here, 'transports-entry.js'), formats: ['iife'], name: 'benchTransports' },
    },
  });
  const result = Array.isArray(out) ? out[0] : out;
  return result.output[0].code;
}

function serverSample() {
  if (!PID) return { rss: NaN, cpu: NaN };
  const status = readFileSync(`/proc/${PID}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) * 1024;
  const stat = readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
  const cpu = (Number(stat[11]) + Number(stat[12])) / 100;
  return { rss, cpu };
}

/** Established TCP connections from Chromium to the server's port. */
function browserConnections() {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${PORT} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /chrom/i.test(l)).length;
}

const quantile = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

async function measure(name, code) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--enable-precise-memory-info'],
  });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    // Why a request or socket failed, as Chromium's network stack says it.
    const networkFailures = [];
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.loadingFailed', (e) => !e.canceled && networkFailures.push(e.errorText));
    cdp.on('Network.webSocketClosed', () => networkFailures.push('WebSocket closed'));
    await page.goto(`${URL}/livez`);
    await page.evaluate((t) => sessionStorage.setItem('wharf.token', t), TOKEN);
    await page.addScriptTag({ content: code });
    const paths = TARGETS.map(({ ns, kind }) => `/api/v1/namespaces/${ns}/${kind}`);
    // List, then watch from the list's version, and resume from the last version seen when a watch ends (after
    // 500 ms when it failed), as the informers do.
    await page.evaluate(
      async ({ name, paths, token }) => {
        const transport = window.benchTransports.transports[name];
        const seen = [];
        const state = { seen, events: 0, errors: [], resumes: 0 };
        window.benchState = state;
        const follow = (path, rv) => {
          transport.watch(
            `${path}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true`,
            (event) => {
              const at = performance.timeOrigin + performance.now();
              state.events++;
              const meta = event.object?.metadata;
              if (meta?.resourceVersion) rv = meta.resourceVersion;
              const seq = meta?.annotations?.['bench/seq'];
              if (seq && event.type !== 'BOOKMARK') seen.push(Number(seq), at);
            },
            (error) => {
              if (error) state.errors.push(String(error.message));
              state.resumes++;
              setTimeout(() => follow(path, rv), error ? 500 : 0);
            },
          );
        };
        await Promise.all(
          paths.map(async (path) => {
            const list = await (await fetch(path, { headers: { Authorization: `Bearer ${token}` } })).json();
            follow(path, list.metadata.resourceVersion);
          }),
        );
      },
      { name, paths, token: TOKEN },
    );
    await page.waitForTimeout(500);
    const before = serverSample();
    const sent = [];
    const acked = [];
    let seq = 0;
    let failed = 0;
    let peakConnections = 0;
    let peakRss = 0;
    const started = performance.now();
    const inflight = new Set();
    const sampler = setInterval(() => {
      peakConnections = Math.max(peakConnections, browserConnections());
      peakRss = Math.max(peakRss, serverSample().rss);
    }, 1000);
    while (performance.now() - started < SECONDS * 1000) {
      const due = started + (seq * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (inflight.size >= 64) await Promise.race(inflight);
      const n = ++seq;
      const { ns, kind } = TARGETS[n % TARGETS.length];
      const path = `/api/v1/namespaces/${ns}/${kind}/obj-${Math.floor(n / TARGETS.length) % OBJECTS}`;
      sent[n] = performance.timeOrigin + performance.now();
      const p = call('PATCH', path, { metadata: { annotations: { 'bench/seq': String(n) } } }, 'application/merge-patch+json')
        .then((r) => {
          acked[n] = performance.timeOrigin + performance.now();
          if (r.status !== 200) failed++;
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - started) / 1000;
    await page.waitForTimeout(2000);
    clearInterval(sampler);
    const after = serverSample();
    const pageState = await page.evaluate(() => window.benchState);
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    const fromSent = [];
    const fromAck = [];
    const got = new Set();
    for (let i = 0; i < pageState.seen.length; i += 2) {
      const n = pageState.seen[i];
      if (got.has(n) || !acked[n]) continue;
      got.add(n);
      fromSent.push(pageState.seen[i + 1] - sent[n]);
      fromAck.push(pageState.seen[i + 1] - acked[n]);
    }
    fromSent.sort((a, b) => a - b);
    fromAck.sort((a, b) => a - b);
    return {
      transport: name,
      writes: seq,
      writesPerSecond: seq / elapsed,
      failedWrites: failed,
      delivered: got.size,
      lost: seq - failed - got.size,
      eventsPerSecond: pageState.events / elapsed,
      sentToSeenMs: { p50: quantile(fromSent, 0.5), p99: quantile(fromSent, 0.99) },
      ackToSeenMs: { p50: quantile(fromAck, 0.5), p99: quantile(fromAck, 0.99) },
      tcpConnections: peakConnections,
      pageHeapMiB: heap.usedSize / 2 ** 20,
      serverRssMiB: peakRss / 2 ** 20,
      serverCpuSeconds: after.cpu - before.cpu,
      watchResumes: pageState.resumes,
      watchErrors: [...new Set(pageState.errors)],
      networkFailures: [...new Set(networkFailures)],
    };
  } finally {
    await browser.close();
  }
}

await setup();
const code = await bundle();
const results = [];
for (const name of args.order.split(',')) {
  const r = await measure(name, code);
  results.push(r);
  console.log(JSON.stringify(r));
}
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
console.log(
  `\n| transport | writes/s | delivered/lost | events/s | sent→seen p50/p99 ms | ack→seen p50/p99 ms | TCP conns | page heap MiB | server RSS MiB | server CPU s | watch resumes |`,
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.transport} | ${f(r.writesPerSecond)} | ${r.delivered}/${r.lost} | ${f(r.eventsPerSecond)} | ${f(r.sentToSeenMs.p50, 2)} / ${f(r.sentToSeenMs.p99, 2)} | ${f(r.ackToSeenMs.p50, 2)} / ${f(r.ackToSeenMs.p99, 2)} | ${r.tcpConnections} | ${f(r.pageHeapMiB)} | ${f(r.serverRssMiB)} | ${f(r.serverCpuSeconds, 2)} | ${r.watchResumes} |`,
  );
}
agent.destroy();
