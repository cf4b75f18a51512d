import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * The runs list's pager as a reader meets it: paged far back, its URL
 * stays short enough to reload (one cursor a page once made a URL over the
 * server's 16 KiB header limit: a 431), and it says how many runs there are
 * and shows only when there is more than one page.
 */
describe('the pager of the runs list in a real browser', () => {
  const scene = browserScene({ prefix: 'runtrail-web-pager-', node: 'e2e-pager' });
  const PAGE_SIZE = 25;
  /** Newest first, as the list shows them. */
  let deep: string[] = [];

  const shownIds = (page: Page) => page.locator('tbody tr[data-run-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-run-id')));
  const pager = (page: Page) => page.getByRole('navigation', { name: 'pages of runs' });
  /** Page `n` (from 1) is on screen: its number and its runs. */
  const onPage = async (page: Page, n: number) => {
    const want = deep.slice((n - 1) * PAGE_SIZE, n * PAGE_SIZE);
    return (await textNow(pager(page).getByText(/^page \d+$/))) === `page ${n}` && JSON.stringify(await shownIds(page)) === JSON.stringify(want);
  };

  it('keeps the URL short however far back the reader pages, and a reload there shows the same page', async () => {
    const url = scene.server.url;
    // 23 pages: past the 20 the URL keeps the way back for.
    const count = 22 * PAGE_SIZE + 3;
    const ids: string[] = [];
    for (let i = 0; i < count; i += 10) {
      const batch = Array.from({ length: Math.min(10, count - i) }, (_, j) => i + j);
      // In order, ten at a time: a run's id carries its creation time, so ids (the list's order) follow i closely enough for a set.
      ids.push(...(await Promise.all(batch.map((k) => postJson<{ id: string }>(url, '/runs', { name: `deep-${k}`, leaseTtlMs: 600_000 }).then((r) => r.id)))));
    }
    deep = [...ids].sort().reverse();

    const page = await scene.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${url}/?q=deep`);
    await waitUntil(() => onPage(page, 1), { what: 'page 1' });
    for (let n = 2; n <= 23; n++) {
      await pager(page).getByRole('button', { name: 'older runs' }).click();
      await waitUntil(() => onPage(page, n), { what: `page ${n}` });
    }
    const at23 = new URL(page.url());
    expect(at23.searchParams.getAll('cursor')).toHaveLength(20);
    expect(at23.searchParams.get('page')).toBe('23');
    expect(at23.searchParams.get('q')).toBe('deep');
    expect(page.url().length).toBeLessThan(1200);

    await page.reload();
    await waitUntil(() => onPage(page, 23), { what: 'page 23 again after a reload' });

    // "Newer" steps back through the pages the URL kept...
    for (let n = 22; n >= 4; n--) {
      await pager(page).getByRole('button', { name: 'newer runs' }).click();
      await waitUntil(() => onPage(page, n), { what: `page ${n} by Newer` });
    }
    // ...and past them says it leads to the newest page, and does.
    expect(await pager(page).getByRole('button', { name: 'newer runs' }).count()).toBe(0);
    await pager(page).getByRole('button', { name: 'newest runs' }).click();
    await waitUntil(() => onPage(page, 1), { what: 'page 1 by Newest' });
    expect(Object.fromEntries(new URL(page.url()).searchParams)).toEqual({ q: 'deep' });
    // The browser's Back still steps back page by page.
    await page.goBack();
    await waitUntil(() => onPage(page, 4), { what: 'page 4 by Back' });
    await page.close();
  }, 120_000);

  it('says how many runs match beside the page number, and shows no pager for one page or none', async () => {
    const url = scene.server.url;
    const page = await scene.browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${url}/?q=deep`);
    await waitUntil(async () => (await textNow(page.getByTestId('pager-count'))) === `${deep.length} matching runs`, { what: 'the count in the pager' });

    // One page: the list and its totals, no pager.
    await postJson(url, '/runs', { name: 'lonely', leaseTtlMs: 600_000 });
    await page.getByLabel('search run names').fill('lonely');
    await waitUntil(async () => (await shownIds(page)).length === 1 && (await textNow(page.getByTestId('totals')))?.startsWith('1 run matches'), { what: 'the one lonely run' });
    expect(await pager(page).count()).toBe(0);

    // Nothing matches: "No runs match", and no pager with both buttons disabled under it.
    await page.getByLabel('search run names').fill('nothing-is-called-this');
    await page.getByText('No runs match these filters.').first().waitFor();
    expect(await pager(page).count()).toBe(0);
    await page.close();
  });

  it('opens a run link with broken percent-encoding as the dashboard, which says there is no such run', async () => {
    const page = await scene.browser.newPage({ viewport: { width: 1280, height: 900 } });
    // Before: the server's raw JSON 400, no dashboard.
    await page.goto(`${scene.server.url}/runs/%E0%A4%A`);
    await page.getByRole('heading', { name: 'Run not found' }).waitFor();
    expect(await page.getByRole('alert').textContent()).toContain('Run %E0%A4%A does not exist');
    await page.close();
  });
});
