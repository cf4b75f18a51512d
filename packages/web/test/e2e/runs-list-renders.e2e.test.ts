import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';
import { changesOf, renderedIn, watchRenders, type RenderWatch } from './react-renders.js';

/**
 * The runs list with 50 rows, some of them running: the list's clock ticks
 * every second, and a tick must reach the durations it shows, not the rows
 * around them; a live change to one run must render that run's row, not
 * the other 49. React's DevTools hook (which the production build calls on
 * every commit) is how the test sees which rows React rendered again.
 */
describe('the runs list as the clock ticks and a run changes', () => {
  const scene = browserScene({ prefix: 'runtrail-web-list-renders-', node: 'e2e-list-renders' });
  const page = () => scene.page;
  const post = (path: string, body: unknown) => postJson<{ id: string }>(scene.server.url, path, body);
  // A lease far longer than the test: nothing heartbeats these runs.
  const create = (body: object) => post('/runs', { leaseTtlMs: 600_000, ...body }).then((r) => r.id);
  let renders: RenderWatch;
  let running: string[] = [];

  it('lists 25 runs with a child each, every fifth running', async () => {
    running = [];
    for (let i = 0; i < 25; i++) {
      const parent = await create({ name: `batch-${i}` });
      const child = await create({ name: `part-${i}`, parentId: parent });
      await post(`/runs/${child}/finish`, { status: 'succeeded' });
      if (i % 5 === 0) {
        running.push(parent);
        await post(`/runs/${parent}/events`, { events: [{ type: 'progress', data: { done: 1, total: 10, message: 'step one' } }] });
      } else {
        await post(`/runs/${parent}/finish`, { status: 'succeeded' });
      }
    }
    renders = await watchRenders(page(), {
      elements: { rows: { selector: 'tr[data-run-id]', key: 'data-run-id' } },
      texts: { duration: `tr[data-run-id="${running[0]}"] > td.col-duration` },
    });
    await page().goto(scene.server.url);
    await waitUntil(() => page().locator('tr[data-run-id]').count().then((n) => n === 50), { what: 'the 50 rows' });
    await waitUntil(async () => (await textNow(page().getByTestId('totals')))?.includes('5 running') === true, { what: 'the totals' });
  });

  it('two ticks of the clock change a running run\'s duration and render no row again', async () => {
    await renders.reset();
    await waitUntil(async () => changesOf(await renders.commits(), 'duration') >= 2, { what: 'two ticks of the duration' });
    expect(renderedIn(await renders.commits(), 'rows')).toEqual([]);
  });

  it('a live change to one run renders its row and no other', async () => {
    const changed = running[2]!;
    const row = page().locator(`tr[data-run-id="${changed}"]`);
    await renders.reset();
    await post(`/runs/${changed}/events`, { events: [{ type: 'progress', data: { done: 2, total: 10, message: 'step two' } }] });
    await waitUntil(async () => (await textNow(row.getByTestId('activity'))) === 'step two', { what: 'the run\'s new progress in its row' });
    const rows = renderedIn(await renders.commits(), 'rows');
    expect(rows).toContain(changed);
    expect(new Set(rows)).toEqual(new Set([changed]));
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});

/**
 * Queued handler runs listed beside running ones: the list asks the live
 * nodes' handlers again every 15 s (useLiveHandlers), and that answer must
 * reach the queued runs' notes of why they wait, not the rows. The page's
 * clock is moved on, so the test does not wait the 15 s; a node of
 * concurrency 0 claims nothing, so the queued runs stay queued.
 */
describe('the runs list as the live handlers are asked again', () => {
  const scene = browserScene({ prefix: 'runtrail-web-list-handlers-', node: 'e2e-list-handlers', env: { RUNTRAIL_CONCURRENCY: '0' } });
  const page = () => scene.page;
  const create = (body: object) => postJson<{ id: string; status: string }>(scene.server.url, '/runs', { leaseTtlMs: 600_000, ...body });
  let renders: RenderWatch;
  const asked: number[] = [];

  it('lists two queued handler runs and three running ones', async () => {
    for (let i = 0; i < 2; i++) expect((await create({ name: 'demo-pipeline', execute: true })).status).toBe('queued');
    // No progress: a bar's pace, which the clock moved on could turn to "stalled", is no part of this test.
    for (let i = 0; i < 3; i++) expect((await create({ name: `work-${i}` })).status).toBe('running');
    renders = await watchRenders(page(), {
      elements: {
        rows: { selector: 'tr[data-run-id]', key: 'data-run-id' },
        why: { selector: '[data-testid="queued-why"]' },
      },
      texts: {},
    });
    page().on('request', (request) => new URL(request.url()).pathname === '/api/v1/handlers' && asked.push(Date.now()));
    await page().clock.install();
    await page().goto(scene.server.url);
    await waitUntil(() => page().locator('tr[data-run-id]').count().then((n) => n === 5), { what: 'the 5 rows' });
    // Shown once the first answer is in; the next ask is scheduled from there.
    await waitUntil(() => page().getByTestId('queued-why').count().then((n) => n === 2), { what: 'why the queued runs wait' });
    expect(asked).toHaveLength(1);
  });

  it('the handlers asked again render the queued runs\' notes and no row', async () => {
    await renders.reset();
    await page().clock.fastForward('00:16');
    await waitUntil(() => asked.length === 2, { what: 'the list to ask the handlers again' });
    // The answer is new (another object, the same handlers): its commit renders the notes again.
    await waitUntil(async () => renderedIn(await renders.commits(), 'why').length >= 2, { what: 'the notes rendered with the new answer' });
    expect(renderedIn(await renders.commits(), 'rows')).toEqual([]);
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
