import type { Browser, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  browserScene,
  counters,
  progressPercent,
  textNow,
  waitUntil,
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
  await waitUntil(async () => (await handler.locator('option').allTextContents()).includes('demo-pipeline'), {
    what: 'the demo handler to be offered',
  });
  await handler.selectOption('demo-pipeline');
  const editor = page.getByLabel('run input as JSON');
  await editor.fill('{"docs": ');
  await page.getByText('Not valid JSON').waitFor();
  expect(await page.getByRole('button', { name: 'Start', exact: true }).isDisabled()).toBe(true);
  await editor.fill(JSON.stringify(input));
  await page.getByLabel('run labels (key=value, comma separated)').fill(labels);
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  const id = await waitUntil(() => /^\/runs\/([^/]+)$/.exec(new URL(page.url()).pathname)?.[1], {
    what: 'the run page to open',
  });
  await page.getByRole('heading', { name: 'demo-pipeline' }).waitFor();
  return id;
}

function status(page: Page): Promise<string | null> {
  return page.locator('.run-head').getByTestId('status').textContent();
}

async function cancelFromPage(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Cancel run' }).click();
  await page.getByRole('button', { name: 'Yes, cancel it' }).click();
  await waitUntil(async () => (await status(page)) === 'cancelled', { what: 'the run to end cancelled', timeoutMs: 20_000 });
}

/**
 * One server and one page for the whole story, as a user would live it:
 * the tests run in order and share the runs they start.
 */
