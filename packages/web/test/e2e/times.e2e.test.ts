import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * Times on the dashboard are the reader's local times: the page says in
 * which zone, and each time gives its date and zone in full on hover, so a
 * reader can match them with a server's log in UTC.
 */
describe('times on the dashboard', () => {
  const scene = browserScene({ prefix: 'runtrail-web-times-', node: 'e2e-times' });

  it('says the time zone of the times it shows, on the runs list, a run page and its event log, each time in full on hover', async () => {
    const run = await postJson<{ id: string; createdAt: number }>(scene.server.url, '/runs', { name: 'zoned-run', leaseTtlMs: 600_000 });
    await postJson(scene.server.url, `/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 1, total: 2 } }] });
    // A reader in India (UTC+5:30, no daylight saving): times that are not UTC, in a zone with a half hour.
    const context = await scene.browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Asia/Kolkata', locale: 'en-GB' });
    try {
      const page = await context.newPage();
      const clock = (ts: number) => new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Kolkata', hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(ts);
      await page.goto(`${scene.server.url}/`);
      const row = page.locator(`tr[data-run-id="${run.id}"]`);
      await row.waitFor();
      expect(await page.getByRole('columnheader', { name: /^Started/ }).textContent()).toBe('Started (GMT+5:30)');
      const started = row.locator('td.col-started time');
      const startedAt = Date.parse((await started.getAttribute('datetime'))!);
      expect(await started.textContent()).toBe(clock(startedAt));
      expect(await started.getAttribute('title')).toMatch(/India Standard Time$/);

      await page.goto(`${scene.server.url}/runs/${run.id}`);
      await page.getByRole('heading', { level: 1, name: 'zoned-run' }).waitFor();
      expect(await page.getByTestId('time-zone').textContent()).toBe('GMT+5:30');
      const created = page.locator('.timings time').first();
      expect(await created.getAttribute('datetime')).toBe(new Date(run.createdAt).toISOString());
      expect(await created.textContent()).toBe(clock(run.createdAt));
      expect(await created.getAttribute('title')).toMatch(/India Standard Time$/);
      const eventTime = page.getByRole('log', { name: 'event log' }).locator('time.log-time').first();
      await waitUntil(async () => (await textNow(eventTime)) !== null, { what: 'the progress event in the log' });
      expect(await eventTime.getAttribute('title')).toMatch(/India Standard Time$/);
    } finally {
      await context.close();
    }
    await postJson(scene.server.url, `/runs/${run.id}/finish`, { status: 'succeeded' });
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
