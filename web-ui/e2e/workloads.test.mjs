// Workloads: a Deployment applied with kubectl shows in the open page (no reload) with its pods and their runtime
// badges; scaling, restarting and deleting from the page reach the cluster, and kubectl's changes reach the page.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  SAMPLES,
  eventually,
  expectNoSeriousAxeViolations,
  kubectl,
  kubectlApply,
  open,
  screenshot,
  uniqueNamespace,
  wharf,
} from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const WASM_IMAGE = 'e2e-workloads-sleeper:v1';
const LINUX_IMAGE = 'e2e-workloads-busybox:v1';

/** A WASI preview 1 module that sleeps a second at a time forever (poll_oneoff on the monotonic clock). */
function sleeperWasm() {
  const u32 = (n) => {
    const out = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const s64 = (n) => {
    const out = [];
    let v = BigInt(n);
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && !(b & 0x40)) || (v === -1n && b & 0x40)) return [...out, b];
      out.push(b | 0x80);
    }
  };
  const str = (s) => [...u32(s.length), ...Buffer.from(s)];
  const section = (id, body) => [id, ...u32(body.length), ...body];
  const vec = (items) => [...u32(items.length), ...items.flat()];
  const i32 = (n) => [0x41, ...s64(n)];
  const store = (op, align, addr, value) => [...i32(addr), ...value, op, align, 0];
  // Subscription at 200: userdata 0, tag 0 (clock), id 1 (monotonic), timeout 1 s, precision 0, flags 0 (relative).
  const body = [
    0, // no locals
    ...store(0x3a, 0, 208, i32(0)),
    ...store(0x36, 2, 216, i32(1)),
    ...store(0x37, 3, 224, [0x42, ...s64(1_000_000_000)]),
    ...store(0x37, 3, 232, [0x42, ...s64(0)]),
    ...store(0x3b, 1, 240, i32(0)),
    0x03, 0x40, // loop
    ...i32(200), ...i32(400), ...i32(1), ...i32(500), 0x10, 0, 0x1a, // drop(poll_oneoff(200, 400, 1, 500))
    0x0c, 0, // br 0
    0x0b, // end loop
    0x0b, // end function
  ];
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f], [0x60, 0, 0]])),
    ...section(2, vec([[...str('wasi_snapshot_preview1'), ...str('poll_oneoff'), 0x00, 0]])),
    ...section(3, vec([[1]])),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec([[...str('memory'), 0x02, 0], [...str('_start'), 0x00, 1]])),
    ...section(10, vec([[...u32(body.length), ...body]])),
  ]);
}

/** The busybox image: the samples' build when given, else built by samples/busybox-image (python3, busybox-static). */
async function busyboxLayout(dir) {
  const built = SAMPLES && join(SAMPLES, 'busybox');
  if (built && existsSync(join(built, 'index.json'))) return built;
  const layout = join(dir, 'busybox');
  const script = resolve(here, '../../samples/busybox-image');
  await new Promise((ok, fail) =>
    execFile(script, [layout], (err, _out, stderr) =>
      err ? fail(new Error(`${script} failed (it needs python3 and busybox-static: apt-get install busybox-static): ${stderr}`)) : ok(),
    ),
  );
  return layout;
}

const deployment = (ns, name, image, replicas, command) => `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: main, image: ${image}${command ? `, command: ${JSON.stringify(command)}` : ''}}]
`;

// At the top level (not in `before`), so that the namespace's `after` deletion runs when the file ends.
const ns = await uniqueNamespace('workloads');
let session;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wharf-e2e-workloads-'));
  const wasm = join(dir, 'sleeper.wasm');
  writeFileSync(wasm, sleeperWasm());
  await wharf('image', 'import', wasm, '--name', WASM_IMAGE);
  await wharf('image', 'import', await busyboxLayout(dir), '--name', LINUX_IMAGE);
  session = await open({ theme: 'light', path: '/workloads/deployments' });
  const { page } = session;
  await page.getByRole('combobox', { name: 'Namespace' }).selectOption(ns);
});

