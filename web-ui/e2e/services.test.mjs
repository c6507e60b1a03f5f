// Services with their endpoints, ConfigMaps and Secrets (values hidden until revealed), and the Events timeline: each
// appears live in an open page after kubectl creates it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, goto, kubectl, kubectlApply, open, screenshot, uniqueNamespace } from './harness.mjs';

// At the top level: uniqueNamespace registers the namespace's deletion with after(), which would run right after a
// before() hook that called it.
const ns = await uniqueNamespace('services');
let session;
before(async () => {
  session = await open({ theme: 'light', namespace: ns });
});
after(async () => {
  await session?.browser.close();
});

const row = (page, table, name) => page.getByRole('table', { name: table }).getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });

test('a Service and its endpoints show up live, pod IPs linking to their pods', async () => {
  const { page } = session;
  await goto(page, '/services');
  await page.getByRole('table', { name: 'Services' }).waitFor();
  // A Service without a selector and its EndpointSlice, as a user publishing endpoints by hand writes them.
  await kubectlApply(`
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${ns}}
spec:
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: ${ns}
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.77.0.11]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: web-a, namespace: ${ns}}
- addresses: [10.77.0.12]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: web-b, namespace: ${ns}}
`);
  const web = row(page, 'Services', 'web');
  await web.waitFor();
  const count = web.getByRole('button', { name: /endpoints of web ready$/ });
  await eventually(async () => assert.equal(await count.innerText(), '1/2'));
  assert.match(await web.innerText(), /80→8080\/TCP/);
  const ip = web.getByRole('link', { name: '10.77.0.11' });
  assert.equal(await ip.getAttribute('href'), `/ui/object/pods/${ns}/web-a`);

  // The endpoints panel lists each endpoint with its readiness.
  await count.click();
  const panel = page.getByRole('region', { name: 'Endpoints of web' });
  await panel.waitFor();
  assert.match(await panel.innerText(), /10\.77\.0\.12\s+Not ready/);
  await screenshot(page, 'services');
  await expectNoSeriousAxeViolations(page, 'Services');

  // A change to the slice shows without reload.
  await kubectl('patch', 'endpointslice', 'web-1', '-n', ns, '--type=json', '-p', '[{"op":"replace","path":"/endpoints/1/conditions/ready","value":true}]');
  await eventually(async () => assert.equal(await count.innerText(), '2/2'));
});

test("a Secret's value stays hidden until revealed", async () => {
  const { page } = session;
  await goto(page, '/config');
  await page.getByRole('table', { name: 'Secrets' }).waitFor();
  await page.getByRole('table', { name: 'ConfigMaps' }).waitFor();
  await kubectl('create', 'secret', 'generic', 'creds', '-n', ns, '--from-literal=password=s3cr3t-value', '--from-literal=user=ada');
  await kubectl('create', 'configmap', 'settings', '-n', ns, '--from-literal=mode=fast');
  const creds = row(page, 'Secrets', 'creds');
  await creds.waitFor();
  assert.match(await creds.innerText(), /Opaque/);
  await row(page, 'ConfigMaps', 'settings').waitFor();

  await creds.getByRole('button', { name: 'Show keys of creds' }).click();
  const dialog = page.getByRole('dialog', { name: 'Secret creds' });
  await dialog.waitFor();
  assert.doesNotMatch(await dialog.innerText(), /s3cr3t-value/, 'the value is hidden');
  assert.doesNotMatch(await page.content(), /s3cr3t-value/, 'the value is not in the page at all');
  assert.match(await dialog.innerText(), /•••/);
  await dialog.getByRole('button', { name: 'Reveal password' }).click();
  await eventually(async () => assert.match(await dialog.innerText(), /s3cr3t-value/));
  assert.doesNotMatch(await dialog.innerText(), /ada/, 'other keys stay hidden');
  await screenshot(page, 'config-secret-revealed');
  await expectNoSeriousAxeViolations(page, 'Secret data');
  await dialog.getByRole('button', { name: 'Close' }).click();
});

test('a Warning event appears in the timeline, linking to its object', async () => {
  const { page } = session;
  await goto(page, '/events');
  const table = page.getByRole('table', { name: 'Events' });
  await table.waitFor();
  await kubectlApply(`
apiVersion: v1
kind: Event
metadata: {name: settings.e2e-warning, namespace: ${ns}}
involvedObject: {apiVersion: v1, kind: ConfigMap, name: settings, namespace: ${ns}}
type: Warning
reason: DiskPressureTest
message: the e2e test says something went wrong
count: 3
source: {component: e2e}
`);
  await page.getByRole('combobox', { name: 'Type' }).selectOption('Warning');
  const warning = table.getByRole('row').filter({ hasText: 'DiskPressureTest' });
  await warning.waitFor();
  const text = await warning.innerText();
  assert.match(text, /Warning/);
  assert.match(text, /something went wrong/);
  const link = warning.getByRole('link', { name: 'ConfigMap/settings' });
  assert.equal(await link.getAttribute('href'), `/ui/object/configmaps/${ns}/settings`);
  // Normal events are filtered out while "Warning" is selected.
  assert.equal(await table.getByRole('row').filter({ hasText: /\bNormal\b/ }).count(), 0);
  await screenshot(page, 'events');
  await expectNoSeriousAxeViolations(page, 'Events');
});
