import type { Locator } from 'playwright-core';
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
