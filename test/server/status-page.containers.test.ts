/**
 * The /ui/ status page in Debian's headless Chromium (playwright-core, browser from apt, nothing
 * downloaded): it shows the pools with live counts, the sessions, the latency charts, and runs code.
 */

import { existsSync } from 'node:fs';

import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, containerBackendAvailable, jsPool, startServer, type Harness } from './helpers.js';

const BROWSER = '/usr/bin/chromium';
const CI = process.env['CI'] === 'true' || process.env['CI'] === '1';
if (CI && !existsSync(BROWSER))
  throw new Error(`${BROWSER} is missing: npm run setup installs it (scripts/setup/40-ui-browser.mjs)`);
const containers = await containerBackendAvailable();

describe.skipIf(!existsSync(BROWSER))('status page', () => {
  let h: Harness;
  let browser: Browser;

  beforeAll(async () => {
    const pools = [jsPool('js', { readySessionInstances: 2 })];
    if (containers)
      pools.push(
        new SessionPool({
          name: 'py',
          backend: new ContainerBackend(),
          containerType: 'PythonLTS',
          readySessionInstances: 1,
          maxConcurrentSessions: 2,
        }),
      );
    h = await startServer({ pools, withDefaultPool: false });
    browser = await chromium.launch({
      executablePath: BROWSER,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  }, 60_000);

  test('pools, sessions, charts and the run box', async () => {
    const page = await browser.newPage();
    try {
      // Without a token the page loads but the API refuses it, and it says so.
      await page.goto(`${h.url}/ui`);
      expect(page.url()).toBe(`${h.url}/ui/`);
      await page.locator('#status', { hasText: /^401 / }).waitFor();

      await page.fill('#token', ADMIN_KEY);
      await page.dispatchEvent('#token', 'change');
      const row = page.locator('#pools tr[data-pool="js"]');
      await row.waitFor();
      await page.locator('#pools tr[data-pool="js"] .ready', { hasText: /^2$/ }).waitFor();
      expect(await row.locator('td').nth(2).textContent()).toBe('quickjs');

      await page.selectOption('#run-pool', 'js');
      await page.fill('#run-id', 'ui-test-session-1');
      await page.fill('#code', 'console.log("from the page"); console.error("careful"); 6 * 7');
      await page.click('#run');
      await page.locator('#run-status', { hasText: /^Succeeded$/ }).waitFor();
      expect(await page.textContent('#out-stdout')).toBe('from the page\n');
      expect(await page.textContent('#out-stderr')).toBe('careful\n');
      expect(await page.textContent('#out-result')).toBe('42');

      // The allocation shows up live: counts, the session list, and one sample in each chart.
      await page.locator('#pools tr[data-pool="js"] .allocated', { hasText: /^1$/ }).waitFor();
      await page.locator('#sessions td', { hasText: /^ui-test-session-1$/ }).waitFor();
      const sessionRow = page.locator('#sessions tr', { hasText: 'ui-test-session-1' });
      expect(await sessionRow.locator('td').nth(4).textContent()).toMatch(/^\d+ s$/);
      const samples = async (chart: string): Promise<number> =>
        page.$$eval(`#${chart} svg[data-pool="js"] rect`, (rects) =>
          rects.reduce((n, r) => n + Number(r.getAttribute('data-count')), 0),
        );
      await page.locator('#exec-charts svg[data-pool="js"] rect').first().waitFor({ state: 'attached' });
      expect(await samples('alloc-charts')).toBe(1);
      expect(await samples('exec-charts')).toBe(1);

      // A failing execution is shown as such.
      await page.fill('#code', 'throw new Error("bad input")');
      await page.click('#run');
      await page.locator('#run-status', { hasText: /^Failed$/ }).waitFor();
      expect(await page.textContent('#out-stderr')).toContain('bad input');
    } finally {
      await page.close();
    }
  }, 120_000);

  test.skipIf(!containers)(
    'images from a Python figure are drawn',
    async () => {
      const page = await browser.newPage();
      try {
        await page.goto(`${h.url}/ui/`);
        await page.fill('#token', ADMIN_KEY);
        await page.dispatchEvent('#token', 'change');
        await page.locator('#run-pool option[value="py"]').waitFor({ state: 'attached' });
        await page.selectOption('#run-pool', 'py');
        await page.fill(
          '#code',
          'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\nplt.bar([1, 2], [3, 4])\nplt.show()',
        );
        await page.click('#run');
        await page.locator('#run-status', { hasText: /^Succeeded$/ }).waitFor({ timeout: 90_000 });
        const size = await page.locator('#out-images img').evaluate(async (img) => {
          const image = img as unknown as { decode(): Promise<void>; naturalWidth: number; naturalHeight: number };
          await image.decode();
          return [image.naturalWidth, image.naturalHeight];
        });
        expect(size[0]).toBeGreaterThan(100);
        expect(size[1]).toBeGreaterThan(100);
      } finally {
        await page.close();
      }
    },
    120_000,
  );
});
