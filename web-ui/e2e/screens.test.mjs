// Every main view in the light and the dark theme, showing real objects: a screenshot of each (<view>-<theme>.png in
// WHARF_SCREENSHOTS) and no serious or critical axe violation on any.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  eventually,
  expectNoSeriousAxeViolations,
  goto,
  kubectl,
  kubectlApply,
  nodeNames,
  open,
  screenshot,
  uniqueNamespace,
} from './harness.mjs';

let ns;
let node;
let pod;

before(async () => {
  ns = await uniqueNamespace('screens');
  node = (await nodeNames())[0];
  await kubectlApply(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ${ns}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: ticker, image: 'ticker:v1'}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shell, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: shell}}
  template:
    metadata: {labels: {app: shell}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: 'busybox:v1', command: [sleep, '3600']}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${ns}}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: ${ns}}
data: {greeting: hello, mode: screens}
---
apiVersion: v1
kind: Secret
metadata: {name: api-key, namespace: ${ns}}
stringData: {key: not-a-real-key}
---
apiVersion: wharf.dev/v1
kind: Function
metadata: {name: hello, namespace: ${ns}}
spec:
  image: 'http-hello:v1'
  route: {path: /screens-hello}
`);
  await kubectl('wait', '-n', ns, '--for=condition=Available', 'deployment/web', 'deployment/shell', '--timeout=90s');
  pod = (await kubectl('get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}')).trim();
  assert.ok(pod, 'a web pod exists');
});

/** Each view: its path, and what shows once its data is there. */
const VIEWS = [
  { name: 'overview', path: () => '/', ready: (page) => page.getByRole('heading', { level: 2, name: 'Nodes' }) },
  { name: 'nodes', path: () => '/nodes', ready: (page) => linkIn(page, 'Nodes', node) },
  { name: 'deployments', path: () => '/workloads/deployments', ready: (page) => linkIn(page, 'Deployments', 'web') },
  { name: 'pods', path: () => '/workloads/pods', ready: (page) => linkIn(page, 'Pods', pod) },
  { name: 'functions', path: () => '/functions', ready: (page) => linkIn(page, 'Functions', 'hello') },
  { name: 'services', path: () => '/services', ready: (page) => linkIn(page, 'Services', 'web') },
  { name: 'config', path: () => '/config', ready: (page) => linkIn(page, 'ConfigMaps', 'settings') },
  {
    name: 'events',
    path: () => '/events',
    ready: (page) => page.getByRole('table', { name: 'Events' }).getByRole('row').nth(1),
  },
  {
    name: 'pod-detail',
    path: () => `/object/pods/${ns}/${pod}`,
    ready: (page) => page.getByRole('heading', { level: 1, name: pod }),
  },
  { name: 'create', path: () => '/create', ready: (page) => page.locator('.cm-content') },
];

function linkIn(page, table, name) {
  return page.getByRole('table', { name: table }).getByRole('link', { name, exact: true });
}

for (const theme of ['light', 'dark']) {
  describe(`views in the ${theme} theme`, () => {
    let session;
    before(async () => {
      session = await open({ theme, namespace: ns });
    });
    after(async () => {
      await session?.browser.close();
    });

    for (const view of VIEWS) {
      test(`${view.name} (${theme})`, async () => {
        const { page } = session;
        await goto(page, view.path());
        await page.locator('main h1').first().waitFor();
        try {
          await view.ready(page).first().waitFor({ timeout: 25_000 });
        } finally {
          await screenshot(page, `${view.name}-${theme}`);
        }
        await eventually(async () => assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), theme));
        await expectNoSeriousAxeViolations(page, `${view.name} (${theme})`);
      });
    }
  });
}
