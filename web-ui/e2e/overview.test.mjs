// The Overview and the Nodes views: the local node shows Ready; a pod created with kubectl raises the Pods card's
// count in the open page; cordon and uncordon from the Nodes page reach `kubectl get node`; the node's page shows
// its summary and pods.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, goto, kubectl, kubectlApply, nodeNames, open, screenshot, uniqueNamespace } from './harness.mjs';

// Imported by tests/dashboard.rs: the ticker WASI fixture (sleeps between ticks).
const WASM_IMAGE = 'ticker:v1';

// At the top level (not in `before`), so that the namespace's `after` deletion runs when the file ends.
const ns = await uniqueNamespace('overview');
let session;
let node;

before(async () => {
  [node] = await nodeNames();
  assert.ok(node, 'the cluster has a node');
  session = await open({ theme: 'light', namespace: ns });
});

after(async () => {
  // Whatever happened, leave the node schedulable for the other test files.
  if (node) await kubectl('patch', 'node', node, '--type=merge', '-p', '{"spec":{"unschedulable":null}}').catch(() => {});
  await session?.browser.close();
});

const card = (title) => session.page.getByRole('region', { name: title });
const podCount = async () => Number((await card('Pods').locator('.stat').innerText()).trim());
const nodeRow = () =>
  session.page
    .getByRole('table', { name: 'Nodes' })
    .getByRole('row')
    .filter({ has: session.page.getByRole('link', { name: node, exact: true }) });

/** The error the node's row shows, if any, for the failure message. */
const pageSays = async () => {
  const alert = nodeRow().getByRole('alert');
  return (await alert.count()) ? `the page says: ${await alert.innerText()}` : 'the page shows no error';
};

test('the Overview shows the local node Ready, with its runtimes', async () => {
  const { page } = session;
  await page.getByRole('heading', { level: 2, name: 'Nodes' }).waitFor();
  for (const title of ['Pods', 'Runtimes', 'Warnings', 'Top functions']) await page.getByRole('heading', { level: 2, name: title }).waitFor();
  const item = card('Nodes').getByRole('listitem').filter({ has: page.getByRole('link', { name: node, exact: true }) });
  await eventually(async () => assert.match(await item.innerText(), /\bReady\b/));
  const text = await item.innerText();
  assert.match(text, /Wasm/, 'the node offers wasmtime');
  assert.match(text, /Linux/, 'the node offers youki');
  await screenshot(page, 'overview-light');
  await expectNoSeriousAxeViolations(page, 'Overview');
});

test('a pod created with kubectl raises the Pods count without a reload', async () => {
  const { page } = session;
  await eventually(async () => assert.equal(await podCount(), 0), { timeout: 10_000 });
  const before = Date.now();
  await kubectlApply(`
apiVersion: v1
kind: Pod
metadata: {name: counted, namespace: ${ns}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: tick, image: ${WASM_IMAGE}}]
`);
  await eventually(async () => assert.equal(await podCount(), 1));
  console.log(`# the Pods card counted the new pod ${Date.now() - before} ms after kubectl apply returned`);
  // Once it runs, it is counted as Running and as one Wasm container.
  await eventually(
    async () => {
      assert.equal(await card('Pods').locator('dd[data-phase="Running"]').innerText(), '1');
      assert.match(await card('Runtimes').innerText(), /Wasm\s*1\s*container\b/);
    },
    { timeout: 60_000 },
  );
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('dark');
  await screenshot(page, 'overview-dark');
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('light');
});

test('cordon from the Nodes page makes kubectl show SchedulingDisabled; uncordon reverts it', async () => {
  const { page } = session;
  await goto(page, '/nodes');
  await nodeRow().waitFor();
  assert.match(await nodeRow().innerText(), /\bReady\b/);
  await expectNoSeriousAxeViolations(page, 'Nodes');

  await nodeRow().getByRole('button', { name: 'Cordon' }).click();
  await eventually(async () => assert.match(await kubectl('get', 'node', node), /SchedulingDisabled/, await pageSays()));
  // The page follows the change: the row says so and offers the way back.
  await eventually(async () => assert.match(await nodeRow().innerText(), /SchedulingDisabled/));
  await screenshot(page, 'nodes-cordoned');

  await nodeRow().getByRole('button', { name: 'Uncordon' }).click();
  await eventually(async () => assert.doesNotMatch(await kubectl('get', 'node', node), /SchedulingDisabled/, await pageSays()));
  await eventually(async () => assert.doesNotMatch(await nodeRow().innerText(), /SchedulingDisabled/));
  await nodeRow().getByRole('button', { name: 'Cordon' }).waitFor();
  await screenshot(page, 'nodes-light');
});

test("the node's page shows its conditions, pods and YAML link", async () => {
  const { page } = session;
  await nodeRow().getByRole('link', { name: node, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: node }).waitFor();
  await page.getByRole('heading', { level: 2, name: 'Conditions' }).waitFor();
  assert.match(await page.getByRole('region', { name: 'Conditions' }).innerText(), /Ready\s+True/);
  assert.equal(await page.getByRole('link', { name: 'YAML' }).getAttribute('href'), `/ui/object/nodes/_/${node}`);
  await screenshot(page, 'node-summary');
  await expectNoSeriousAxeViolations(page, 'Node summary');

  await page.getByRole('tab', { name: 'Pods' }).click();
  const pods = page.getByRole('table', { name: 'Pods' });
  const row = pods.getByRole('row').filter({ has: page.getByRole('link', { name: 'counted', exact: true }) });
  await eventually(async () => assert.match(await row.innerText(), /Wasm/));
  await screenshot(page, 'node-pods');

  await page.getByRole('tab', { name: 'Metrics' }).click();
  // CPU and memory charts, or (without a metrics API) a message saying why not.
  await eventually(async () => {
    const text = await page.getByRole('tabpanel').innerText();
    assert.ok(/metrics not available/.test(text) || (/CPU/.test(text) && /Memory/.test(text)), text);
  });
  await screenshot(page, 'node-metrics');
});
