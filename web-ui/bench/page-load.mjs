// Page-load benchmark of the dashboard against a `wharf server --no-agent` holding many pods (Pending: no node).
//
//   node web-ui/bench/page-load.mjs [--pods 5000] [--namespaces 10] [--loads 5] [--memory-seconds 600] [--rate 50]
//                                   [--sample-seconds 30] [--settle-seconds 20] [--port 17108] [--wharf BIN] [--keep]
// (default BIN: target/release/wharf when built after the dashboard existed, else target/debug/wharf)
//
// Measures, for the Overview and the Pods view (all namespaces), over --loads cold loads (a fresh browser context each:
// empty cache and storage; the token is put in sessionStorage so no sign-in form is timed):
//   FCP          first contentful paint (Paint Timing)
//   first data   the first row (Pods) / the pods card's count (Overview) in the DOM
//   all data     the table holds every pod (aria-rowcount) / the pods card counts every pod
//   TTI          after all data, the end of the last long task once none came for 500 ms (PerformanceObserver longtask)
// all from navigation start, median and range. Then the bundle as served (gzip bytes: what the index loads, and every
// chunk reachable from it), `kubectl get pods -A` (and -o wide) wall time for the same pods as the peer, and a memory run:
// the Pods view open while a writer patches pods at --rate patches/s for --memory-seconds, the page's JS heap
// (CDP Performance.getMetrics JSHeapUsedSize) sampled every 30 s.
// Needs: Debian's /usr/bin/chromium, web-ui/node_modules (npm ci), kubectl (KUBECTL or /usr/bin/kubectl).

import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request, Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: flags } = parseArgs({
  options: {
    pods: { type: 'string', default: '5000' },
    namespaces: { type: 'string', default: '10' },
    loads: { type: 'string', default: '5' },
    'memory-seconds': { type: 'string', default: '600' },
    'sample-seconds': { type: 'string', default: '30' },
    rate: { type: 'string', default: '50' },
    'settle-seconds': { type: 'string', default: '20' },
    port: { type: 'string', default: '17108' },
    wharf: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const PODS = Number(flags.pods);
const NAMESPACES = Number(flags.namespaces);
const LOADS = Number(flags.loads);
const MEMORY_SECONDS = Number(flags['memory-seconds']);
const SAMPLE_SECONDS = Number(flags['sample-seconds']);
const RATE = Number(flags.rate);
const SETTLE_SECONDS = Number(flags['settle-seconds']);
const KUBECTL = process.env.KUBECTL || '/usr/bin/kubectl';
const CHROMIUM = '/usr/bin/chromium';

function wharfBinary() {
  if (flags.wharf) return { bin: resolve(flags.wharf), build: 'as given' };
  // A release binary built before the dashboard existed (web-ui/src/lib.rs) serves no /ui/: use the debug one then.
  const release = join(repo, 'target/release/wharf');
  const dashboardSince = statSync(join(repo, 'web-ui/src/lib.rs')).mtimeMs;
  if (existsSync(release) && statSync(release).mtimeMs >= dashboardSince) return { bin: release, build: 'release' };
  const why = existsSync(release) ? 'target/release/wharf predates the dashboard' : 'no target/release/wharf';
  return { bin: join(repo, 'target/debug/wharf'), build: `debug (${why})` };
}

const log = (...a) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => `${Math.round(x)} ms`;
const kib = (x) => `${(x / 1024).toFixed(1)} KiB`;
const mib = (x) => `${(x / 1048576).toFixed(1)} MiB`;

// ---- the server ----

async function startServer(bin) {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-bench-page-'));
  const child = spawn(bin, ['server', '--no-agent', '--data-dir', dir, '--listen', `127.0.0.1:${flags.port}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('wharf server printed no URL within 30 s')), 30_000);
    child.on('exit', (code) => reject(new Error(`wharf server exited (${code})`)));
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/Wharf API server listening on (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
  });
  child.stdout.resume();
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const ca = readFileSync(join(dir, 'pki/ca.crt'));
  return { child, dir, url, token, ca, kubeconfig: join(dir, 'kubeconfig.yaml') };
}

/** A small HTTPS client with the admin token: {status, body (Buffer), headers}. */
function client(server, maxSockets = 32) {
  const agent = new Agent({ keepAlive: true, maxSockets, ca: server.ca });
  const base = new URL(server.url);
  return (method, path, { body, contentType = 'application/json', headers = {} } = {}) =>
    new Promise((resolveRes, reject) => {
      const req = request(
        {
          agent,
          host: base.hostname,
          port: base.port,
          method,
          path,
          headers: {
            authorization: `Bearer ${server.token}`,
            ...(body ? { 'content-type': contentType } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolveRes({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
}

/** Runs `tasks` (functions returning promises) with at most `concurrency` at once. */
async function pool(tasks, concurrency) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

async function createPods(http) {
  const start = performance.now();
  const namespaces = Array.from({ length: NAMESPACES }, (_, i) => `bench-${i}`);
  for (const ns of namespaces) {
    const r = await http('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
    if (r.status >= 300 && r.status !== 409) throw new Error(`create namespace ${ns}: ${r.status} ${r.body}`);
  }
  const tasks = Array.from({ length: PODS }, (_, i) => async () => {
    const ns = namespaces[i % NAMESPACES];
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `pod-${String(i).padStart(5, '0')}`, namespace: ns, labels: { app: `app-${i % 50}`, bench: 'page' } },
      spec: { containers: [{ name: 'main', image: i % 2 ? 'ticker:v1' : 'busybox:v1', command: i % 2 ? undefined : ['sleep', '3600'] }] },
    };
    const r = await http('POST', `/api/v1/namespaces/${ns}/pods`, { body: pod });
    if (r.status >= 300 && r.status !== 409) throw new Error(`create pod: ${r.status} ${r.body}`);
  });
  await pool(tasks, 32);
  return performance.now() - start;
}

// ---- kubectl, the peer ----

function timeKubectl(server, args) {
  return new Promise((resolveTime, reject) => {
    const start = performance.now();
    execFile(KUBECTL, args, { env: { ...process.env, KUBECONFIG: server.kubeconfig }, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr}`));
      else resolveTime({ ms: performance.now() - start, lines: stdout.split('\n').filter(Boolean).length });
    });
  });
}

