import { describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { browserScene, postJson, waitUntil } from './harness.js';

describe('a run deleted while its page is open', () => {
  const scene = browserScene({ prefix: 'runtrail-web-run-deleted-', node: 'e2e-run-deleted' });

  it('says the run was deleted, shows none of its stale numbers, and offers the way back to the runs list', async () => {
    const { page, server } = scene;
    const run = await postJson<{ id: string }>(server.url, '/runs', { name: 'soon-gone', leaseTtlMs: 600_000 });
    await postJson(server.url, `/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 7, total: 9 } }] });
    await postJson(server.url, `/runs/${run.id}/finish`, { status: 'succeeded' });
    await page.goto(`${server.url}/runs/${run.id}`);
    const badge = page.locator('.run-head').getByTestId('status');
    await waitUntil(async () => (await badge.count()) === 1 && (await badge.textContent()) === 'succeeded', { what: 'the ended run on its page' });

    // Someone else deletes it (another tab, `runtrail delete`).
    await new RuntrailClient({ url: server.url }).deleteRun(run.id);

    await page.getByRole('heading', { name: 'Run deleted' }).waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('was deleted while this page showed it');
    expect(await page.title()).toBe('Run deleted · runtrail');
    expect(await page.locator('.run-head').count()).toBe(0);
    await page.getByRole('link', { name: 'Back to all runs' }).click();
    await waitUntil(async () => new URL(page.url()).pathname === '/', { what: 'the runs list' });
    expect(scene.errors).toEqual([]);
  });
});
