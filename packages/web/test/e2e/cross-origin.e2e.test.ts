import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type Page, type Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SSE_EVENTS } from '@runtrail/protocol';
import { assertBuilt, spawnServer, stopServer, tempDir, waitUntil, type ServerProcess } from './harness.js';

/**
 * Issue 15, item 5, in a real browser: a hostile page served from a second
 * loopback origin attacks a runtrail server that has auth OFF. It must not
 * create, cancel, retry or delete a run, open the WebSocket or an
 * EventSource, or read a run; and a
 * name rebound to 127.0.0.1 (DNS rebinding) gets no answer.
 */
const REBOUND = 'rebind.attacker.test';
const dir = tempDir('runtrail-e2e-xorigin-');
let server: ServerProcess | null = null;
let attacker: Server;
let attackerUrl: string;
let browser: Browser;
let page: Page;

const api = async (path: string, init: RequestInit = {}) => {
  const res = await fetch(`${server!.url}${path}`, { ...init, headers: { 'x-runtrail-client': 'e2e', ...init.headers } });
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
};

beforeAll(async () => {
  assertBuilt();
  server = await spawnServer({ dataDir: join(dir.path, 'data'), node: 'e2e-xorigin' });
  attacker = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>totally harmless</title><form id="f" method="POST" target="sink"></form><iframe name="sink"></iframe>');
  });
  await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
  attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
  // The rebound name resolves to the server, as a DNS-rebinding attacker arranges.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', `--host-resolver-rules=MAP ${REBOUND} 127.0.0.1`],
  });
  page = await browser.newPage();
});

afterAll(async () => {
  await browser?.close();
  await stopServer(server);
  await new Promise((resolve) => attacker?.close(resolve));
  dir.remove();
});

