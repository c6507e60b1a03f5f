// Create and edit from YAML, and the object detail page: a YAML syntax error and an object the API rejects are shown
// at their lines and nothing is created; a valid ConfigMap's dry run shows a diff and Apply creates it; Edit YAML
// changes a label; a pod's detail page shows its YAML and its events.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, goto, kubectl, kubectlApply, open, screenshot, uniqueNamespace } from './harness.mjs';

const ns = await uniqueNamespace('yaml');
let browser;
let page;

before(async () => {
  ({ browser, page } = await open({ path: '/create', namespace: ns }));
});

after(async () => {
  await browser?.close();
});

/** Replaces the editor's whole text (typed as one input, so the editor does not indent it). */
async function setEditorText(text, scope = page) {
  const content = scope.locator('.cm-content');
  await content.waitFor();
  await content.click();
  await page.keyboard.press('Control+a');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

/** Whether kubectl finds the object. */
async function exists(...args) {
  const out = await kubectl('get', ...args, '-n', ns, '--ignore-not-found', '-o', 'name');
  return out.trim() !== '';
}

test('a YAML syntax error is shown at its line and nothing is created', async () => {
  await goto(page, '/create');
  // The first document is fine; line 11 of the second has an unclosed flow sequence.
  const text = [
    'apiVersion: v1', //                       1
    'kind: ConfigMap', //                      2
    'metadata:', //                            3
    '  name: first-of-two', //                 4
    'data:', //                                5
    '  a: "1"', //                             6
    '---', //                                  7
    'apiVersion: v1', //                       8
    'kind: ConfigMap', //                      9
    'metadata: {name: broken}', //             10
    'data: {a: [1, 2}', //                     11
    '',
  ].join('\n');
  await setEditorText(text);
  await page.getByRole('button', { name: 'Apply' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  const message = await alert.innerText();
  assert.match(message, /line 11:/, message);
  assert.match(message, /Nothing was applied/, message);
  // The same problem is a lint diagnostic in the editor, marked in the gutter.
  await page.locator('.cm-lint-marker-error').first().waitFor();
  await screenshot(page, 'yaml-syntax-error');
  assert.equal(await exists('configmap', 'first-of-two'), false, 'the valid first document must not be created');
  assert.equal(await exists('configmap', 'broken'), false);
});

test('an object the API rejects is shown at the rejected field line and nothing is created', async () => {
  await goto(page, '/create');
  const text = [
    'apiVersion: v1', //                       1
    'kind: ConfigMap', //                      2
    'metadata:', //                            3
    '  name: before-the-bad-one', //           4
    '---', //                                  5
    'apiVersion: apps/v1', //                  6
    'kind: Deployment', //                     7
    'metadata:', //                            8
    '  name: rejected', //                     9
    'spec:', //                                10
    '  replicas: -1', //                       11
    '  selector:', //                          12
    '    matchLabels: {app: rejected}', //     13
    '  template:', //                          14
    '    metadata:', //                        15
    '      labels: {app: rejected}', //        16
    '    spec:', //                            17
    '      containers:', //                    18
    '      - name: main', //                   19
    '        image: busybox:v1', //            20
    '',
  ].join('\n');
  await setEditorText(text);
  await page.getByRole('button', { name: 'Apply' }).click();
  const message = await eventually(async () => {
    const text = await page.getByRole('alert').innerText();
    assert.match(text, /line 11: spec\.replicas: .*-1/, text);
    return text;
  });
  console.log(`the page says: ${message.replace(/\n/g, ' | ')}`);
  await page.locator('.cm-lint-marker-error').first().waitFor();
  await screenshot(page, 'yaml-invalid-field');
  assert.equal(await exists('deployment', 'rejected'), false, 'the rejected Deployment must not exist');
  assert.equal(await exists('configmap', 'before-the-bad-one'), false, 'nothing is applied when one object fails');

  // A name the API refuses is shown at metadata.name's line.
  await setEditorText(['apiVersion: v1', 'kind: ConfigMap', 'metadata:', '  name: Not_A_Valid_Name', 'data: {a: "1"}', ''].join('\n'));
  await page.getByRole('button', { name: 'Dry run' }).click();
  await eventually(async () => assert.match(await page.getByRole('alert').innerText(), /line 4: metadata\.name: /));
});

test('a valid ConfigMap: the dry run shows a diff, Apply creates it, Edit YAML changes a label', async () => {
  await goto(page, '/create');
  await setEditorText(['apiVersion: v1', 'kind: ConfigMap', 'metadata:', '  name: settings', 'data:', '  greeting: hello', ''].join('\n'));
  await page.getByRole('button', { name: 'Dry run' }).click();
  const diff = page.locator('pre[aria-label^="Diff of ConfigMap settings"]');
  await diff.waitFor();
  const diffText = await diff.innerText();
  assert.match(diffText, /^\+\s*greeting: hello$/m, diffText);
  assert.match(diffText, new RegExp(`^\\+\\s*namespace: ${ns}$`, 'm'), 'objects without a namespace go to the selected one');
  assert.equal(await exists('configmap', 'settings'), false, 'a dry run creates nothing');
  await screenshot(page, 'yaml-dry-run-diff');
  await expectNoSeriousAxeViolations(page, 'create from YAML with a diff');

  await page.getByRole('button', { name: 'Apply' }).click();
  const created = page.getByRole('link', { name: 'ConfigMap settings' });
  await created.waitFor();
  assert.equal(await kubectl('get', 'configmap', 'settings', '-n', ns, '-o', 'jsonpath={.data.greeting}'), 'hello');

  // Applying it again says it exists and offers to edit it: that link opens its page with the YAML editor.
  await page.getByRole('button', { name: 'Apply' }).click();
  await eventually(async () => assert.match(await page.getByRole('alert').innerText(), /ConfigMap settings already exists/));
  await page.getByRole('link', { name: 'edit settings' }).click();
  await page.getByRole('heading', { level: 1, name: 'settings' }).waitFor();
  const dialog = page.getByRole('dialog');
  await dialog.locator('.cm-content').waitFor();
  const current = await dialog.locator('.cm-content').innerText();
  assert.match(current, /name: settings/);
  assert.doesNotMatch(current, /managedFields/, 'managedFields are left out of the editor');
  await setEditorText(current.replace(/\n  name: settings\n/, '\n  name: settings\n  labels:\n    tier: edited\n'), dialog);
  await dialog.getByRole('button', { name: 'Dry run' }).click();
  await eventually(async () => assert.match(await dialog.locator('pre[aria-label^="Diff of"]').innerText(), /\+\s*tier: edited/));
  await screenshot(page, 'yaml-edit-dialog');
  await dialog.getByRole('button', { name: 'Apply' }).click();
  await dialog.waitFor({ state: 'detached' });
  await eventually(async () =>
    assert.equal(await kubectl('get', 'configmap', 'settings', '-n', ns, '-o', 'jsonpath={.metadata.labels.tier}'), 'edited'),
  );
  // The page follows: the Summary shows the new label.
  await eventually(async () => assert.match(await page.locator('.labels').first().innerText(), /tier=edited/));
});

test("a pod's detail page shows its YAML and its events", async () => {
  await kubectlApply(
    [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      `  namespace: ${ns}`,
      '  name: ticking',
      '  labels: {app: ticking}',
      'spec:',
      '  containers:',
      '  - name: main',
      '    image: ticker:v1',
      '',
    ].join('\n'),
  );
  await goto(page, `/object/pods/${ns}/ticking`);
  await page.getByRole('heading', { level: 1, name: 'ticking' }).waitFor();
  // The container's runtime shows once it runs.
  await eventually(async () => assert.equal(await page.locator('table[aria-label="Containers"] .badge').first().innerText(), 'Wasm'), {
    timeout: 60_000,
  });
  await screenshot(page, 'detail-pod-summary');

  await page.getByRole('tab', { name: 'YAML' }).click();
  const yaml = page.locator('pre[aria-label="YAML of ticking"]');
  await yaml.waitFor();
  const text = await yaml.innerText();
  assert.match(text, /^kind: Pod$/m);
  assert.match(text, /image: ticker:v1/);
  assert.doesNotMatch(text, /managedFields/, 'managedFields are hidden by default');
  await screenshot(page, 'detail-pod-yaml');

  await page.getByRole('tab', { name: 'Events' }).click();
  await eventually(async () => assert.match(await page.getByRole('tabpanel').innerText(), /Scheduled/));
  await screenshot(page, 'detail-pod-events');
  await expectNoSeriousAxeViolations(page, 'pod detail, events');

  // Deleted with kubectl: the page says so.
  await kubectl('delete', 'pod', 'ticking', '-n', ns, '--grace-period=0', '--force');
  await page.getByText('This Pod was deleted').waitFor({ timeout: 30_000 });
});
