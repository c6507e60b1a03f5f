// Workloads: a Deployment applied with kubectl shows in the open page (no reload) with its pods and their runtime
// badges; scaling, restarting and deleting from the page reach the cluster, and kubectl's changes reach the page.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, kubectl, kubectlApply, open, screenshot, uniqueNamespace } from './harness.mjs';

// Imported by tests/dashboard.rs: the ticker WASI fixture (sleeps between ticks) and the busybox image.
const WASM_IMAGE = 'ticker:v1';
const LINUX_IMAGE = 'busybox:v1';

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

before(async () => {
  session = await open({ theme: 'light', path: '/workloads/deployments', namespace: ns });
});

after(async () => {
  await session?.browser.close();
});

const table = (title) => session.page.getByRole('table', { name: title });
const row = (title, name) => table(title).getByRole('row').filter({ has: session.page.getByRole('link', { name, exact: true }) });
const kinds = () => session.page.getByRole('navigation', { name: 'Workload kinds' });
/** Waits for an action's dialog to close; when it stays open (the API refused), fails with what it says. */
const closed = (dialog) =>
  dialog.waitFor({ state: 'hidden' }).catch(async (e) => {
    throw new Error(`the dialog stayed open: ${await dialog.innerText().catch(() => '')}`, { cause: e });
  });
const podNames = async (app) =>
  (await kubectl('get', 'pods', '-n', ns, '-l', `app=${app}`, '-o', 'jsonpath={.items[*].metadata.name}')).split(/\s+/).filter(Boolean);

test('a Deployment applied with kubectl appears with its pods and their runtime badges', async () => {
  const { page } = session;
  await table('Deployments').waitFor();
  await kubectlApply(deployment(ns, 'sleeper', WASM_IMAGE, 2));
  await kubectlApply(deployment(ns, 'shell', LINUX_IMAGE, 1, ['sleep', '3600']));
  await eventually(async () => assert.match(await row('Deployments', 'sleeper').innerText(), /2\/2/), { timeout: 60_000 });
  await eventually(async () => assert.match(await row('Deployments', 'shell').innerText(), /1\/1/), { timeout: 60_000 });
  // The runtime column comes from the Deployments' pods, once their containers run.
  await eventually(async () => assert.match(await row('Deployments', 'sleeper').innerText(), /Wasm/));
  await eventually(async () => assert.match(await row('Deployments', 'shell').innerText(), /Linux/));
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
  await closed(dialog);
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
  await closed(dialog);
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

test('rolling back from the detail page restores the previous revision', async () => {
  const { page } = session;
  await kubectl('set', 'env', 'deploy/sleeper', '-n', ns, 'MODE=two');
  await eventually(async () => assert.match(await kubectl('rollout', 'history', 'deploy/sleeper', '-n', ns), /^3\s/m));
  await row('Deployments', 'sleeper').getByRole('link', { name: 'sleeper', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'sleeper' }).waitFor();
  await page.getByRole('button', { name: 'Roll back' }).click();
  const dialog = page.getByRole('dialog', { name: 'Roll back Deployment sleeper' });
  await eventually(async () => assert.ok(await dialog.getByRole('radio').count() >= 3, 'the three revisions are listed'));
  // The previous revision is chosen; the current one cannot be.
  assert.ok(await dialog.getByRole('radio', { checked: true }).count() === 1);
  await screenshot(page, 'workloads-rollback-dialog');
  await dialog.getByRole('button', { name: 'Roll back' }).click();
  await closed(dialog);
  await eventually(async () =>
    assert.equal(await kubectl('get', 'deploy', 'sleeper', '-n', ns, '-o', 'jsonpath={.spec.template.spec.containers[0].env}'), ''),
  );
  await page.goBack();
  await table('Deployments').waitFor();
});

test('deleting from the page removes the Deployment', async () => {
  const { page } = session;
  await row('Deployments', 'sleeper').getByRole('button', { name: 'Delete sleeper' }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete Deployment sleeper' });
  assert.match(await dialog.innerText(), new RegExp(`sleeper.*${ns}`));
  await dialog.getByRole('button', { name: 'Delete' }).click();
  await closed(dialog);
  await eventually(async () => assert.equal(await row('Deployments', 'sleeper').count(), 0));
  await assert.rejects(kubectl('get', 'deploy', 'sleeper', '-n', ns), /NotFound|not found/);
  await eventually(async () => assert.equal((await podNames('sleeper')).length, 0), { timeout: 60_000 });
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('dark');
  await screenshot(page, 'workloads-deployments-dark');
  await expectNoSeriousAxeViolations(page, 'Workloads: Deployments (dark)');
});