describe('a page on another origin, against a server with auth off', () => {
  it('cannot cancel, retry or delete a run, with no-cors fetches, CORS fetches or form posts', async () => {
    const live = (await api('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'victim' }) })).body;
    const ended = (await api('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ended' }) })).body;
    await api(`/api/v1/runs/${ended.id}/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 'failed', error: { message: 'x' } }) });
    const before = { live: (await api(`/api/v1/runs/${live.id}`)).body, ended: (await api(`/api/v1/runs/${ended.id}`)).body };

    await page.goto(attackerUrl);
    const outcomes = await page.evaluate(
      async ({ target, live, ended }) => {
        const tries: Array<[string, () => Promise<unknown>]> = [
          ['no-cors cancel', () => fetch(`${target}/api/v1/runs/${live}/cancel`, { method: 'POST', mode: 'no-cors', body: '{}', headers: { 'content-type': 'text/plain' } })],
          ['no-cors cancel, no body', () => fetch(`${target}/api/v1/runs/${live}/cancel`, { method: 'POST', mode: 'no-cors' })],
          ['no-cors retry', () => fetch(`${target}/api/v1/runs/${ended}/retry`, { method: 'POST', mode: 'no-cors', body: '{}', headers: { 'content-type': 'text/plain' } })],
          ['cors cancel', () => fetch(`${target}/api/v1/runs/${live}/cancel`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })],
          ['cors delete', () => fetch(`${target}/api/v1/runs/${ended}`, { method: 'DELETE' })],
          ['cors retry', () => fetch(`${target}/api/v1/runs/${ended}/retry`, { method: 'POST', headers: { 'x-runtrail-client': '1' } })],
        ];
        const results: Record<string, string> = {};
        for (const [name, attempt] of tries) {
          try {
            const res = (await attempt()) as Response;
            results[name] = res.type === 'opaque' ? 'opaque' : `status ${res.status}`;
          } catch (err) {
            results[name] = `blocked: ${(err as Error).name}`;
          }
        }
        // A classic form post into a hidden frame: the browser sends it, cookies and all.
        const form = document.getElementById('f') as HTMLFormElement;
        form.action = `${target}/api/v1/runs/${live}/cancel`;
        form.enctype = 'text/plain';
        form.submit();
        return results;
      },
      { target: server!.url, live: live.id, ended: ended.id },
    );
    // CORS reads fail in the browser; simple requests go out opaque and are refused by the server.
    expect(outcomes['cors cancel']).toMatch(/^blocked/);
    expect(outcomes['cors delete']).toMatch(/^blocked/);
    expect(outcomes['cors retry']).toMatch(/^blocked/);
    await page.waitForLoadState('networkidle');

    const after = { live: (await api(`/api/v1/runs/${live.id}`)).body, ended: (await api(`/api/v1/runs/${ended.id}`)).body };
    expect(after.live.status).toBe('running');
    expect(after.live.cancelRequestedAt).toBeNull();
    expect(after.live.seq).toBe(before.live.seq);
    expect(after.ended.seq).toBe(before.ended.seq);
    const all = (await api('/api/v1/runs')).body.runs as Array<{ id: string }>;
    expect(all.map((r) => r.id).sort()).toEqual([live.id, ended.id].sort());
  });

  it('cannot create a run with a simple request: text/plain JSON, a multipart or urlencoded form, a beacon', async () => {
    const before = (await api('/api/v1/runs')).body.runs.length as number;
    await page.goto(attackerUrl);
    // Each forged request counts once the browser has the server's answer (or refused to show it to the page).
    const answered: string[] = [];
    const onEnd = (request: Request) => {
      if (request.method() === 'POST' && request.url() === `${server!.url}/api/v1/runs`) answered.push(request.failure()?.errorText ?? 'answered');
    };
    page.on('requestfinished', onEnd).on('requestfailed', onEnd);
    const sent = await page.evaluate(async (target) => {
      const body = JSON.stringify({ name: 'forged' });
      const form = new FormData();
      form.append('name', 'forged');
      const results: Record<string, string> = {};
      for (const [name, init] of [
        ['text/plain JSON', { body, headers: { 'content-type': 'text/plain' } }],
        ['multipart', { body: form }],
        ['urlencoded', { body: new URLSearchParams({ name: 'forged' }) }],
      ] as const) {
        try {
          const res = await fetch(`${target}/api/v1/runs`, { method: 'POST', mode: 'no-cors', ...init });
          results[name] = res.type;
        } catch (err) {
          // The browser may refuse to hand an answer to this page (CORP): the request went out all the same.
          results[name] = `no answer: ${(err as Error).name}`;
        }
      }
      results.beacon = String(navigator.sendBeacon(`${target}/api/v1/runs`, new Blob([body], { type: 'text/plain' })));
      const f = document.getElementById('f') as HTMLFormElement;
      f.action = `${target}/api/v1/runs`;
      f.enctype = 'multipart/form-data';
      const input = document.createElement('input');
      input.name = 'name';
      input.value = 'forged';
      f.append(input);
      f.submit();
      return results;
    }, server!.url);
    expect(sent.beacon).toBe('true');
    await waitUntil(() => answered.length === 5, { what: 'the 5 forged requests to be answered' });
    page.off('requestfinished', onEnd).off('requestfailed', onEnd);
    const runs = (await api('/api/v1/runs')).body.runs as Array<{ name: string }>;
    expect(runs.map((r) => r.name)).not.toContain('forged');
    expect(runs).toHaveLength(before);
  });

  it("cannot read a run's event stream with an EventSource (which the server's own page can)", async () => {
    const run = (await api('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'secret', input: { prompt: 'do not leak' } }) })).body;
    const events = [{ type: 'log', data: { level: 'info', message: 'do not leak' } }];
    await api(`/api/v1/runs/${run.id}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }) });
    const listen = (from: string) =>
      page.goto(from).then(() =>
        page.evaluate(
          ({ target, id, types }) =>
            new Promise<string>((resolve) => {
              const source = new EventSource(`${target}/api/v1/runs/${id}/stream?after=0`);
              // A record the server sent (its own `error` record too) has data; a failed connection is a bare Event.
              const read = (e: Event) => {
                source.close();
                resolve(e instanceof MessageEvent ? `read: ${String(e.data)}` : 'refused');
              };
              source.onmessage = read;
              for (const type of types) source.addEventListener(type, read);
              source.onerror = read;
            }),
          { target: server!.url, id: run.id, types: Object.values(SSE_EVENTS) },
        ),
      );
    expect(await listen(`${server!.url}/`)).toMatch(/^read: .*do not leak/);
    expect(await listen(attackerUrl)).toBe('refused');
  });

  it('cannot read a run or the runs list, nor open the WebSocket', async () => {
    const run = (await api('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'secret', input: { prompt: 'do not leak' } }) })).body;
    await page.goto(attackerUrl);
    const seen = await page.evaluate(
      async ({ target, id }) => {
        const read = async (path: string) => {
          try {
            const res = await fetch(target + path);
            return `read ${res.status}: ${await res.text()}`;
          } catch (err) {
            return `blocked: ${(err as Error).name}`;
          }
        };
        const socket = await new Promise<string>((resolve) => {
          const ws = new WebSocket(`${target.replace('http', 'ws')}/api/v1/stream`);
          ws.onopen = () => {
            ws.send(JSON.stringify({ op: 'subscribe', runId: id, after: 0 }));
            ws.onmessage = (e) => resolve(`opened and read: ${String(e.data)}`);
          };
          ws.onclose = (e) => resolve(`closed ${e.code}`);
        });
        return { run: await read(`/api/v1/runs/${id}`), list: await read('/api/v1/runs'), events: await read(`/api/v1/runs/${id}/events`), socket };
      },
      { target: server!.url, id: run.id },
    );
    expect(seen.run).toMatch(/^blocked/);
    expect(seen.list).toMatch(/^blocked/);
    expect(seen.events).toMatch(/^blocked/);
    // The handshake is refused (403), which a browser reports as an abnormal close.
    expect(seen.socket).toBe('closed 1006');
    expect(JSON.stringify(seen)).not.toContain('do not leak');
  });

  it('a name rebound to the server (DNS rebinding) gets 421 and no data', async () => {
    const run = (await api('/api/v1/runs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'secret', input: { prompt: 'do not leak' } }) })).body;
    const rebound = `http://${REBOUND}:${server!.port}`;
    const response = await page.goto(`${rebound}/api/v1/runs/${run.id}`);
    expect(response?.status()).toBe(421);
    const text = await page.evaluate(async () => (await fetch('/api/v1/runs')).status + ' ' + (await (await fetch('/api/v1/runs')).text()));
    expect(text).toMatch(/^421 /);
    expect(text).not.toContain('do not leak');
    await waitUntil(async () => (await page.evaluate(() => document.body.innerText)).includes('host_not_allowed'), { what: 'the refusal on the page' });
  });
});
