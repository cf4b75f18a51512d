import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  collectConsoleErrors,
  counters,
  launchChromium,
  progressPercent,
  screenshot,
  spawnServer,
  stopServer,
  waitFor,
  writeScreenshots,
  type ServerProcess,
} from './harness.js';

interface ApiRun {
  id: string;
  status: string;
  snapshot: { counters: { ok: number; failed: number; retries: number } };
}

/** Start the demo pipeline from the Runs page and land on its run page; returns the run id. */
async function startDemoRun(page: Page, input: object, labels: string): Promise<string> {
  await page.getByRole('button', { name: 'Start run' }).click();
  const handler = page.getByLabel('handler', { exact: true });
  await waitFor('the demo handler to be offered', async () =>
    (await handler.locator('option').allTextContents()).includes('demo-pipeline'),
  );
  await handler.selectOption('demo-pipeline');
  const editor = page.getByLabel('run input as JSON');
  await editor.fill('{"docs": ');
  await expect(page.getByRole('button', { name: 'Start', exact: true }).isDisabled()).resolves.toBe(true);
  await page.getByText('Not valid JSON').waitFor();
  await editor.fill(JSON.stringify(input));
  await page.getByLabel('run labels (key=value, comma separated)').fill(labels);
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  const id = await waitFor('the run page to open', () => /\/runs\/([^/]+)$/.exec(new URL(page.url()).pathname)?.[1]);
  await page.getByRole('heading', { name: 'demo-pipeline' }).waitFor();
  return id;
}

async function status(page: Page): Promise<string | null> {
  return page.locator('.run-head').getByTestId('status').textContent();
}

describe('the dashboard in a real browser', () => {
  let dir: string;
  let server: ServerProcess | null = null;
  let browser: Browser;

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'runtrail-web-e2e-'));
    server = await spawnServer({ dataDir: join(dir, 'data'), node: 'e2e-dashboard' });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts a demo run, shows it live across a reload, ends with the server’s counters, and cancels another', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = collectConsoleErrors(page);
    const api = async (id: string) => (await (await fetch(`${server!.url}/api/v1/runs/${id}`)).json()) as ApiRun;

    await page.goto(`${server!.url}/`);
    await page.getByText('No runs yet').waitFor();

    // Run 1: watch it move, reload mid-run, see it end with the server's numbers.
    const first = await startDemoRun(page, { docs: 100, latencyMs: 150, concurrency: 6, failureRate: 0.15 }, 'suite=smoke, model=mixed');
    await waitFor('the OK counter to rise', async () => (await counters(page)).ok > 0);
    const label = await waitFor('an in-flight call label', async () => {
      const text = await page.getByTestId('in-flight').locator('.call-label').first().textContent({ timeout: 200 });
      return text && /^Evaluating doc_\d+ with \S+/.test(text) ? text : null;
    });
    expect(label).toMatch(/^Evaluating doc_\d+ with /);
    await page.getByTestId('metric-latency_ms').waitFor();
    await page.getByTestId('metric-accuracy').waitFor();
    // A third of the way in, a reload has hundreds of events to replay.
    await waitFor('the run to be a third done', async () => (await progressPercent(page)) >= 30);
    await screenshot(page, 'run', { fullPage: true });

    expect(await status(page)).toBe('running');
    const beforeReload = await counters(page);
    await page.reload();
    await page.getByTestId('counter-ok').waitFor();
    const afterReload = await counters(page);
    expect(afterReload.ok).toBeGreaterThanOrEqual(beforeReload.ok);
    expect(afterReload.failed).toBeGreaterThanOrEqual(beforeReload.failed);
    expect(afterReload.retries).toBeGreaterThanOrEqual(beforeReload.retries);

    await waitFor('run 1 to succeed', async () => (await status(page)) === 'succeeded', { timeoutMs: 60_000 });
    const ended = await api(first);
    expect(ended.status).toBe('succeeded');
    expect(await counters(page)).toEqual({
      ok: ended.snapshot.counters.ok,
      failed: ended.snapshot.counters.failed,
      retries: ended.snapshot.counters.retries,
    });
    expect(ended.snapshot.counters.ok + ended.snapshot.counters.failed).toBe(200);
    await page.getByTestId('in-flight').waitFor({ state: 'detached' });

    // Run 2: long; the runs table follows it live, then it is cancelled from its page.
    await page.getByRole('link', { name: '← All runs' }).click();
    const second = await startDemoRun(page, { docs: 200, latencyMs: 300, concurrency: 4 }, 'suite=nightly');
    await page.getByRole('link', { name: '← All runs' }).click();
    const row = page.locator(`tr[data-run-id="${second}"]`);
    await row.waitFor();
    const okInTable = async () => Number(await row.locator('.counters-cell .ok').textContent());
    const seen = await waitFor('run 2 to show OK calls in the table', async () => ((await okInTable()) > 0 ? okInTable() : null));
    await waitFor('the table to update without a reload', async () => (await okInTable()) > seen);
    expect(await page.locator(`tr[data-run-id="${first}"]`).getByTestId('status').textContent()).toBe('succeeded');
    if (writeScreenshots) {
      const bar = row.getByLabel('progress of demo-pipeline');
      await waitFor('run 2 to be under way', async () => Number(await bar.getAttribute('value')) >= 10);
    }
    await screenshot(page, 'runs', { height: 420 });

    await page.getByLabel('filter by labels (key=value, comma separated)').fill('suite=smoke');
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await waitFor('only the smoke run to be listed', async () => {
      const ids = await page.locator('tbody tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
      return ids.length === 1 && ids[0] === first;
    });
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    await row.waitFor();

    await row.getByRole('link', { name: 'demo-pipeline' }).click();
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.getByRole('button', { name: 'Yes, cancel it' }).click();
    await waitFor('run 2 to end cancelled', async () => (await status(page)) === 'cancelled', { timeoutMs: 20_000 });
    expect((await api(second)).status).toBe('cancelled');
    expect(await page.getByTestId('error-kind').textContent()).toBe('cancelled');

    // The same page on a phone: nothing may overflow sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByTestId('counter-ok').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);

    expect(errors).toEqual([]);
    await page.close();
  });
});