describe('the dashboard in a real browser', () => {
  const scene = browserScene({ prefix: 'runtrail-web-e2e-', node: 'e2e-dashboard' });
  let server: ServerProcess | null = null;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  const runs: { first?: string; second?: string } = {};

  const api = async (id: string): Promise<{ status: number; body: ApiRun }> => {
    const res = await fetch(`${server!.url}/api/v1/runs/${id}`);
    return { status: res.status, body: (await res.json()) as ApiRun };
  };

  // Started by the scene's beforeAll, which runs first.
  beforeAll(() => {
    ({ server, browser, page, errors } = scene);
  });

  it('starts a demo run from the UI, shows it live across a reload, and ends with the server’s counters', async () => {
    await page.goto(`${server!.url}/`);
    await page.getByTestId('runs-empty').getByText('No runs yet').waitFor();

    // Long enough (about 12 s) that a browser starved by the rest of the suite still sees it running at a
    // fifth of the way: with 100 docs (5 s) it once saw 30 % only after the run had ended.
    const first = await startDemoRun(page, { docs: 250, latencyMs: 150, concurrency: 6, failureRate: 0.15 }, 'suite=smoke, model=mixed');
    runs.first = first;
    await waitUntil(async () => (await counters(page)).ok > 0, { what: 'the OK counter to rise' });
    const label = await waitUntil(
      async () => {
        const texts = await page.getByTestId('in-flight').locator('.call-label').allTextContents();
        return texts.find((text) => /^Evaluating doc_\d+ with \S+/.test(text));
      },
      { what: 'an in-flight call label' },
    );
    expect(label).toMatch(/^Evaluating doc_\d+ with /);
    await page.getByTestId('metric-latency_ms').waitFor();
    await page.getByTestId('metric-accuracy').waitFor();
    // A fifth of the way in, a reload has hundreds of events to replay.
    await waitUntil(async () => (await progressPercent(page)) >= 20, { what: 'the run to be a fifth done' });

    expect(await status(page)).toBe('running');
    const beforeReload = await counters(page);
    await page.reload();
    await page.getByTestId('counter-ok').waitFor();
    const afterReload = await counters(page);
    expect(afterReload.ok).toBeGreaterThanOrEqual(beforeReload.ok);
    expect(afterReload.failed).toBeGreaterThanOrEqual(beforeReload.failed);
    expect(afterReload.retries).toBeGreaterThanOrEqual(beforeReload.retries);

    await waitUntil(async () => (await status(page)) === 'succeeded', { what: 'run 1 to succeed', timeoutMs: 60_000 });
    const ended = (await api(first)).body;
    expect(ended.status).toBe('succeeded');
    expect(await counters(page)).toEqual({
      ok: ended.snapshot.counters.ok,
      failed: ended.snapshot.counters.failed,
      retries: ended.snapshot.counters.retries,
    });
    expect(ended.snapshot.counters.ok + ended.snapshot.counters.failed).toBe(500);
    await page.getByTestId('in-flight').waitFor({ state: 'detached' });
  });

  it('filters the event log by type and by text', async () => {
    const rowsText = (selector: string) => page.locator(`.log-row ${selector}`).allTextContents();
    await page.getByLabel('filter events by type').selectOption('phase');
    await waitUntil(async () => {
      const types = await rowsText('.log-type');
      return types.length > 0 && types.every((t) => t === 'phase');
    }, { what: 'only phase events to be listed' });
    await page.getByLabel('filter events by type').selectOption('');
    await page.getByLabel('filter events by text').fill('doc_042');
    await waitUntil(async () => {
      const lines = await rowsText('.log-data');
      return lines.length > 0 && lines.every((l) => l.includes('doc_042'));
    }, { what: 'only events about doc_042 to be listed' });
    await page.getByLabel('filter events by text').fill('');
  });

  it('follows a second run and a new one live in the runs table, filters by label, shows child runs, and cancels it', async () => {
    await page.getByRole('link', { name: '← All runs' }).click();
    const second = await startDemoRun(page, { docs: 200, latencyMs: 300, concurrency: 4 }, 'suite=nightly');
    runs.second = second;
    await page.getByRole('link', { name: '← All runs' }).click();
    const row = page.locator(`tr[data-run-id="${second}"]`);
    await row.waitFor();
    const okInTable = async () => Number(await row.locator('.counters-cell .ok').textContent());
    const seen = await waitUntil(async () => ((await okInTable()) > 0 ? okInTable() : null), {
      what: 'run 2 to show OK calls in the table',
    });
    await waitUntil(async () => (await okInTable()) > seen, { what: 'the table to update without a reload' });
    expect(await page.locator(`tr[data-run-id="${runs.first}"]`).getByTestId('status').textContent()).toBe('succeeded');

    const external = await fetch(`${server!.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'started-elsewhere' }),
    });
    const { id: externalId } = (await external.json()) as ApiRun;
    await page.locator(`tr[data-run-id="${externalId}"]`).waitFor();
    expect(await page.locator('tbody tr[data-run-id]').first().getAttribute('data-run-id')).toBe(externalId);

    await page.getByLabel('filter by labels (key=value, comma separated)').fill('suite=smoke');
    await waitUntil(async () => {
      const ids = await page.locator('tbody tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
      return ids.length === 1 && ids[0] === runs.first;
    }, { what: 'only the smoke run to be listed' });
    await page.getByRole('button', { name: 'Clear', exact: true }).click();
    await row.waitFor();

    await row.getByRole('link', { name: 'demo-pipeline' }).click();
    const child = (await (
      await fetch(`${server!.url}/api/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'experiment-1', parentId: second }),
      })
    ).json()) as ApiRun;
    const childItem = page.locator('.children-table tbody tr').filter({ hasText: 'experiment-1' });
    await childItem.waitFor();
    const finished = await fetch(`${server!.url}/api/v1/runs/${child.id}/finish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'succeeded' }),
    });
    expect(finished.ok).toBe(true);
    await waitUntil(async () => (await childItem.getByTestId('status').textContent()) === 'succeeded', {
      what: 'the child run to show its end live',
    });

    await cancelFromPage(page);
    expect((await api(second)).body.status).toBe('cancelled');
    expect(await page.getByTestId('error-kind').textContent()).toBe('cancelled');
    // The phase (or a call) the cancel aborted is not shown in red as the run's last error, with no word of the cancel.
    await page.getByTestId('last-error-after-cancel').waitFor();
    expect(await page.getByTestId('last-error-after-cancel').textContent()).toMatch(/^.+, as the cancel stopped the run \(its reason is at the top\)\.$/);
    expect(await page.getByTestId('last-error').count()).toBe(0);
  });

  it('retries a cancelled run as a new linked run (one, even on a double click), and deletes an ended run after asking', async () => {
    await page.getByRole('button', { name: 'Retry' }).dblclick();
    const retry = await waitUntil(
      () => {
        const id = /^\/runs\/([^/]+)$/.exec(new URL(page.url()).pathname)?.[1];
        return id && id !== runs.second ? id : null;
      },
      { what: 'the retry’s page to open' },
    );
    const listed = (await (await fetch(`${server!.url}/api/v1/runs?name=demo-pipeline&limit=100`)).json()) as { runs: Array<{ id: string; retryOf: string | null }> };
    expect(listed.runs.filter((r) => r.retryOf === runs.second).map((r) => r.id)).toEqual([retry]);
    await page.getByRole('link', { name: 'earlier run' }).waitFor();
    await cancelFromPage(page);

    await page.getByRole('link', { name: '← All runs' }).click();
    await page.locator(`tr[data-run-id="${runs.first}"]`).getByRole('link', { name: 'demo-pipeline' }).click();
    await page.getByRole('button', { name: 'Delete run' }).click();
    await page.getByRole('button', { name: 'Keep it' }).click();
    expect((await api(runs.first!)).status).toBe(200);
    await page.getByRole('button', { name: 'Delete run' }).click();
    await page.getByRole('button', { name: 'Yes, delete it' }).click();
    await waitUntil(() => new URL(page.url()).pathname === '/', { what: 'the runs page after the delete' });
    await page.locator(`tr[data-run-id="${retry}"]`).waitFor();
    expect(await page.locator(`tr[data-run-id="${runs.first}"]`).count()).toBe(0);
    expect((await api(runs.first!)).status).toBe(404);

    // A link to the deleted run says what is wrong instead of spinning (field note 2). The
    // browser logs the 404 responses as console errors, so this uses a page of its own.
    const stale = await browser.newPage();
    await stale.goto(`${server!.url}/runs/${runs.first}`);
    await stale.getByRole('alert').filter({ hasText: /not found|does not exist/i }).waitFor();
    await stale.close();
  });

  it('a run deleted elsewhere while its Delete is being confirmed: the page says it was deleted, not "Delete failed"', async () => {
    const created = await fetch(`${server!.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'deleted-elsewhere' }),
    });
    const { id } = (await created.json()) as { id: string };
    const finished = await fetch(`${server!.url}/api/v1/runs/${id}/finish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'succeeded' }),
    });
    expect(finished.ok).toBe(true);
    const open = await browser.newPage();
    await open.goto(`${server!.url}/runs/${id}`);
    await open.getByRole('heading', { name: 'deleted-elsewhere' }).waitFor();
    // The user has asked to delete it and is being asked to confirm when someone else deletes it.
    await open.getByRole('button', { name: 'Delete run' }).click();
    await open.getByRole('button', { name: 'Yes, delete it' }).waitFor();
    const gone = await fetch(`${server!.url}/api/v1/runs/${id}`, { method: 'DELETE', headers: { 'x-runtrail-client': '1' } });
    expect(gone.status).toBe(204);
    // The page hears of the delete (it watches until the run is deleted) and says so; nothing is left to confirm.
    await open.getByRole('heading', { name: 'Run deleted' }).waitFor();
    expect(await open.getByRole('button', { name: 'Yes, delete it' }).count()).toBe(0);
    expect(await open.getByRole('alert').textContent()).not.toContain('Delete failed');
    await open.close();
  });

  it('lists a run’s artifacts and previews JSON, text and images, linking only to safe URIs', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${server!.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.ok, path).toBe(true);
      return res.json() as Promise<{ id: string }>;
    };
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="red"/></svg>';
    const run = await post('/api/v1/runs', { name: 'report' });
    await post(`/api/v1/runs/${run.id}/events`, {
      events: [
        { type: 'artifact', data: { name: 'summary.json', uri: `data:application/json,${encodeURIComponent('{"accuracy":0.91}')}`, contentType: 'application/json' } },
        { type: 'artifact', data: { name: 'notes.txt', uri: `data:text/plain,${encodeURIComponent('all good')}`, contentType: 'text/plain' } },
        { type: 'artifact', data: { name: 'chart.svg', uri: `data:image/svg+xml,${encodeURIComponent(svg)}`, contentType: 'image/svg+xml' } },
        { type: 'artifact', data: { name: 'sneaky', uri: 'javascript:alert(1)', contentType: 'text/plain' } },
      ],
    });
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: /Artifacts \(4\)/ }).waitFor();

    await page.getByRole('button', { name: 'preview summary.json' }).click();
    const json = await page.getByLabel('contents of summary.json').textContent();
    expect(JSON.parse(json!)).toEqual({ accuracy: 0.91 });
    expect(json).toContain('\n  "accuracy"');
    await page.getByRole('button', { name: 'preview notes.txt' }).click();
    expect(await page.getByLabel('contents of notes.txt').textContent()).toBe('all good');
    await page.getByRole('button', { name: 'preview chart.svg' }).click();
    const image = page.getByRole('img', { name: 'chart.svg' });
    await waitUntil(() => image.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 20), {
      what: 'the image preview to load',
    });
    expect(await page.getByRole('link', { name: 'sneaky' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'preview sneaky' }).count()).toBe(0);

    // A producer's run is not the server's to run again (409 run_not_retryable): no Retry offered.
    await page.getByRole('button', { name: 'Cancel run' }).waitFor();
    expect(await page.getByRole('button', { name: 'Retry' }).count()).toBe(0);
  });

  it('pages through older runs, newest first', async () => {
    const created: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${server!.url}/api/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // Running all through the test (no producer heartbeats them): the totals below count 30 running.
        body: JSON.stringify({ name: `bulk-${i}`, labels: { batch: 'paging' }, leaseTtlMs: 600_000 }),
      });
      created.push(((await res.json()) as ApiRun).id);
    }
    const newestFirst = created.reverse();
    const shownIds = () => page.locator('tbody tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
    const same = async (expected: string[]) => JSON.stringify(await shownIds()) === JSON.stringify(expected);
    await page.goto(`${server!.url}/`);
    // The live first page hands over to the paged list...
    await waitUntil(() => same(newestFirst.slice(0, 25)), { what: 'the newest 25 runs on page 1' });
    // The totals count every run, not the 25 of this page.
    await waitUntil(async () => Number(/^(\d+) runs: /.exec((await textNow(page.getByTestId('totals'))) ?? '')?.[1]) >= 30, {
      what: 'totals over every page',
    });
    await page.getByRole('button', { name: 'older runs' }).click();
    await waitUntil(async () => (await shownIds())[0] === newestFirst[25], { what: 'page 2 to start after page 1' });
    await page.getByRole('button', { name: 'newer runs' }).click();
    await waitUntil(() => same(newestFirst.slice(0, 25)), { what: 'page 1 again' });
    // ...and a label-filtered list pages too, with loosely typed labels.
    await page.getByLabel('filter by labels (key=value, comma separated)').fill(' batch = paging ');
    // Applied once typing pauses, and kept in the URL; the unfiltered page 1 looks the same, so wait for the URL.
    await waitUntil(() => new URL(page.url()).searchParams.get('label') === ' batch = paging ', { what: 'the label filter to apply' });
    await waitUntil(() => same(newestFirst.slice(0, 25)), { what: 'page 1 of the batch' });
    await waitUntil(async () => (await page.getByTestId('totals').textContent()) === '30 runs match: 30 running', { what: 'the batch’s totals on page 1' });
    await page.getByRole('button', { name: 'older runs' }).click();
    await waitUntil(() => same(newestFirst.slice(25)), { what: 'the 5 oldest of the batch on page 2' });
    // Page 2 shows 5 of them; the totals still count all 30.
    expect(await page.getByTestId('totals').textContent()).toBe('30 runs match: 30 running');
    expect(await page.getByRole('button', { name: 'older runs' }).isDisabled()).toBe(true);
  });

  it('works from the keyboard: the start panel takes the focus and closes on Escape; Cancel run puts the focus in its question', async () => {
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? document.activeElement?.textContent ?? document.activeElement?.tagName);
    await page.goto(`${server!.url}/`);
    const open = page.getByRole('button', { name: 'Start run' });
    await open.focus();
    await page.keyboard.press('Enter');
    const panel = page.getByRole('form', { name: 'start a run' });
    await panel.waitFor();
    // Typing goes to the form's first field, not the button behind it.
    await waitUntil(async () => (await focused()) === 'handler', { what: 'the handler field to have the focus' });
    await page.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    expect(await focused()).toBe('Start run');

    const run = (await (
      await fetch(`${server!.url}/api/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'keyboard-cancel', leaseTtlMs: 600_000 }),
      })
    ).json()) as ApiRun;
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('button', { name: 'Cancel run' }).click();
    // The question has the focus: its reason, then "Yes, cancel it", then "Keep it".
    await waitUntil(async () => (await focused()) === 'reason (optional)', { what: 'the reason field to have the focus' });
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Yes, cancel it');
    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Keep it');
    // Escape keeps it, and the focus is back on the button.
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: 'Yes, cancel it' }).waitFor({ state: 'detached' });
    expect(await focused()).toBe('Cancel run');
    expect((await api(run.id)).body.status).toBe('running');

    await page.keyboard.press('Enter');
    await waitUntil(async () => (await focused()) === 'reason (optional)', { what: 'the question again' });
    await page.keyboard.type('asked from the keyboard');
    // Enter in the reason confirms, as it would submit a form: no Tab to the button first.
    await page.keyboard.press('Enter');
    await waitUntil(async () => (await textNow(page.getByTestId('cancel-reason')))?.includes('asked from the keyboard'), { what: 'the cancel to be asked' });
    const ended = await fetch(`${server!.url}/api/v1/runs/${run.id}/finish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'cancelled' }),
    });
    expect(ended.ok).toBe(true);
  });

  it('fits a phone screen without sideways scrolling', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/', `/runs/${runs.second}`]) {
      await page.goto(`${server!.url}${path}`);
      await page.locator('main').waitFor();
      await page.locator('.runs-table, .run-head').first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, path).toBeLessThanOrEqual(0);
    }
    await page.goto(`${server!.url}/`);
    const table = page.locator('.table-wrap');
    await page.locator('tbody tr[data-run-id]').first().waitFor();
    // Every column still shown fits: the table does not scroll sideways inside its box.
    expect(await table.evaluate((el) => el.scrollWidth - el.clientWidth)).toBeLessThanOrEqual(0);
  });

  it('logged no console errors through all of the above', () => {
    expect(errors).toEqual([]);
  });
});
