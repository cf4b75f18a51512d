import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

interface Fiber {
  stateNode: unknown;
  memoizedProps: unknown;
  child: Fiber | null;
  sibling: Fiber | null;
}
interface Renders {
  /**
   * How often React rendered each panel again (new props for its <section>)
   * in a commit that changed the run's duration (a tick of the clock), by its
   * title's id, since the counts were reset. Other commits do not count: a
   * virtualised list settles once after it scrolls (the virtualiser renders
   * when it stops "scrolling"), which is not the clock's doing.
   */
  panels: Record<string, number>;
  /** Console lines and event log rows React rendered again in that time (rows newly drawn do not count). */
  consoleRows: number;
  eventRows: number;
  /** How often the run's duration text changed. */
  durations: number;
}

const PANELS = ['console-title', 'events-title', 'children-title', 'timeline-title'];

/**
 * A live run page with output, events, a child run and a timeline: the
 * page's clock ticks every second, and a tick must reach the times it
 * shows, not the panels around them; an event that changes only the
 * progress must not draw the Console's lines or the event log's rows
 * again. React's DevTools hook (which the production build calls on every
 * commit) is how the test sees what React rendered again.
 */
describe('the run page as the clock ticks and events arrive', () => {
  const scene = browserScene({ prefix: 'runtrail-web-page-renders-', node: 'e2e-page-renders' });
  const page = () => scene.page;
  const renders = () => page().evaluate(() => (window as unknown as { __renders: Renders }).__renders);
  const reset = () => page().evaluate(() => Object.assign((window as unknown as { __renders: Renders }).__renders, { panels: {}, consoleRows: 0, eventRows: 0, durations: 0 }));
  let runId = '';

  it('opens a live run with output, events, a child run and a timeline', async () => {
    await page().addInitScript((panels: string[]) => {
      const renders: Renders = { panels: {}, consoleRows: 0, eventRows: 0, durations: 0 };
      const props = new WeakMap<object, unknown>();
      let duration: string | null = null;
      const changed = (el: object, next: unknown) => {
        const had = props.has(el) && props.get(el) !== next;
        props.set(el, next);
        return had;
      };
      Object.assign(window, {
        __renders: renders,
        __REACT_DEVTOOLS_GLOBAL_HOOK__: {
          supportsFiber: true,
          inject: () => 1,
          checkDCE: () => undefined,
          onCommitFiberUnmount: () => undefined,
          onPostCommitFiberRoot: () => undefined,
          onCommitFiberRoot(_renderer: number, root: { current: Fiber }) {
            // Called once the commit is in the DOM.
            const text = document.querySelector('[data-testid="duration"]')?.textContent ?? null;
            const tick = duration !== null && text !== duration;
            if (tick) renders.durations++;
            duration = text;
            const stack: Fiber[] = [root.current];
            for (let f = stack.pop(); f; f = stack.pop()) {
              if (f.child) stack.push(f.child);
              if (f.sibling) stack.push(f.sibling);
              const el = f.stateNode;
              if (!(el instanceof HTMLElement)) continue;
              const title = el.getAttribute('aria-labelledby');
              if (el.tagName === 'SECTION' && title && panels.includes(title) && changed(el, f.memoizedProps) && tick) {
                renders.panels[title] = (renders.panels[title] ?? 0) + 1;
              }
              if (el.classList.contains('console-line') && changed(el, f.memoizedProps)) renders.consoleRows++;
              if (el.classList.contains('log-entry') && changed(el, f.memoizedProps)) renders.eventRows++;
            }
          },
        },
      });
    }, PANELS);
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'renders', leaseTtlMs: 600_000 });
    runId = run.id;
    // Calls of ten minutes ago: the timeline's axis (a round span ahead of now) holds still through the test.
    const ago = Date.now() - 600_000;
    await postJson(scene.server.url, `/runs/${run.id}/events`, {
      events: [
        ...Array.from({ length: 30 }, (_, k) => ({ type: 'log', data: { level: 'info', message: `line ${k}` } })),
        { type: 'call.started', ts: ago, data: { callId: 'c1', label: 'fetch' } },
        { type: 'call.succeeded', ts: ago + 2000, data: { callId: 'c1' } },
        { type: 'progress', data: { done: 1, total: 10 } },
      ],
    });
    await postJson(scene.server.url, '/runs', { name: 'renders-child', parentId: run.id });
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await waitUntil(() => page().locator('.console-line').count().then((n) => n === 30), { what: 'the 30 lines of output' });
    await waitUntil(() => page().locator('.log-entry').count().then((n) => n > 0), { what: 'the event log' });
    await waitUntil(() => page().locator('#children-title').count().then((n) => n === 1), { what: 'the child run' });
    await waitUntil(() => page().locator('#timeline-title').count().then((n) => n === 1), { what: 'the timeline' });
    await waitUntil(async () => (await textNow(page().locator('#events-title'))) === 'Events (33)', { what: 'the 33 events' });
  });

  it('two ticks of the clock change the run\'s duration and render none of the Console, event log, child runs and timeline again', async () => {
    await reset();
    await waitUntil(async () => (await renders()).durations >= 2, { what: 'two ticks of the duration' });
    expect((await renders()).panels).toEqual({});
  });

  it('an event that changes only the progress renders none of the Console lines and event log rows again', async () => {
    const title = await textNow(page().locator('#events-title'));
    await reset();
    await postJson(scene.server.url, `/runs/${runId}/events`, { events: [{ type: 'progress', data: { done: 2, total: 10 } }] });
    await waitUntil(async () => (await textNow(page().getByTestId('progress-done'))) === '2', { what: 'the new progress' });
    await waitUntil(async () => (await textNow(page().locator('#events-title'))) !== title, { what: 'the event counted in the event log' });
    const seen = await renders();
    expect(seen.consoleRows).toBe(0);
    expect(seen.eventRows).toBe(0);
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
