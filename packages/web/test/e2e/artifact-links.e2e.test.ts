import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { browserScene, textNow, waitUntil } from './harness.js';

/**
 * An artifact a producer records as a link (`uri`) to content kept
 * elsewhere: its preview loads only when the viewer asks, from a button
 * naming the host it contacts, never when the run page opens. Otherwise any
 * producer could make every viewer's browser request a URL of its choosing
 * (a tracking pixel, a request into the viewer's own network) just by being
 * looked at. The "elsewhere" is a second HTTP server on loopback that
 * counts what it is asked for.
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

describe('a linked artifact’s preview contacts its host only when the viewer asks', () => {
  const scene = browserScene({ prefix: 'runtrail-artifact-links-e2e-', node: 'e2e-artifact-links' });
  const asked: { path: string; headers: IncomingHttpHeaders }[] = [];
  let elsewhere: Server;
  let host = '';

  beforeAll(async () => {
    elsewhere = createServer((req, res) => {
      asked.push({ path: req.url ?? '', headers: req.headers });
      const file = FILES[req.url ?? ''];
      if (!file) return void res.writeHead(404).end();
      // An object store set up for browsers answers CORS, so a text preview can read it.
      res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'access-control-allow-origin': '*' }).end(file.body);
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    elsewhere.closeAllConnections();
    await new Promise((resolve) => elsewhere.close(resolve));
  });

  const askedFor = (path: string) => asked.filter((a) => a.path === path).length;

  it('opens the run page without a request to the host; each preview loads from a button naming it; stored ones open by themselves as before', async () => {
    const { page, server } = scene;
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
    expect(scene.errors).toEqual([]);
    await run.succeed();
  });
});
