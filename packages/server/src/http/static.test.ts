import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../start.js';

describe('the dashboard served at /', () => {
  let dir: string;
  let server: RunningServer;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'runtrail-static-'));
    const webDir = join(dir, 'web');
    mkdirSync(join(webDir, 'assets'), { recursive: true });
    writeFileSync(join(webDir, 'index.html'), '<!doctype html><div id="root"></div>');
    writeFileSync(join(webDir, 'assets', 'app-abc123.js'), 'console.log(1)');
    server = await startServer({ port: 0, dataDir: join(dir, 'data'), webDir, logLevel: 'silent' });
  });

  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the app at / and for a shared or reloaded /runs/:id link', async () => {
    for (const path of ['/', '/runs/0190abcd-some-id']) {
      const res = await fetch(server.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<div id="root">');
    }
  });

  it('serves hashed assets as immutable', async () => {
    const res = await fetch(`${server.url}/assets/app-abc123.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('immutable');
  });

  it('keeps a JSON 404 for an unknown API path and a missing file, never the app', async () => {
    for (const path of ['/api/v1/nope', '/api/v1/runs/x/nope', '/assets/missing.js']) {
      const res = await fetch(server.url + path);
      expect(res.status, path).toBe(404);
      expect(res.headers.get('content-type'), path).toMatch(/application\/json/);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('route_not_found');
    }
  });

  it('sends a run link with broken percent-encoding to the dashboard (which says there is no such run), and keeps the JSON 400 for the API', async () => {
    // Fastify's router cannot decode these and answered every one with a JSON 400, before any route.
    for (const [path, to] of [
      ['/runs/%E0%A4%A', '/runs/%25E0%25A4%25A'],
      ['/runs/%ZZ?x=1', '/runs/%25ZZ?x=1'],
      ['/runs/0190abcd-%E0-%41', '/runs/0190abcd-%25E0-%41'],
    ] as const) {
      const res = await fetch(server.url + path, { redirect: 'manual' });
      expect(res.status, path).toBe(302);
      expect(res.headers.get('location'), path).toBe(to);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      const page = await fetch(server.url + to);
      expect(page.status, to).toBe(200);
      expect(await page.text()).toContain('<div id="root">');
    }
    for (const path of ['/api/v1/runs/%E0%A4%A', '/api/v1/runs/%E0%A4%A/events', '/nope/%E0']) {
      const res = await fetch(server.url + path, { redirect: 'manual' });
      expect(res.status, path).toBe(400);
      expect(res.headers.get('content-type'), path).toMatch(/application\/json/);
    }
  });

  it('still answers the API for a run that does not exist with run_not_found', async () => {
    const res = await fetch(`${server.url}/api/v1/runs/does-not-exist`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('run_not_found');
  });
});

describe('a server whose dashboard is not built', () => {
  it('says how to build it at / and keeps serving the API', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtrail-static-'));
    const server = await startServer({
      port: 0,
      dataDir: join(dir, 'data'),
      webDir: join(dir, 'nothing-here'),
      logLevel: 'silent',
    });
    try {
      const page = await fetch(`${server.url}/`);
      expect(page.status).toBe(503);
      expect(await page.text()).toContain('npm run build');
      const api = await fetch(`${server.url}/api/v1/runs`);
      expect(api.status).toBe(200);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
