import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { postJson, restartingScene, textNow, waitUntil } from './harness.js';

/**
 * While its server is away the page cannot know whether a run still runs:
 * its figures stay as they were when it last heard the server, and it says
 * so, rather than count on from the browser's clock beside "running".
 */
describe('the dashboard while its server is away', () => {
  const scene = restartingScene({ prefix: 'runtrail-web-away-', node: 'e2e-away-node', env: { RUNTRAIL_REAPER_INTERVAL_MS: '100' } });

  it('freezes the run page\'s and the list\'s durations at the last time it heard the server, says so, and counts on once it is back', async () => {
    const server = await scene.start();
    // A producer run outlives a server restart; the long lease keeps it running while nobody heartbeats it.
    const run = await postJson<{ id: string }>(server.url, '/runs', { name: 'long-eval', stallTimeoutMs: 1000, leaseTtlMs: 600_000 });
    await postJson(server.url, `/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 3, total: 64 }, ts: Date.now() - 120_000 }] });

    const open = async (path: string): Promise<Page> => {
      const { page } = await scene.newPage();
      // The page's clock can be moved on: a minute passes for it without the test waiting a minute.
      await page.clock.install();
      await page.goto(`${server.url}${path}`);
      return page;
    };
    const runPage = await open(`/runs/${run.id}`);
    const listPage = await open('/');
    const banner = runPage.getByTestId('stalled');
    const duration = runPage.getByTestId('duration');
    const notes = listPage.locator(`tr[data-run-id="${run.id}"]`).getByTestId('progress-notes');
    await waitUntil(async () => /no progress for 2\sm/.test((await textNow(banner)) ?? ''), { what: 'the run page to say it is stalled' });
    await waitUntil(async () => /stalled 2\sm/.test((await textNow(notes)) ?? ''), { what: 'the list to say it is stalled' });

    await scene.stop('SIGKILL');
    for (const page of [runPage, listPage]) {
      await waitUntil(async () => (await textNow(page.getByTestId('connection')))?.startsWith('reconnecting'), { what: 'the page to notice the server is gone' });
    }
    const before = { duration: await textNow(duration), banner: await textNow(banner), notes: await textNow(notes) };
    await runPage.clock.fastForward('01:00');
    await listPage.clock.fastForward('01:00');
    // Two frames later any render the minute caused is on the screen (a tick would have counted a minute on).
    for (const page of [runPage, listPage]) await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
    expect({ duration: await textNow(duration), banner: await textNow(banner), notes: await textNow(notes) }).toEqual(before);
    expect(await textNow(runPage.locator('.run-head').getByTestId('status'))).toBe('running');
    // And each says its figures are from when it last heard the server.
    for (const page of [runPage, listPage]) expect(await textNow(page.getByTestId('connection'))).toMatch(/^reconnecting… \(shown as of \d\d:\d\d:\d\d\)$/);

    await scene.start();
    // Back: hearing the server again, the "as of" gone, and the counts run on from the browser's clock once more.
    // Polling counts: a transport that failed twice while the server was away may stay paused for
    // transportRetryMs (30 s) before the page is back on WebSocket; polling hears the server meanwhile.
    for (const page of [runPage, listPage]) {
      await waitUntil(async () => /^(live|polling)$/.test((await textNow(page.getByTestId('connection'))) ?? ''), { what: 'the page to hear the server again', timeoutMs: 30_000 });
    }
    await waitUntil(async () => (await textNow(duration)) !== before.duration, { what: 'the run page\'s duration to count on' });
    await waitUntil(async () => (await textNow(notes)) !== before.notes, { what: 'the list\'s stall time to count on' });
    await postJson(scene.server.url, `/runs/${run.id}/finish`, { status: 'failed', error: { message: 'no progress' } });
    await runPage.close();
    await listPage.close();
  });
});
