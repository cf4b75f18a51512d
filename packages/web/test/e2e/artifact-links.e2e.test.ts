import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Page } from 'playwright-core';
import { restartingScene, textNow, waitUntil } from './harness.js';

/**
 * An artifact a producer records as a link (`uri`) to content kept
 * elsewhere: its preview loads only when the viewer asks, from a button
 * naming the host it contacts, never when the run page opens. Otherwise any
 * producer could make every viewer's browser request a URL of its choosing
 * (a tracking pixel, a request into the viewer's own network) just by being
 * looked at. The "elsewhere" is a second HTTP server on loopback that
 * counts what it is asked for, named in the server's linkPreviewHosts; a
 * third, not named, is a host the page must never reach: no preview is
 * offered for its links, and the CSP refuses what a script would ask of it.
 */

const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="teal"/></svg>';

/** 0.2 s of 8 kHz 8-bit mono silence: the smallest audio Chromium plays without a codec question. */
function wav(): Buffer {
  const samples = 1600;
  const head = Buffer.alloc(44);
  head.write('RIFF', 0);
  head.writeUInt32LE(36 + samples, 4);
  head.write('WAVEfmt ', 8);
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(8000, 24);
  head.writeUInt32LE(8000, 28);
  head.writeUInt16LE(1, 32);
  head.writeUInt16LE(8, 34);
  head.write('data', 36);
  head.writeUInt32LE(samples, 40);
  return Buffer.concat([head, Buffer.alloc(samples, 0x80)]);
}

const FILES: Record<string, { type: string; body: Buffer }> = {
  '/pic.svg': { type: 'image/svg+xml', body: Buffer.from(SVG) },
  '/sound.wav': { type: 'audio/wav', body: wav() },
  // Any bytes do: what matters is whether the browser asks for them, and when.
  '/clip.webm': { type: 'video/webm', body: Buffer.from('not really a video') },
  '/notes.txt': { type: 'text/plain; charset=utf-8', body: Buffer.from('kept in the object store') },
};

/** A loopback server that answers FILES and remembers every request (an upgrade too) it gets. */
async function fileHost(): Promise<{ server: Server; host: string; asked: { path: string; headers: IncomingHttpHeaders }[] }> {
  const asked: { path: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    asked.push({ path: req.url ?? '', headers: req.headers });
    const file = FILES[req.url ?? ''];
    if (!file) return void res.writeHead(404).end();
    // An object store set up for browsers answers CORS, so a text preview can read it.
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'access-control-allow-origin': '*' }).end(file.body);
  });
  server.on('upgrade', (req, socket) => {
    asked.push({ path: req.url ?? '', headers: req.headers });
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, asked };
}

