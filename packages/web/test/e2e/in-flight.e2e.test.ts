import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

interface Fiber {
  stateNode: unknown;
  memoizedProps: unknown;
  child: Fiber | null;
  sibling: Fiber | null;
}
interface Renders {
  /** In flight rows React rendered again (new props for their <li>) since the count was reset. */
  rows: number;
  /** Elapsed times that changed in that time. */
  ticks: number;
}

/**
 * The In flight list of a run with many calls in flight: the page's clock
 * ticks every second, and each tick changes the calls' elapsed times, not
 * their rows. React's DevTools hook (which the production build calls on
 * every commit) is how the test sees which rows React rendered again.
 */
describe('the In flight list as the clock ticks', () => {
  const scene = browserScene({ prefix: 'runtrail-web-in-flight-', node: 'e2e-in-flight' });
  const page = () => scene.page;

  it('a tick updates each call\'s elapsed time and renders none of the rows again', async () => {
    await page().addInitScript(() => {
      const renders: Renders = { rows: 0, ticks: 0 };
      const props = new WeakMap<object, unknown>();
      const elapsed = new WeakMap<object, string | null>();
      Object.assign(window, {
        __renders: renders,
        __REACT_DEVTOOLS_GLOBAL_HOOK__: {
          supportsFiber: true,
          inject: () => 1,
          checkDCE: () => undefined,
          onCommitFiberUnmount: () => undefined,
          onPostCommitFiberRoot: () => undefined,
          onCommitFiberRoot(_renderer: number, root: { current: Fiber }) {
            const stack: Fiber[] = [root.current];
            for (let f = stack.pop(); f; f = stack.pop()) {
              if (f.child) stack.push(f.child);
              if (f.sibling) stack.push(f.sibling);
              const li = f.stateNode;
              if (!(li instanceof HTMLLIElement) || li.parentElement?.dataset.testid !== 'in-flight') continue;
              if (props.has(li) && props.get(li) !== f.memoizedProps) renders.rows++;
              props.set(li, f.memoizedProps);
              const text = li.lastElementChild?.textContent ?? null;
              if (elapsed.has(li) && elapsed.get(li) !== text) renders.ticks++;
              elapsed.set(li, text);
            }
          },
        },
      });
    });
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'many-in-flight', leaseTtlMs: 600_000 });
    await postJson(scene.server.url, `/runs/${run.id}/events`, {
      events: Array.from({ length: 50 }, (_, k) => ({ type: 'call.started', data: { callId: `c${k}`, label: `doc ${k}` } })),
    });
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await waitUntil(async () => (await textNow(page().locator('#inflight-title'))) === 'In flight (50)', { what: 'the 50 calls in flight' });
    await waitUntil(() => page().getByTestId('in-flight').locator('li').count().then((n) => n === 50), { what: 'the 50 rows' });
    const renders = () => page().evaluate(() => (window as unknown as { __renders: Renders }).__renders);
    await page().evaluate(() => Object.assign((window as unknown as { __renders: Renders }).__renders, { rows: 0, ticks: 0 }));
    // Two ticks of every row's elapsed time.
    await waitUntil(async () => (await renders()).ticks >= 100, { what: 'two ticks of the clock' });
    expect((await renders()).rows).toBe(0);
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
