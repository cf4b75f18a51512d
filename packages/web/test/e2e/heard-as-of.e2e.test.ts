import type { Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { TcpProxy } from '@runtrail/test-support/tcp-proxy';
import { browserScene, postJson, progressPercent, textNow, waitUntil } from './harness.js';

/**
 * A connection that dies without a close (a NAT that forgot the flow, a
 * laptop that slept) is noticed only an idle timeout later. What the page
 * shows meanwhile is as of the last thing it heard, and "shown as of" must
 * say that moment, not the later one when the page noticed.
 */
describe('the dashboard after its connection died silently', () => {
  const scene = browserScene({ prefix: 'runtrail-web-heard-', node: 'e2e-heard-node' });
  let proxy: TcpProxy | null = null;

  afterAll(async () => {
    await proxy?.close();
  });

  it('says it shows the run page and the list as of when it last heard the server, not when it noticed', async () => {
    const server = scene.server;
    const browser = scene.browser;
    // The page reaches the server through a proxy that can go silent without closing anything.
    proxy = await TcpProxy.start(server.url);
    const run = await postJson<{ id: string }>(server.url, '/runs', { name: 'quiet-eval', leaseTtlMs: 600_000 });

    const open = async (path: string): Promise<Page> => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      // The page's clock can be moved on: its idle timeout (45 s) passes without the test waiting for it.
      await page.clock.install();
      await page.goto(`${proxy!.url}${path}`);
      await waitUntil(async () => (await textNow(page.getByTestId('connection'))) === 'live', { what: `${path} to be live` });
      return page;
    };
    const pages = [await open(`/runs/${run.id}`), await open('/')];
    await postJson(server.url, `/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 3, total: 64 } }] });
    await waitUntil(async () => (await progressPercent(pages[0]!)) > 0, { what: 'the run page to show the progress' });

    // By each page's clock: nothing can be heard after this.
    const silentFrom = await Promise.all(pages.map((page) => page.evaluate(() => Date.now())));
    proxy.block();
    proxy.freeze();
    for (const page of pages) await page.clock.fastForward('01:00');
    for (const [i, page] of pages.entries()) {
      await waitUntil(async () => (await textNow(page.getByTestId('connection')))?.startsWith('reconnecting'), { what: 'the page to notice the silence' });
      const noticedAt = await page.evaluate(() => Date.now());
      const shown = /^reconnecting… \(shown as of (\d\d:\d\d:\d\d)\)$/.exec((await textNow(page.getByTestId('connection'))) ?? '')?.[1];
      // The last thing heard: the progress event, or a keepalive (one every 15 s at most), before the silence;
      // the window leaves room for a slow machine and stays well clear of the noticing, 45 s after it.
      const heardAtMost = await clockTimes(page, silentFrom[i]! - 30_000, silentFrom[i]!);
      expect(heardAtMost).toContain(shown);
      // The page noticed a whole idle timeout later: that moment is not what it shows as of.
      expect(heardAtMost).not.toContain((await clockTimes(page, noticedAt, noticedAt))[0]);
    }
    proxy.allow();
    for (const page of pages) await page.close();
  });
});

/** Every second from `from` to `to` as the page writes a time of day (its locale, 24 h). */
function clockTimes(page: Page, from: number, to: number): Promise<string[]> {
  return page.evaluate(
    ([start, end]) => {
      const format = new Intl.DateTimeFormat(undefined, { hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: '2-digit' });
      const times: string[] = [];
      for (let t = Math.floor(start / 1000) * 1000; t <= end; t += 1000) times.push(format.format(t));
      return times;
    },
    [from, to] as const,
  );
}
