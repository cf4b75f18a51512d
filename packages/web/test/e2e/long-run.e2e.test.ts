import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil, withinViewport } from './harness.js';

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

/**
 * The live boxes of a run page (event log, Console, timeline) opened on a run
 * that already has thousands of events: they open at the newest and follow
 * what comes next. The server answers the page's first read of the run 503
 * (busy, restarting): the page says it is reconnecting, reads it again, and
 * the run and its latest 5,000 events reach the page in one render, so the
 * event log is mounted with them already held.
 */
describe('the page of a long run whose events are held before the event log shows', () => {
  const scene = browserScene({ prefix: 'runtrail-web-long-open-', node: 'e2e-long-open' });
  const page = () => scene.page;

  /** A live run with 6,000 events (3,000 calls still open, each with a line of output), whose first read answers 503. */
  const longLiveRun = async (name: string) => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name, leaseTtlMs: 600_000 });
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, k) => [
        { type: 'call.started', data: { callId: `c${from + k}`, label: `doc ${from + k}` } },
        { type: 'log', data: { level: 'info', message: `done doc ${from + k}` } },
      ]).flat();
    const send = (from: number, n: number) => postJson(scene.server.url, `/runs/${run.id}/events`, { events: batch(from, n) });
    await send(0, 1500);
    await send(1500, 1500);
    let answered = false;
    await page().route(`**/api/v1/runs/${run.id}`, (route) => {
      if (answered) return route.continue();
      answered = true;
      return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'restarting' } }) });
    });
    return { id: run.id, send, answered: () => answered };
  };
  const log = () => page().getByRole('log', { name: 'event log' });
  const following = () => page().getByRole('checkbox', { name: 'follow the newest events' });
  const title = () => page().locator('#events-title');
  /** Whether the event with this seq is a row the reader sees whole in the log's box. */
  const rowInView = (seq: number) =>
    log().evaluate((el, want) => {
      const box = el.getBoundingClientRect();
      const row = [...el.querySelectorAll('.log-entry')].find((r) => r.querySelector('.log-seq')?.textContent === String(want));
      const at = row?.getBoundingClientRect();
      return at !== undefined && at.top >= box.top - 1 && at.bottom <= box.bottom + 1;
    }, seq);
  const atEnd = (role: 'log' | 'table', name: string) =>
    page().getByRole(role, { name }).evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);

  /** Every live box at its newest once the page holds the run's events, and new events appear at the bottom. */
  const expectFollowing = async (run: Awaited<ReturnType<typeof longLiveRun>>) => {
    await waitUntil(async () => /of 6,000\)/.test((await textNow(title())) ?? ''), { what: 'the log to hold the latest 5,000 of 6,000' });
    expect(run.answered()).toBe(true);
    await waitUntil(() => rowInView(6000), { what: 'the newest event in view' });
    expect(await following().isChecked()).toBe(true);
    await waitUntil(() => atEnd('log', 'run output'), { what: 'the console at its newest line' });
    await waitUntil(() => atEnd('table', 'phases, child runs and calls over time'), { what: 'the timeline at its newest calls' });
    await run.send(3000, 10);
    await waitUntil(async () => /of 6,020\)/.test((await textNow(title())) ?? ''), { what: 'the 20 new events' });
    await waitUntil(() => rowInView(6020), { what: 'the newest new event in view' });
    expect(await following().isChecked()).toBe(true);
    await waitUntil(() => atEnd('log', 'run output'), { what: 'the console to follow the new lines' });
  };

  it('opened at its address: the newest event in view, new ones appear at the bottom; a scroll up stops following', async () => {
    const run = await longLiveRun('long-opened-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await page().getByRole('heading', { level: 1, name: 'long-opened-run' }).waitFor();
    await expectFollowing(run);

    // The reader scrolls up: the log stays where they are while events keep coming.
    await log().scrollIntoViewIfNeeded();
    await log().hover();
    await page().mouse.wheel(0, -600);
    await waitUntil(async () => !(await following().isChecked()), { what: 'scrolling up to stop following' });
    await run.send(3010, 10);
    await waitUntil(async () => /of 6,040\)/.test((await textNow(title())) ?? ''), { what: 'the 20 more events' });
    expect(await rowInView(6040)).toBe(false);
    expect(await following().isChecked()).toBe(false);
  });

  it('switched to from the runs list: the newest event in view, new ones appear at the bottom', async () => {
    const run = await longLiveRun('long-switched-run');
    await page().goto(`${scene.server.url}/`);
    await page().getByRole('link', { name: 'long-switched-run' }).click();
    await page().getByRole('heading', { level: 1, name: 'long-switched-run' }).waitFor();
    await expectFollowing(run);
  });

  it('paging the event log up from the keyboard stops following; End takes it back to the newest, following again', async () => {
    const run = await longLiveRun('long-paged-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await expectFollowing(run);
    await log().focus();
    await page().keyboard.press('PageUp');
    await waitUntil(async () => !(await following().isChecked()), { what: 'paging up to stop following' });
    await run.send(3010, 10);
    await waitUntil(async () => /of 6,040\)/.test((await textNow(title())) ?? ''), { what: 'the 20 more events' });
    expect(await rowInView(6040)).toBe(false);
    await page().keyboard.press('End');
    await waitUntil(() => following().isChecked(), { what: 'the log back at its newest to follow again' });
    await run.send(3020, 10);
    await waitUntil(() => rowInView(6060), { what: 'the newest event in view again' });
  });

  it('of 3,000 calls in flight, the page and the list count all 3,000 (the page lists 1,000), and only the rows in view of the In flight box are rendered, so their spinners do not stall the page', async () => {
    const run = await longLiveRun('long-in-flight-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await waitUntil(async () => /of 6,000\)/.test((await textNow(title())) ?? ''), { what: 'the log to hold the latest 5,000 of 6,000' });
    const box = page().getByTestId('in-flight');
    // Each row's spinner, whether the browser renders it (one in a row it skips is not animated).
    const rendered = () =>
      box.evaluate((ul) => [...ul.querySelectorAll('li .spinner')].map((spinner) => spinner.checkVisibility({ contentVisibilityAuto: true })));
    await waitUntil(async () => (await rendered())[0] === true, { what: 'the first call in flight to be shown' });
    // The snapshot lists 1,000 of them: the title counts all 3,000 and says how many it lists.
    expect(await page().locator('#inflight-title').textContent()).toBe('In flight (3,000; 1,000 listed)');
    expect(await page().getByTestId('in-flight-unlisted').textContent()).toMatch(/^The 2,000 not listed here started while 1,000 others were/);
    expect(await box.locator('li').count()).toBe(1000);
    const first = await rendered();
    expect(first.length).toBeGreaterThan(500);
    // Those in view and a margin around them the browser renders ahead of a scroll.
    expect(first.filter(Boolean).length).toBeLessThan(200);
    expect(first.at(-1)).toBe(false);
    // Scrolled to its end, the last rows are drawn, and those at the top no longer.
    await box.evaluate((ul) => ul.scrollTo({ top: ul.scrollHeight }));
    await waitUntil(async () => (await rendered()).at(-1) === true, { what: 'the last call in flight to be drawn once scrolled to' });
    expect((await rendered())[0]).toBe(false);
    // The runs list counts them all too.
    await page().goto(`${scene.server.url}/?q=long-in-flight-run`);
    const row = page().locator(`tr[data-run-id="${run.id}"]`);
    await waitUntil(async () => (await textNow(row.getByTestId('in-flight-count'))) === '3,000 in flight', { what: 'the list to count every call in flight' });
  });

  it('selecting Console text by dragging up past its top scrolls it up and stops following', async () => {
    const run = await longLiveRun('long-selected-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await expectFollowing(run);
    const output = page().getByRole('log', { name: 'run output' });
    const follow = page().getByRole('button', { name: /^Follow/ });
    await output.scrollIntoViewIfNeeded();
    const box = (await output.boundingBox())!;
    await page().mouse.move(box.x + 100, box.y + box.height / 2);
    await page().mouse.down();
    // Held past the top, the browser scrolls the box up to extend the selection.
    await page().mouse.move(box.x + 100, box.y - 20, { steps: 5 });
    try {
      await waitUntil(async () => (await follow.getAttribute('aria-pressed')) === 'false', { what: 'the selection drag to stop following' });
    } finally {
      await page().mouse.up();
    }
    const at = await output.evaluate((el) => el.scrollTop);
    await run.send(3010, 10);
    await waitUntil(async () => /of 6,040\)/.test((await textNow(title())) ?? ''), { what: 'the 20 more events' });
    expect(await output.evaluate((el) => el.scrollTop)).toBeLessThanOrEqual(at);
    expect(await atEnd('log', 'run output')).toBe(false);
  });

  /**
   * The browser's find in page (Ctrl+F), started from the top of `box`, for
   * `text`: window.find selects the match, and the match is scrolled to the
   * middle of the view as the find bar reveals it (headless Chromium's
   * window.find selects without scrolling). Whether it found `text` there.
   */
  const findInPage = (box: ReturnType<typeof log>, text: string) =>
    box.evaluate((el, want) => {
      getSelection()!.collapse(el, 0);
      const found = (window as unknown as { find(s: string, caseSensitive: boolean): boolean }).find(want, true);
      const at = getSelection()!.anchorNode;
      if (!found || !at || !el.contains(at)) return false;
      (at instanceof Element ? at : at.parentElement!).scrollIntoView({ block: 'center' });
      return true;
    }, text);
  /** Whether the current selection (what find in page found) is in view in its scroll box. */
  const selectionInView = (box: ReturnType<typeof log>) =>
    box.evaluate((el) => {
      const at = getSelection()!.getRangeAt(0).getBoundingClientRect();
      const view = el.getBoundingClientRect();
      return at.height > 0 && at.top >= view.top - 1 && at.bottom <= view.bottom + 1;
    });

  it('find in page jumping up in the Console stops following and offers "Jump to latest", which follows again', async () => {
    const run = await longLiveRun('long-found-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await expectFollowing(run);
    const output = page().getByRole('log', { name: 'run output' });
    const follow = page().getByRole('button', { name: /^Follow/ });
    const jump = page().getByRole('button', { name: 'Jump to latest output' });
    expect(await jump.count()).toBe(0);
    // Virtualised: only the lines near the view are on the page; one drawn above the view is what find can reach.
    const above = await output.evaluate((el) => {
      const view = el.getBoundingClientRect();
      return [...el.querySelectorAll('.console-line')].find((l) => l.getBoundingClientRect().bottom < view.top)?.querySelector('.console-text')?.textContent;
    });
    expect(above).toMatch(/^done doc \d+$/);
    expect(await findInPage(output, above!)).toBe(true);
    await waitUntil(async () => (await follow.getAttribute('aria-pressed')) === 'false', { what: 'find in page to stop following' });
    await jump.waitFor();
    expect(await withinViewport(page(), jump)).toBe(true);
    await run.send(3010, 10);
    await waitUntil(async () => /of 6,040\)/.test((await textNow(title())) ?? ''), { what: 'the 20 more events' });
    // The found line stays where the reader is looking.
    expect(await selectionInView(output)).toBe(true);
    expect(await atEnd('log', 'run output')).toBe(false);
    await jump.click();
    await waitUntil(() => atEnd('log', 'run output'), { what: 'the console back at its newest line' });
    expect(await follow.getAttribute('aria-pressed')).toBe('true');
    await jump.waitFor({ state: 'detached' });
    await run.send(3020, 10);
    await waitUntil(async () => /of 6,060\)/.test((await textNow(title())) ?? ''), { what: 'the 20 events after the jump' });
    await waitUntil(() => atEnd('log', 'run output'), { what: 'the console to follow again' });
  });

  it('find in page jumping up in the event log stops following and offers "Jump to latest"; back at the end it follows again', async () => {
    const run = await longLiveRun('long-found-events-run');
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await expectFollowing(run);
    const jump = page().getByRole('button', { name: 'Jump to latest events' });
    expect(await jump.count()).toBe(0);
    // Virtualised: only the rows near the view are on the page; one rendered above the view is what find can reach.
    const above = await log().evaluate((el) => {
      const view = el.getBoundingClientRect();
      const rows = [...el.querySelectorAll('.log-entry')].filter((r) => r.getBoundingClientRect().bottom < view.top);
      return rows.map((r) => r.querySelector('.log-seq')!.textContent!).sort((a, b) => Number(a) - Number(b))[0];
    });
    expect(above).toBeDefined();
    const row = log().locator('.log-entry', { has: page().locator('.log-seq', { hasText: new RegExp(`^${above}$`) }) });
    const rowText = (await row.locator('.log-data').textContent())!;
    expect(await findInPage(log(), rowText)).toBe(true);
    await waitUntil(async () => !(await following().isChecked()), { what: 'find in page to stop following' });
    await jump.waitFor();
    await run.send(3010, 10);
    await waitUntil(async () => /of 6,040\)/.test((await textNow(title())) ?? ''), { what: 'the 20 more events' });
    expect(await rowInView(Number(above))).toBe(true);
    expect(await rowInView(6040)).toBe(false);
    // Scrolled back down to the end by the reader: following again, no button.
    await log().evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    await waitUntil(() => following().isChecked(), { what: 'the log at its end to follow again' });
    await jump.waitFor({ state: 'detached' });
    await run.send(3020, 10);
    await waitUntil(() => rowInView(6060), { what: 'the newest event in view again' });
  });

  it('logged no console errors but the 503s it was served', () => {
    expect(scene.errors.filter((e) => !/status of 503/.test(e))).toEqual([]);
  });
});
