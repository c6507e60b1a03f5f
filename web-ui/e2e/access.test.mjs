// Access: the dashboard hides what the signed-in user may not do, from RBAC's own answers. A user with only the
// `view` role in the namespace sees the Deployment but no Scale, Restart, Delete or Edit YAML; no Terminal tab on
// its pod; no Apply on /create; "No access" for Secrets and Nodes (and Kubernetes' Forbidden message when they open
// a Secret anyway); their name in the account menu. Once an administrator binds `edit` (kubectl), the periodic
// refresh brings the actions in without a reload.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, goto, kubectl, kubectlApply, openAs, screenshot, uniqueNamespace, wharf } from './harness.mjs';

const ns = await uniqueNamespace('access');
let session;
let viewerToken;

before(async () => {
  await kubectlApply(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: main, image: ticker:v1}]
---
apiVersion: v1
kind: Secret
metadata: {name: db-password, namespace: ${ns}}
stringData: {password: hunter2}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ${ns}}
data: {mode: quiet}
`);
  // A user of their own (the token is the last line), who may only read the namespace.
  const out = await wharf('token', 'create', '--user', 'viewer', '--description', 'dashboard access test');
  viewerToken = out.trim().split('\n').pop().trim();
  assert.match(viewerToken, /\S{16,}/, `no token in: ${out}`);
  await kubectl('create', 'rolebinding', 'viewer-view', '--clusterrole=view', '--user=viewer', '-n', ns);
  session = await openAs(viewerToken, { theme: 'light', path: '/workloads/deployments', namespace: ns });
});

after(async () => {
  await session?.browser.close();
});

const actionsOf = (name) => session.page.getByRole('group', { name: `Actions for ${name}` });
const button = (name) => session.page.getByRole('button', { name, exact: true });

/** Passes once none of the named buttons is on the page (unknown rights render them disabled first). */
async function noButtons(scope, names) {
  await eventually(async () => {
    for (const name of names) assert.equal(await scope.getByRole('button', { name, exact: true }).count(), 0, `a "${name}" button is offered`);
  });
}

test('a viewer sees the Deployment without Scale, Restart, Delete or Edit YAML, and their name in the account menu', async () => {
  const { page } = session;
  const row = page.getByRole('table', { name: 'Deployments' }).getByRole('row').filter({ has: page.getByRole('link', { name: 'web', exact: true }) });
  await row.waitFor();
  await eventually(async () => assert.equal(await actionsOf('web').getByRole('button').count(), 0, 'the row offers actions'));

  // The account menu: SelfSubjectReview's user and groups.
  await page.getByRole('button', { name: /^Account: viewer/ }).click();
  const menu = page.getByRole('group', { name: 'Account' });
  assert.match(await menu.innerText(), /Signed in as viewer/);
  assert.match(await menu.innerText(), /system:authenticated/);
  await page.getByRole('button', { name: /^Account: viewer/ }).click();

  await screenshot(page, 'access-viewer-deployments-light');
  await expectNoSeriousAxeViolations(page, 'viewer Deployments (light)');
  await page.getByLabel('Theme').selectOption('dark');
  await screenshot(page, 'access-viewer-deployments-dark');
  await expectNoSeriousAxeViolations(page, 'viewer Deployments (dark)');
  await page.getByLabel('Theme').selectOption('light');

  await goto(page, `/object/deployments/${ns}/web`);
  await page.getByRole('heading', { level: 1, name: 'web' }).waitFor();
  await noButtons(page.locator('main'), ['Scale', 'Restart', 'Roll back', 'Delete', 'Edit YAML']);
});

test("the viewer's pod page has no Terminal tab", async () => {
  const { page } = session;
  const pod = await eventually(async () => {
    const name = (await kubectl('get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}')).trim();
    assert.ok(name, 'no pod yet');
    return name;
  });
  await goto(page, `/object/pods/${ns}/${pod}`);
  await page.getByRole('heading', { level: 1, name: pod }).waitFor();
  await page.getByRole('tab', { name: 'Logs' }).waitFor();
  await eventually(async () => assert.equal(await page.getByRole('tab', { name: 'Terminal' }).count(), 0, 'a Terminal tab is offered'));
  await noButtons(page.locator('main'), ['Delete', 'Edit YAML']);
});

test('the viewer may not Apply on /create, and sees "No access" for Secrets and Nodes', async () => {
  const { page } = session;
  await goto(page, '/create');
  await eventually(async () => assert.match(await page.locator('main').innerText(), new RegExp(`You may not create objects in namespace ${ns}`)));
  assert.equal(await button('Apply').isDisabled(), true);
  assert.equal(await button('Dry run').isDisabled(), true);

  await goto(page, '/config');
  await page.getByRole('table', { name: 'ConfigMaps' }).getByRole('link', { name: 'settings', exact: true }).waitFor();
  await page.getByRole('note', { name: 'No access to Secrets' }).waitFor();
  assert.equal(await page.getByRole('table', { name: 'Secrets' }).count(), 0);
  assert.equal(await page.getByRole('alert').count(), 0, 'an error box shows');
  // The nav says so too: view may not list nodes (cluster-scoped).
  await eventually(async () => assert.match(await page.getByRole('navigation', { name: 'Main' }).innerText(), /Nodes · No access/));

  await goto(page, '/nodes');
  await page.getByRole('note', { name: 'No access to Nodes' }).waitFor();
  await expectNoSeriousAxeViolations(page, 'viewer Nodes');

  // A call the API refuses shows Kubernetes' own message.
  await goto(page, `/object/secrets/${ns}/db-password`);
  await eventually(async () =>
    assert.match(
      await page.getByRole('alert').first().innerText(),
      new RegExp(`secrets is forbidden: User "viewer" cannot list resource "secrets" in API group "" in the namespace "${ns}"`),
    ),
  );
  assert.doesNotMatch(await page.locator('main').innerText(), /hunter2/);
});

test('once `edit` is bound, the actions appear at the next refresh', async () => {
  const { page } = session;
  await goto(page, '/workloads/deployments');
  await page.getByRole('table', { name: 'Deployments' }).getByRole('link', { name: 'web', exact: true }).waitFor();
  await kubectl('create', 'rolebinding', 'viewer-edit', '--clusterrole=edit', '--user=viewer', '-n', ns);
  const started = Date.now();
  // No reload: the dashboard asks RBAC again about every 60 s.
  await eventually(async () => assert.equal(await actionsOf('web').getByRole('button', { name: 'Scale web' }).isEnabled(), true), {
    timeout: 90_000,
    interval: 500,
  });
  console.log(`actions appeared ${((Date.now() - started) / 1000).toFixed(1)} s after the RoleBinding`);
  await actionsOf('web').getByRole('button', { name: 'Delete web' }).waitFor();
  await actionsOf('web').getByRole('button', { name: 'Restart web' }).waitFor();

  await goto(page, '/config');
  await page.getByRole('table', { name: 'Secrets' }).getByRole('link', { name: 'db-password', exact: true }).waitFor();

  await goto(page, '/create');
  await eventually(async () => assert.equal(await button('Apply').isDisabled(), false));
});
