// The dashboard's end-to-end test harness: a signed-in Chromium page against a running Wharf server, kubectl, screenshots,
// axe checks and polling. tests/dashboard.rs starts the cluster and runs `node --test web-ui/e2e/` with this environment:
//   WHARF_URL          https://127.0.0.1:PORT (the API server; the dashboard is at /ui/)
//   WHARF_TOKEN        the admin token
//   KUBECONFIG         a kubeconfig for that server
//   KUBECTL            kubectl's path (default /usr/bin/kubectl)
//   WHARF_BIN          the wharf binary
//   WHARF_SCREENSHOTS  where screenshots go (default target/dashboard-screenshots under the repo)
//   WHARF_SAMPLES      a directory with the samples (http-hello.wasm, ...), when provided

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const CHROMIUM = '/usr/bin/chromium';
export const URL = (process.env.WHARF_URL ?? '').replace(/\/+$/, '');
export const TOKEN = process.env.WHARF_TOKEN ?? '';
export const KUBECONFIG = process.env.KUBECONFIG ?? '';
export const KUBECTL = process.env.KUBECTL || '/usr/bin/kubectl';
export const WHARF_BIN = process.env.WHARF_BIN ?? '';
export const SCREENSHOTS = process.env.WHARF_SCREENSHOTS || resolve(here, '../../target/dashboard-screenshots');
export const SAMPLES = process.env.WHARF_SAMPLES ?? '';

function required() {
  const missing = ['WHARF_URL', 'WHARF_TOKEN', 'KUBECONFIG'].filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(
      `missing environment: ${missing.join(', ')}. Run these tests through \`cargo test --test dashboard\`, ` +
        'or start `wharf server` and set WHARF_URL, WHARF_TOKEN and KUBECONFIG.',
    );
  }
}

/** The dashboard's URL for a client path (`/nodes` → https://127.0.0.1:PORT/ui/nodes). */
export function uiUrl(path = '/') {
  return `${URL}/ui${path.startsWith('/') ? path : '/' + path}`;
}

/** Launches Debian's Chromium headless. */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the dashboard tests drive Debian's Chromium. Install it: apt-get install -y chromium`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/**
 * Opens a browser on the dashboard and signs in through the sign-in form.
 * theme: 'light' | 'dark' sets the theme before the app starts (as a user's saved choice); signIn: false stops at the form;
 * path: the client path to open after signing in (default '/');
 * namespace: the namespace switcher's choice at start, a name or null for all namespaces (default: the app's, "default";
 * it is set again on every full page load of this context).
 * Returns {browser, context, page}; close with `await browser.close()`.
 */
export async function open({ theme, signIn = true, path = '/', token = TOKEN, namespace } = {}) {
  required();
  const browser = await launch();
  try {
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1400, height: 900 },
      colorScheme: theme === 'dark' ? 'dark' : 'light',
    });
    if (theme) await context.addInitScript((t) => localStorage.setItem('wharf.theme', t), theme);
    if (namespace !== undefined) {
      await context.addInitScript((ns) => localStorage.setItem('wharf.namespace', ns), namespace === null ? '*' : namespace);
    }
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    if (process.env.WHARF_E2E_DEBUG) {
      // Failed requests (but those a navigation aborts) and console errors, to see why a view shows no data.
      page.on('requestfailed', (r) => {
        const why = r.failure()?.errorText;
        if (why !== 'net::ERR_ABORTED') console.error(`[browser] ${r.method()} ${r.url()} failed: ${why}`);
      });
      page.on('console', (m) => m.type() === 'error' && console.error(`[browser console] ${m.text()}`));
    }
    // Chromium aborts loads in flight when the host's network changes (pods starting): load again, as a user would.
    for (let attempt = 1; ; attempt++) {
      try {
        await page.goto(uiUrl('/'));
        break;
      } catch (e) {
        if (attempt >= 3 || !String(e?.message).includes('ERR_NETWORK_CHANGED')) throw e;
      }
    }
    if (signIn) {
      await signInWith(page, token);
      if (path !== '/') await goto(page, path);
    }
    return { browser, context, page };
  } catch (e) {
    await browser.close();
    throw e;
  }
}

/** Opens a browser signed in with another user's token (open()'s options otherwise). */
export async function openAs(token, options = {}) {
  if (!token) throw new Error('openAs needs a token');
  return open({ ...options, token });
}

