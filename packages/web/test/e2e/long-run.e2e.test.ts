import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * A run with more than the page holds (the watcher keeps the latest 5,000
 * events; a parent's page watches its latest 100 children): what the page
 * counts must be the run's, or say that it is only the latest part, never a
 * held part passed off as the whole.
 */
describe('a run with more than the page holds', () => {
  const scene = browserScene({ prefix: 'runtrail-web-long-run-', node: 'e2e-long-run' });

  it('says the event log, the console and the call waterfall hold the latest part of 6,023 events, and counts calls in all', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'long-run', leaseTtlMs: 600_000 });
    const send = (events: object[]) => postJson(scene.server.url, `/runs/${run.id}/events`, { events });
    // 20 lines of output, then 3,000 calls (6,000 events), then 3 more lines: 6,023 events.
    await send(Array.from({ length: 20 }, (_, i) => ({ type: 'log', data: { level: 'info', message: `early line ${i}` } })));
    const calls = Array.from({ length: 3000 }, (_, i) => [
      { type: 'call.started', data: { callId: `c${i}`, label: `doc ${i}` } },
      { type: 'call.succeeded', data: { callId: `c${i}`, durationMs: 1 } },
    ]).flat();
    await send(calls.slice(0, 3000));
    await send(calls.slice(3000));
    await send(Array.from({ length: 3 }, (_, i) => ({ type: 'log', data: { level: 'info', message: `late line ${i}` } })));

    await scene.page.goto(`${scene.server.url}/runs/${run.id}`);
    await scene.page.getByRole('heading', { level: 1, name: 'long-run' }).waitFor();
    const events = scene.page.locator('#events-title');
    await waitUntil(async () => /6,023/.test((await textNow(events)) ?? ''), { what: 'the event log to count the run\'s events' });
    expect(await events.textContent()).toBe('Events (the latest 5,000 of 6,023)');
    expect(await scene.page.getByTestId('events-partial').textContent()).toContain('the 1,023 before them are not loaded here');
    // Filtered, it still says it filtered the latest part.
    await scene.page.getByRole('searchbox', { name: 'filter events by text' }).fill('late line');
    expect(await events.textContent()).toBe('Events (3 of the latest 5,000 of 6,023)');

    expect(await scene.page.locator('#console-title').textContent()).toBe('Console (3 lines in the latest 5,000 events)');
    expect(await scene.page.getByRole('log', { name: 'run output' }).textContent()).toContain('late line 2');

    expect(await scene.page.getByTestId('counter-ok').textContent()).toBe('3000');
    expect(await scene.page.getByRole('columnheader', { name: /^Calls/i }).textContent()).toMatch(/\(latest 200 of 3,000\)$/);
  });

  it('a long run that never printed says "No output yet", not that its output is elsewhere', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'long-quiet-run', leaseTtlMs: 600_000 });
    const progress = Array.from({ length: 6000 }, (_, i) => ({ type: 'progress', data: { done: i + 1, total: 6000 } }));
    await postJson(scene.server.url, `/runs/${run.id}/events`, { events: progress.slice(0, 3000) });
    await postJson(scene.server.url, `/runs/${run.id}/events`, { events: progress.slice(3000) });
    await scene.page.goto(`${scene.server.url}/runs/${run.id}`);
    await scene.page.getByRole('heading', { level: 1, name: 'long-quiet-run' }).waitFor();
    await waitUntil(async () => /6,000/.test((await textNow(scene.page.locator('#events-title'))) ?? ''), { what: 'the event log to count the run\'s events' });
    expect(await scene.page.locator('#console-title').textContent()).toBe('Console (0 lines)');
    expect(await scene.page.getByRole('log', { name: 'run output' }).textContent()).toBe('No output yet.');
  });

  it('counts the failed attempts that were retried in all, listing those among the events held', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'long-retrying-run', leaseTtlMs: 600_000 });
    const send = (events: object[]) => postJson(scene.server.url, `/runs/${run.id}/events`, { events });
    const retriedCall = (i: number) => [
      { type: 'call.started', data: { callId: `r${i}`, label: `doc ${i}` } },
      { type: 'call.failed', data: { callId: `r${i}`, error: `RateLimitError ${i}`, willRetry: true } },
      { type: 'call.retried', data: { callId: `r${i}`, attempt: 2 } },
      { type: 'call.succeeded', data: { callId: `r${i}`, durationMs: 5 } },
    ];
    // 30 retried calls, 6,000 progress events, then 2 more retried calls: the page holds only the last 2.
    await send(Array.from({ length: 30 }, (_, i) => retriedCall(i)).flat());
    const progress = Array.from({ length: 6000 }, (_, i) => ({ type: 'progress', data: { done: i + 1, total: 6000 } }));
    await send(progress.slice(0, 3000));
    await send(progress.slice(3000));
    await send([...retriedCall(30), ...retriedCall(31)]);
    await scene.page.goto(`${scene.server.url}/runs/${run.id}`);
    await scene.page.getByRole('heading', { level: 1, name: 'long-retrying-run' }).waitFor();
    const summary = scene.page.locator('.retried-calls summary');
    // While the page still reads the log from its start it lists the attempts held so far ("(30)"):
    // wait for it to hold the latest events, then it says how many of all those are.
    await waitUntil(async () => (await textNow(summary)) === 'Failed attempts that were retried (2 of 32)' || null, {
      what: 'the retried attempts, once the page holds the latest events',
    });
    expect(await scene.page.getByTestId('counter-retries').textContent()).toBe('32');
    // Numbered as the 31st and 32nd, newest first.
    expect(await scene.page.locator('.retried-calls ol').evaluate((ol: HTMLOListElement) => ol.start)).toBe(32);
  });

  it('a metric reported before the events held says its line is the latest part of it', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'long-metric-run', leaseTtlMs: 600_000 });
    const metrics = Array.from({ length: 6000 }, (_, step) => ({ type: 'metric', data: { name: 'loss', value: 1 / (step + 1), step } }));
    await postJson(scene.server.url, `/runs/${run.id}/events`, { events: metrics.slice(0, 3000) });
    await postJson(scene.server.url, `/runs/${run.id}/events`, { events: metrics.slice(3000) });
    await scene.page.goto(`${scene.server.url}/runs/${run.id}`);
    const caption = scene.page.getByRole('figure', { name: 'metric loss' }).locator('figcaption .muted');
    // Drawn first from the snapshot's latest 120 points, then from the events once they are read.
    await waitUntil(async () => (await textNow(caption)) === 'min 0.000167 · max 1 · 6,000 values · the latest 5,000 drawn', {
      what: 'the caption to say the latest 5,000 are drawn',
    });
  });

  it('the rows a reader scrolled up to stay in place while new events push the oldest held ones out', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'long-reading-run', leaseTtlMs: 600_000 });
    const send = (from: number, n: number) =>
      postJson(scene.server.url, `/runs/${run.id}/events`, {
        events: Array.from({ length: n }, (_, i) => ({ type: 'progress', data: { done: from + i, total: 100_000 } })),
      });
    await send(1, 3000);
    await send(3001, 3000);
    await scene.page.goto(`${scene.server.url}/runs/${run.id}`);
    const title = scene.page.locator('#events-title');
    await waitUntil(async () => /of 6,000\)/.test((await textNow(title)) ?? ''), { what: 'the log to hold the latest 5,000 of 6,000' });
    const log = scene.page.getByRole('log', { name: 'event log' });
    await log.scrollIntoViewIfNeeded();
    await log.hover();
    await scene.page.mouse.wheel(0, -2000);
    await waitUntil(async () => !(await scene.page.getByRole('checkbox', { name: 'follow the newest events' }).isChecked()), { what: 'following to stop' });
    // The first row wholly in view, by seq.
    const firstInView = () =>
      log.evaluate((el) => {
        const top = el.getBoundingClientRect().top;
        const rows = [...el.querySelectorAll('.log-entry')].filter((r) => r.getBoundingClientRect().top >= top);
        rows.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
        return Number(rows[0]?.querySelector('.log-seq')?.textContent);
      });
    const before = await firstInView();
    await send(6001, 300);
    await waitUntil(async () => /of 6,300\)/.test((await textNow(title)) ?? ''), { what: 'the 300 new events to arrive' });
    expect(await firstInView()).toBe(before);
  });

  it('a parent with 120 children says it shows the latest 100 of 120, in its table, its comparison and its timeline', async () => {
    const parent = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'wide-sweep', leaseTtlMs: 600_000 });
    for (let i = 0; i < 120; i++) {
      const child = await postJson<{ id: string }>(scene.server.url, '/runs', { name: `trial-${i}`, parentId: parent.id, leaseTtlMs: 600_000 });
      await postJson(scene.server.url, `/runs/${child.id}/events`, { events: [{ type: 'metric', data: { name: 'score', value: i, step: 1 } }] });
    }
    await scene.page.goto(`${scene.server.url}/runs/${parent.id}`);
    const heading = scene.page.locator('#children-title');
    await waitUntil(async () => (await textNow(heading)) === 'Child runs (the latest 100 of 120)', { what: 'the table to count the children in all' });
    expect(await scene.page.getByRole('figure', { name: 'metric per child run' }).locator('figcaption .muted').textContent()).toBe('the latest 100 of 120 child runs');
    expect(await scene.page.locator('.tl-group-child .tl-group-title').textContent()).toBe('Child runs (latest 100 of 120)');
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
