import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

describe('the follow controls of a run that ends', () => {
  const scene = browserScene({ prefix: 'runtrail-web-ended-follow-', node: 'e2e-ended-follow' });

  it('offers Follow while the run is live, and says nothing more will arrive once it has ended', async () => {
    const { page, server } = scene;
    const run = await postJson<{ id: string }>(server.url, '/runs', { name: 'short-lived', leaseTtlMs: 600_000 });
    await postJson(server.url, `/runs/${run.id}/events`, {
      events: [
        { type: 'log', data: { level: 'info', message: 'loading 40 docs' } },
        { type: 'progress', data: { done: 1, total: 2 } },
      ],
    });
    await page.goto(`${server.url}/runs/${run.id}`);
    const follow = page.getByRole('button', { name: /^Follow/ });
    const followEvents = page.getByRole('checkbox', { name: 'follow the newest events' });
    await follow.waitFor();
    expect(await follow.getAttribute('aria-pressed')).toBe('true');
    expect(await followEvents.isChecked()).toBe(true);

    await postJson(server.url, `/runs/${run.id}/finish`, { status: 'succeeded' });
    const badge = page.locator('.run-head').getByTestId('status');
    await waitUntil(async () => (await textNow(badge)) === 'succeeded', { what: 'the page to show the run ended' });
    // Nothing is pressed or ticked for output that will never come; the reason is said in words where the control was.
    await follow.waitFor({ state: 'detached' });
    await followEvents.waitFor({ state: 'detached' });
    expect(await page.getByTestId('console-ended').textContent()).toBe('run ended: no new output');
    expect(await page.getByTestId('events-ended').textContent()).toBe('run ended: no new events');

    // Opened after it ended, the page never offers them.
    await page.reload();
    await page.getByTestId('console-ended').waitFor();
    await page.getByTestId('events-ended').waitFor();
    expect(await follow.count()).toBe(0);
    expect(await followEvents.count()).toBe(0);
    expect(scene.errors).toEqual([]);
  });
});
