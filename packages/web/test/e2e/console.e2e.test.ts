import { describe, expect, it } from 'vitest';
import { browserScene, postJson, textNow, waitUntil } from './harness.js';

/**
 * The run page's Console with thousands of lines: only the lines in and
 * near its view are on the page (drawing every line it holds kept a busy
 * run's page busy), and yet it scrolls through all of them and follows the
 * newest as a terminal does.
 */
describe('the Console of a run that printed thousands of lines', () => {
  const scene = browserScene({ prefix: 'runtrail-web-console-', node: 'e2e-console' });
  const page = () => scene.page;
  const output = () => page().getByRole('log', { name: 'run output' });
  const drawn = () => output().locator('.console-line').count();
  /** Line `n` as printed: every 500th is long enough to wrap to several rows. */
  const message = (n: number) => (n % 500 === 0 ? `line ${n} ${'wraps '.repeat(120)}`.trimEnd() : `line ${n}`);
  /** Whether line `n` is drawn whole inside the Console's box. */
  const lineInView = (n: number) =>
    output().evaluate((el, want) => {
      const box = el.getBoundingClientRect();
      const line = [...el.querySelectorAll('.console-line')].find((l) => l.querySelector('.console-text')?.textContent === want);
      const at = line?.getBoundingClientRect();
      return at !== undefined && at.top >= box.top - 1 && at.bottom <= box.bottom + 1;
    }, message(n));
  const atEnd = () => output().evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);

  it('keeps a bounded number of lines on the page, scrolls up to the first line it holds, and follows the newest as more arrive', async () => {
    const run = await postJson<{ id: string }>(scene.server.url, '/runs', { name: 'many-lines', leaseTtlMs: 600_000 });
    const send = (from: number, to: number) =>
      postJson(scene.server.url, `/runs/${run.id}/events`, {
        events: Array.from({ length: to - from + 1 }, (_, k) => ({ type: 'log', data: { level: 'info', message: message(from + k) } })),
      });
    await send(1, 3000);
    await send(3001, 6000);
    await page().goto(`${scene.server.url}/runs/${run.id}`);
    // The page holds the latest 5,000 events: lines 1,001 to 6,000.
    await waitUntil(async () => (await textNow(page().locator('#console-title'))) === 'Console (5,000 lines in the latest 5,000 events)', { what: 'the console to hold 5,000 lines' });
    await output().scrollIntoViewIfNeeded();
    // The newest line wraps: drawn whole at the bottom, it was measured as tall as it is.
    await waitUntil(() => lineInView(6000), { what: 'the newest line in view' });
    expect(await atEnd()).toBe(true);
    const atOpen = await drawn();
    expect(atOpen).toBeGreaterThan(0);
    expect(atOpen).toBeLessThan(200);

    // The reader scrolls to the top: the first line held is there, and following stops.
    await output().evaluate((el) => el.scrollTo({ top: 0 }));
    await waitUntil(() => lineInView(1001), { what: 'the first line held at the top' });
    await page().getByRole('button', { name: 'Jump to latest output' }).waitFor();
    expect(await drawn()).toBeLessThan(200);
    // The lines in view select and copy as printed, one per line, in order.
    const text = (n: number) => output().locator('.console-text', { hasText: new RegExp(`^line ${n}$`) });
    const from = (await text(1002).boundingBox())!;
    const to = (await text(1004).boundingBox())!;
    await page().mouse.move(from.x + 1, from.y + from.height / 2);
    await page().mouse.down();
    await page().mouse.move(to.x + to.width - 1, to.y + to.height / 2, { steps: 5 });
    await page().mouse.up();
    expect(await page().evaluate(() => getSelection()!.toString())).toBe('line 1002\nline 1003\nline 1004');
    await send(6001, 6020);
    await waitUntil(async () => (await textNow(page().locator('#console-title'))) === 'Console (5,000 lines in the latest 5,000 events)' && (await page().locator('#events-title').textContent())?.includes('6,020'), { what: 'the 20 new lines' });
    expect(await lineInView(1021)).toBe(true);

    // Back to the newest, it follows the lines that come next.
    await page().getByRole('button', { name: 'Jump to latest output' }).click();
    await waitUntil(() => lineInView(6020), { what: 'the newest line in view after the jump' });
    await send(6021, 6500);
    await waitUntil(() => lineInView(6500), { what: 'the console to follow the new lines' });
    expect(await atEnd()).toBe(true);
    expect(await page().getByRole('button', { name: 'Following' }).getAttribute('aria-pressed')).toBe('true');
    expect(await drawn()).toBeLessThan(200);
  });

  it('copies every line it holds with Copy all, not only those drawn, and the matching ones while a search narrows them', async () => {
    await page().context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: scene.server.url });
    // The page holds lines 1,501 to 6,500 (the latest 5,000 events); far fewer are drawn.
    await waitUntil(() => lineInView(6500), { what: 'the newest line in view' });
    expect(await textNow(page().locator('#console-title'))).toBe('Console (5,000 lines in the latest 5,000 events)');
    expect(await drawn()).toBeLessThan(200);
    const held = Array.from({ length: 5000 }, (_, k) => message(1501 + k)).join('\n');
    await page().getByRole('button', { name: 'Copy all' }).click();
    await waitUntil(async () => (await textNow(page().getByTestId('console-copied'))) === 'Copied 5,000 lines.', { what: 'the copy to be done' });
    expect(await page().evaluate(() => navigator.clipboard.readText())).toBe(held);

    await page().getByLabel('search the output').fill('line 20');
    await page().getByRole('button', { name: 'Copy matching' }).click();
    await waitUntil(async () => (await textNow(page().getByTestId('console-copied'))) === 'Copied 100 lines.', { what: 'the matching lines to be copied' });
    const matching = Array.from({ length: 5000 }, (_, k) => message(1501 + k)).filter((m) => m.includes('line 20'));
    expect(await page().evaluate(() => navigator.clipboard.readText())).toBe(matching.join('\n'));
    await page().getByLabel('search the output').fill('');
  });

  it('logged no console errors', () => {
    expect(scene.errors).toEqual([]);
  });
});
