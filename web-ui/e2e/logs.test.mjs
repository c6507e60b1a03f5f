// Logs and terminal: a busybox pod printing a counter every 0.5 s; its Logs tab shows new lines arriving without
// reload, Pause stops the view (counting what arrives meanwhile) and Resume continues, Search finds a line, Download
// saves the whole log; its Terminal tab runs a command in the container; a Deployment's Logs tab merges its pods.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, goto, kubectl, kubectlApply, open, screenshot, uniqueNamespace } from './harness.mjs';

// At the top level: uniqueNamespace registers the namespace's deletion with after(), which inside a before() hook
// would run as soon as that hook ends.
const ns = await uniqueNamespace('logs');
let session;

const counterPod = (namespace) => `
apiVersion: v1
kind: Pod
metadata: {name: counter, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:v1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); printf "count %05d\\n" $i; sleep 0.5; done']
`;

const tickerDeployment = (namespace) => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ticker, namespace: ${namespace}}
spec:
  replicas: 2
  selector: {matchLabels: {app: ticker}}
  template:
    metadata: {labels: {app: ticker}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox:v1
        command: [sh, -c, 'while true; do echo "tick from $(hostname)"; sleep 1; done']
`;

const mixedPod = (namespace) => `
apiVersion: v1
kind: Pod
metadata: {name: mixed, namespace: ${namespace}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: wasm, image: "ticker:v1"}
  - {name: shell, image: "busybox:v1", command: [sleep, "3600"]}
`;

async function running(name) {
  const phase = await kubectl('get', 'pod', name, '-n', ns, '-o', 'jsonpath={.status.phase}');
  assert.equal(phase, 'Running', `pod ${name} is ${phase || 'not there yet'}`);
}

/** The highest counter the log region shows. */
async function shownCount(region) {
  const numbers = [...(await region.innerText()).matchAll(/count (\d+)/g)].map((m) => Number(m[1]));
  return numbers.length ? Math.max(...numbers) : 0;
}

before(async () => {
  // The browser first: Chromium aborts a page load when the host's network changes (pods' interfaces appearing), so
  // every pod is up before the tests and later pages are reached by client-side navigation.
  session = await open({ namespace: ns });
  await kubectlApply(counterPod(ns));
  await kubectlApply(tickerDeployment(ns));
  await kubectlApply(mixedPod(ns));
  await eventually(() => running('counter'), { timeout: 90_000 });
  await eventually(() => running('mixed'), { timeout: 90_000 });
  await eventually(async () => {
    const phases = await kubectl('get', 'pods', '-n', ns, '-l', 'app=ticker', '-o', 'jsonpath={.items[*].status.phase}');
    assert.deepEqual(phases.split(/\s+/).filter(Boolean), ['Running', 'Running']);
  }, { timeout: 90_000 });
  await goto(session.page, `/object/pods/${ns}/counter?tab=logs`);
});

after(async () => {
  await session?.browser.close();
});

test('a pod log streams live; pause, resume, search and download', async () => {
  const { page } = session;
  const log = page.getByRole('region', { name: 'Log of main' });
  await log.waitFor().catch(async (e) => {
    await screenshot(page, 'logs-failure');
    throw e;
  });

  // New lines arrive without a reload.
  const first = await eventually(async () => {
    const n = await shownCount(log);
    assert.ok(n > 0, 'no counter line shown yet');
    return n;
  });
  const later = await eventually(async () => {
    const n = await shownCount(log);
    assert.ok(n >= first + 3, `the log stayed at count ${n} (first seen ${first})`);
    return n;
  });
  console.log(`# log went from count ${first} to ${later} without reload`);
  await screenshot(page, 'logs-pod');
  await expectNoSeriousAxeViolations(page, 'pod Logs tab');

  // Pause: the view stops while lines keep arriving (and says how many); Resume shows them.
  await page.getByRole('button', { name: 'Pause' }).click();
  const paused = await shownCount(log);
  await eventually(async () => {
    const text = await page.getByText(/new lines? while paused/).innerText();
    assert.ok(Number(text.replace(/\D/g, '')) >= 3, text);
  });
  assert.equal(await shownCount(log), paused, 'the paused view changed');
  await screenshot(page, 'logs-paused');
  await page.getByRole('button', { name: 'Resume' }).click();
  await eventually(async () => assert.ok((await shownCount(log)) > paused + 2, 'the log did not continue after Resume'));

  // Search: finds a line and highlights it.
  const wanted = `count ${String(Math.max(1, paused - 2)).padStart(5, '0')}`;
  await page.getByLabel('Search log').fill(wanted);
  await eventually(async () => assert.equal(await log.locator('mark', { hasText: wanted }).count(), 1));
  await page.getByText('1 of 1').waitFor();
  await screenshot(page, 'logs-search');

  // Download: the whole log as a file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  const text = readFileSync(await download.path(), 'utf8');
  assert.match(download.suggestedFilename(), /\.log$/);
  assert.match(text, /^count 00001$/m);
  assert.match(text, new RegExp(`^${wanted}$`, 'm'));
});

test('the terminal runs a command in the container', async () => {
  const { page } = session;
  await page.getByRole('tab', { name: 'Terminal' }).click();
  const screen = page.locator('.xterm-rows');
  await screen.waitFor();
  await page.getByText('Connected').waitFor();
  await page.locator('.xterm-helper-textarea').focus();
  await page.keyboard.type('echo hello-$((1+2))\n');
  await eventually(async () => assert.match(await screen.innerText(), /^hello-3$/m));
  await screenshot(page, 'logs-terminal');
  await page.keyboard.type('exit\n');
  await page.getByText(/Session ended: /).waitFor();
  await page.getByRole('button', { name: 'Reconnect' }).waitFor();
});

test("a Deployment's logs merge its pods, each line with its pod", async () => {
  const { page } = session;
  const pods = (await kubectl('get', 'pods', '-n', ns, '-l', 'app=ticker', '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/).filter(Boolean);
  assert.equal(pods.length, 2);
  await goto(page, `/object/deployments/${ns}/ticker?tab=logs`);
  const log = page.getByRole('region', { name: /^Log of/ });
  await eventually(async () => {
    const text = await log.innerText();
    for (const pod of pods) assert.match(text, new RegExp(`^${pod} tick from ${pod}$`, 'm'));
  });
  await screenshot(page, 'logs-merged');
});

test("a mixed pod: the Wasm container's log streams, its terminal says exec is for Linux containers", async () => {
  const { page } = session;
  await goto(page, `/object/pods/${ns}/mixed?tab=logs`);
  await page.getByLabel('Container').selectOption('wasm');
  const log = page.getByRole('region', { name: 'Log of wasm' });
  await eventually(async () => assert.match(await log.innerText(), /^tick/m));
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await page.getByLabel('Container').selectOption('wasm');
  await page.getByText(/Exec is for Linux containers/).waitFor();
  await screenshot(page, 'logs-terminal-wasm');
  await page.getByLabel('Container').selectOption('shell');
  await page.getByText('Connected').waitFor();
});
