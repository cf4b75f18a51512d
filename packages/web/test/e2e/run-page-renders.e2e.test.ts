import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';
import { changesOf, renderedIn, watchRenders, type Commit, type RenderWatch } from './react-renders.js';

/** The panels a clock tick must leave be. */
const BIG_PANELS = ['console-title', 'events-title', 'children-title', 'timeline-title'];
/** The panels that show nothing of the progress, which an event that changes only the progress must leave be. */
const NOT_PROGRESS = ['context-title', 'counters-title', 'lasterror-title', 'metrics-title'];

/**
 * The panels rendered again in these commits, by title id. A panel counts
 * in a tick's commit (its duration changed) only: a virtualised list
 * settles once after it scrolls (the virtualiser renders when it stops
 * "scrolling"), which is not the clock's doing.
 */
const panelsOnTicks = (commits: readonly Commit[]) => renderedIn(commits.filter((c) => c.changed.includes('duration')), 'panels').filter((id) => BIG_PANELS.includes(id));

/**
 * A live run page with output, events, a child run and a timeline: the
 * page's clock ticks every second, and a tick must reach the times it
 * shows, not the panels around them; an event that changes only the
 * progress must not draw the Console's lines or the event log's rows
 * again, nor the panels that show no progress. React's DevTools hook
 * (which the production build calls on every commit) is how the test sees
 * what React rendered again.
 */
describe('the run page as the clock ticks and events arrive', () => {
  const scene = browserScene({ prefix: 'runtrail-web-page-renders-', node: 'e2e-page-renders' });
  const page = () => scene.page;
  let renders: RenderWatch;
  let runId = '';

  it('opens a live run with output, events, metrics, a child run and a timeline', async () => {
    renders = await watchRenders(page(), {
      elements: {
        panels: { selector: 'section[aria-labelledby]', key: 'aria-labelledby' },
        consoleRows: { selector: '.console-line' },
        eventRows: { selector: '.log-entry' },
        header: { selector: 'header.run-head' },
        timelineBars: { selector: '.tl-row[data-state]', key: 'data-state' },
      },
      texts: { duration: '[data-testid="duration"]' },
    });
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'renders', leaseTtlMs: 600_000 });
    runId = run.id;
    // Calls of ten minutes ago: the timeline's axis (a round span ahead of now) holds still through the test.
    const ago = Date.now() - 600_000;
    await postJson(scene.server.url, `/runs/${run.id}/events`, {
      events: [
        ...Array.from({ length: 30 }, (_, k) => ({ type: 'log', data: { level: 'info', message: `line ${k}` } })),
        { type: 'call.started', ts: ago, data: { callId: 'c1', label: 'fetch' } },
        { type: 'call.succeeded', ts: ago + 2000, data: { callId: 'c1' } },
        { type: 'metric', data: { name: 'loss', value: 0.5, step: 1 } },
        // Of 100: the progress events below stay in its first tenth, which the header's live region says once.
        { type: 'progress', data: { done: 1, total: 100 } },
      ],
    });
    await postJson(scene.server.url, '/runs', { name: 'renders-child', parentId: run.id });
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await waitUntil(() => page().locator('.console-line').count().then((n) => n === 30), { what: 'the 30 lines of output' });
    await waitUntil(() => page().locator('.log-entry').count().then((n) => n > 0), { what: 'the event log' });
    await waitUntil(() => page().locator('#children-title').count().then((n) => n === 1), { what: 'the child run' });
    await waitUntil(() => page().locator('#timeline-title').count().then((n) => n === 1), { what: 'the timeline' });
    await waitUntil(async () => (await textNow(page().locator('#events-title'))) === 'Events (34)', { what: 'the 34 events' });
    await waitUntil(() => page().locator('#metrics-title').count().then((n) => n === 1), { what: 'the metrics' });
  });

  it('two ticks of the clock change the run\'s duration and render none of the Console, event log, child runs and timeline again', async () => {
    await renders.reset();
    await waitUntil(async () => changesOf(await renders.commits(), 'duration') >= 2, { what: 'two ticks of the duration' });
    expect(panelsOnTicks(await renders.commits())).toEqual([]);
  });

  it('an event that changes only the progress renders none of the Console lines and event log rows again, nor the context, calls, last error and metrics panels', async () => {
    const title = await textNow(page().locator('#events-title'));
    await renders.reset();
    await postJson(scene.server.url, `/runs/${runId}/events`, { events: [{ type: 'progress', data: { done: 2, total: 100 } }] });
    await waitUntil(async () => (await textNow(page().getByTestId('progress-done'))) === '2', { what: 'the new progress' });
    await waitUntil(async () => (await textNow(page().locator('#events-title'))) !== title, { what: 'the event counted in the event log' });
    const commits = await renders.commits();
    expect(renderedIn(commits, 'consoleRows')).toEqual([]);
    expect(renderedIn(commits, 'eventRows')).toEqual([]);
    expect(renderedIn(commits, 'panels').filter((id) => NOT_PROGRESS.includes(id))).toEqual([]);
    // The progress panel did render it: what the others are spared is real work, not a page that stood still.
    expect(renderedIn(commits, 'panels')).toContain('progress-title');
  });

  it('an event that changes only the progress, within a tenth, renders neither the header nor the timeline, nor its finished bars', async () => {
    await renders.reset();
    await postJson(scene.server.url, `/runs/${runId}/events`, { events: [{ type: 'progress', data: { done: 3, total: 100 } }] });
    await waitUntil(async () => (await textNow(page().getByTestId('progress-done'))) === '3', { what: 'the new progress' });
    const commits = await renders.commits();
    expect(renderedIn(commits, 'header')).toEqual([]);
    expect(renderedIn(commits, 'panels')).not.toContain('timeline-title');
    // The child run still going is an open bar, which grows with the clock; the call that ended stays as it is.
    expect(await page().locator('.tl-row[data-state="ok"]').count()).toBe(1);
    expect(renderedIn(commits, 'timelineBars').filter((state) => state !== 'running')).toEqual([]);
    expect(renderedIn(commits, 'panels')).toContain('progress-title');
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