// ---- the bundle ----

async function bundleSizes(http) {
  const res = await http('GET', '/ui/');
  const index = res.body.toString();
  if (res.status !== 200 || !index.includes('<script')) throw new Error(`this wharf serves no dashboard at /ui/ (${res.status}): pass --wharf`);
  const initial = new Set();
  for (const m of index.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)) initial.add(new URL(m[1], 'https://x/ui/').pathname);
  const gz = async (path) => {
    const r = await http('GET', path, { headers: { 'accept-encoding': 'gzip' } });
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    return { bytes: r.body.length, encoding: r.headers['content-encoding'] ?? 'identity', text: r.headers['content-encoding'] ? null : r.body.toString() };
  };
  const plain = async (path) => (await http('GET', path)).body.toString();
  const sizes = new Map();
  const queue = [...initial];
  while (queue.length) {
    const path = queue.shift();
    if (sizes.has(path)) continue;
    sizes.set(path, await gz(path));
    if (path.endsWith('.js')) {
      const text = await plain(path);
      const dir = path.slice(0, path.lastIndexOf('/') + 1);
      for (const m of text.matchAll(/["'`](?:\.\/|\/ui\/assets\/|assets\/)([\w.-]+\.(?:js|css))["'`]/g)) {
        const target = m[0].includes('assets/') && !m[0].includes('./') ? `/ui/assets/${m[1]}` : dir + m[1];
        if (!sizes.has(target)) queue.push(target);
      }
    }
  }
  const sum = (paths) => paths.reduce((a, p) => a + sizes.get(p).bytes, 0);
  const all = [...sizes.keys()];
  return {
    indexBytes: (await gz('/ui/')).bytes,
    initial: [...initial].map((p) => ({ path: p, ...sizes.get(p) })),
    initialBytes: sum([...initial]),
    allBytes: sum(all),
    files: all.length,
    encodings: [...new Set([...sizes.values()].map((s) => s.encoding))],
  };
}

// ---- the page ----

function launch() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

// What shows data: an element matching `sel` (whose digits, when `digits` is given, read that number).
const VIEWS = {
  overview: {
    path: '/ui/',
    first: { sel: '[aria-labelledby="card-pods"] .stat' },
    all: () => ({ sel: '[aria-labelledby="card-pods"] .stat', digits: String(PODS) }),
  },
  pods: {
    path: '/ui/workloads/pods',
    first: { sel: 'table[aria-label="Pods"] tbody tr' },
    all: () => ({ sel: `table[aria-label="Pods"][aria-rowcount="${PODS + 1}"]` }),
  },
};

/** In the page: whether `probe` ({sel, digits?}) matches now. */
const matches = (probe) => {
  const el = document.querySelector(probe.sel);
  return !!el && (!probe.digits || el.textContent.replace(/\D/g, '') === probe.digits);
};

async function newPage(browser, server) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 900 }, colorScheme: 'light' });
  await context.addInitScript(
    ([token]) => {
      sessionStorage.setItem('wharf.token', token);
      localStorage.setItem('wharf.namespace', '*');
      localStorage.setItem('wharf.theme', 'light');
    },
    [server.token],
  );
  return { context, page: await context.newPage() };
}

