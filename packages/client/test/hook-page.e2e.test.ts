import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { testScope } from '@runtrail/test-support/server';

/**
 * The React hook in a page of its own, as an app that embeds it is built:
 * the fixture bundled by Vite against the built package (`npm run build`
 * first), in development mode so StrictMode mounts twice, served from an
 * origin of its own, in Debian's Chromium, against a real server on loopback.
 */

const fixture = fileURLToPath(new URL('./fixtures/hook-page/', import.meta.url));
const out = tempDir('runtrail-hook-page-');
let browser: Browser;

beforeAll(async () => {
  await build({
    root: fixture,
    configFile: false,
    logLevel: 'silent',
    mode: 'development',
    base: './',
    define: { 'process.env.NODE_ENV': '"development"' },
    build: { outDir: out.path, emptyOutDir: true, minify: false },
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  out.remove();
});

/**
 * The app on an origin of its own (a static server on loopback, as a Vite
 * dev server would be), the runtrail server allowing it, as an app that
 * embeds the hook runs them.
 */
async function serveApp(cleanups: Array<() => Promise<void> | void>): Promise<string> {
  const app = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://app').pathname.slice(1) || 'index.html';
    readFile(`${out.path}/${path}`).then(
      (body) => res.writeHead(200, { 'content-type': path.endsWith('.js') ? 'text/javascript' : 'text/html' }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => app.close(() => resolve())));
  return `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
}

/** The app's page, recording its console. */
async function openPage(appUrl: string, query: string): Promise<{ page: Page; console: ConsoleMessage[] }> {
  const page = await browser.newPage();
  const messages: ConsoleMessage[] = [];
  page.on('console', (m) => messages.push(m));
  await page.goto(`${appUrl}/index.html?${query}`);
  return { page, console: messages };
}

const text = (page: Page, id: string) => page.evaluate((i) => document.getElementById(i)?.textContent ?? '', id);

describe('useRun in a page of its own', () => {
  const { server, cleanups } = testScope();

  it('StrictMode mounting useRun and useRuns twice goes live with nothing in the console about the WebSockets it dropped', async () => {
    const appUrl = await serveApp(cleanups);
    const s = await server({ allowedOrigins: [appUrl], corsOrigins: [appUrl] });
    const rt = new RuntrailClient({ url: s.url });
    const run = await rt.createRun({ name: 'strict' });
    cleanups.push(() => run.succeed());
    const { page, console } = await openPage(appUrl, `server=${encodeURIComponent(s.url)}&run=${run.id}`);
    cleanups.push(() => page.close());
    await waitUntil(async () => (await text(page, 'connection')) === 'live', { what: 'the page to go live', timeoutMs: 10_000 });
    await waitUntil(async () => (await text(page, 'runs-connection')) === 'live', { what: 'the runs list to go live', timeoutMs: 10_000 });
    await waitUntil(async () => (await text(page, 'runs')) === 'strict', { what: 'the run in the runs list', timeoutMs: 10_000 });
    run.progress(3, 10);
    await waitUntil(async () => (await text(page, 'done')) === '3', { what: 'progress on the page', timeoutMs: 10_000 });
    // What the page can say about its connection: over which transport, since when and why, up to which seq.
    expect(await text(page, 'transport')).toBe('ws');
    expect(await text(page, 'reason')).toBe('subscribed');
    expect(await text(page, 'runs-reason')).toBe('subscribed');
    const { seq } = await rt.getRun(run.id);
    await waitUntil(async () => (await text(page, 'seq')) === String(seq), { what: `seq ${seq} on the page`, timeoutMs: 10_000 });
    // The first mount's socket, dropped while connecting, subscribed nothing: one watcher on the server.
    await waitUntil(async () => (await rt.getRun(run.id)).observers === 1, { what: 'one observer', timeoutMs: 10_000 });
    const complaints = console.filter((m) => (m.type() === 'error' || m.type() === 'warning') && /websocket/i.test(m.text()));
    expect(complaints.map((m) => m.text())).toEqual([]);
  });

  it('a page with no run selected says useRun is idle, not connecting for ever', async () => {
    const appUrl = await serveApp(cleanups);
    const s = await server({ allowedOrigins: [appUrl], corsOrigins: [appUrl] });
    const { page } = await openPage(appUrl, `server=${encodeURIComponent(s.url)}`);
    cleanups.push(() => page.close());
    // The list beside it going live says the page has mounted and subscribed.
    await waitUntil(async () => (await text(page, 'runs-connection')) === 'live', { what: 'the runs list to go live', timeoutMs: 10_000 });
    expect(await text(page, 'connection')).toBe('idle');
    expect(await text(page, 'reason')).toBe('no_run');
    expect(await text(page, 'transport')).toBe('');
    expect(await text(page, 'error')).toBe('');
  });

  it('with auth on and no token, the error says to pass `token` to <RuntrailProvider>, after the server\'s own words; with it the page goes live', async () => {
    const admin = 'hook-page-admin-token-0123456789';
    const appUrl = await serveApp(cleanups);
    const s = await server({ adminToken: admin, allowedOrigins: [appUrl], corsOrigins: [appUrl] });
    const rt = new RuntrailClient({ url: s.url, token: admin });
    const run = await rt.createRun({ name: 'private' });
    cleanups.push(() => run.succeed());
    const bare = await openPage(appUrl, `server=${encodeURIComponent(s.url)}&run=${run.id}`);
    cleanups.push(() => bare.page.close());
    const error = await waitUntil(async () => (await text(bare.page, 'error')) || undefined, { what: 'the run to fail', timeoutMs: 10_000 });
    expect(error).toBe(
      'unauthorized: this server needs a token: send Authorization: Bearer <token> ' +
        '(no token was given to this watcher: give the React hooks one as <RuntrailProvider url={…} token={…}>)',
    );
    expect(await text(bare.page, 'connection')).toBe('ended');
    const listError = await waitUntil(async () => (await text(bare.page, 'runs-error')) || undefined, { what: 'the runs list to fail', timeoutMs: 10_000 });
    expect(listError).toBe(error);
    const given = await openPage(appUrl, `server=${encodeURIComponent(s.url)}&run=${run.id}&token=${admin}`);
    cleanups.push(() => given.page.close());
    await waitUntil(async () => (await text(given.page, 'connection')) === 'live', { what: 'the page with a token to go live', timeoutMs: 10_000 });
  });

  it('a server that does not allow the app\'s origin is named in the error, with the flags that allow it, not just "Failed to fetch"', async () => {
    const appUrl = await serveApp(cleanups);
    const s = await server();
    const { page } = await openPage(appUrl, `server=${encodeURIComponent(s.url)}`);
    cleanups.push(() => page.close());
    // The WebSocket is refused (403) twice, then the list is polled over fetch, which CORS refuses.
    const error = await waitUntil(async () => (await text(page, 'runs-error')) || undefined, { what: 'the runs list to fail', timeoutMs: 15_000 });
    expect(error).toBe(
      `unavailable: cannot reach the runtrail server: GET ${s.url}/api/v1/runs?limit=50 failed (Failed to fetch): it is not running or not reachable from here, ` +
        `or it does not allow this page's origin ${appUrl} (serve with --cors-origins ${appUrl} --allowed-origins ${appUrl})`,
    );
    expect(await text(page, 'runs-connection')).toBe('reconnecting');
  });
});
