import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  collectConsoleErrors,
  counters,
  launchChromium,
  spawnServer,
  stopServer,
  tempDir,
  waitUntil,
  type ServerProcess,
} from './harness.js';

describe('the dashboard when its server dies', () => {
  const dir = tempDir('runtrail-web-orphan-');
  let server: ServerProcess | null = null;
  let browser: Browser;

  beforeAll(async () => {
    assertBuilt();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  it('shows a run the killed server was executing as failed, orphaned, once the server is back, without a reload', async () => {
    const dataDir = join(dir.path, 'data');
    const node = 'e2e-orphan-node';
    server = await spawnServer({ dataDir, node });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = collectConsoleErrors(page);

    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Start run' }).click();
    const handler = page.getByLabel('handler', { exact: true });
    await waitUntil(async () => (await handler.locator('option').allTextContents()).includes('demo-pipeline'), {
      what: 'the demo handler to be offered',
    });
    await handler.selectOption('demo-pipeline');
    await page.getByLabel('run input as JSON').fill(JSON.stringify({ docs: 200, latencyMs: 300 }));
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await waitUntil(() => new URL(page.url()).pathname.startsWith('/runs/'), { what: 'the run page to open' });
    await waitUntil(async () => (await counters(page)).ok > 0, { what: 'the run to be executing' });
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => frame === page.mainFrame() && navigations.push(frame.url()));

    const port = server.port;
    await stopServer(server, 'SIGKILL');
    await waitUntil(
      async () => {
        const state = await page.getByTestId('connection').textContent();
        return state !== 'live' ? state : null;
      },
      { what: 'the page to notice the server is gone' },
    );

    server = await spawnServer({ dataDir, node, port });
    const badge = page.locator('.run-head').getByTestId('status');
    await waitUntil(async () => (await badge.textContent()) === 'failed', { what: 'the run to show failed', timeoutMs: 30_000 });
    expect(await page.getByTestId('error-kind').textContent()).toBe('orphaned');
    await expect(page.getByTestId('run-error').textContent()).resolves.toContain('stopped heartbeating');
    expect(navigations).toEqual([]);
    // Failed requests while the server was down are expected console noise; a crash of the page is not.
    expect(errors.filter((e) => e.startsWith('uncaught:'))).toEqual([]);
    await page.close();
  });
});