async function coldLoad(browser, server, view) {
  const { context, page } = await newPage(browser, server);
  try {
    await page.addInitScript(
      ([first, all, matchesSource]) => {
        const matches = (0, eval)(matchesSource);
        const b = (window.__bench = { longEnd: 0, longTasks: 0, first: null, all: null });
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            b.longTasks++;
            b.longEnd = Math.max(b.longEnd, e.startTime + e.duration);
          }
        }).observe({ type: 'longtask', buffered: true });
        const check = () => {
          if (b.first === null && matches(first)) b.first = performance.now();
          if (b.all === null && matches(all)) b.all = performance.now();
        };
        new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
      },
      [view.first, view.all(), matches.toString()],
    );
    await page.goto(server.url + view.path);
    await page.waitForFunction(() => window.__bench.all !== null, null, { timeout: 180_000, polling: 100 });
    let result;
    for (;;) {
      result = await page.evaluate(() => {
        const b = window.__bench;
        const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null;
        return { now: performance.now(), fcp, first: b.first, all: b.all, longEnd: b.longEnd, longTasks: b.longTasks };
      });
      const quietSince = Math.max(result.all, result.longEnd);
      if (result.now - quietSince >= 500) {
        result.tti = quietSince;
        break;
      }
      await sleep(100);
    }
    return result;
  } finally {
    await context.close();
  }
}

async function heapUsed(cdp) {
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
}