after(async () => {
  await session?.browser.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const table = (title) => session.page.getByRole('table', { name: title });
const row = (title, name) => table(title).getByRole('row').filter({ has: session.page.getByRole('link', { name, exact: true }) });
const kinds = () => session.page.getByRole('navigation', { name: 'Workload kinds' });
const podNames = async (app) =>
  (await kubectl('get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/).filter(Boolean);

test('a Deployment applied with kubectl appears with its pods and their runtime badges', async () => {
  const { page } = session;
  await table('Deployments').waitFor();
  await kubectlApply(deployment(ns, 'sleeper', WASM_IMAGE, 2));
  await kubectlApply(deployment(ns, 'shell', LINUX_IMAGE, 1, ['sleep', '3600']));
  await eventually(async () => assert.match(await row('Deployments', 'sleeper').innerText(), /2\/2/), { timeout: 60_000 });
  await eventually(async () => assert.match(await row('Deployments', 'shell').innerText(), /1\/1/), { timeout: 60_000 });
  assert.match(await row('Deployments', 'sleeper').innerText(), /Wasm/);
  assert.match(await row('Deployments', 'shell').innerText(), /Linux/);
  await screenshot(page, 'workloads-deployments');

  await kinds().getByRole('link', { name: 'Pods' }).click();
  await table('Pods').waitFor();
  const names = await podNames('sleeper');
  assert.equal(names.length, 2);
  for (const name of names) {
    const text = await eventually(async () => {
      const t = await row('Pods', name).innerText();
      assert.match(t, /Running/);
      return t;
    });
    assert.match(text, /Wasm/);
    assert.doesNotMatch(text, /Linux/);
  }
  const [shell] = await podNames('shell');
  await eventually(async () => assert.match(await row('Pods', shell).innerText(), /Running/));
  assert.match(await row('Pods', shell).innerText(), /Linux/);
  await screenshot(page, 'workloads-pods');
  await expectNoSeriousAxeViolations(page, 'Workloads: Pods');
  await kinds().getByRole('link', { name: 'Deployments' }).click();
  await table('Deployments').waitFor();
});

test('the filter matches names in the page and sends label selectors to the server', async () => {
  const { page } = session;
  const search = page.getByRole('searchbox', { name: 'Filter by name or label' });
  const shown = async () => ({ shell: await row('Deployments', 'shell').count(), sleeper: await row('Deployments', 'sleeper').count() });
  try {
    await search.fill('app=shell');
    await eventually(async () => assert.deepEqual(await shown(), { shell: 1, sleeper: 0 }));
    await search.fill('sleep');
    await eventually(async () => assert.deepEqual(await shown(), { shell: 0, sleeper: 1 }));
  } finally {
    await search.fill('');
  }
  await eventually(async () => assert.deepEqual(await shown(), { shell: 1, sleeper: 1 }));
});

test('scaling from the page changes the Deployment, and kubectl scale shows in the page', async () => {
  const { page } = session;
  await row('Deployments', 'sleeper').getByRole('button', { name: 'Scale sleeper' }).click();
  const dialog = page.getByRole('dialog', { name: 'Scale Deployment sleeper' });
  await dialog.getByRole('spinbutton', { name: 'Replicas' }).fill('3');
  await screenshot(page, 'workloads-scale-dialog');
  await expectNoSeriousAxeViolations(page, 'Scale dialog');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await kubectl('get', 'deploy', 'sleeper', '-n', ns, '-o', 'jsonpath={.spec.replicas}'), '3'));
  await eventually(async () => assert.match(await row('Deployments', 'sleeper').innerText(), /3\/3/), { timeout: 60_000 });

  await kubectl('scale', 'deploy/sleeper', '-n', ns, '--replicas=1');
  await eventually(async () => assert.match(await row('Deployments', 'sleeper').innerText(), /1\/1/), { timeout: 60_000 });
  await eventually(async () => assert.equal((await podNames('sleeper')).length, 1), { timeout: 60_000 });
});

test('restarting from the page replaces the pods', async () => {
  const { page } = session;
  const before = await podNames('sleeper');
  await row('Deployments', 'sleeper').getByRole('button', { name: 'Restart sleeper' }).click();
  const dialog = page.getByRole('dialog', { name: 'Restart Deployment sleeper' });
  await dialog.getByRole('button', { name: 'Restart' }).click();
  await dialog.waitFor({ state: 'hidden' });
  const restartedAt = await kubectl(
    'get', 'deploy', 'sleeper', '-n', ns, '-o', 'jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}',
  );
  assert.ok(restartedAt, 'the template carries kubectl.kubernetes.io/restartedAt');
  const after = await eventually(
    async () => {
      const now = await podNames('sleeper');
      assert.equal(now.length, 1);
      assert.ok(!now.includes(before[0]), `${before[0]} was replaced`);
      return now;
    },
    { timeout: 60_000 },
  );
  await kinds().getByRole('link', { name: 'Pods' }).click();
  await eventually(async () => assert.match(await row('Pods', after[0]).innerText(), /Running/), { timeout: 60_000 });
  await eventually(async () => assert.equal(await row('Pods', before[0]).count(), 0), { timeout: 60_000 });
  await kinds().getByRole('link', { name: 'Deployments' }).click();
  await table('Deployments').waitFor();
});

test('deleting from the page removes the Deployment', async () => {
  const { page } = session;
  await row('Deployments', 'sleeper').getByRole('button', { name: 'Delete sleeper' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete Deployment sleeper' });
  assert.match(await dialog.innerText(), new RegExp(`sleeper.*${ns}`));
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await eventually(async () => assert.equal(await row('Deployments', 'sleeper').count(), 0));
  await assert.rejects(kubectl('get', 'deploy', 'sleeper', '-n', ns), /NotFound|not found/);
  await eventually(async () => assert.equal((await podNames('sleeper')).length, 0), { timeout: 60_000 });
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('dark');
  await screenshot(page, 'workloads-deployments-dark');
  await expectNoSeriousAxeViolations(page, 'Workloads: Deployments (dark)');
});
