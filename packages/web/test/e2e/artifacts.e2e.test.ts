import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient, type RunHandle } from '@runtrail/client';
import {
  assertBuilt,
  collectConsoleErrors,
  launchChromium,
  spawnServer,
  stopServer,
  tempDir,
  textNow,
  waitUntil,
  type ServerProcess,
} from './harness.js';

/**
 * What a run stores, as the dashboard shows it (issue 16 item 5), for the
 * kinds the run page test's Python script cannot write: a video (encoded by
 * Chromium itself), and files that try to run script in the dashboard's
 * origin: an HTML page, an SVG with script and event handlers, and Markdown
 * with raw HTML and script links. A real server, Debian's Chromium.
 */

const HTML = '<h1>Hi</h1><script>window.__pwned = "html script"</script><img src=x onerror="window.__pwned = \'html onerror\'">\n';
const SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" onload="window.top.__pwned = \'svg onload\'">' +
  '<script>window.top.__pwned = "svg script"</script><rect width="40" height="30" fill="teal"/></svg>';
const MARKDOWN = [
  '# Notes',
  '',
  '<iframe src="javascript:window.top.__pwned = 1"></iframe>',
  '',
  '[upper case](JaVaScRiPt:window.__pwned=2) [data](data:text/html,<script>window.__pwned=3</script>) [relative](/api/v1/runs)',
  '',
  '<a href="javascript:window.__pwned=4">raw link</a> and [fine](https://example.com/a_(b))',
  '',
].join('\n');

