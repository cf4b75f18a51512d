import { expect, test } from 'vitest';
import { mediaUrl } from './media-url.js';

const SVG = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>';

test('an SVG (any casing, with parameters) becomes a data: URL with its bytes, never a blob: URL of the page', async () => {
  for (const type of ['image/svg+xml', 'IMAGE/SVG+XML; charset=utf-8']) {
    const { url, revoke } = await mediaUrl(new Blob([SVG], { type }));
    expect(revoke).toBe(false);
    expect(url.startsWith('data:image/svg+xml;base64,')).toBe(true);
    expect(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64').toString()).toBe(SVG);
  }
});

test('raster images, audio and video keep a blob: URL; an +xml kind of them, or an unknown type, does not', async () => {
  for (const type of ['image/png', 'image/jpeg', 'audio/mpeg', 'video/webm']) {
    const { url, revoke } = await mediaUrl(new Blob([new Uint8Array([1, 2, 3])], { type }));
    expect([type, revoke, url.startsWith('blob:')]).toEqual([type, true, true]);
    URL.revokeObjectURL(url);
  }
  for (const type of ['video/x+xml', 'audio/evil+xml', 'application/xhtml+xml', 'text/html', '']) {
    const { url, revoke } = await mediaUrl(new Blob(['<x/>'], { type }));
    expect([type, revoke, url.startsWith('data:')]).toEqual([type, false, true]);
  }
});

test('a data: URL of a large image holds every byte', async () => {
  const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
  const { url } = await mediaUrl(new Blob([bytes], { type: 'image/svg+xml' }));
  expect(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64').equals(Buffer.from(bytes))).toBe(true);
});
