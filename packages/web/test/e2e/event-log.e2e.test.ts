import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/** The run page's event log as a box on the page: its size follows what it holds. */
describe('the event log box', () => {
  const scene = browserScene({ prefix: 'runtrail-web-event-log-', node: 'e2e-event-log' });

  const runWith = async (name: string, n: number) => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name, leaseTtlMs: 600_000 });
    const events = Array.from({ length: n }, (_, i) => ({ type: 'log', data: { level: 'info', message: `line ${i}` } }));
    if (n > 0) await postJson(scene.server.url, `/runs/${run.id}/events`, { events });
    await postJson(scene.server.url, `/runs/${run.id}/finish`, { status: 'succeeded' });
    return run.id;
  };
  const open = async (id: string, name: string, events: number) => {
    const page = scene.page;
    await page.goto(`${scene.server.url}/runs/${id}`);
    await page.getByRole('heading', { level: 1, name }).waitFor();
    // The run's own run.succeeded is one more.
    await waitUntil(async () => (await textNow(page.locator('#events-title'))) === `Events (${events + 1})`, { what: `the ${events + 1} events` });
    const log = page.getByRole('log', { name: 'event log' });
    const rows = log.locator('.log-entry');
    await waitUntil(async () => (await rows.count()) > 0, { what: 'the rows' });
    return log;
  };

  it('is as tall as its few rows (not a tall empty box), and scrolls at up to 22rem once it holds more', async () => {
    const rem = await scene.page.evaluate(() => parseFloat(getComputedStyle(document.documentElement).fontSize));
    const few = await open(await runWith('few-events', 2), 'few-events', 2);
    const fewBox = await few.evaluate((el) => ({ height: el.getBoundingClientRect().height, rows: el.firstElementChild!.getBoundingClientRect().height }));
    expect(fewBox.height).toBeLessThanOrEqual(fewBox.rows + 4);
    const many = await open(await runWith('many-events', 200), 'many-events', 200);
    const manyBox = await many.evaluate((el) => ({ height: el.getBoundingClientRect().height, scrolls: el.scrollHeight > el.clientHeight }));
    // Up to 22rem; the panel around it may take a little of that.
    expect(manyBox.height).toBeGreaterThan(18 * rem);
    expect(manyBox.height).toBeLessThanOrEqual(22 * rem + 1);
    expect(manyBox.scrolls).toBe(true);
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