/** A short WebM (VP8, 64×48) recorded from a canvas by the page's own MediaRecorder: real video no fixture file has to carry. */
async function recordWebm(page: Page): Promise<Buffer> {
  const bytes = await page.evaluate(async () => {
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 48;
    const draw = canvas.getContext('2d')!;
    const stream = canvas.captureStream(0);
    const track = stream.getVideoTracks()[0] as CanvasCaptureMediaStreamTrack;
    const recorder = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8' });
    const chunks: Blob[] = [];
    recorder.ondataavailable = (e) => chunks.push(e.data);
    const stopped = new Promise((resolve) => (recorder.onstop = resolve));
    recorder.start();
    for (let frame = 0; frame < 10; frame++) {
      draw.fillStyle = `rgb(${frame * 25}, 40, 200)`;
      draw.fillRect(0, 0, 64, 48);
      track.requestFrame();
      // Frames spaced in time, so the video has a duration: producing content, not waiting for a condition.
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    recorder.stop();
    await stopped;
    return Array.from(new Uint8Array(await new Blob(chunks).arrayBuffer()));
  });
  return Buffer.from(bytes);
}

describe('the run page shows stored artifacts safely', () => {
  const dir = tempDir('runtrail-artifacts-e2e-');
  let server: ServerProcess | null = null;
  let browser: Browser;
  let page: Page;
  let errors: string[];
  let client: RuntrailClient;

  beforeAll(async () => {
    assertBuilt();
    server = await spawnServer({ dataDir: join(dir.path, 'data'), node: 'e2e-artifacts' });
    client = new RuntrailClient({ url: server.url });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    errors = collectConsoleErrors(page);
  });

  afterAll(async () => {
    await browser?.close();
    await stopServer(server);
    dir.remove();
  });

  it('plays a video, shows HTML as its source text and SVG as an image, renders Markdown without its HTML or script links; none of them runs script', async () => {
    await page.goto(`${server!.url}/`);
    const webm = await recordWebm(page);
    const run: RunHandle = await client.createRun({ name: 'stored-media' });
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'stored-media', exact: true }).waitFor();

    // Stored while the page is open: each appears live, its type sniffed where none was given.
    await run.artifact('clip.webm', webm);
    await page.getByRole('heading', { name: 'Artifacts (1)' }).waitFor();
    await run.artifact('page.html', HTML, { contentType: 'text/html' });
    await run.artifact('pic.svg', Buffer.from(SVG));
    await run.artifact('notes.md', MARKDOWN);
    await page.getByRole('heading', { name: 'Artifacts (4)' }).waitFor();
    expect((await client.listArtifacts(run.id)).map((a) => [a.name, a.contentType])).toEqual([
      ['clip.webm', 'video/webm'],
      ['page.html', 'text/html'],
      ['pic.svg', 'image/svg+xml'],
      ['notes.md', 'text/markdown; charset=utf-8'],
    ]);

    const video = page.getByLabel('contents of clip.webm');
    expect(await video.evaluate((v) => v.tagName)).toBe('VIDEO');
    expect(await video.getAttribute('controls')).not.toBeNull();
    await waitUntil(() => video.evaluate((v: HTMLVideoElement) => v.readyState >= 1 && v.videoWidth === 64 && v.videoHeight === 48), {
      what: 'the video player to load the 64×48 WebM',
    });
    expect(await video.evaluate((v: HTMLVideoElement) => v.error)).toBeNull();

    // HTML is shown as its source, never parsed into the page.
    const html = page.getByLabel('contents of page.html');
    await waitUntil(async () => (await html.textContent()) === HTML, { what: 'the HTML source to show' });
    expect(await html.locator('h1, script, img').count()).toBe(0);
    const htmlItem = page.getByTestId('artifact-page.html');
    expect(await htmlItem.getByText('A page a run stored is shown as its source: it never runs in the dashboard. Download it to open it.').isVisible()).toBe(true);
    // The row gives the media type; its parameters are in the tooltip.
    const mdType = page.getByTestId('artifact-notes.md').locator('.artifact-row [title]');
    expect([await mdType.textContent(), await mdType.getAttribute('title')]).toEqual(['text/markdown', 'text/markdown; charset=utf-8']);

    // SVG shows as an image: an <img> runs none of its script or handlers.
    const svg = page.getByRole('img', { name: 'pic.svg' });
    await waitUntil(() => svg.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 40 && img.naturalHeight === 30), {
      what: 'the SVG preview to load',
    });
    expect(await page.locator('iframe, object, embed').count()).toBe(0);

    const md = page.getByLabel('contents of notes.md');
    await md.getByRole('heading', { name: 'Notes' }).waitFor();
    expect(await md.locator('iframe, script, a[href^="javascript"], a[href^="data"]').count()).toBe(0);
    expect(await md.textContent()).toContain('<iframe src="javascript:window.top.__pwned = 1"></iframe>');
    expect(await md.getByRole('link').evaluateAll((links) => links.map((a) => [a.textContent, a.getAttribute('href')]))).toEqual([
      ['fine', 'https://example.com/a_(b)'],
    ]);
    // Links it refused stay as their text.
    for (const text of ['upper case', 'data', 'relative', 'raw link']) expect(await md.textContent()).toContain(text);

    // Each is downloaded byte for byte.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'download page.html' }).click()]);
    expect(download.suggestedFilename()).toBe('page.html');
    const saved = join(dir.path, 'page.html');
    await download.saveAs(saved);
    expect(readFileSync(saved, 'utf8')).toBe(HTML);

    expect(await page.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
    await run.succeed();
  });

  it('previews a Markdown table as a table', async () => {
    const run: RunHandle = await client.createRun({ name: 'tables' });
    await run.artifact('scores.md', '# Scores\n\n| model | score |\n|---|--:|\n| small | 0.81 |\n| large | **0.93** |\n');
    await page.goto(`${server!.url}/runs/${run.id}`);
    const table = page.getByLabel('contents of scores.md').getByRole('table');
    await table.waitFor();
    expect(await table.locator('th').allTextContents()).toEqual(['model', 'score']);
    expect(await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent)))).toEqual([
      ['small', '0.81'],
      ['large', '0.93'],
    ]);
    // `--:` right-aligns the column, as GFM says.
    expect(await table.locator('td').nth(1).evaluate((td) => getComputedStyle(td).textAlign)).toBe('right');
    expect(await page.getByLabel('contents of scores.md').textContent()).not.toContain('|');
    await run.succeed();
  });

  it("previews a command's output log as a terminal showed it: no colour codes, a redrawn progress line in its last state", async () => {
    const run: RunHandle = await client.createRun({ name: 'output log' });
    await run.artifact('output.log', 'loading\n\u001b[32mok\u001b[0m 3 rows\nprogress 10%\rprogress 60%\rprogress 100%\n', { contentType: 'text/plain; charset=utf-8' });
    await page.goto(`${server!.url}/runs/${run.id}`);
    const preview = page.getByLabel('contents of output.log');
    await preview.waitFor();
    // Before: ESC shown as a box before "[32m", and every redraw of the progress line run together.
    expect(await preview.textContent()).toBe('loading\nok 3 rows\nprogress 100%\n');
    await run.succeed();
  });

  it('quotes a name that starts or ends with a space: "x.txt " is not shown as "x.txt"', async () => {
    const run: RunHandle = await client.createRun({ name: 'spaced' });
    await run.artifact('x.txt ', 'the name ends in a space', { contentType: 'text/plain' });
    await run.artifact('x.txt', 'no space', { contentType: 'text/plain' });
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'Artifacts (2)' }).waitFor();
    expect(await page.locator('.artifact-name').allTextContents()).toEqual(['“x.txt ”', 'x.txt']);
    await run.succeed();
  });

  it('counts in words a reader would write: 1 byte, 1 line, 1 point, 1,003 lines', async () => {
    const run = await client.createRun({ name: 'counted', input: { ids: Array.from({ length: 999 }, (_, i) => i) } });
    run.log('the only line');
    run.metric('loss', 0.5, 0);
    await run.artifact('one.txt', Buffer.from('x'), { contentType: 'text/plain' });
    await run.succeed();
    await page.goto(`${server!.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'counted', exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Artifacts (1)' }).waitFor();
    expect(await page.getByTestId('artifact-one.txt').locator('.artifact-row').textContent()).toContain('1 byte');
    expect(await page.getByTestId('artifact-one.txt').locator('.artifact-row').textContent()).not.toContain('1 bytes');
    await waitUntil(async () => (await textNow(page.locator('#console-title'))) === 'Console (1 line)', { what: 'the console to count its one line' });
    expect(await page.getByText(/^Data \(1 points?\)$/).textContent()).toBe('Data (1 point)');
    // 999 ids, one a line, inside the object's braces and the array's brackets.
    expect(await page.locator('summary', { hasText: 'Input' }).textContent()).toBe('Input 1,003 lines');
  });

  it('opening an HTML or SVG artifact’s own URL in a tab downloads it; its script never runs in the dashboard’s origin', async () => {
    const run = await client.createRun({ name: 'opened-directly' });
    await run.artifact('page.html', HTML, { contentType: 'text/html' });
    await run.artifact('pic.svg', Buffer.from(SVG));
    await run.succeed();
    for (const name of ['page.html', 'pic.svg']) {
      const tab = await browser.newPage({ acceptDownloads: true });
      const url = `${server!.url}/api/v1/runs/${run.id}/artifacts/${name}`;
      const [download] = await Promise.all([
        tab.waitForEvent('download'),
        // A navigation that becomes a download is reported as an aborted navigation: the download is the outcome.
        tab.goto(url).catch((err: Error) => {
          if (!/net::ERR_ABORTED|Download is starting/.test(err.message)) throw err;
        }),
      ]);
      expect(download.suggestedFilename()).toBe(name);
      expect(await tab.evaluate(() => (window as { __pwned?: unknown }).__pwned)).toBeUndefined();
      await tab.close();
    }
  });

  it('an SVG preview opened in a tab of its own (“Open image in new tab”) runs no script in the dashboard’s origin', async () => {
    // Its script names the origin it ran in: in the dashboard's, it could read the tab's token and call the API.
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" onload="document.title = \'ran in \' + self.origin">' +
      '<rect width="40" height="30" fill="teal"/></svg>';
    const run = await client.createRun({ name: 'svg-opened-alone' });
    await run.artifact('alone.svg', Buffer.from(svg));
    await run.succeed();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const tab = await context.newPage();
      await tab.goto(`${server!.url}/runs/${run.id}`);
      const img = tab.getByRole('img', { name: 'alone.svg' });
      await waitUntil(() => img.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth === 40 && i.naturalHeight === 30), {
        what: 'the SVG preview to load',
      });
      const src = (await img.getAttribute('src'))!;
      // What the browser's own "Open image in new tab" does: a navigation of a new tab to the image's URL, in the same profile.
      const opened = await context.newPage();
      await opened.goto(src);
      const { origin, title } = await opened.evaluate(() => ({ origin: self.origin, title: document.title }));
      expect(title).not.toBe(`ran in ${new URL(server!.url).origin}`);
      expect(origin).not.toBe(new URL(server!.url).origin);
    } finally {
      await context.close();
    }
  });

  it('with auth on, a shared link’s run token previews and downloads the run’s artifacts (the page sends the token; a plain link could not)', async () => {
    const admin = 'e2e-admin-token-0123456789';
    const secured = await spawnServer({ dataDir: join(dir.path, 'secured'), node: 'e2e-artifacts-auth', env: { RUNTRAIL_ADMIN_TOKEN: admin } });
    const tab = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const tabErrors = collectConsoleErrors(tab);
    try {
      const producer = new RuntrailClient({ url: secured.url, token: admin });
      const run = await producer.createRun({ name: 'shared-results' });
      const csv = 'model,score\nsmall,0.71\nlarge,0.88\n';
      await run.artifact('scores.csv', csv);
      await run.succeed();
      const { token } = await producer.createRunToken(run.id);
      expect((await fetch(`${secured.url}/api/v1/runs/${run.id}/artifacts/scores.csv`)).status).toBe(401);

      await tab.goto(`${secured.url}/runs/${run.id}?token=${encodeURIComponent(token)}`);
      const table = tab.getByRole('table', { name: 'contents of scores.csv' });
      await table.waitFor();
      expect(await table.locator('tbody tr').count()).toBe(2);
      const [download] = await Promise.all([tab.waitForEvent('download'), tab.getByRole('button', { name: 'download scores.csv' }).click()]);
      expect(download.suggestedFilename()).toBe('scores.csv');
      const saved = join(dir.path, 'scores.csv');
      await download.saveAs(saved);
      expect(readFileSync(saved, 'utf8')).toBe(csv);
      expect(tabErrors).toEqual([]);
    } finally {
      await tab.close();
      await stopServer(secured);
    }
  });

  it('left no errors in the browser console', () => {
    expect(errors).toEqual([]);
  });
});