/** Fills the sign-in form with the token and submits it; waits until the shell (main navigation) shows. */
export async function signInWith(page, token = TOKEN) {
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

/** Navigates within the signed-in app (client-side, keeps the session's token) to a path such as `/nodes`. */
export async function goto(page, path) {
  await page.evaluate((p) => {
    history.pushState(null, '', p);
    dispatchEvent(new PopStateEvent('popstate'));
  }, '/ui' + path);
}

/** Runs kubectl with KUBECONFIG; returns stdout, throws an Error carrying stderr on failure. */
export function kubectl(...args) {
  return run(KUBECTL, args);
}

/** Runs kubectl with options {input} (stdin text). */
export function kubectlWith(args, { input } = {}) {
  return run(KUBECTL, args, input);
}

/** `kubectl apply -f -` with the YAML text; returns stdout. */
export function kubectlApply(yamlText) {
  return run(KUBECTL, ['apply', '-f', '-'], yamlText);
}

/** Runs the wharf binary (WHARF_BIN) with KUBECONFIG in its environment. */
export function wharf(...args) {
  if (!WHARF_BIN) throw new Error('WHARF_BIN is not set');
  return run(WHARF_BIN, args);
}

function run(file, args, input) {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, KUBECONFIG }, maxBuffer: 64 << 20, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) {
          const e = new Error(`${file} ${args.join(' ')} failed (${err.code ?? err.signal}): ${stderr || err.message}`);
          e.stderr = stderr;
          e.stdout = stdout;
          reject(e);
        } else resolvePromise(stdout);
      },
    );
    if (input !== undefined) child.stdin.end(input);
  });
}

/** Saves a full-page PNG as WHARF_SCREENSHOTS/<name>(.png); returns its path. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = join(SCREENSHOTS, name.endsWith('.png') ? name : `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

let axeSource;

/** Runs axe-core on the page (WCAG 2 A/AA rules) and fails listing every serious or critical violation. */
export async function expectNoSeriousAxeViolations(page, label = page.url()) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol: the dashboard's CSP (rightly) refuses inline script tags.
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    }),
  );
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (serious.length) {
    const lines = serious.map(
      (v) =>
        `- [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})\n` +
        v.nodes
          .slice(0, 5)
          .map((n) => `    ${n.target.join(' ')}: ${n.failureSummary?.replace(/\n/g, ' ')}`)
          .join('\n'),
    );
    throw new Error(`${label}: ${serious.length} serious/critical accessibility violation(s):\n${lines.join('\n')}`);
  }
  return result.violations;
}

/**
 * Calls fn until it returns without throwing (and its result is not false); returns that result.
 * Throws the last error after timeout ms (default 30 s), polling every interval ms (default 250).
 */
export async function eventually(fn, { timeout = 30_000, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false) return v;
      last = new Error('the condition stayed false');
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const e = new Error(`not so after ${timeout} ms: ${last?.message ?? last}`);
      e.cause = last;
      throw e;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const namespacesToDelete = new Set();

/**
 * Creates namespace `e2e-<area>` (deleting a leftover first) and returns its name; it is deleted (without waiting for it
 * to be gone) when the test file's process is done, wherever this is called (top level, a hook or a test).
 */
export async function uniqueNamespace(area) {
  const name = `e2e-${area}`;
  await kubectl('delete', 'namespace', name, '--ignore-not-found', '--wait=true', '--timeout=60s').catch(() => {});
  await kubectl('create', 'namespace', name);
  if (namespacesToDelete.size === 0) {
    process.once('beforeExit', () => {
      for (const ns of namespacesToDelete) {
        try {
          execFileSync(KUBECTL, ['delete', 'namespace', ns, '--ignore-not-found', '--wait=false'], {
            env: { ...process.env, KUBECONFIG },
            stdio: 'ignore',
            timeout: 30_000,
          });
        } catch {
          // The cluster may be gone already.
        }
      }
    });
  }
  namespacesToDelete.add(name);
  return name;
}

/** The names of the cluster's nodes. */
export async function nodeNames() {
  const out = await kubectl('get', 'nodes', '-o', 'jsonpath={.items[*].metadata.name}');
  return out.split(/\s+/).filter(Boolean);
}
