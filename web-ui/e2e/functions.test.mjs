// Functions, as a user drives them from the page: deploy the http-hello Wasm component by uploading its .wasm file
// (the page pushes it to the cluster's registry and creates the Function), see it in the Functions table and in
// `kubectl get functions`, invoke it from the Invoke panel (status 200, "hello from wasm", the time it took) and watch
// its invocation count rise; with requests coming, the table shows their rate and latency. A bad name is refused before
// anything is sent.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SAMPLES, eventually, expectNoSeriousAxeViolations, goto, kubectl, open, screenshot, uniqueNamespace } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const HELLO = join(SAMPLES || resolve(here, '../../samples/out'), 'http-hello.wasm');

/** The text of a row's cell in a column of the Functions table. */
async function cell(page, name, column) {
  const table = page.getByRole('table', { name: 'Functions' });
  const titles = await table.locator('thead th').allInnerTexts();
  const index = titles.findIndex((t) => t.replace(/[▴▾]/g, '').trim() === column);
  assert.ok(index >= 0, `the Functions table has a column ${column} (it has ${titles.join(', ')})`);
  const row = table.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });
  return (await row.locator('td').nth(index).innerText()).trim();
}

/** The Invocations the Invoke panel shows. */
async function panelInvocations(panel) {
  return Number((await panel.locator('dt', { hasText: /^Invocations$/ }).locator('xpath=following-sibling::dd[1]').innerText()).trim());
}

/**
 * Clicks the panel's Invoke until a new response shows in its history. A request the browser dropped (Chromium drops
 * requests in flight when the machine's network changes, which other clusters' pods on this machine do) shows an
 * alert instead; a user clicks again, and so does this.
 */
async function invoke(panel) {
  const items = panel.getByRole('list', { name: 'Recent invocations' }).getByRole('listitem');
  const alert = panel.getByRole('alert');
  const before = await items.count();
  await eventually(
    async () => {
      await panel.getByRole('button', { name: 'Invoke', exact: true }).click();
      await Promise.race([
        items.nth(before).waitFor({ timeout: 20_000 }),
        alert.waitFor({ timeout: 20_000 }).then(async () => assert.fail(await alert.innerText())),
      ]);
    },
    { timeout: 60_000, interval: 500 },
  );
}

test('a Wasm function deployed from the page by uploading its .wasm answers from the Invoke panel', async () => {
  assert.ok(
    existsSync(HELLO),
    `${HELLO} is missing: build the samples with samples/build (needs: rustup target add wasm32-wasip2), or set WHARF_SAMPLES`,
  );
  const ns = await uniqueNamespace('functions');
  const { browser, page } = await open({ path: '/functions' });
  try {
    await page.getByRole('combobox', { name: 'Namespace' }).selectOption(ns);
    await page.getByRole('table', { name: 'Functions' }).waitFor();

    await page.getByRole('button', { name: 'Deploy function' }).click();
    const dialog = page.getByRole('dialog', { name: 'Deploy function' });
    // A name that is not a DNS label is refused in the page.
    await dialog.getByLabel('Name', { exact: true }).fill('Hello_World');
    await dialog.getByLabel('.wasm file').setInputFiles(HELLO);
    await dialog.getByRole('button', { name: 'Deploy', exact: true }).click();
    await dialog.getByText(/A DNS label/).waitFor();
    assert.equal(await dialog.getByLabel('Name', { exact: true }).getAttribute('aria-invalid'), 'true');

    await dialog.getByLabel('Name', { exact: true }).fill('hello');
    await dialog.getByLabel('Path', { exact: true }).fill(`/${ns}/hello`);
    await expectNoSeriousAxeViolations(page, 'the Deploy function dialog');
    await screenshot(page, 'functions-deploy');
    const deployStarted = performance.now();
    await dialog.getByRole('button', { name: 'Deploy', exact: true }).click();
    const refused = dialog.getByRole('alert');
    await Promise.race([
      dialog.waitFor({ state: 'detached', timeout: 30_000 }),
      refused.waitFor({ timeout: 30_000 }).then(
        async () => assert.fail(`the deploy failed: ${await refused.innerText()}`),
        () => {},
      ),
    ]);

    // The table shows it, live, as a Wasm function, and kubectl sees it.
    const table = page.getByRole('table', { name: 'Functions' });
    await table.getByRole('link', { name: 'hello', exact: true }).waitFor();
    await eventually(async () => assert.equal(await cell(page, 'hello', 'Ready'), 'Ready'));
    console.log(`deploy from the page to Ready: ${Math.round(performance.now() - deployStarted)} ms`);
    assert.equal(await cell(page, 'hello', 'Runtime'), 'Wasm');
    const got = await kubectl('get', 'functions', '-n', ns);
    assert.match(got, /^hello\b/m, `kubectl get functions lists hello:\n${got}`);
    const image = await kubectl('get', 'function', 'hello', '-n', ns, '-o', 'jsonpath={.spec.image}');
    assert.match(image, /^fn-hello:[0-9a-f]{12}$/, 'the uploaded file is the image fn-hello:<digest>');
    await screenshot(page, 'functions');
    await expectNoSeriousAxeViolations(page, 'the Functions list');

    // The detail page's Invoke tab.
    await table.getByRole('link', { name: 'hello', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'hello' }).waitFor();
    await page.getByRole('tab', { name: 'Invoke' }).click();
    const panel = page.getByRole('tabpanel');
    const before = await panelInvocations(panel);
    await panel.getByLabel('Method').selectOption('GET');
    await invoke(panel);
    assert.equal(await panel.getByLabel('Response status').innerText(), '200 OK');
    assert.equal((await panel.getByLabel('Response body').innerText()).trim(), 'hello from wasm');
    const time = await panel.getByLabel('Response time').innerText();
    assert.match(time, /^\d+(\.\d)? ms$/);
    console.log(`first invocation from the page: ${time}`);
    await invoke(panel);

    // The gateway counts the requests; the count the panel shows rises through the watch.
    const rose = performance.now();
    await eventually(async () => assert.ok((await panelInvocations(panel)) >= before + 2, 'the invocations rose by 2'), { timeout: 45_000 });
    console.log(`invocations rose from ${before} to ${await panelInvocations(panel)} after ${Math.round(performance.now() - rose)} ms`);
    await expectNoSeriousAxeViolations(page, 'the Invoke panel');
    await screenshot(page, 'functions-invoke');

    // While requests come (here from kubectl through the same proxy), the table shows their rate and latency (the
    // gateways' histograms, sampled every 10 s while the page is visible).
    await goto(page, '/functions');
    const measured = performance.now();
    await eventually(
      async () => {
        await kubectl('get', '--raw', `/apis/wharf.dev/v1/namespaces/${ns}/functions/hello/proxy`);
        assert.match(await cell(page, 'hello', 'Latency p50 / p99'), /^[\d.]+ m?s \/ [\d.]+ m?s$/);
        assert.match(await cell(page, 'hello', 'Request rate'), /^[\d.]+\/s$/);
        assert.notEqual(await cell(page, 'hello', 'Request rate'), '0/s');
      },
      { timeout: 60_000, interval: 500 },
    );
    console.log(
      `latency ${await cell(page, 'hello', 'Latency p50 / p99')} and rate ${await cell(page, 'hello', 'Request rate')} ` +
        `shown after ${Math.round(performance.now() - measured)} ms`,
    );
    await screenshot(page, 'functions-latency');
  } finally {
    await browser.close();
  }
});
