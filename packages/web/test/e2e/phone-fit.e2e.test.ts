import type { Locator, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * How many lines each duration ("4 m 20 s", "2.3 s") inside `box` takes
 * when the box is squeezed to its narrowest (min-content): every place a
 * line may break, it breaks. A duration is one word to a reader; broken
 * ("no progress for 4" / "m 20 s") it reads as two numbers.
 */
async function durationLines(box: Locator): Promise<{ text: string; lines: number }[]> {
  return box.evaluate((el) => {
    // Broken only where the text lets a line break. The run page's `overflow-wrap: anywhere` (for long
    // unbroken names) breaks a word only when it is wider than a whole line, but at min-content every word is.
    Object.assign((el as HTMLElement).style, { width: 'min-content', overflowWrap: 'normal' });
    const nodes: { node: Text; from: number }[] = [];
    let all = '';
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      nodes.push({ node: n as Text, from: all.length });
      all += n.textContent ?? '';
    }
    const at = (i: number): [Text, number] => {
      const hit = [...nodes].reverse().find((t) => t.from <= i)!;
      return [hit.node, i - hit.from];
    };
    const found: { text: string; lines: number }[] = [];
    for (const m of all.matchAll(/\d+(?:\.\d+)?[ \u00a0](?:ms|s|m|h)(?:[ \u00a0]\d+[ \u00a0](?:s|m))?(?![a-z])/g)) {
      const range = document.createRange();
      range.setStart(...at(m.index));
      const [endNode, endOffset] = at(m.index + m[0].length - 1);
      range.setEnd(endNode, endOffset + 1);
      const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      found.push({ text: m[0], lines: tops.size });
    }
    return found;
  });
}

describe('the dashboard on a phone (375 px)', () => {
  const scene = browserScene({ prefix: 'runtrail-web-phone-', node: 'e2e-phone', env: { RUNTRAIL_REAPER_INTERVAL_MS: '100' } });

  it('keeps each duration on one line, in the runs list and on the run page', async () => {
    const { page, server } = scene;
    await page.setViewportSize({ width: 375, height: 740 });
    // No producer heartbeats it: a long lease keeps it running for the test.
    const run = await postJson<{ id: string }>(server.url, '/runs', { name: 'stuck-on-phone', stallTimeoutMs: 1000, leaseTtlMs: 600_000 });
    // Its last progress five minutes ago: "stalled 5 m 0 s", a duration of four words.
    await postJson(server.url, `/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 3, total: 64 }, ts: Date.now() - 300_000 }] });

    await page.goto(`${server.url}/`);
    const notes = page.locator(`tr[data-run-id="${run.id}"]`).getByTestId('progress-notes');
    await waitUntil(async () => /stalled 5\sm/.test((await textNow(notes)) ?? ''), { what: 'the row to say how long the run is stalled' });
    const inList = await durationLines(notes);
    expect(inList.length).toBeGreaterThan(0);
    expect(inList).toEqual(inList.map((d) => ({ ...d, lines: 1 })));

    await page.goto(`${server.url}/runs/${run.id}`);
    const banner = page.getByTestId('stalled');
    await waitUntil(async () => /no progress for 5\sm/.test((await textNow(banner)) ?? ''), { what: 'the stall banner to say for how long' });
    const onPage = await durationLines(banner);
    // "no progress for 5 m 0 s" and "called stalled after 1.0 s".
    expect(onPage.length).toBe(2);
    expect(onPage).toEqual(onPage.map((d) => ({ ...d, lines: 1 })));
    await postJson(server.url, `/runs/${run.id}/finish`, { status: 'failed', error: { message: 'no progress' } });
  });

  it('shows the labels filter\'s whole placeholder', async () => {
    const { page, server } = scene;
    await page.setViewportSize({ width: 375, height: 740 });
    await page.goto(`${server.url}/`);
    const labels = page.getByLabel('filter by labels (key=value, comma separated)');
    await labels.waitFor();
    const fit = await labels.evaluate((input) => {
      const box = input as HTMLInputElement;
      const style = getComputedStyle(box);
      const context = document.createElement('canvas').getContext('2d')!;
      context.font = style.font;
      const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      return { placeholder: box.placeholder, needs: context.measureText(box.placeholder).width, room };
    });
    expect(fit.placeholder).toContain('key=value');
    expect(fit.needs).toBeLessThanOrEqual(fit.room);
    // Nothing of the form runs off the side of the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
  });

  it("fits the Start run form's table of the demo's input on the phone, nothing off its side", async () => {
    const { page, server } = scene;
    await page.setViewportSize({ width: 375, height: 740 });
    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Start run' }).click();
    const table = page.getByRole('table', { name: 'input of demo-pipeline' });
    await table.waitFor();
    const edges = await table.evaluate((el) => ({ table: el.getBoundingClientRect().right, form: el.closest('form')!.getBoundingClientRect().right }));
    expect(edges.table).toBeLessThanOrEqual(edges.form);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
  });
});

/**
 * Where each status badge of the runs list (the status and, on a stalled run,
 * its "stalled") falls short of fitting: outside its row or its cell, over
 * what the progress cell shows (the bar and its percentage, or a queued run's
 * "–" and note), or cut (its text wider than its box). One line a problem,
 * naming the run; none when all fit.
 */
async function badgeMisfits(page: Page): Promise<string[]> {
  return page.locator('tr[data-run-id]').evaluateAll((rows) => {
    const problems: string[] = [];
    // Half a pixel: boxes land on fractions of a pixel, and touching is not overlapping.
    const inside = (a: DOMRect, b: DOMRect) => a.left >= b.left - 0.5 && a.right <= b.right + 0.5 && a.top >= b.top - 0.5 && a.bottom <= b.bottom + 0.5;
    const overlap = (a: DOMRect, b: DOMRect) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
    const px = (r: DOMRect) => `[${Math.round(r.left)}..${Math.round(r.right)}]×[${Math.round(r.top)}..${Math.round(r.bottom)}]`;
    for (const row of rows) {
      const name = row.querySelector('.run-name')?.textContent ?? row.getAttribute('data-run-id');
      const cell = row.querySelector('td.col-status')!;
      const badges = [...cell.querySelectorAll<HTMLElement>('[data-testid="status"], [data-testid="stalled"]')];
      if (badges.length === 0) problems.push(`${name}: no status badge`);
      const progress = [...row.querySelectorAll('td.col-progress > *')];
      for (const badge of badges) {
        const what = `${name}: its "${badge.textContent}" badge ${px(badge.getBoundingClientRect())}`;
        const box = badge.getBoundingClientRect();
        if (!inside(box, row.getBoundingClientRect())) problems.push(`${what} runs out of its row ${px(row.getBoundingClientRect())}`);
        if (!inside(box, cell.getBoundingClientRect())) problems.push(`${what} runs out of its cell ${px(cell.getBoundingClientRect())}`);
        for (const shown of progress) {
          if (overlap(box, shown.getBoundingClientRect())) problems.push(`${what} overlaps the progress cell's ${shown.className || shown.tagName} ${px(shown.getBoundingClientRect())}`);
        }
        if (badge.scrollWidth > badge.clientWidth) problems.push(`${what} is cut: its text needs ${badge.scrollWidth} px, it has ${badge.clientWidth}`);
      }
    }
    return problems;
  });
}

