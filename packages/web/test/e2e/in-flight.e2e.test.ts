import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';
import { changesOf, renderedIn, watchRenders } from './react-renders.js';

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
    const renders = await watchRenders(page(), {
      elements: { rows: { selector: '[data-testid="in-flight"] > li' } },
      texts: { elapsed: '[data-testid="in-flight"] > li > :last-child' },
    });
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'many-in-flight', leaseTtlMs: 600_000 });
    await postJson(scene.server.url, `/runs/${run.id}/events`, {
      events: Array.from({ length: 50 }, (_, k) => ({ type: 'call.started', data: { callId: `c${k}`, label: `doc ${k}` } })),
    });
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    await waitUntil(async () => (await textNow(page().locator('#inflight-title'))) === 'In flight (50)', { what: 'the 50 calls in flight' });
    await waitUntil(() => page().getByTestId('in-flight').locator('li').count().then((n) => n === 50), { what: 'the 50 rows' });
    await renders.reset();
    // Two ticks of the rows' elapsed times.
    await waitUntil(async () => changesOf(await renders.commits(), 'elapsed') >= 2, { what: 'two ticks of the clock' });
    expect(renderedIn(await renders.commits(), 'rows')).toEqual([]);
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