async function closeHost(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

describe('a linked artifact’s preview contacts its host only when the viewer asks, and only a host of linkPreviewHosts', () => {
  const scene = restartingScene({ prefix: 'runtrail-artifact-links-e2e-', node: 'e2e-artifact-links' });
  let allowed: Awaited<ReturnType<typeof fileHost>>;
  let refused: Awaited<ReturnType<typeof fileHost>>;
  let page: Page;
  let errors: string[];
  let host = '';

  beforeAll(async () => {
    allowed = await fileHost();
    refused = await fileHost();
    host = allowed.host;
    await scene.start({ args: ['--link-preview-hosts', `http://${allowed.host}`] });
    ({ page, errors } = await scene.newPage());
  });

  afterAll(async () => {
    await closeHost(allowed?.server);
    await closeHost(refused?.server);
  });

  const askedFor = (path: string) => allowed.asked.filter((a) => a.path === path).length;

  it('opens the run page without a request to the host; each preview loads from a button naming it; stored ones open by themselves as before', async () => {
    const server = scene.server;
    const asked = allowed.asked;
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'linked-artifacts' });
    await run.artifact('stored.txt', 'kept by runtrail', { contentType: 'text/plain' });
    for (const [name, contentType] of [
      ['pic.svg', 'image/svg+xml'],
      ['sound.wav', 'audio/wav'],
      ['clip.webm', 'video/webm'],
      ['notes.txt', 'text/plain'],
    ] as const) {
      run.event('artifact', { name, uri: `http://${host}/${name}`, contentType });
    }
    await run.flush();

    await page.goto(`${server.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'Artifacts (5)' }).waitFor();
    // The stored artifact's preview opens by itself, so the page has rendered every preview that would.
    await waitUntil(async () => (await textNow(page.getByLabel('contents of stored.txt'))) === 'kept by runtrail', {
      what: 'the stored artifact’s preview to open by itself',
    });
    for (const name of ['pic.svg', 'sound.wav', 'clip.webm', 'notes.txt']) {
      const button = page.getByRole('button', { name: `load from ${host}: ${name}` });
      expect(await button.textContent()).toBe(`Load from ${host}`);
    }
    expect(await page.locator(`[src*="${host}"]`).count()).toBe(0);
    expect(asked).toEqual([]);

    await page.getByRole('button', { name: `load from ${host}: pic.svg` }).click();
    const image = page.getByRole('img', { name: 'pic.svg' });
    await waitUntil(() => image.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 40 && img.naturalHeight === 30), {
      what: 'the linked image to load',
    });
    expect(askedFor('/pic.svg')).toBe(1);

    await page.getByRole('button', { name: `load from ${host}: sound.wav` }).click();
    const audio = page.getByLabel('contents of sound.wav');
    await waitUntil(() => audio.evaluate((a: HTMLAudioElement) => a.readyState >= 1 && a.duration > 0), { what: 'the linked audio to load' });

    await page.getByRole('button', { name: `load from ${host}: notes.txt` }).click();
    await waitUntil(async () => (await textNow(page.getByLabel('contents of notes.txt'))) === 'kept in the object store', {
      what: 'the linked text to show',
    });

    // Nothing asked for the video yet; then its player asks where the link points.
    expect(askedFor('/clip.webm')).toBe(0);
    await page.getByRole('button', { name: `load from ${host}: clip.webm` }).click();
    const video = page.getByLabel('contents of clip.webm');
    expect(await video.evaluate((v) => v.tagName)).toBe('VIDEO');
    await waitUntil(() => askedFor('/clip.webm') > 0, { what: 'the video player to ask the host' });
    expect(await video.evaluate((v: HTMLVideoElement) => v.currentSrc)).toBe(`http://${host}/clip.webm`);

    // The host learns nothing of the page: no Referer (a shared run page's URL carries its token).
    expect(asked.filter((a) => a.headers.referer !== undefined)).toEqual([]);

    // Hidden and reloaded: nothing opens by itself again.
    const before = asked.length;
    await page.reload();
    await waitUntil(async () => (await textNow(page.getByLabel('contents of stored.txt'))) === 'kept by runtrail', { what: 'the page to render again' });
    await page.getByRole('button', { name: `load from ${host}: pic.svg` }).waitFor();
    expect(asked.length).toBe(before);
    expect(errors).toEqual([]);
    await run.succeed();
  });

  it('offers no preview of a link to a host not in linkPreviewHosts, says why, and the CSP refuses the page any load from it', async () => {
    const server = scene.server;
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'linked-elsewhere' });
    run.event('artifact', { name: 'far.svg', uri: `http://${refused.host}/pic.svg`, contentType: 'image/svg+xml' });
    run.event('artifact', { name: 'near.svg', uri: `http://${host}/pic.svg`, contentType: 'image/svg+xml' });
    await run.flush();
    const errorsBefore = errors.length;

    await page.goto(`${server.url}/runs/${run.id}`);
    await page.getByRole('heading', { name: 'Artifacts (2)' }).waitFor();
    const far = page.getByTestId('artifact-far.svg');
    await far.getByText(`Preview not allowed for host ${refused.host} (the server's linkPreviewHosts setting)`).waitFor();
    // Still a link the viewer may open in a tab of its own (a navigation, which the CSP does not govern).
    expect(await far.getByRole('link', { name: 'far.svg' }).getAttribute('href')).toBe(`http://${refused.host}/pic.svg`);
    expect(await far.getByRole('button').count()).toBe(0);
    // The allowed host's link on the same page has its button: the answer had arrived when the message showed.
    await page.getByRole('button', { name: `load from ${host}: near.svg` }).click();
    await waitUntil(() => page.getByRole('img', { name: 'near.svg' }).evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth === 40), {
      what: 'the allowed host’s image to load',
    });

    // What a script in the page could try of the refused host: every way is refused before a request leaves.
    const tried = await page.evaluate(async (url) => {
      const fetched = await fetch(url).then(
        () => 'loaded',
        () => 'refused',
      );
      const image = await new Promise<string>((resolve) => {
        const img = new Image();
        img.onload = () => resolve('loaded');
        img.onerror = () => resolve('refused');
        img.src = url;
      });
      const socket = await new Promise<string>((resolve) => {
        try {
          const ws = new WebSocket(url.replace(/^http/, 'ws'));
          ws.onopen = () => resolve('opened');
          ws.onerror = () => resolve('refused');
        } catch (err) {
          resolve(`refused: ${(err as Error).name}`);
        }
      });
      return { fetched, image, socket };
    }, `http://${refused.host}/pic.svg`);
    expect(tried.fetched).toBe('refused');
    expect(tried.image).toBe('refused');
    expect(tried.socket).toMatch(/^refused/);
    expect(refused.asked).toEqual([]);
    const refusals = errors.slice(errorsBefore);
    expect(refusals.length).toBeGreaterThan(0);
    for (const line of refusals) expect(line).toMatch(/Content Security Policy/);

    // 'self' covers the dashboard's own WebSocket (ws: to its host and port): no ws: source is needed for it.
    const own = await page.evaluate(
      (url) =>
        new Promise<string>((resolve) => {
          const ws = new WebSocket(url);
          ws.onopen = () => {
            ws.close();
            resolve('opened');
          };
          ws.onerror = () => resolve('refused');
        }),
      `${server.url.replace(/^http/, 'ws')}/api/v1/stream`,
    );
    expect(own).toBe('opened');
    await run.succeed();
  });
});