describe('the runs list on a narrow phone (320 px)', () => {
  // A node with no slots: a run of its demo handler stays queued for the test.
  const scene = browserScene({ prefix: 'runtrail-web-narrow-', node: 'e2e-narrow', env: { RUNTRAIL_CONCURRENCY: '0', RUNTRAIL_REAPER_INTERVAL_MS: '100' } });

  it('fits each status badge, whole, in its own cell beside the progress bar, for runs of every status', async () => {
    const { page, server } = scene;
    const create = (body: object) => postJson<{ id: string }>(server.url, '/runs', { leaseTtlMs: 600_000, ...body });
    const progress = (id: string, data: object, ts = Date.now()) => postJson(server.url, `/runs/${id}/events`, { events: [{ type: 'progress', data, ts }] });
    // The widest words ("succeeded", "cancelled") with a bar at 100%, its widest percentage.
    for (const status of ['succeeded', 'failed', 'cancelled'] as const) {
      const run = await create({ name: `ended-${status}` });
      await progress(run.id, { done: 64, total: 64 });
      await postJson(server.url, `/runs/${run.id}/finish`, status === 'failed' ? { status, error: { message: 'boom' } } : { status });
    }
    const running = await create({ name: 'under-way' });
    await progress(running.id, { done: 3, total: 64 });
    const counting = await create({ name: 'total-unknown' });
    await progress(counting.id, { done: 12_345 });
    // Two badges in its cell: "running" and "stalled".
    const stuck = await create({ name: 'stuck', stallTimeoutMs: 1000 });
    await progress(stuck.id, { done: 3, total: 64 }, Date.now() - 300_000);
    const queued = await postJson<{ id: string; status: string }>(server.url, '/runs', { name: 'demo-pipeline', execute: true, input: { docs: 4 } });
    expect(queued.status).toBe('queued');

    await page.setViewportSize({ width: 320, height: 640 });
    await page.goto(`${server.url}/`);
    const rows = page.locator('tr[data-run-id]');
    // Everything the rows show, so none grows after the measure: the stall, the queued run's note.
    await waitUntil(async () => (await rows.count()) === 7 && (await page.getByTestId('stalled').count()) === 1 && (await page.getByTestId('queued-why').count()) === 1, {
      what: 'the list to show all 7 runs, the stalled badge and why the queued run waits',
    });
    expect((await rows.getByTestId('status').allTextContents()).sort()).toEqual(['cancelled', 'failed', 'queued', 'running', 'running', 'running', 'succeeded']);
    expect(await badgeMisfits(page)).toEqual([]);
    // Nothing of the list runs off the side of the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(320);
    // And at the widths of common phones as well.
    for (const width of [375, 390]) {
      await page.setViewportSize({ width, height: 740 });
      expect({ width, misfits: await badgeMisfits(page) }).toEqual({ width, misfits: [] });
    }
    await postJson(server.url, `/runs/${queued.id}/cancel`, {});
  });
});
