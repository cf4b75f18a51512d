import { describe, expect, it } from 'vitest';
import { counters, restartingScene, waitUntil } from './harness.js';

describe('the dashboard when its server dies', () => {
  const scene = restartingScene({ prefix: 'runtrail-web-orphan-', node: 'e2e-orphan-node' });

  it('shows a run the killed server was executing as failed, orphaned, once the server is back, without a reload', async () => {
    const server = await scene.start();
    const { page, errors } = await scene.newPage();

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

    await scene.stop('SIGKILL');
    await waitUntil(
      async () => {
        const state = await page.getByTestId('connection').textContent();
        return state !== 'live' ? state : null;
      },
      { what: 'the page to notice the server is gone' },
    );

    await scene.start();
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