async function memoryRun(browser, server, http) {
  const { context, page } = await newPage(browser, server);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.goto(server.url + VIEWS.pods.path);
  await page.locator(VIEWS.pods.all().sel).waitFor({ timeout: 180_000 });
  await sleep(2000);
  const samples = [{ t: 0, heap: await heapUsed(cdp) }];
  log(`memory run: ${MEMORY_SECONDS} s at ${RATE} patches/s; heap at start ${mib(samples[0].heap)}`);
  let sent = 0;
  let failed = 0;
  let inFlight = 0;
  const start = performance.now();
  const end = start + MEMORY_SECONDS * 1000;
  const writer = (async () => {
    while (performance.now() < end) {
      const due = start + (sent * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (inFlight >= 200) {
        await sleep(5);
        continue;
      }
      const i = sent % PODS;
      const ns = `bench-${i % NAMESPACES}`;
      const name = `pod-${String(i).padStart(5, '0')}`;
      const n = sent++;
      inFlight++;
      http('PATCH', `/api/v1/namespaces/${ns}/pods/${name}`, {
        body: { metadata: { annotations: { 'bench.wharf.dev/tick': String(n) } } },
        contentType: 'application/merge-patch+json',
      })
        .then((r) => r.status >= 300 && failed++)
        .catch(() => failed++)
        .finally(() => inFlight--);
    }
  })();
  for (let t = SAMPLE_SECONDS; t <= MEMORY_SECONDS; t += SAMPLE_SECONDS) {
    await sleep(Math.max(0, start + t * 1000 - performance.now()));
    samples.push({ t, heap: await heapUsed(cdp) });
    log(`  t=${t}s heap ${mib(samples.at(-1).heap)} (${sent} patches)`);
  }
  await writer;
  while (inFlight > 0) await sleep(50);
  const seconds = (performance.now() - start) / 1000;
  // The page still shows the pods, and the last patch arrived: the view kept up.
  await page.locator(VIEWS.pods.all().sel).waitFor({ timeout: 30_000 });
  await cdp.send('HeapProfiler.collectGarbage');
  const afterGc = await heapUsed(cdp);
  await context.close();
  const heaps = samples.map((s) => s.heap);
  return { samples, start: heaps[0], peak: Math.max(...heaps), end: heaps.at(-1), afterGc, sent, failed, rate: sent / seconds };
}

// ---- main ----

async function main() {
  const { bin, build } = wharfBinary();
  log(`wharf: ${bin} (${build})`);
  const server = await startServer(bin);
  const http = client(server);
  let browser;
  try {
    const bundle = await bundleSizes(http);
    log(`creating ${PODS} pods in ${NAMESPACES} namespaces`);
    const createMs = await createPods(http);
    log(`created in ${(createMs / 1000).toFixed(1)} s (${Math.round(PODS / (createMs / 1000))} pods/s)`);

    // The scheduler tries every new (unschedulable) pod once: let the server settle, then warm both clients up once
    // (not counted), so neither side is timed against a busy or cold server.
    log(`settling ${SETTLE_SECONDS} s, then one warm-up of kubectl and of each view`);
    await sleep(SETTLE_SECONDS * 1000);
    await timeKubectl(server, ['get', 'pods', '-A']);
    const kubectlRuns = { plain: [], wide: [] };
    for (let i = 0; i < LOADS; i++) {
      kubectlRuns.plain.push(await timeKubectl(server, ['get', 'pods', '-A']));
      kubectlRuns.wide.push(await timeKubectl(server, ['get', 'pods', '-A', '-o', 'wide']));
    }
    const lines = kubectlRuns.plain[0].lines;
    if (lines !== PODS + 1) throw new Error(`kubectl get pods -A printed ${lines} lines, expected ${PODS + 1}`);

    browser = await launch();
    for (const view of Object.values(VIEWS)) await coldLoad(browser, server, view);
    const loads = {};
    for (const [name, view] of Object.entries(VIEWS)) {
      loads[name] = [];
      for (let i = 0; i < LOADS; i++) {
        const r = await coldLoad(browser, server, view);
        log(`${name} load ${i + 1}: FCP ${ms(r.fcp)}, first data ${ms(r.first)}, all data ${ms(r.all)}, TTI ${ms(r.tti)} (${r.longTasks} long tasks)`);
        loads[name].push(r);
      }
    }
    const memory = MEMORY_SECONDS > 0 ? await memoryRun(browser, server, http) : null;

    // ---- report ----
    const out = [];
    out.push(`wharf ${build}; ${PODS} pods (Pending, no node) in ${NAMESPACES} namespaces; Chromium ${browser.version()} headless; ${LOADS} cold loads each`);
    out.push('');
    out.push('| view | FCP | first data | all data shown | TTI (500 ms without long tasks) | long tasks |');
    out.push('|---|---|---|---|---|---|');
    for (const [name, rs] of Object.entries(loads)) {
      const col = (k) => `${ms(median(rs.map((r) => r[k])))} (${ms(Math.min(...rs.map((r) => r[k])))}–${ms(Math.max(...rs.map((r) => r[k])))})`;
      out.push(`| ${name} | ${col('fcp')} | ${col('first')} | ${col('all')} | ${col('tti')} | ${median(rs.map((r) => r.longTasks))} |`);
    }
    out.push('');
    const kmed = (runs) => `${ms(median(runs.map((r) => r.ms)))} (${ms(Math.min(...runs.map((r) => r.ms)))}–${ms(Math.max(...runs.map((r) => r.ms)))})`;
    out.push(`kubectl get pods -A: ${kmed(kubectlRuns.plain)}; -o wide: ${kmed(kubectlRuns.wide)} (median of ${LOADS}, ${lines} lines)`);
    out.push('');
    out.push(
      `bundle (as served, ${bundle.encodings.join('/')}): index.html ${kib(bundle.indexBytes)}; initial JS+CSS ${kib(bundle.initialBytes)} ` +
        `(${bundle.initial.map((f) => `${f.path.split('/').pop()} ${kib(f.bytes)}`).join(', ')}); all ${bundle.files} JS+CSS files ${kib(bundle.allBytes)}`,
    );
    if (memory) {
      out.push('');
      out.push(
        `memory (Pods view, all ${PODS} pods, ${MEMORY_SECONDS} s of patches at ${memory.rate.toFixed(1)}/s, ${memory.sent} sent, ${memory.failed} failed): ` +
          `JS heap start ${mib(memory.start)}, peak ${mib(memory.peak)}, end ${mib(memory.end)}, after a forced GC ${mib(memory.afterGc)}`,
      );
      out.push(`  samples: ${memory.samples.map((s) => `${s.t}s ${mib(s.heap)}`).join(', ')}`);
    }
    console.log(out.join('\n'));
  } finally {
    await browser?.close();
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    if (!flags.keep) rmSync(server.dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
