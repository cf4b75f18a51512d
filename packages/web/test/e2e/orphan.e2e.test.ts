import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
  waitFor,
  type ServerProcess,
} from './harness.js';

describe('the dashboard when its server dies', () => {
  let dir: string;
  let server: ServerProcess | null = null;
  let browser: Browser;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'runtrail-web-orphan-'));
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows a run the killed server was executing as failed, orphaned, once the server is back, without a reload', async () => {
    const dataDir = join(dir, 'data');
    const node = 'e2e-orphan-node';
    server = await spawnServer({ dataDir, node });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = collectConsoleErrors(page);

    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Start run' }).click();
    const handler = page.getByLabel('handler', { exact: true });
    await waitFor('the demo handler to be offered', async () =>
      (await handler.locator('option').allTextContents()).includes('demo-pipeline'),
    );
    await handler.selectOption('demo-pipeline');
    await page.getByLabel('run input as JSON').fill(JSON.stringify({ docs: 200, latencyMs: 300 }));
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await waitFor('the run page to open', () => new URL(page.url()).pathname.startsWith('/runs/'));
    await waitFor('the run to be executing', async () => (await counters(page)).ok > 0);
    const navigations: string[] = [];
    page.on('framenavigated', (frame) => frame === page.mainFrame() && navigations.push(frame.url()));

    const port = server.port;
    await stopServer(server, 'SIGKILL');
    await waitFor('the page to notice the server is gone', async () => {
      const state = await page.getByTestId('connection').textContent();
      return state !== 'live' ? state : null;
    });

    server = await spawnServer({ dataDir, node, port });
    const badge = page.locator('.run-head').getByTestId('status');
    await waitFor('the run to show failed', async () => (await badge.textContent()) === 'failed', { timeoutMs: 30_000 });
    expect(await page.getByTestId('error-kind').textContent()).toBe('orphaned');
    await expect(page.getByTestId('run-error').textContent()).resolves.toContain('stopped heartbeating');
    expect(navigations).toEqual([]);
    // Failed requests while the server was down are expected console noise; a crash of the page is not.
    expect(errors.filter((e) => e.startsWith('uncaught:'))).toEqual([]);
    await page.close();
  });
});
