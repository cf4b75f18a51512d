import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  collectConsoleErrors,
  launchChromium,
  postJson,
  spawnServer,
  stopServer,
  tempDir,
  textNow,
  waitUntil,
  withinViewport,
  type ServerProcess,
} from './harness.js';

/**
 * The run page's charts, child-runs table, timeline and the live details
 * a reader relies on (ETA, stall banner, watchers, bar colour, cancel
 * reason, tab title), checked as a reader sees them, on a desktop and on a
 * phone. Runs are produced over HTTP (a producer's view), the page is real
 * Chromium against the real server.
 */

interface ApiRun {
  id: string;
  status: string;
}

const VIEWPORTS = [
  { name: 'desktop', width: 1280, height: 900 },
  { name: 'phone', width: 390, height: 844 },
] as const;

describe('the run page in a real browser', () => {
  const dir = tempDir('runtrail-web-insights-');
  let server: ServerProcess | null = null;
  let browser: Browser;

  const post = <T = ApiRun>(path: string, body: unknown): Promise<T> => postJson<T>(server!.url, path, body);
  const createRun = (body: object) => post('/runs', { leaseTtlMs: 600_000, ...body });
  const send = (id: string, events: object[]) => post(`/runs/${id}/events`, { events });
  const finish = (id: string, body: object) => post(`/runs/${id}/finish`, body);

  beforeAll(async () => {
    assertBuilt();
    // A quick reaper, so a run with a 1 s stall timeout is found stalled within the test.
    server = await spawnServer({ dataDir: join(dir.path, 'data'), node: 'e2e-insights', env: { RUNTRAIL_REAPER_INTERVAL_MS: '200' } });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  describe.each(VIEWPORTS)('at $width px ($name)', (viewport) => {
    let page: Page;
    let errors: string[];

    beforeAll(async () => {
      page = await browser.newPage({ viewport: { width: viewport.width, height: viewport.height } });
      errors = collectConsoleErrors(page);
    });

    afterAll(async () => {
      await page?.close();
    });

    const open = async (id: string, heading: string) => {
      await page.goto(`${server!.url}/runs/${id}`);
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    };
    const noSidewaysScroll = () => page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);

    it('draws metric points in step order even when they arrived out of order, with readable axes, over step or time, alone or overlaid', async () => {
      const run = await createRun({ name: `metrics-${viewport.name}` });
      // Concurrent workers report steps out of order, each a second after the one before it.
      const steps = [3, 1, 2, 5, 4];
      const t0 = Date.now() - 10_000;
      await send(
        run.id,
        steps.flatMap((step) => [
          { type: 'metric', data: { name: 'loss', value: 1 / step, step }, ts: t0 + step * 1000 },
          { type: 'metric', data: { name: 'accuracy', value: 0.5 + step / 20, step }, ts: t0 + step * 1000 },
        ]),
      );
      await open(run.id, `metrics-${viewport.name}`);
      const loss = page.getByRole('figure', { name: 'metric loss' });
      const plot = loss.getByRole('img', { name: /^chart of loss over step/ });
      await plot.waitFor();
      expect(await loss.locator('figcaption').textContent()).toContain('min 0.2 · max 1 · 5 values');
      await loss.getByText('Data (5 points)').click();
      const xs = () => loss.locator('.chart-table td[data-x]').evaluateAll((cells) => cells.map((c) => Number(c.getAttribute('data-x'))));
      // The table is drawn when its <details> opens, after the click's answer: waited for, not read at once.
      await expect.poll(xs, { timeout: 10_000 }).toEqual([1, 2, 3, 4, 5]);
      // The values travel with their steps, at a readable precision: loss at step 3 is 0.333, at step 4 0.25.
      const rows = await loss.locator('.chart-table tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
      expect(rows).toEqual([['1', '1'], ['2', '0.5'], ['3', '0.333'], ['4', '0.25'], ['5', '0.2']]);

      // The axes as drawn on the canvas: whole steps on x; on y, evenly spaced round values
      // written with the decimals their spacing needs (0.25, 0.50, never 0.3 for 0.25 or 0.30000000000000004).
      const ticks = async (axis: 'x' | 'y') => ((await plot.getAttribute(`data-${axis}-ticks`)) ?? '').split(' | ').filter(Boolean);
      const xTicks = await ticks('x');
      expect(xTicks.length).toBeGreaterThanOrEqual(3);
      for (const t of xTicks) expect(t).toMatch(/^\d+$/);
      expect(xTicks.map(Number)).toEqual([...xTicks.map(Number)].sort((a, b) => a - b));
      const yTicks = await ticks('y');
      expect(yTicks.length).toBeGreaterThanOrEqual(3);
      const decimals = new Set(yTicks.map((t) => t.split('.')[1]?.length ?? 0));
      expect(decimals.size).toBe(1);
      const yValues = yTicks.map(Number);
      const gap = yValues[1]! - yValues[0]!;
      for (let i = 1; i < yValues.length; i++) expect(yValues[i]! - yValues[i - 1]!).toBeCloseTo(gap, 9);
      expect(Math.min(...yValues)).toBeLessThanOrEqual(0.25);
      expect(Math.max(...yValues)).toBeGreaterThanOrEqual(0.75);

      // The event log says the same in words, at the same precision.
      // (Its rows render on their own schedule: wait for all five, with a deadline, before reading them.)
      const lossRows = page.getByRole('log', { name: 'event log' }).locator('.log-entry.type-metric .log-data').filter({ hasText: /^loss/ });
      await waitUntil(async () => (await lossRows.count()) === steps.length, { what: 'the event log to list the five loss points' });
      expect(await lossRows.allTextContents()).toEqual(steps.map((step) => `loss = ${{ 1: '1', 2: '0.5', 3: '0.333', 4: '0.25', 5: '0.2' }[step]} at step ${step}`));

      await page.getByRole('radio', { name: 'time' }).check();
      const overTime = loss.getByRole('img', { name: /^chart of loss over time/ });
      await overTime.waitFor();
      expect(await loss.locator('.chart-table th').first().textContent()).toBe('time');
      // Over time too the points are in order, one a second apart, and the axis reads as clock times.
      const times = await xs();
      expect(times).toEqual([1, 2, 3, 4, 5].map((step) => t0 + step * 1000));
      await waitUntil(async () => ((await overTime.getAttribute('data-x-ticks')) ?? '').length > 0, { what: 'the time axis to be drawn' });
      const clock = (await overTime.getAttribute('data-x-ticks'))!.split(' | ');
      for (const t of clock) expect(t).toMatch(/^\d\d:\d\d:\d\d$/);
      expect(new Set(clock).size).toBe(clock.length);

      await page.getByRole('checkbox', { name: 'overlay' }).check();
      const overlaid = page.getByRole('figure', { name: 'metrics overlaid' });
      await overlaid.getByRole('img', { name: /^chart of accuracy, loss over time/ }).waitFor();
      const legend = await overlaid.locator('.u-legend .u-label').allTextContents();
      expect(legend).toEqual(['time', 'accuracy', 'loss']);
      expect(await page.getByRole('figure', { name: 'metric loss' }).count()).toBe(0);
      expect(await noSidewaysScroll()).toBe(true);
    });

    it('draws a lone point on an axis around it, over step and over time, not on 0 to 100', async () => {
      const run = await createRun({ name: `lone-point-${viewport.name}` });
      const ts = Date.now() - 5000;
      await send(run.id, [{ type: 'metric', data: { name: 'loss', value: 0.42, step: 7 }, ts }]);
      await open(run.id, `lone-point-${viewport.name}`);
      const figure = page.getByRole('figure', { name: 'metric loss' });
      const plot = figure.getByRole('img', { name: /^chart of loss over step/ });
      await waitUntil(async () => ((await plot.getAttribute('data-x-ticks')) ?? '').length > 0, { what: 'the step axis to be drawn' });
      const steps = (await plot.getAttribute('data-x-ticks'))!.split(' | ').map(Number);
      expect(steps).toContain(7);
      expect(Math.min(...steps)).toBeGreaterThanOrEqual(6);
      expect(Math.max(...steps)).toBeLessThanOrEqual(8);

      await page.getByRole('radio', { name: 'time' }).check();
      const overTime = figure.getByRole('img', { name: /^chart of loss over time/ });
      await waitUntil(async () => /\d\d:\d\d:\d\d/.test((await overTime.getAttribute('data-x-ticks')) ?? ''), { what: 'the time axis to be drawn' });
      // Clock times within half a minute of the point (the whole axis spans one minute).
      const clock = (await overTime.getAttribute('data-x-ticks'))!.split(' | ');
      expect(clock.length).toBeGreaterThanOrEqual(2);
      const seconds = (t: string) => t.split(':').map(Number).reduce((a, b) => a * 60 + b, 0);
      const at = new Date(ts);
      const point = at.getHours() * 3600 + at.getMinutes() * 60 + at.getSeconds();
      for (const t of clock) expect(Math.abs(((seconds(t) - point + 43_200) % 86_400) - 43_200)).toBeLessThanOrEqual(31);
      await page.getByRole('radio', { name: 'step' }).check();
    });

    it('draws a metric that stayed at 0 on an axis of 0 to 1, not 0 to 100 (which reads as a percentage)', async () => {
      const run = await createRun({ name: `flat-zero-${viewport.name}` });
      await send(run.id, [0, 1, 2, 3, 4].map((step) => ({ type: 'metric', data: { name: 'errors', value: 0, step } })));
      await open(run.id, `flat-zero-${viewport.name}`);
      const plot = page.getByRole('figure', { name: 'metric errors' }).getByRole('img', { name: /^chart of errors over step/ });
      await waitUntil(async () => ((await plot.getAttribute('data-y-ticks')) ?? '').length > 0, { what: 'the y axis to be drawn' });
      const values = (await plot.getAttribute('data-y-ticks'))!.split(' | ').map(Number);
      expect(Math.min(...values)).toBe(0);
      expect(Math.max(...values)).toBe(1);
    });

    it('overlaid metrics of unlike ranges each get a readable axis, named after their line, with their real values in the legend', async () => {
      const run = await createRun({ name: `unlike-ranges-${viewport.name}` });
      await send(
        run.id,
        [0, 1, 2, 3, 4].flatMap((step) => [
          { type: 'metric', data: { name: 'accuracy', value: 0.5 + step / 10, step } },
          { type: 'metric', data: { name: 'tokens', value: step * 2500, step } },
        ]),
      );
      await open(run.id, `unlike-ranges-${viewport.name}`);
      await page.getByRole('checkbox', { name: 'overlay' }).check();
      const plot = page.getByRole('figure', { name: 'metrics overlaid' }).getByRole('img', { name: /^chart of accuracy, tokens over step/ });
      const ticks = async (attr: string) => ((await plot.getAttribute(attr)) ?? '').split(' | ').filter(Boolean).map((t) => Number(t.replace(/,/g, '')));
      await waitUntil(async () => (await ticks('data-y2-ticks')).length > 0, { what: 'a second y axis' });
      // accuracy (0.5..0.9) on the left, spread over its axis rather than flat near 0 of 0..10,000.
      const left = await ticks('data-y-ticks');
      expect(Math.max(...left)).toBeLessThan(2);
      expect(left.length).toBeGreaterThanOrEqual(3);
      const right = await ticks('data-y2-ticks');
      expect(Math.max(...right)).toBeGreaterThanOrEqual(7500);
      expect(await plot.getAttribute('data-y-axes')).toBe('accuracy | tokens');
      // The legend (below the plot, outside its image) reads the values as reported, on hover.
      const legend = page.getByRole('figure', { name: 'metrics overlaid' }).locator('.u-legend .u-value');
      const box = (await plot.locator('.u-over').boundingBox())!;
      await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
      await waitUntil(async () => (await legend.allTextContents()).includes('10,000'), {
        what: 'the legend to show the last token count',
      });
      expect(await legend.allTextContents()).toContain('0.9');
      expect(await noSidewaysScroll()).toBe(true);
    });

    it('writes every y-axis label in full beside the plot, for tiny and for long values', async () => {
      const run = await createRun({ name: `axis-labels-${viewport.name}` });
      // A loss near 1e-4 ticks at 0.000085, 0.000090, …; a token count near a million at 999,999.5.
      await send(run.id, [
        ...[1e-4, 9.5e-5, 9e-5, 8.5e-5, 8.3e-5].map((value, step) => ({ type: 'metric', data: { name: 'loss', value, step } })),
        ...[999_999.1, 999_999.5, 999_999.9].map((value, step) => ({ type: 'metric', data: { name: 'tokens', value, step } })),
      ]);
      await open(run.id, `axis-labels-${viewport.name}`);
      for (const name of ['loss', 'tokens']) {
        const plot = page.getByRole('figure', { name: `metric ${name}` }).getByRole('img', { name: new RegExp(`^chart of ${name} over step`) });
        await waitUntil(async () => ((await plot.getAttribute('data-y-ticks')) ?? '').length > 0, { what: `the ${name} y axis to be drawn` });
        // The widest label in the axis's own font, against the room the axis has left of its ticks.
        const fit = await plot.evaluate((el) => {
          const labels = (el.dataset.yTicks ?? '').split(' | ');
          const ctx = document.createElement('canvas').getContext('2d')!;
          ctx.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif';
          const widest = Math.max(...labels.map((l) => ctx.measureText(l).width));
          const axis = el.querySelectorAll<HTMLElement>('.u-axis')[1]!;
          return { labels, widest, room: axis.getBoundingClientRect().width - 10 };
        });
        expect(fit.widest, `${name} labels ${fit.labels.join(', ')}`).toBeLessThanOrEqual(fit.room);
      }
    });

    it('the timeline of a live run follows its newest calls, stays put once scrolled up, and jumps back on request', async () => {
      const run = await createRun({ name: `busy-${viewport.name}` });
      let next = 0;
      // Each batch: `n` calls started, all but the last three of them done; more than the box shows at once.
      const calls = async (n: number) => {
        const events: object[] = [];
        for (let i = 0; i < n; i++) events.push({ type: 'call.started', data: { callId: `c${next + i}`, label: `doc ${next + i}` } });
        for (let i = 0; i < n - 3; i++) events.push({ type: 'call.succeeded', data: { callId: `c${next + i}` } });
        next += n;
        await send(run.id, events);
      };
      await send(run.id, [{ type: 'phase', data: { name: 'evaluate', status: 'started' } }]);
      await calls(60);
      await open(run.id, `busy-${viewport.name}`);
      const timeline = page.getByRole('table', { name: 'phases, child runs and calls over time' });
      const rows = timeline.locator('.tl-row[data-kind="call"]');
      const atEnd = () => timeline.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);
      const scrollTop = () => timeline.evaluate((el) => el.scrollTop);
      const jump = page.getByRole('button', { name: 'Jump to latest calls' });
      await waitUntil(async () => (await rows.count()) === 60, { what: 'the 60 calls on the timeline' });
      expect(await timeline.evaluate((el) => el.scrollHeight > el.clientHeight + 100)).toBe(true);
      // Not scrolled yet: the calls in flight, at the bottom, are in view.
      await waitUntil(atEnd, { what: 'the timeline to show its newest calls' });
      expect(await rows.last().isVisible()).toBe(true);
      await calls(20);
      await waitUntil(async () => (await rows.count()) === 80, { what: '20 more calls' });
      await waitUntil(atEnd, { what: 'the timeline to follow the new calls' });
      expect(await jump.count()).toBe(0);

      // Scrolled up, it stays where the reader is while calls keep coming, and offers the way back.
      await timeline.hover();
      await page.mouse.wheel(0, -100_000);
      await jump.waitFor();
      await waitUntil(
        async () => {
          if ((await scrollTop()) === 0) return true;
          await page.mouse.wheel(0, -2_000);
          return false;
        },
        { what: 'the scroll to reach the top' },
      );
      await calls(20);
      await waitUntil(async () => (await rows.count()) === 100, { what: 'calls while scrolled up' });
      expect(await scrollTop()).toBe(0);
      expect(await withinViewport(page, jump)).toBe(true);
      await jump.click();
      await waitUntil(atEnd, { what: 'the timeline to jump to its newest calls' });
      await jump.waitFor({ state: 'detached' });
      await calls(10);
      await waitUntil(async () => (await rows.count()) === 110, { what: 'calls after the jump' });
      await waitUntil(atEnd, { what: 'the timeline to follow again' });
      await finish(run.id, { status: 'succeeded' });
    });

    it('lists child runs with their parameters and results, sorts by a column, compares a metric across them and draws them on the timeline', async () => {
      const parent = await createRun({ name: `autotune-${viewport.name}` });
      const t0 = Date.now();
      await send(parent.id, [
        { type: 'phase', data: { name: 'search', status: 'started' }, ts: t0 },
        { type: 'call.started', data: { callId: 'c1', label: 'propose batch 1' }, ts: t0 },
        { type: 'call.succeeded', data: { callId: 'c1' }, ts: t0 + 1000 },
        { type: 'call.started', data: { callId: 'c2', label: 'propose batch 2' }, ts: t0 + 500 },
        { type: 'call.succeeded', data: { callId: 'c2' }, ts: t0 + 3000 },
      ]);
      const experiments = [
        { lr: 0.1, depth: 4, objective: 0.71 },
        { lr: 0.01, depth: 8, objective: 0.93 },
        { lr: 0.001, depth: 6, objective: 0.82 },
      ];
      const children: string[] = [];
      for (const [i, e] of experiments.entries()) {
        const child = await createRun({ name: `experiment-${i + 1}`, parentId: parent.id, input: { lr: e.lr, depth: e.depth } });
        children.push(child.id);
        await send(child.id, [
          { type: 'metric', data: { name: 'objective', value: e.objective - 0.2, step: 1 } },
          { type: 'metric', data: { name: 'objective', value: e.objective, step: 2 } },
          { type: 'meta', data: { best_score: e.objective } },
        ]);
        if (i < 2) await finish(child.id, i === 0 ? { status: 'failed', error: { message: 'diverged' } } : { status: 'succeeded' });
      }
      await open(parent.id, `autotune-${viewport.name}`);

      const table = page.locator('.children-table');
      await table.locator('tbody tr').nth(2).waitFor();
      const headers = await table.locator('thead th').allTextContents();
      expect(headers).toEqual(['Name', 'lr', 'depth', 'Status', 'Duration', 'objective', 'best_score']);
      const names = () => table.locator('tbody tr td[data-column="name"]').allTextContents();
      expect(await names()).toEqual(['experiment-1', 'experiment-2', 'experiment-3']);
      await table.getByRole('button', { name: 'objective' }).click();
      await waitUntil(async () => (await names()).join() === 'experiment-1,experiment-3,experiment-2', { what: 'rows by objective, ascending' });
      expect(await table.locator('th[data-column="metric:objective:last"]').getAttribute('aria-sort')).toBe('ascending');
      await table.getByRole('button', { name: 'objective' }).click();
      await waitUntil(async () => (await names()).join() === 'experiment-2,experiment-3,experiment-1', { what: 'rows by objective, descending' });
      await table.getByRole('button', { name: 'lr' }).click();
      await waitUntil(async () => (await names()).join() === 'experiment-3,experiment-2,experiment-1', { what: 'rows by lr, ascending' });
      const row2 = table.locator(`tr[data-run-id="${children[1]}"]`);
      expect(await row2.locator('td[data-column="input:depth"]').textContent()).toBe('8');
      expect(await row2.locator('td[data-column="meta:best_score"]').textContent()).toBe('0.93');
      expect(await row2.getByTestId('status').textContent()).toBe('succeeded');
      // A failed experiment says why in its row; every row says how long it ran.
      expect(await table.locator(`tr[data-run-id="${children[0]}"]`).getByTestId('child-reason').textContent()).toBe('diverged');
      for (const duration of await table.locator('tbody td[data-column="duration"]').allTextContents()) {
        expect(duration).toMatch(/^(\d+\sms|\d+(\.\d)?\ss|\d+\sm\s\d+\ss)$/);
      }
      // On a phone the table scrolls sideways within its panel, the page does not, and the name stays in view.
      await page.locator('.children-wrap').evaluate((el) => (el.scrollLeft = el.scrollWidth));
      expect(await withinViewport(page, row2.locator('td[data-column="meta:best_score"]'))).toBe(true);
      expect(await withinViewport(page, row2.locator('td[data-column="name"]'))).toBe(true);
      expect(await noSidewaysScroll()).toBe(true);
      // A result column the reader picks appears, and sorts too.
      await page.locator('.column-picker summary').click();
      await page.getByRole('checkbox', { name: 'objective (min)' }).check();
      await table.locator('th[data-column="metric:objective:min"]').waitFor();
      expect(await row2.locator('td[data-column="metric:objective:min"]').textContent()).toBe('0.73');

      // The objective per experiment, side by side.
      const bars = page.getByRole('list', { name: 'latest objective per child run' });
      expect(await bars.locator('li').allTextContents()).toEqual(['experiment-10.71', 'experiment-20.93', 'experiment-30.82']);
      await page.getByRole('img', { name: 'chart of objective per child run over step' }).waitFor();

      // The waterfall: the phase, the three children and the two calls, with their durations.
      const timeline = page.getByRole('table', { name: 'phases, child runs and calls over time' });
      // The children come with their list, the phase and calls with the parent's events (the stream): wait for both.
      const kinds = () => timeline.locator('.tl-row[data-kind]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-kind')).join());
      await waitUntil(async () => (await kinds()) === 'phase,child,child,child,call,call', { what: 'the phase, three children and two calls on the timeline' });
      const calls = timeline.locator('.tl-row[data-kind="call"]');
      // Measured together: the axis of a live run grows between two reads.
      const [c1, c2] = await calls.locator('.tl-bar').evaluateAll((els) =>
        els.map((el) => ({
          start: Number(el.getAttribute('data-start-ms')),
          duration: Number(el.getAttribute('data-duration-ms')),
          left: el.getBoundingClientRect().left,
          width: el.getBoundingClientRect().width,
        })),
      );
      expect(c1!.duration).toBe(1000);
      expect(c2!.duration).toBe(2500);
      expect(c2!.start - c1!.start).toBe(500);
      // Drawn where they ran: the second starts to the right of the first and is longer.
      expect(c2!.left).toBeGreaterThan(c1!.left);
      expect(c2!.width / c1!.width).toBeCloseTo(2.5, 1);
      expect(await calls.nth(0).locator('.tl-duration').textContent()).toBe('1.0\u00a0s');
      expect(await calls.nth(1).locator('.tl-duration').textContent()).toBe('2.5\u00a0s');
      const childStates = await timeline.locator('.tl-row[data-kind="child"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-state')));
      expect(childStates).toEqual(['failed', 'ok', 'running']);
      // The time axis: round times from 0, none of the labels shown overlapping another or cut off.
      const axis = await timeline.locator('.tl-tick').evaluateAll((ticks) =>
        ticks.filter((t) => getComputedStyle(t).display !== 'none').map((t) => ({ text: t.textContent, box: t.getBoundingClientRect().toJSON() as DOMRect })),
      );
      expect(axis[0]!.text).toBe('0');
      expect(axis.length).toBeGreaterThanOrEqual(2);
      for (const tick of axis) expect(tick.text).toMatch(/^(0|\d+ ms|\d+(\.\d+)? s|(\d+ h)? ?(\d+ m)? ?(\d+ s)?)$/);
      for (let i = 1; i < axis.length; i++) expect(axis[i]!.box.left).toBeGreaterThanOrEqual(axis[i - 1]!.box.right);
      const track = (await timeline.locator('.tl-axis .tl-track').boundingBox())!;
      expect(axis[0]!.box.left).toBeGreaterThanOrEqual(track.x - 0.5);
      expect(await noSidewaysScroll()).toBe(true);
    });

    it('says a run with no progress is stalled and for how long, counts watchers live, and names the run and its status in the tab', async () => {
      const run = await createRun({ name: `stuck-${viewport.name}`, stallTimeoutMs: 1000 });
      await send(run.id, [
        { type: 'progress', data: { done: 1, total: 64 } },
        { type: 'progress', data: { done: 2 } },
        { type: 'progress', data: { done: 3 } },
      ]);
      await open(run.id, `stuck-${viewport.name}`);
      // The title is set by an effect after the page renders.
      await waitUntil(async () => (await page.title()) === `running · stuck-${viewport.name} · runtrail`, { what: 'the tab to name the run and its status' });
      const eta = page.getByTestId('eta');
      await waitUntil(async () => /stalled: no progress for/.test((await eta.textContent()) ?? ''), { what: 'the ETA to say stalled' });
      expect(await page.getByTestId('stalled-badge').textContent()).toBe('stalled');
      // A run that makes no calls shows no empty call panels (0 OK, 0 Failed, 0 Retries; no calls running).
      expect(await page.getByRole('region', { name: 'Calls' }).count()).toBe(0);
      expect(await page.getByRole('region', { name: /^In flight/ }).count()).toBe(0);
      expect(await page.getByLabel('run progress').getAttribute('class')).toBe('progress progress-running progress-stalled');
      const banner = page.getByTestId('stalled');
      const stuckFor = async () => {
        const text = (await banner.textContent()) ?? '';
        const m = /no progress for ([\d.]+)\ss/.exec(text);
        return m ? Number(m[1]) : null;
      };
      const first = await waitUntil(stuckFor, { what: 'the stall banner to say how long' });
      // It is the time stuck, which grows, not the 1 s threshold.
      await waitUntil(async () => ((await stuckFor()) ?? 0) >= first + 1, { what: 'the time stuck to grow' });
      expect(await banner.textContent()).toContain('called stalled after 1.0\u00a0s');

      const watching = page.getByTestId('observers');
      await waitUntil(async () => (await watching.textContent())?.includes('1 watching'), { what: 'this page to count itself' });
      const second = await browser.newPage();
      // The count is pushed on the page's stream: the run itself is read once, when the page loads, never polled.
      const runReads: string[] = [];
      second.on('request', (request) => {
        if (request.method() === 'GET' && new URL(request.url()).pathname === `/api/v1/runs/${run.id}`) runReads.push(request.url());
      });
      await second.goto(`${server!.url}/runs/${run.id}`);
      await waitUntil(async () => (await watching.textContent())?.includes('2 watching'), { what: 'the second page to be counted' });
      await waitUntil(async () => (await second.getByTestId('observers').textContent())?.includes('2 watching'), { what: 'the second page to count both' });
      expect(runReads).toHaveLength(1);
      await second.close();
      await waitUntil(async () => (await watching.textContent())?.includes('1 watching'), { what: 'the closed page to be left out' });

      await finish(run.id, { status: 'failed', error: { message: 'no progress' } });
      await waitUntil(async () => (await page.title()) === `failed · stuck-${viewport.name} · runtrail`, { what: 'the tab title to show the end' });
      await watching.waitFor({ state: 'detached' });
    });

    it('says the same time stuck in the header and in the Progress card, at the same moment', async () => {
      const now = Date.now();
      const run = await createRun({ name: `quiet-${viewport.name}`, stallTimeoutMs: 1000 });
      // Its count last changed 20 s ago; a metric 10 s ago still showed it moving (the server's stall clock).
      await send(run.id, [
        { type: 'progress', data: { done: 3, total: 64 }, ts: now - 20_000 },
        { type: 'metric', data: { name: 'loss', value: 0.5, step: 1 }, ts: now - 10_000 },
      ]);
      await open(run.id, `quiet-${viewport.name}`);
      // Both read in one go, from one rendering.
      const read = () =>
        page.evaluate(() => ['stalled', 'eta'].map((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? ''));
      const [banner, card] = await waitUntil(
        async () => {
          const texts = await read();
          return texts.every((t) => t.includes('no progress for')) ? texts : null;
        },
        { what: 'the header and the Progress card to say the run is stuck' },
      );
      const inBanner = /no progress for (.+?) \(last progress/.exec(banner!)?.[1];
      const inCard = /no progress for (.+)$/.exec(card!)?.[1];
      expect(inCard).toBe(inBanner);
      // Counted from the last event that showed it moving (10 s before the run was sent), as the server's stall detector counts.
      const seconds = Number(/^(\d+(?:\.\d)?)\ss$/.exec(inBanner ?? '')?.[1]);
      expect(seconds).toBeGreaterThanOrEqual(10);
      expect(seconds).toBeLessThanOrEqual((Date.now() - now) / 1000 + 10 + 1);
      await finish(run.id, { status: 'failed', error: { message: 'no progress' } });
    });

    it('estimates the time left from the recent rate, not the whole run\'s average', async () => {
      const run = await createRun({ name: `slowing-${viewport.name}` });
      // 50 items in the first 5 s, then one every 2 s: the recent rate is 0.5 items/s.
      const now = Date.now();
      const start = now - 45_000;
      await send(run.id, [
        { type: 'progress', data: { done: 50, total: 100 }, ts: start + 5000 },
        ...Array.from({ length: 20 }, (_, i) => ({ type: 'progress', data: { done: 51 + i }, ts: start + 7000 + 2000 * i })),
      ]);
      await open(run.id, `slowing-${viewport.name}`);
      const eta = page.getByTestId('eta');
      const seconds = async () => {
        const m = /about (?:(\d+)\sm\s)?(\d+(?:\.\d)?)\ss left/.exec((await textNow(eta)) ?? '');
        return m ? Number(m[1] ?? 0) * 60 + Number(m[2]) : null;
      };
      const left = await waitUntil(seconds, { what: 'an estimate of the time left' });
      // 30 left at 0.5/s is 60 s, growing by 3 s a second while nothing comes (30 s quiet and it says stalled);
      // the whole run's average would say about 19 s.
      expect(left).toBeGreaterThanOrEqual(60);
      expect(left).toBeLessThan(150);
      await waitUntil(async () => ((await seconds()) ?? 0) > left, { what: 'the estimate to grow while no progress comes' });
    });

    it('colours the progress bar by status: never the running colour for a failed or cancelled run', async () => {
      const colourOf = async () =>
        page.getByLabel('run progress').evaluate((el) => ({ className: el.className, colour: getComputedStyle(el).accentColor }));
      const running = await createRun({ name: `bar-running-${viewport.name}` });
      await send(running.id, [{ type: 'progress', data: { done: 10, total: 64 } }]);
      await open(running.id, `bar-running-${viewport.name}`);
      const runningColour = await colourOf();
      expect(runningColour.className).toBe('progress progress-running');

      const failed = await createRun({ name: `bar-failed-${viewport.name}` });
      await send(failed.id, [{ type: 'progress', data: { done: 10, total: 64 } }]);
      await finish(failed.id, { status: 'failed', error: { message: 'boom' } });
      await open(failed.id, `bar-failed-${viewport.name}`);
      const failedColour = await colourOf();
      expect(failedColour.className).toBe('progress progress-failed');
      expect(failedColour.colour).not.toBe(runningColour.colour);
      expect(failedColour.colour).toBe(await page.evaluate(() => getComputedStyle(document.querySelector('.badge-failed')!).color));

      const cancelled = await createRun({ name: `bar-cancelled-${viewport.name}` });
      await send(cancelled.id, [{ type: 'progress', data: { done: 10, total: 64 } }]);
      await finish(cancelled.id, { status: 'cancelled' });
      await open(cancelled.id, `bar-cancelled-${viewport.name}`);
      const cancelledColour = await colourOf();
      expect(cancelledColour.className).toBe('progress progress-cancelled');
      expect(cancelledColour.colour).not.toBe(runningColour.colour);
    });

    it('shows the reason the user gave when cancelling, also after the producer ends the run', async () => {
      const run = await createRun({ name: `to-cancel-${viewport.name}` });
      await open(run.id, `to-cancel-${viewport.name}`);
      await page.getByRole('button', { name: 'Cancel run' }).click();
      await page.getByLabel('reason (optional)').fill('wrong dataset');
      await page.getByRole('button', { name: 'Yes, cancel it' }).click();
      await waitUntil(async () => (await textNow(page.getByTestId('cancel-reason')))?.includes('wrong dataset'), {
        what: 'the cancel reason to show',
      });
      // The producer stops on its own terms; the reader still learns why it was asked to.
      await finish(run.id, { status: 'cancelled', error: { message: 'stopped at the cancel request' } });
      await waitUntil(async () => (await textNow(page.getByTestId('error-kind'))) === 'cancelled', { what: 'the run to end' });
      expect(await page.getByTestId('cancel-reason').textContent()).toContain('wrong dataset');
    });

    it('ends the calls a run left in flight where the run ended, marked unfinished, however long after the page opens', async () => {
      const run = await createRun({ name: `left-in-flight-${viewport.name}` });
      await send(run.id, [
        { type: 'call.started', data: { callId: 'done', label: 'answered' } },
        { type: 'call.succeeded', data: { callId: 'done', durationMs: 5 } },
        { type: 'call.started', data: { callId: 'open', label: 'never answered' } },
      ]);
      const ended = await post<{ startedAt: number; finishedAt: number }>(`/runs/${run.id}/finish`, {
        status: 'failed',
        error: { message: 'the producer went away' },
      });
      await open(run.id, `left-in-flight-${viewport.name}`);
      const row = page.locator('.tl-row[data-kind="call"]', { hasText: 'never answered' });
      await row.waitFor();
      expect(await row.getAttribute('data-state')).toBe('unfinished');
      expect(await row.getAttribute('title')).toContain('never finished: the run ended first');
      const bar = row.locator('.tl-bar');
      // Drawn up to the run's end, not up to whenever the page was opened.
      const barEnd = Number(await bar.getAttribute('data-start-ms')) + Number(await bar.getAttribute('data-duration-ms'));
      expect(barEnd).toBeLessThanOrEqual(ended.finishedAt - ended.startedAt);
      expect(await page.locator('.tl-row[data-state="running"]').count()).toBe(0);
      // The counts agree with the timeline: one call answered, one that never was.
      expect(await page.getByTestId('counter-ok').textContent()).toBe('1');
      expect(await page.getByTestId('counter-failed').textContent()).toBe('0');
      expect(await page.getByTestId('counter-unfinished').getAttribute('aria-label')).toBe('1 never finished: the run ended first');
      // And so does the runs list.
      await page.goto(`${server!.url}/?q=left-in-flight-${viewport.name}`);
      await waitUntil(async () => (await textNow(page.locator(`tr[data-run-id="${run.id}"]`).getByTestId('unfinished'))) === '1 unfinished', {
        what: 'the list to count the unfinished call',
      });
    });

    it("shows a progress message as the run's current activity only while it runs: after its end, as its last message", async () => {
      const name = `last-message-${viewport.name}`;
      const run = await createRun({ name });
      await send(run.id, [{ type: 'progress', data: { done: 3, total: 3, message: 'evaluating' } }]);
      await open(run.id, name);
      const message = page.getByTestId('progress-message');
      await waitUntil(async () => (await textNow(message)) === 'evaluating' || null, { what: 'the running run’s progress message' });
      await finish(run.id, { status: 'succeeded' });
      // Field note 8's kin: a finished run does not read as still "evaluating".
      await waitUntil(async () => (await textNow(message)) === 'Last message: evaluating' || null, { what: 'the message marked as the last one' });
    });

    it('fits a long run name without sideways scrolling', async () => {
      const name = `nightly-eval-${'x'.repeat(140)}`;
      const run = await createRun({ name, input: { model: 'y'.repeat(200) } });
      await send(run.id, [
        { type: 'phase', data: { name: `phase-${'z'.repeat(100)}`, status: 'started' } },
        { type: 'progress', data: { done: 1, total: 3, message: 'w'.repeat(300) } },
        { type: 'metric', data: { name: `metric_${'m'.repeat(80)}`, value: 1, step: 1 } },
        { type: 'call.started', data: { callId: 'c', label: `call ${'l'.repeat(200)}` } },
      ]);
      await open(run.id, name);
      await page.locator('.timeline').waitFor();
      expect(await noSidewaysScroll()).toBe(true);
      // The whole name is there to read: wrapped onto lines, not cut off.
      const heading = page.getByRole('heading', { level: 1 });
      expect(await withinViewport(page, heading)).toBe(true);
      expect(await heading.evaluate((el) => el.scrollWidth <= el.clientWidth)).toBe(true);
      expect(await heading.textContent()).toBe(name);
    });

    it('logged no console errors', () => {
      expect(errors).toEqual([]);
    });
  });
});
