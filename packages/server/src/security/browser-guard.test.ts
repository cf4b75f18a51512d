import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { testScope } from '../stream/stream.test-kit.js';
import { call, rawGet, streamUrl, TestSocket } from './security.test-kit.js';

/**
 * Item 5 of issue 15 with auth OFF, on loopback: what a hostile page could
 * send is refused before it reaches a handler. (The same page in a real
 * browser: packages/web/test/e2e/cross-origin.e2e.test.ts.)
 */
const { server } = testScope();

describe('browser guard (auth off, loopback)', () => {
  it('refuses a foreign Host (DNS rebinding) with 421, and accepts localhost, 127.0.0.1 and [::1] with the port', async () => {
    const s = await server();
    const port = new URL(s.url).port;
    for (const host of ['evil.example', `evil.example:${port}`, `rebind.attacker.test:${port}`, 'local host', `localhost.evil.example:${port}`]) {
      const res = await rawGet(s, '/api/v1/runs', { host });
      expect(res.status, host).toBe(421);
      expect(JSON.parse(res.body).error.code).toBe('host_not_allowed');
    }
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost']) {
      expect((await rawGet(s, '/api/v1/runs', { host })).status, host).toBe(200);
    }
    const ws = new TestSocket(streamUrl(s), { host: `evil.example:${port}` });
    await ws.settled;
    expect(ws.refusedStatus).toBe(421);
  });

  it("answers a load balancer's probes (/healthz, /readyz) whatever their Host, or none over HTTP/1.0; any other path without a Host is 421 saying to send one", async () => {
    const s = await server();
    // Before: 421 here, so a balancer probing by IP-less name, or HAProxy's default HTTP/1.0 check, marked every node down.
    for (const path of ['/healthz', '/readyz']) expect((await rawGet(s, path, { host: 'lb-probe.internal' })).status, path).toBe(200);
    const port = Number(new URL(s.url).port);
    const http10 = async (path: string) => {
      const socket = connect(port, '127.0.0.1');
      socket.end(`GET ${path} HTTP/1.0\r\n\r\n`);
      let answer = '';
      for await (const chunk of socket) answer += String(chunk);
      return { status: Number(answer.split(' ')[1]), body: answer.slice(answer.indexOf('\r\n\r\n') + 4) };
    };
    expect((await http10('/readyz')).status).toBe(200);
    expect((await http10('/healthz')).status).toBe(200);
    const refused = await http10('/api/v1/runs');
    expect(refused.status).toBe(421);
    expect(JSON.parse(refused.body).error.message).toBe(
      'a request without a Host header is refused (HTTP/1.0?): send Host with a name in --allowed-hosts, localhost or an IP address',
    );
  });

  it('answers to a configured name (--allowed-hosts)', async () => {
    const s = await server({ allowedHosts: ['runtrail.internal'] });
    expect((await rawGet(s, '/api/v1/runs', { host: 'runtrail.internal' })).status).toBe(200);
    expect((await rawGet(s, '/api/v1/runs', { host: 'other.internal' })).status).toBe(421);
  });

  it('refuses a state-changing request that a cross-site form or no-cors fetch could send (CSRF), and changes nothing', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'victim' });
    // Simple requests: no custom header, a form content type or none at all.
    for (const [path, headers] of [
      [`/api/v1/runs/${run.id}/cancel`, { 'content-type': 'text/plain' }],
      [`/api/v1/runs/${run.id}/cancel`, {}],
      [`/api/v1/runs/${run.id}/retry`, { 'content-type': 'application/x-www-form-urlencoded' }],
      [`/api/v1/runs/${run.id}/events`, { 'content-type': 'multipart/form-data; boundary=x' }],
    ] as const) {
      const res = await fetch(s.url + path, { method: 'POST', headers, body: path.endsWith('events') ? '--x--' : '{}' });
      expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(403);
    }
    const del = await fetch(`${s.url}/api/v1/runs/${run.id}`, { method: 'DELETE' });
    expect(del.status).toBe(403);
    const after = await s.runs.get(run.id);
    expect(after.status).toBe('running');
    expect(after.seq).toBe(run.seq);
    expect(after.cancelRequestedAt).toBeNull();
    expect((await s.runs.list({})).runs).toHaveLength(1);
  });

  it('refuses a request from another Origin with 403 even with a JSON body, and sends no CORS headers', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'victim' });
    const cancel = await call(s, 'POST', `/api/v1/runs/${run.id}/cancel`, { body: {}, headers: { origin: 'http://127.0.0.1:1' } });
    expect(cancel.status).toBe(403);
    const read = await call(s, 'GET', `/api/v1/runs/${run.id}`, { headers: { origin: 'http://evil.example' } });
    expect(read.status).toBe(403);
    expect(read.headers.get('access-control-allow-origin')).toBeNull();
    const nullOrigin = await call(s, 'GET', '/api/v1/runs', { headers: { origin: 'null' } });
    expect(nullOrigin.status).toBe(403);
    // The server's own origin is fine.
    const same = await call(s, 'POST', `/api/v1/runs/${run.id}/cancel`, { body: {}, headers: { origin: s.url } });
    expect(same.status).toBe(200);
  });

  it('--cors-origins lets a named origin call the API (with a preflight), and no other', async () => {
    const s = await server({ corsOrigins: ['http://app.example:8080'] });
    const preflight = await fetch(`${s.url}/api/v1/runs`, {
      method: 'OPTIONS',
      headers: { origin: 'http://app.example:8080', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://app.example:8080');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/);
    const created = await call(s, 'POST', '/api/v1/runs', { body: { name: 'x' }, headers: { origin: 'http://app.example:8080' } });
    expect(created.status).toBe(201);
    expect(created.headers.get('access-control-allow-origin')).toBe('http://app.example:8080');
    const other = await call(s, 'POST', '/api/v1/runs', { body: { name: 'x' }, headers: { origin: 'http://app.example:8081' } });
    expect(other.status).toBe(403);
  });

  it('sends the security headers: CSP without inline script, nosniff, Referrer-Policy, no framing', async () => {
    const s = await server();
    // A malformed URL is refused by the router before any route or hook: that answer carries them too.
    for (const path of ['/', '/api/v1/runs', '/no/such/path', '/api/v1/runs/%E0%A4%A', '/%']) {
      const res = await fetch(s.url + path);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toMatch(/script-src 'self'(;|$)/);
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
      expect(csp).toMatch(/frame-ancestors 'none'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
    }
  });

  it('the dashboard requires Trusted Types; the API docs page (Swagger UI sets innerHTML from strings) keeps the rest of the policy without them', async () => {
    const s = await server();
    for (const path of ['/', '/runs/x', '/api/v1/runs', '/no/such/path', '/api/docsx', '/%']) {
      const csp = (await fetch(s.url + path)).headers.get('content-security-policy') ?? '';
      expect(csp, path).toMatch(/require-trusted-types-for 'script'/);
      expect(csp, path).toMatch(/trusted-types 'none'/);
    }
    for (const path of ['/api/docs', '/api/docs?x=1', '/api/docs/assets/init.js']) {
      const csp = (await fetch(s.url + path)).headers.get('content-security-policy') ?? '';
      expect(csp, path).not.toMatch(/trusted-types/);
      expect(csp, path).toMatch(/script-src 'self'(;|$)/);
      expect(csp, path).toMatch(/frame-ancestors 'none'/);
    }
  });

  it('lets images, media and connections reach only the server itself by default, and exactly the linkPreviewHosts origins besides when set', async () => {
    const directive = (policy: string, name: string) => policy.split('; ').find((d) => d.startsWith(`${name} `));
    const own = await server();
    for (const path of ['/', '/runs/x', '/api/v1/runs', '/api/docs']) {
      const csp = (await fetch(own.url + path)).headers.get('content-security-policy') ?? '';
      for (const name of ['img-src', 'media-src', 'connect-src']) expect(directive(csp, name), `${path} ${name}`).toBe(`${name} 'self' data: blob:`);
      // No scheme-source (http:, https:, ws:, wss:) anywhere: it would let the page reach every host of that scheme.
      expect(csp, path).not.toMatch(/(^|\s)(https?|wss?):(\s|;|$)/);
    }
    expect(await (await fetch(`${own.url}/api/v1/dashboard-config`)).json()).toEqual({ linkPreviewHosts: [] });

    const hosts = ['https://reports.example.com', 'http://127.0.0.1:9000', 'https://*.cdn.example.net'];
    const s = await server({ linkPreviewHosts: [...hosts, 'HTTPS://Reports.Example.com:443/'] });
    for (const path of ['/', '/runs/x', '/api/v1/runs', '/no/such/path']) {
      const csp = (await fetch(s.url + path)).headers.get('content-security-policy') ?? '';
      for (const name of ['img-src', 'media-src', 'connect-src']) {
        expect(directive(csp, name), `${path} ${name}`).toBe(`${name} 'self' data: blob: ${hosts.join(' ')}`);
      }
      expect(csp, path).not.toMatch(/(^|\s)(https?|wss?):(\s|;|$)/);
      expect(csp, path).toMatch(/require-trusted-types-for 'script'/);
    }
    // The API docs page shows no producer's data: no producer's host either.
    expect(directive((await fetch(`${s.url}/api/docs`)).headers.get('content-security-policy') ?? '', 'img-src')).toBe("img-src 'self' data: blob:");
    // The dashboard learns the same list, canonical, without a token (the header says as much to anyone).
    expect(await (await fetch(`${s.url}/api/v1/dashboard-config`)).json()).toEqual({ linkPreviewHosts: hosts });
    const locked = await server({ adminToken: 'an-admin-token-of-16+', linkPreviewHosts: hosts });
    expect(await (await fetch(`${locked.url}/api/v1/dashboard-config`)).json()).toEqual({ linkPreviewHosts: hosts });
  });

  it('an event stream (SSE), answered past Fastify, carries the same headers, and CORS for a --cors-origins origin', async () => {
    const s = await server({ corsOrigins: ['http://app.example:8080'] });
    const { run } = await s.runs.create({ name: 'watched' });
    const controller = new AbortController();
    try {
      const res = await fetch(`${s.url}/api/v1/runs/${run.id}/stream?after=0`, { headers: { origin: 'http://app.example:8080' }, signal: controller.signal });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(res.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
      // Without it the allowed origin's EventSource could not read its own stream.
      expect(res.headers.get('access-control-allow-origin')).toBe('http://app.example:8080');
    } finally {
      controller.abort();
    }
  });

  it('opens the WebSocket for its own origin and for --allowed-origins, refuses any other Origin at the handshake', async () => {
    const s = await server({ allowedOrigins: ['http://dash.example'] });
    const { run } = await s.runs.create({ name: 'watched' });
    const refused = new TestSocket(streamUrl(s), { origin: 'http://evil.example' });
    await refused.settled;
    expect(refused.refusedStatus).toBe(403);
    for (const origin of [s.url, 'http://dash.example', undefined]) {
      const ws = new TestSocket(streamUrl(s), origin ? { origin } : {});
      expect(await ws.opened(), String(origin)).toBe(true);
      ws.send({ op: 'subscribe', runId: run.id, after: 0 });
      await expect.poll(() => ws.messages.some((m) => m.type === 'subscribed')).toBe(true);
      ws.close();
    }
  });
});
