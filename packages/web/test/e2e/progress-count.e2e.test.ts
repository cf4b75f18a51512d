import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * A run that reports progress without a total (items indexed, pages crawled)
 * draws a bar that cannot say how full it is; beside it, where a percentage
 * would be, the list and a parent's child runs say how many are done. Once
 * the run ended, no bar moves.
 */
describe('progress of unknown total', () => {
  const scene = browserScene({ prefix: 'runtrail-web-progress-count-', node: 'e2e-progress-count' });

  it('shows the count done beside the bar, in the runs list and in a parent\'s child runs, follows it live, and stops the bar when the run ends', async () => {
    const { page, server } = scene;
    const parent = await postJson<{ id: string }>(server.url, '/runs', { name: 'crawl-all', leaseTtlMs: 600_000 });
    const child = await postJson<{ id: string }>(server.url, '/runs', { name: 'crawl-docs', parentId: parent.id, leaseTtlMs: 600_000 });
    const report = (done: number) => postJson(server.url, `/runs/${child.id}/events`, { events: [{ type: 'progress', data: { done, message: 'crawling' } }] });
    await report(12_345);

    await page.goto(`${server.url}/`);
    const inList = page.locator(`tr[data-run-id="${child.id}"]`).getByTestId('progress-count');
    await waitUntil(async () => (await textNow(inList)) === '12,345', { what: 'the list to say how many are done' });
    expect(await inList.getAttribute('title')).toBe('12,345 done; total not known');
    await report(12_400);
    await waitUntil(async () => (await textNow(inList)) === '12,400', { what: 'the list to follow the count' });

    await page.goto(`${server.url}/runs/${parent.id}`);
    const inChildren = page.getByRole('region', { name: /child runs/i }).getByTestId('progress-count');
    await waitUntil(async () => (await textNow(inChildren)) === '12,400', { what: 'the child runs table to say how many are done' });

    // Ended, the bar stops moving (a moving bar says work is under way): gone, the count stays.
    await postJson(server.url, `/runs/${child.id}/finish`, { status: 'cancelled' });
    await page.goto(`${server.url}/`);
    const row = page.locator(`tr[data-run-id="${child.id}"]`);
    await waitUntil(async () => (await textNow(row.getByTestId('status'))) === 'cancelled', { what: 'the list to show the run cancelled' });
    expect(await textNow(row.getByTestId('progress-count'))).toBe('12,400');
    expect(await row.getByRole('progressbar').count()).toBe(0);
    await page.goto(`${server.url}/runs/${child.id}`);
    await waitUntil(async () => (await textNow(page.getByTestId('progress-done'))) === '12,400', { what: 'the run page to say how many were done' });
    expect(await page.getByRole('progressbar', { name: 'run progress' }).count()).toBe(0);
    await postJson(server.url, `/runs/${parent.id}/finish`, { status: 'succeeded' });
  });
});
