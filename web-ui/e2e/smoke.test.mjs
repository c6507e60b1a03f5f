// The shell: signing in, the Overview, the keyboard shortcuts, the theme, and accessibility of the sign-in page and Overview.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, expectNoSeriousAxeViolations, nodeNames, open, screenshot, signInWith } from './harness.mjs';

let session;
before(async () => {
  session = await open({ theme: 'light', signIn: false });
});
after(async () => {
  await session?.browser.close();
});

test('a wrong token is refused with an error on the sign-in form', async () => {
  const { page } = session;
  await page.getByRole('heading', { name: 'Sign in to Wharf' }).waitFor();
  await expectNoSeriousAxeViolations(page, 'sign-in page');
  await page.locator('#token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.innerText(), /did not accept/i);
  assert.equal(await page.getByRole('navigation', { name: 'Main' }).count(), 0, 'the shell must not show');
  await screenshot(page, 'signin-error');
});

test('the right token shows the Overview with the local node', async () => {
  const { page } = session;
  const nodes = await nodeNames();
  assert.ok(nodes.length > 0, 'the cluster has a node');
  await page.locator('#token').fill('');
  await signInWith(page);
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  const main = page.locator('main');
  await eventually(async () => assert.match(await main.innerText(), new RegExp(nodes[0].replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))), {
    timeout: 20_000,
  });
  await screenshot(page, 'smoke-overview');
  await expectNoSeriousAxeViolations(page, 'Overview');
});

test('/ focuses the search and ? opens the shortcuts', async () => {
  const { page } = session;
  await page.locator('main').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('/');
  const search = page.getByRole('searchbox', { name: 'Filter by name or label' });
  await eventually(async () => assert.ok(await search.evaluate((el) => el === document.activeElement), 'search is focused'));
  await page.keyboard.press('Escape');
  await page.keyboard.press('?');
  const dialog = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await dialog.waitFor();
  assert.match(await dialog.innerText(), /Focus the filter/);
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
});

test('switching the theme to dark changes data-theme', async () => {
  const { page } = session;
  const themeOf = () => page.evaluate(() => document.documentElement.dataset.theme);
  assert.equal(await themeOf(), 'light');
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('dark');
  await eventually(async () => assert.equal(await themeOf(), 'dark'));
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await screenshot(page, 'smoke-overview-dark');
  await page.getByRole('combobox', { name: 'Theme' }).selectOption('light');
  await eventually(async () => assert.equal(await themeOf(), 'light'));
  const lightBg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(bg, lightBg, 'the page background changes with the theme');
});
