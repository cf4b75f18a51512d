import { createConnection, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { CLIENT_HEADER, STREAM_CLOSE_CODES, buildPath } from '@runtrail/protocol';
import { SqliteRunStore } from '@runtrail/store';
import { buildApp } from '../app.js';
import { loadConfig, type ServerConfigInput } from '../config.js';
import { testScope, waitFor } from '../stream/stream.test-kit.js';
import { tempDir } from '@runtrail/test-support';
import { redactUrl } from './authenticate.js';
import { call, readSse, streamUrl, TestSocket } from './security.test-kit.js';

/**
 * Limits of issue 15 (item 6): each one answers 413, 429 with Retry-After,
 * or a WebSocket close code with a reason. The clock is injected and stands
 * still, so rate limits refill only when a test says so.
 */
const { cleanups } = testScope();
const ADMIN = 'admin-token-for-tests-0123456789';

async function limitedServer(options: ServerConfigInput, host = '127.0.0.1') {
  const dir = tempDir('runtrail-limits-');
  const store = new SqliteRunStore({ filename: `${dir.path}/runtrail.db` });
  let now = 1_700_000_000_000;
  const config = loadConfig({ port: 0, dataDir: dir.path, logLevel: 'silent', ...options }, {});
  const app = await buildApp({ config, store, now: () => now });
  const url = await app.http.listen({ host, port: 0 });
  cleanups.push(async () => {
    await app.http.close();
    await store.close();
    dir.remove();
  });
  const server = Object.assign(app, { url, store, close: async () => undefined });
  return { server, tick: (ms: number) => (now += ms) };
}

/** Write a raw request and read the answer: its first chunk, or (untilClose) all of it until the server closes. */
function rawRequest(socket: Socket, request: string, options: { untilClose?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (!options.untilClose && /\r\n\r\n/.test(text)) finish();
    };
    const finish = () => {
      socket.off('data', onData);
      resolve(text);
    };
    socket.on('data', onData);
    socket.once('close', finish);
    socket.once('error', (err) => (text ? finish() : reject(err)));
    socket.write(request);
  });
}

describe('limits', () => {
  it('413 past the events per batch, the data, meta, input and labels sizes, naming the setting', async () => {
    const { server: s } = await limitedServer({ maxEventsPerBatch: 3, maxEventDataBytes: 100, maxMetaBytes: 80, maxInputBytes: 100, maxLabelsBytes: 64 });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'x' } })).body;
    const append = (events: unknown[]) => call(s, 'POST', `/api/v1/runs/${run.id}/events`, { body: { events } });
    const cases: Array<[string, Promise<{ status: number; body: any }>, RegExp]> = [
      ['batch', append([{ type: 'x.a' }, { type: 'x.b' }, { type: 'x.c' }, { type: 'x.d' }]), /maxEventsPerBatch/],
      ['data', append([{ type: 'x.big', data: 'y'.repeat(200) }]), /maxEventDataBytes/],
      ['meta', append([{ type: 'meta', data: { k: 'v'.repeat(100) } }]), /maxMetaBytes/],
      ['input', call(s, 'POST', '/api/v1/runs', { body: { name: 'x', input: 'i'.repeat(200) } }), /maxInputBytes/],
      ['labels', call(s, 'POST', '/api/v1/runs', { body: { name: 'x', labels: { a: 'b'.repeat(100) } } }), /maxLabelsBytes/],
    ];
    for (const [what, pending, setting] of cases) {
      const res = await pending;
      expect(res.status, what).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
      expect(res.body.error.message).toMatch(setting);
    }
    expect((await append([{ type: 'x.a' }, { type: 'x.b' }, { type: 'x.c' }])).status).toBe(200);
    expect((await s.runs.get(run.id)).seq).toBe(3);
  });

  it('429 with Retry-After past the append rate of a run; other runs are not held back; it refills with time', async () => {
    const { server: s, tick } = await limitedServer({ appendEventsPerSecond: 1, maxEventsPerBatch: 2 });
    const a = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'a' } })).body;
    const b = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'b' } })).body;
    const two = [{ type: 'x.a' }, { type: 'x.b' }];
    expect((await call(s, 'POST', `/api/v1/runs/${a.id}/events`, { body: { events: two } })).status).toBe(200);
    const limited = await call(s, 'POST', `/api/v1/runs/${a.id}/events`, { body: { events: [{ type: 'x.c' }] } });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await call(s, 'POST', `/api/v1/runs/${b.id}/events`, { body: { events: two } })).status).toBe(200);
    tick(1000);
    expect((await call(s, 'POST', `/api/v1/runs/${a.id}/events`, { body: { events: [{ type: 'x.c' }] } })).status).toBe(200);
    expect((await s.runs.get(a.id)).seq).toBe(3);
  });

  it('WebSocket: an error frame past the subscriptions per connection, close 4429 past the message rate', async () => {
    const { server: s } = await limitedServer({ maxSubscriptionsPerConnection: 2, wsMessagesPerSecond: 5 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await s.runs.create({ name: `r${i}` })).run.id);
    const ws = new TestSocket(streamUrl(s));
    cleanups.push(() => ws.close());
    expect(await ws.opened()).toBe(true);
    for (const id of ids) ws.send({ op: 'subscribe', runId: id, after: 0 });
    await waitFor(() => ws.messages.filter((m) => m.type === 'subscribed' || m.type === 'error').length === 3);
    const refused = ws.messages.find((m) => m.type === 'error');
    expect(refused).toMatchObject({ type: 'error', runId: ids[2], code: 'rate_limited' });
    // The clock stands still: the bucket of 2 s worth (10 messages) does not refill.
    for (let i = 0; i < 20; i++) ws.send({ op: 'ping' });
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.rateLimited);
    expect(ws.closeReason).toMatch(/messages per second/);
  });

  it('stream connections per client address and per token: SSE 429, WebSocket close 4429; a closed one frees its slot', async () => {
    const { server: s } = await limitedServer({ maxConnectionsPerIp: 2, maxConnectionsPerToken: 1, adminToken: 'limits-admin-token-0123456789' });
    const admin = 'limits-admin-token-0123456789';
    const run = (await call(s, 'POST', '/api/v1/runs', { token: admin, body: { name: 'x' } })).body;
    const viewer = (await call(s, 'POST', '/api/v1/tokens', { token: admin, body: { name: 'v', scope: 'viewer' } })).body.token;
    const first = new TestSocket(streamUrl(s), { authorization: `Bearer ${admin}` });
    cleanups.push(() => first.close());
    expect(await first.opened()).toBe(true);
    // Same token again: over its 1.
    const sameToken = new TestSocket(streamUrl(s), { authorization: `Bearer ${admin}` });
    await sameToken.settled;
    expect(sameToken.closeCode).toBe(STREAM_CLOSE_CODES.rateLimited);
    const second = new TestSocket(streamUrl(s), { authorization: `Bearer ${viewer}` });
    cleanups.push(() => second.close());
    expect(await second.opened()).toBe(true);
    // The address holds 2 now: an SSE stream is refused with 429 and Retry-After.
    const sse = await fetch(`${s.url}/api/v1/runs/${run.id}/stream`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(sse.status).toBe(429);
    expect(sse.headers.get('retry-after')).not.toBeNull();
    await sse.text();
    first.close();
    await first.settled;
    await waitFor(() => s.stream.stats().connections.ws === 1);
    const again = new TestSocket(streamUrl(s), { authorization: `Bearer ${admin}` });
    cleanups.push(() => again.close());
    expect(await again.opened()).toBe(true);
  });

  it('an HTTP connection that sends nothing, or half a request head, is closed after connectionIdleTimeoutMs; streams and a held heartbeat outlive it', async () => {
    // Pings far apart, so only the streams' exemption keeps them open past the idle timeout.
    const { server: s } = await limitedServer({ connectionIdleTimeoutMs: 1000, streamPingIntervalMs: 60_000 });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'x' } })).body;
    const ws = new TestSocket(streamUrl(s));
    cleanups.push(() => ws.close());
    expect(await ws.opened()).toBe(true);
    ws.send({ op: 'subscribe', runId: run.id, after: 0 });
    const sse = readSse(s, `/api/v1/runs/${run.id}/stream`, {}, (text) => text.includes('x.after-idle'));
    // Asked to wait a minute: answered within half the idle timeout instead of being cut by it.
    const held = await call(s, 'POST', `/api/v1/runs/${run.id}/heartbeat?waitMs=60000`, { body: {} });
    expect(held.status).toBe(200);
    // Opened after the streams, so by the time these are closed the streams have been idle longer.
    const closed = (socket: Socket) => new Promise<void>((resolve) => socket.on('close', () => resolve()));
    const silent = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
    const halfHead = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) }, () => halfHead.write('GET /api/v1/runs HTTP/1.1\r\n'));
    for (const socket of [silent, halfHead]) {
      // The server ends them; nothing to report from this side.
      socket.on('error', () => undefined);
      cleanups.push(() => socket.destroy());
    }
    const silentClosed = closed(silent);
    const halfHeadClosed = closed(halfHead);

    // Before: neither was ever closed, and 20,000 such sockets left the process no file descriptor to accept with.
    await Promise.all([silentClosed, halfHeadClosed]);
    expect(ws.closeCode).toBeNull();
    expect((await call(s, 'POST', `/api/v1/runs/${run.id}/events`, { body: { events: [{ type: 'x.after-idle' }] } })).status).toBe(200);
    await waitFor(() => ws.messages.some((m) => m.type === 'events' && m.events.some((e) => e.type === 'x.after-idle')), { what: 'the WebSocket to get the event appended after the idle timeout' });
    const read = await sse;
    expect(read.ended).toBe(false);
    expect(read.text).toContain('x.after-idle');
  });

  it('TCP connections of one client address past maxHttpConnectionsPerIp: 429 naming the setting; other addresses get in; a closed one frees its slot', async () => {
    const { server: s } = await limitedServer({ maxHttpConnectionsPerIp: 3 });
    const port = Number(new URL(s.url).port);
    // Idle keep-alive connections (one request answered, then nothing), all from 127.0.0.1.
    const held: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = createConnection({ host: '127.0.0.1', port });
      cleanups.push(() => socket.destroy());
      held.push(socket);
      expect(await rawRequest(socket, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    }
    // Before: nothing bounded them, and 19,000 such sockets from one client left the process no file descriptor.
    const refused = createConnection({ host: '127.0.0.1', port });
    cleanups.push(() => refused.destroy());
    const answer = await rawRequest(refused, 'POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"name":"sly"}', { untilClose: true });
    expect(answer).toMatch(/^HTTP\/1.1 429/);
    expect(answer).toMatch(/retry-after: 1/i);
    expect(answer).toContain('client address 127.0.0.1 has 3 connections open');
    expect(answer).toContain('maxHttpConnectionsPerIp');
    // Written on the socket before any request is parsed, yet with the headers every answer carries.
    expect(answer).toMatch(/\r\ncontent-security-policy: default-src 'self'/i);
    expect(answer).toMatch(/\r\nx-content-type-options: nosniff\r\n/i);
    // Its request was not served: the 429 was its answer.
    expect((await s.runs.list({ name: 'sly' })).runs).toEqual([]);
    // Another address is not held back by this one.
    const other = createConnection({ host: '127.0.0.1', port, localAddress: '127.0.0.2' });
    cleanups.push(() => other.destroy());
    expect(await rawRequest(other, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    held[0]!.destroy();
    await waitFor(async () => (await fetch(`${s.url}/healthz`)).status === 200, { what: 'a slot freed by the closed connection' });
  });

  it('behind trustedProxies, the per-address limits count the client X-Forwarded-For names, from its right end; without it, the proxy', async () => {
    const { server: s } = await limitedServer({ maxConnectionsPerIp: 1, maxHttpConnectionsPerIp: 1, trustedProxies: ['127.0.0.1'] });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'x' } })).body;
    const open: Response[] = [];
    const sse = async (forwardedFor: string) => {
      const res = await fetch(`${s.url}/api/v1/runs/${run.id}/stream`, { headers: { 'x-forwarded-for': forwardedFor } });
      if (res.status === 200) open.push(res);
      else await res.text();
      return res;
    };
    cleanups.push(async () => {
      for (const res of open) await res.body?.cancel();
    });
    // The proxy's own connections (more than maxHttpConnectionsPerIp of them) are not capped.
    expect((await sse('10.0.0.1')).status).toBe(200);
    expect((await sse('10.0.0.2')).status).toBe(200);
    const again = await sse('10.0.0.1');
    expect(again.status).toBe(429);
    // A client that writes its own X-Forwarded-For is still counted by what the proxy appended after it.
    const spoofed = await fetch(`${s.url}/api/v1/runs/${run.id}/stream`, { headers: { 'x-forwarded-for': '10.0.0.9, 10.0.0.2' } });
    expect(spoofed.status).toBe(429);
    expect((await spoofed.json()).error.message).toContain('client address 10.0.0.2');
    const ws = new TestSocket(streamUrl(s), { 'x-forwarded-for': '10.0.0.1' });
    cleanups.push(() => ws.close());
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.rateLimited);
    expect(ws.closeReason).toContain('client address 10.0.0.1');

    const { server: direct } = await limitedServer({ maxConnectionsPerIp: 1 });
    const run2 = (await call(direct, 'POST', '/api/v1/runs', { body: { name: 'x' } })).body;
    const first = await fetch(`${direct.url}/api/v1/runs/${run2.id}/stream`, { headers: { 'x-forwarded-for': '10.0.0.1' } });
    cleanups.push(() => first.body?.cancel());
    expect(first.status).toBe(200);
    const second = await fetch(`${direct.url}/api/v1/runs/${run2.id}/stream`, { headers: { 'x-forwarded-for': '10.0.0.2' } });
    expect(second.status).toBe(429);
    expect((await second.json()).error.message).toContain('client address 127.0.0.1');
  });

  it('JSON bodies of one client address past maxBodyBytesPerIp at once: 429 naming the setting; an artifact upload larger than it streams through', async () => {
    const { server: s } = await limitedServer({ maxBodyBytesPerIp: 64 * 1024, bodyLimitBytes: 64 * 1024 });
    const port = Number(new URL(s.url).port);
    // Two bodies of 50 KiB, each held back short of its last bytes (as a client sending one byte a minute would):
    // 80 KiB of them are on their way in at once.
    const body = JSON.stringify({ name: 'held-body', input: 'x'.repeat(50 * 1024) });
    const head = `POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
    const sockets = [0, 1].map(() => {
      const socket = createConnection({ host: '127.0.0.1', port });
      cleanups.push(() => socket.destroy());
      return socket;
    });
    const answers = sockets.map((socket) => rawRequest(socket, head + body.slice(0, 40 * 1024), { untilClose: true }));
    // The one refused is answered while its body is still unfinished; the other takes its last bytes.
    const first = await Promise.race(answers);
    expect(first).toMatch(/^HTTP\/1.1 429/);
    expect(first).toContain('maxBodyBytesPerIp');
    expect(first).toContain('client address 127.0.0.1');
    for (const socket of sockets) if (!socket.destroyed) socket.write(body.slice(40 * 1024));
    const statuses = (await Promise.all(answers)).map((answer) => Number(answer.slice(9, 12))).sort();
    expect(statuses).toEqual([201, 429]);
    expect((await s.runs.list({ name: 'held-body' })).runs).toHaveLength(1);
    // Its bytes were let go with it: the same body again is taken.
    await waitFor(async () => (await call(s, 'POST', '/api/v1/runs', { body: JSON.parse(body) })).status === 201, { what: 'the budget released' });
    // Streamed to a file, never held: larger than the budget and taken.
    const run = (await s.runs.list({ name: 'held-body' })).runs[0]!;
    const upload = await fetch(`${s.url}/api/v1/runs/${run.id}/artifacts/big.bin`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'x-runtrail-client': '1' },
      body: Buffer.alloc(200 * 1024, 7),
    });
    expect(upload.status).toBe(201);
  });

  it('a keep-alive JSON body refused past maxBodyBytesPerIp: the 429 closes its connection at once, without reading the rest of the body', async () => {
    const { server: s } = await limitedServer({ maxBodyBytesPerIp: 64 * 1024, bodyLimitBytes: 64 * 1024 });
    const port = Number(new URL(s.url).port);
    const body = JSON.stringify({ name: 'refused-keep-alive', input: 'x'.repeat(50 * 1024) });
    // Keep-alive, as a pooled client's connection is: only the server can end it.
    const head = `POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    const sockets = [0, 1].map(() => {
      const socket = createConnection({ host: '127.0.0.1', port });
      cleanups.push(() => socket.destroy());
      return socket;
    });
    // Two bodies short of their last 10 KiB: 80 KiB on their way in at once, past the 64 KiB budget.
    const answers = sockets.map((socket) => rawRequest(socket, head + body.slice(0, 40 * 1024), { untilClose: true }));
    // Were it left open, Node would read (and drop) the rest of the body for as long as it trickles.
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('not closed within 10 s'), 10_000).unref());
    const refused = await Promise.race([...answers, deadline]);
    expect(refused).toMatch(/^HTTP\/1.1 429/);
    expect(refused).toMatch(/\r\nconnection: close\r\n/i);
    expect(refused).toContain('maxBodyBytesPerIp');
    // The other one is still being read: its last bytes make a run.
    const other = sockets.find((socket) => !socket.destroyed && !socket.readableEnded)!;
    other.end(body.slice(40 * 1024));
    await waitFor(async () => (await s.runs.list({ name: 'refused-keep-alive' })).runs.length === 1, { what: 'the other body taken' });
  });

  it('a JSON body trickled in past requestBodyTimeoutMs: 408 naming the setting and the connection closed; an artifact upload as slow is taken', async () => {
    // Each byte comes well within the idle timeout, so only a total time can end the body.
    const { server: s } = await limitedServer({ requestBodyTimeoutMs: 1000, connectionIdleTimeoutMs: 5000 });
    const port = Number(new URL(s.url).port);
    const body = JSON.stringify({ name: 'trickled', input: 'x'.repeat(200) });
    const socket = createConnection({ host: '127.0.0.1', port });
    cleanups.push(() => socket.destroy());
    // Keep-alive, as a client's pooled connection is: the server must close it itself.
    const head = `POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    let sent = 10;
    const answer = rawRequest(socket, head + body.slice(0, sent), { untilClose: true });
    const trickle = setInterval(() => {
      if (sent < body.length - 1 && !socket.destroyed) socket.write(body[sent++]!);
    }, 100);
    cleanups.push(() => clearInterval(trickle));
    // Before: no answer and no close while bytes kept coming, for as long as the client cared to send them.
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 10 s'), 10_000).unref());
    const text = await Promise.race([answer, deadline]);
    clearInterval(trickle);
    expect(text).toMatch(/^HTTP\/1.1 408/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    expect(text).toContain('request_timeout');
    expect(text).toContain('requestBodyTimeoutMs');
    expect(socket.destroyed || socket.readableEnded).toBe(true);
    expect((await s.runs.list({ name: 'trickled' })).runs).toEqual([]);
    // Its bytes were let go: the same body sent at once is taken.
    expect((await call(s, 'POST', '/api/v1/runs', { body: JSON.parse(body) })).status).toBe(201);

    // An upload streams to disk and has no total time: one slower than requestBodyTimeoutMs is stored whole.
    const run = (await s.runs.list({ name: 'trickled' })).runs[0]!;
    // 8 chunks 200 ms apart: 1.6 s in all, past the 1 s a JSON body gets.
    const chunks = 8;
    let left = chunks;
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (left-- === 0) return controller.close();
        await new Promise((resolve) => setTimeout(resolve, 200));
        controller.enqueue(new Uint8Array(1024).fill(7));
      },
    });
    const upload = await fetch(`${s.url}/api/v1/runs/${run.id}/artifacts/slow.bin`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'x-runtrail-client': '1' },
      body: slow,
      duplex: 'half',
    } as RequestInit);
    expect(upload.status).toBe(201);
    expect((await upload.json()).size).toBe(chunks * 1024);
  });

  it('a request answered before its body came whole (401 with no token): the rest gets requestBodyTimeoutMs, then the connection is closed', async () => {
    const { server: s } = await limitedServer({ adminToken: ADMIN, requestBodyTimeoutMs: 1000, connectionIdleTimeoutMs: 60_000 });
    const port = Number(new URL(s.url).port);
    const socket = createConnection({ host: '127.0.0.1', port });
    cleanups.push(() => socket.destroy());
    const head = `POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"name":"`;
    const answer = rawRequest(socket, head, { untilClose: true });
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('a');
    }, 50);
    cleanups.push(() => clearInterval(trickle));
    // Before: the 401 was sent, then Node read and dropped the body for as long as it came, past
    // requestBodyTimeoutMs (which bounded only bodies being read): no close, ever, while bytes came.
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('no close within 5 s'), 5_000).unref());
    const text = await Promise.race([answer, deadline]);
    clearInterval(trickle);
    expect(text).toMatch(/^HTTP\/1.1 401/);
    expect(socket.destroyed || socket.readableEnded).toBe(true);
  });

  it("requests made in-process with the server's http.inject (an embedder's own tests) outlive requestBodyTimeoutMs without an uncaught error", async () => {
    const { server: s } = await limitedServer({ adminToken: ADMIN, requestBodyTimeoutMs: 1000, connectionIdleTimeoutMs: 60_000 });
    const uncaught: unknown[] = [];
    const record = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', record);
    cleanups.push(() => process.off('uncaughtException', record));
    // Injected requests have no socket to close: the deadline the 401 set for the rest of the body
    // called raw.socket.destroy, which theirs lacks, and threw from a timer (the process's end).
    expect((await s.http.inject({ method: 'POST', url: '/api/v1/runs', payload: { name: 'no token' } })).statusCode).toBe(401);
    expect((await s.http.inject({ method: 'GET', url: '/api/v1/runs' })).statusCode).toBe(401);
    // A request over a socket whose deadline comes after theirs: once its connection is closed, theirs have expired too.
    const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
    cleanups.push(() => socket.destroy());
    const answer = rawRequest(socket, 'POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{', { untilClose: true });
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('no close within 5 s'), 5_000).unref());
    expect(await Promise.race([answer, deadline])).toMatch(/^HTTP\/1.1 401/);
    expect(uncaught).toEqual([]);
  });

  it('an artifact upload slower than minUploadBytesPerSecond on average after requestBodyTimeoutMs: 408 naming the setting, the connection closed, nothing stored', async () => {
    const { server: s } = await limitedServer({ requestBodyTimeoutMs: 1000, minUploadBytesPerSecond: 1024, connectionIdleTimeoutMs: 5000 });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'slow-upload' } })).body;
    const port = Number(new URL(s.url).port);
    const socket = createConnection({ host: '127.0.0.1', port });
    cleanups.push(() => socket.destroy());
    const head = `PUT /api/v1/runs/${run.id}/artifacts/trickled.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nX-Runtrail-Client: 1\r\nContent-Length: 100000\r\n\r\n`;
    const answer = rawRequest(socket, head + 'x'.repeat(10), { untilClose: true });
    // 10 bytes every 100 ms: 100 bytes a second, each well within the idle timeout.
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('x'.repeat(10));
    }, 100);
    cleanups.push(() => clearInterval(trickle));
    // Before: the upload went on, and its connection and file stayed, for as long as the bytes kept coming.
    const deadline = new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 10 s'), 10_000).unref());
    const text = await Promise.race([answer, deadline]);
    clearInterval(trickle);
    expect(text).toMatch(/^HTTP\/1.1 408/);
    expect(text).toMatch(/\r\nconnection: close\r\n/i);
    expect(text).toContain('minUploadBytesPerSecond');
    expect((await call(s, 'GET', `/api/v1/runs/${run.id}/artifacts/trickled.bin`)).status).toBe(404);
  });

  it('requests pipelined on one connection are served in turn: one that never reads holds one answer, not one per request; one that reads gets every answer in order', async () => {
    const { server: s } = await limitedServer({});
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'pipelined' } })).body;
    // A page of about 7 MiB, more than loopback's socket buffers take from a reader that does not read (4 MiB and 128 KiB here).
    for (let i = 0; i < 7; i++) await s.runs.appendEvents(run.id, [{ type: 'x.big', data: { i, text: 'x'.repeat(1000 * 1024) } }]);
    let pagesBuilt = 0;
    const readEventTexts = s.store.readEventTexts.bind(s.store);
    s.store.readEventTexts = async (...args: Parameters<typeof readEventTexts>) => {
      pagesBuilt++;
      return readEventTexts(...args);
    };
    // More than the two pages a stalled connection may hold (the one on its socket and the next), so
    // a server that built one per request builds more than that; each page is 7 MiB more to read.
    const requests = 5;
    const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
    cleanups.push(() => socket.destroy());
    socket.pause();
    socket.write(`GET /api/v1/runs/${run.id}/events?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(requests));
    await waitFor(() => pagesBuilt >= 1, { what: 'the first page built' });
    // Nothing read: before, every page (7 MiB each; 20 pipelined, 140 MiB) was built and held at once, one write of 1.5 KB was all it took.
    const settle = await fetch(`${s.url}/healthz`);
    expect(settle.status).toBe(200);
    expect(pagesBuilt).toBeLessThanOrEqual(2);
    // Read: every answer comes whole, in order.
    // Counted chunk by chunk: matching the whole text (140 MiB, when it was 20 answers) on every poll took the test's (and so the
    // server's) event loop for longer than the answers took to come on a loaded machine.
    const statusLine = 'HTTP/1.1 200 ';
    let answers = 0;
    let carry = '';
    let lastChar = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      // The carry is one character short of a status line, so no line is counted twice.
      const scanned = carry + chunk;
      for (let at = scanned.indexOf(statusLine); at >= 0; at = scanned.indexOf(statusLine, at + 1)) answers++;
      carry = scanned.slice(-(statusLine.length - 1));
      lastChar = chunk.slice(-1);
    });
    socket.resume();
    await waitFor(() => answers === requests && lastChar === '}', { what: `all ${requests} answers`, timeoutMs: 30_000 });
    expect(pagesBuilt).toBe(requests);
  });

  it('answers one client address has not read past maxUnreadAnswerBytesPerIp: 429 naming the setting, with Retry-After; let go once read or their connection closes', async () => {
    const MiB = 1024 * 1024;
    const { server: s } = await limitedServer({ maxUnreadAnswerBytesPerIp: 20 * MiB });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'unread' } })).body;
    // A page of about 8 MiB (readPageBytes), more than loopback's socket buffers take from a client that does not read.
    for (let i = 0; i < 8; i++) await s.runs.appendEvents(run.id, [{ type: 'x.big', data: { i, text: 'x'.repeat(1000 * 1024) } }]);
    const pagePath = `/api/v1/runs/${run.id}/events?after=0`;
    const serverSockets = new Set<Socket>();
    s.http.server.on('connection', (socket: Socket) => serverSockets.add(socket));
    const queuedOnSockets = () => [...serverSockets].reduce((sum, socket) => sum + (socket.destroyed ? 0 : socket.writableLength), 0);
    // Asks for the page and reads only its first chunk: the status line.
    const neverReads = async () => {
      const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
      cleanups.push(() => socket.destroy());
      const head = await new Promise<string>((resolve, reject) => {
        socket.once('data', (chunk: Buffer) => {
          socket.pause();
          resolve(chunk.toString('latin1'));
        });
        socket.once('error', reject);
        socket.write(`GET ${pagePath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      });
      return { socket, status: Number(head.slice(9, 12)), head };
    };
    const stalled = [];
    for (let i = 0; i < 5; i++) stalled.push(await neverReads());
    // Two pages fit the budget; before, all five (and one per connection, thousands) were held until the idle timeout.
    expect(stalled.map((c) => c.status)).toEqual([200, 200, 429, 429, 429]);
    expect(stalled[2]!.head).toContain('maxUnreadAnswerBytesPerIp');
    expect(stalled[2]!.head).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(queuedOnSockets()).toBeGreaterThan(8 * MiB);
    expect(queuedOnSockets()).toBeLessThanOrEqual(20 * MiB);
    // Another client of the same address is refused too, with the error body the SDKs read.
    const refused = await call(s, 'GET', pagePath);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('rate_limited');
    expect(refused.body.error.message).toContain('maxUnreadAnswerBytesPerIp');
    // A client that reads its page lets it go: there is room for one more again.
    stalled[0]!.socket.resume();
    await waitFor(() => queuedOnSockets() <= 9 * MiB, { what: 'the page read', timeoutMs: 30_000 });
    const page = await call(s, 'GET', pagePath);
    expect(page.status).toBe(200);
    expect(page.body.events).toHaveLength(8);
    // A connection closed with its page unread lets it go too.
    stalled[1]!.socket.destroy();
    await waitFor(() => queuedOnSockets() === 0, { what: 'the closed connection let go' });
    const again = [await neverReads(), await neverReads(), await neverReads()];
    expect(again.map((c) => c.status)).toEqual([200, 200, 429]);
  });

  it('exports that never read hold a piece of the archive on their sockets, not an events file each; one that reads gets the whole archive, importable', async () => {
    const MiB = 1024 * 1024;
    const { server: s } = await limitedServer({ maxUnreadAnswerBytesPerIp: 20 * MiB });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'exported' } })).body;
    // One events file of about 12 MiB: more than loopback's socket buffers take from a client that does not read.
    for (let i = 0; i < 12; i++) await s.runs.appendEvents(run.id, [{ type: 'x.big', data: { i, text: 'x'.repeat(1000 * 1024) } }]);
    await s.runs.appendEvents(run.id, [{ type: 'run.succeeded', data: {} }]);
    let pagesRead = 0;
    const readEventTexts = s.store.readEventTexts.bind(s.store);
    s.store.readEventTexts = async (...args: Parameters<typeof readEventTexts>) => {
      const page = await readEventTexts(...args);
      // The export's own pages, not the sample its size is estimated from.
      if (args[2] === 5000) pagesRead++;
      return page;
    };
    const serverSockets = new Set<Socket>();
    s.http.server.on('connection', (socket: Socket) => serverSockets.add(socket));
    const queuedOnSockets = () => [...serverSockets].reduce((sum, socket) => sum + (socket.destroyed ? 0 : socket.writableLength), 0);
    const exportPath = `/api/v1/runs/${run.id}/export`;
    const connections = 10;
    for (let i = 0; i < connections; i++) {
      const socket = createConnection({ host: '127.0.0.1', port: Number(new URL(s.url).port) });
      cleanups.push(() => socket.destroy());
      const head = await new Promise<string>((resolve, reject) => {
        socket.once('data', (chunk: Buffer) => {
          socket.pause();
          resolve(chunk.toString('latin1'));
        });
        socket.once('error', reject);
        socket.write(`GET ${exportPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      });
      // 200 (its archive started) or 429 (the address already held the budget): either way it reads nothing more.
      expect(head).toMatch(/^HTTP\/1.1 (200|429) /);
    }
    await waitFor(() => pagesRead >= 1, { what: 'the events read' });
    // Every export has gone as far as it will with a client that does not read.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await fetch(`${s.url}/healthz`);
    // Before: each events file went to its socket whole, 12 MiB a connection (what the kernel did not take, queued in the server).
    expect(queuedOnSockets()).toBeLessThan(connections * 256 * 1024);
    for (const socket of serverSockets) socket.destroy();
    await waitFor(() => queuedOnSockets() === 0, { what: 'the stalled exports let go' });
    // A client that reads gets the whole archive, which another server imports as the run.
    const res = await fetch(s.url + exportPath);
    expect(res.status).toBe(200);
    const archive = Buffer.from(await res.arrayBuffer());
    expect(archive.length).toBeGreaterThan(12 * 1000 * 1024);
    const { server: other, tick: otherTick } = await limitedServer({});
    // Its clock is as far along as this one's minted the run's id.
    otherTick(Date.now());
    const imported = await fetch(other.url + buildPath('importRun', {}), { method: 'POST', body: archive, headers: { 'content-type': 'application/x-tar', [CLIENT_HEADER]: '1' } });
    expect(imported.status, await imported.clone().text()).toBe(201);
    const copy = (await call(other, 'GET', `/api/v1/runs/${run.id}`)).body;
    expect([copy.seq, copy.status]).toEqual([13, 'succeeded']);
    const last = (await call(other, 'GET', `/api/v1/runs/${run.id}/events?after=11`)).body;
    expect(last.events[0].data.text).toHaveLength(1000 * 1024);
  });

  it('an IPv6 client is counted by its /64: over real sockets on ::1, its connections, streams and body bytes are one budget however many addresses it rotates through', async () => {
    // The server's own ::1 connections: counted under ::/64, the key of ::1's /64.
    const { server: s } = await limitedServer({ maxHttpConnectionsPerIp: 2 }, '::1');
    const port = Number(new URL(s.url).port);
    for (let i = 0; i < 2; i++) {
      const socket = createConnection({ host: '::1', port });
      cleanups.push(() => socket.destroy());
      expect(await rawRequest(socket, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
    }
    const refused = createConnection({ host: '::1', port });
    cleanups.push(() => refused.destroy());
    const answer = await rawRequest(refused, 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', { untilClose: true });
    expect(answer).toMatch(/^HTTP\/1.1 429/);
    expect(answer).toContain('client address ::/64 has 2 connections open');

    // Addresses of one /64 (only ::1 is on this machine's loopback, so they come through a trusted proxy on ::1, by X-Forwarded-For).
    const { server: p } = await limitedServer({ maxConnectionsPerIp: 1, maxBodyBytesPerIp: 64 * 1024, bodyLimitBytes: 64 * 1024, trustedProxies: ['::1'] }, '::1');
    const run = (await call(p, 'POST', '/api/v1/runs', { body: { name: 'x' } })).body;
    const open: Response[] = [];
    cleanups.push(async () => {
      for (const res of open) await res.body?.cancel();
    });
    const sse = async (forwardedFor: string) => {
      const res = await fetch(`${p.url}/api/v1/runs/${run.id}/stream`, { headers: { 'x-forwarded-for': forwardedFor } });
      if (res.status === 200) open.push(res);
      return res;
    };
    expect((await sse('2001:db8:1:2::a')).status).toBe(200);
    // Before: a new address of the same /64 was a new client, with a budget of its own.
    const rotated = await sse('2001:0db8:0001:0002:ffff::b');
    expect(rotated.status).toBe(429);
    expect((await rotated.json()).error.message).toContain('client address 2001:db8:1:2::/64 has 1 stream connections open');
    expect((await sse('2001:db8:1:3::a')).status).toBe(200);
    // A mapped IPv4 client is the IPv4 one.
    expect((await sse('::ffff:10.0.0.1')).status).toBe(200);
    const plain = await sse('10.0.0.1');
    expect(plain.status).toBe(429);
    await plain.text();

    // Two bodies of 50 KiB from two addresses of one /64, each held short of its end: 80 KiB of one budget of 64 KiB.
    const body = JSON.stringify({ name: 'held-body', input: 'x'.repeat(50 * 1024) });
    const pport = Number(new URL(p.url).port);
    const answers = ['2001:db8:1:2::c', '2001:db8:1:2::d'].map((address) => {
      const socket = createConnection({ host: '::1', port: pport });
      cleanups.push(() => socket.destroy());
      const head = `POST /api/v1/runs HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: ${address}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
      return { socket, answer: rawRequest(socket, head + body.slice(0, 40 * 1024), { untilClose: true }) };
    });
    const first = await Promise.race(answers.map((a) => a.answer));
    expect(first).toMatch(/^HTTP\/1.1 429/);
    expect(first).toContain('client address 2001:db8:1:2::/64 is sending more than 65536 bytes');
    expect(first).toContain('maxBodyBytesPerIp');
    for (const { socket } of answers) if (!socket.destroyed) socket.write(body.slice(40 * 1024));
    const statuses = (await Promise.all(answers.map((a) => a.answer))).map((text) => Number(text.slice(9, 12))).sort();
    expect(statuses).toEqual([201, 429]);
  });

  it('WebSocket messages of one client address over all its sockets past wsMessagesPerSecondPerIp: the socket that sends past it is closed 4429 naming the setting; other addresses and other sockets go on', async () => {
    const { server: s, tick } = await limitedServer({ wsMessagesPerSecond: 5, wsMessagesPerSecondPerIp: 6, trustedProxies: ['127.0.0.1'] });
    const socket = (forwardedFor?: string) => {
      const ws = new TestSocket(streamUrl(s), forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor });
      cleanups.push(() => ws.close());
      return ws;
    };
    const pongs = (ws: TestSocket) => ws.messages.filter((m) => m.type === 'pong').length;
    const a = socket();
    const b = socket();
    expect(await a.opened()).toBe(true);
    expect(await b.opened()).toBe(true);
    // The clock stands still: each socket may send 10 (2 s of its own 5/s), the address 12 (2 s of 6/s).
    for (let i = 0; i < 8; i++) a.send({ op: 'ping' });
    await waitFor(() => pongs(a) === 8, { what: "the first socket's 8 pongs" });
    // Before: b had its own 10 whatever a had sent, so an address with 1,024 sockets had 1,024 budgets.
    for (let i = 0; i < 8; i++) b.send({ op: 'ping' });
    // Closed, or (before) all 8 answered: whichever comes, with a deadline.
    await waitFor(() => b.closeCode !== null || pongs(b) === 8, { what: 'the second socket closed or answered' });
    expect(b.closeCode).toBe(STREAM_CLOSE_CODES.rateLimited);
    await b.settled;
    expect(pongs(b)).toBe(4);
    expect(b.closeReason).toContain('wsMessagesPerSecondPerIp');
    expect(b.closeReason).toContain('127.0.0.1');
    expect(a.closeCode).toBeNull();
    // Another client (behind the trusted proxy) has its own budget.
    const other = socket('10.0.0.7');
    expect(await other.opened()).toBe(true);
    for (let i = 0; i < 8; i++) other.send({ op: 'ping' });
    await waitFor(() => pongs(other) === 8, { what: "the other address's 8 pongs" });
    // It refills with time: a second later the first address may send 6 more.
    tick(1000);
    for (let i = 0; i < 6; i++) a.send({ op: 'ping' });
    await waitFor(() => pongs(a) === 14, { what: 'the refilled pongs' });
    expect(a.closeCode).toBeNull();
  });

  it('runs created by one client address past createRunsPerSecondPerIp: 429 with Retry-After naming the setting, retries counted alike; other addresses go on; it refills with time', async () => {
    const { server: s, tick } = await limitedServer({ createRunsPerSecondPerIp: 2, trustedProxies: ['127.0.0.1'] });
    s.define('handler', async () => undefined);
    // The clock stands still: a burst of 4 (2 s worth), a handler run among them, then no more.
    for (let i = 0; i < 3; i++) expect((await call(s, 'POST', '/api/v1/runs', { body: { name: `r${i}` } })).status).toBe(201);
    expect((await call(s, 'POST', '/api/v1/runs', { body: { name: 'handler', execute: true } })).status).toBe(201);
    // Before: nothing bounded how fast one client made runs (each a row kept until deleted, and a message to every live list).
    const refused = await call(s, 'POST', '/api/v1/runs', { body: { name: 'one-too-many' } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body.error.code).toBe('rate_limited');
    expect(refused.body.error.message).toContain('client address 127.0.0.1 is creating runs faster than 2 per second');
    expect(refused.body.error.message).toContain('createRunsPerSecondPerIp');
    expect((await s.runs.list({ name: 'one-too-many' })).runs).toEqual([]);
    const handlerRun = await call(s, 'POST', '/api/v1/runs', { body: { name: 'handler', execute: true } });
    expect(handlerRun.status).toBe(429);
    expect(handlerRun.body.error.message).toContain('createRunsPerSecondPerIp');
    const ended = (await s.runs.list({ name: 'r0' })).runs[0]!;
    const retry = await call(s, 'POST', `/api/v1/runs/${ended.id}/retry`);
    expect(retry.status).toBe(429);
    expect(retry.body.error.message).toContain('createRunsPerSecondPerIp');
    // Another client (behind the trusted proxy) has its own budget.
    expect((await call(s, 'POST', '/api/v1/runs', { body: { name: 'other' }, headers: { 'x-forwarded-for': '10.0.0.8' } })).status).toBe(201);
    tick(500);
    expect((await call(s, 'POST', '/api/v1/runs', { body: { name: 'later' } })).status).toBe(201);
    expect((await call(s, 'POST', '/api/v1/runs', { body: { name: 'later' } })).status).toBe(429);
  });

  it('createRunsPerSecondPerIp counts runs made: replays of an Idempotency-Key and refused creates or retries give their token back', async () => {
    const { server: s } = await limitedServer({ createRunsPerSecondPerIp: 2 });
    // The clock stands still: a burst of 4 runs (2 s worth) and no more.
    const first = await call(s, 'POST', '/api/v1/runs', { body: { name: 'keyed' }, headers: { 'idempotency-key': 'k-1' } });
    expect(first.status).toBe(201);
    // A producer that lost the answer retries with the same key: the same run, and (before) each retry spent the budget too.
    for (let i = 0; i < 10; i++) {
      const replay = await call(s, 'POST', '/api/v1/runs', { body: { name: 'keyed' }, headers: { 'idempotency-key': 'k-1' } });
      expect(replay.status).toBe(200);
      expect(replay.body.id).toBe(first.body.id);
    }
    // A create refused by the store (the key names another run) made nothing either.
    const conflict = await call(s, 'POST', '/api/v1/runs', { body: { name: 'other-name' }, headers: { 'idempotency-key': 'k-1' } });
    expect(conflict.status).toBe(409);
    // A retry of a run that is still running is refused, and costs nothing.
    expect((await call(s, 'POST', `/api/v1/runs/${first.body.id}/retry`)).status).toBe(409);
    for (let i = 0; i < 3; i++) expect((await call(s, 'POST', '/api/v1/runs', { body: { name: `r${i}` } })).status).toBe(201);
    const over = await call(s, 'POST', '/api/v1/runs', { body: { name: 'one-too-many' } });
    expect(over.status).toBe(429);
    expect(over.body.error.message).toContain('createRunsPerSecondPerIp');
  });

  it('run tokens one token mints past mintRunTokensPerSecond: 429 with Retry-After naming the setting; another token goes on; it refills with time', async () => {
    const { server: s, tick } = await limitedServer({ mintRunTokensPerSecond: 2, adminToken: ADMIN });
    const producer = async () => (await call(s, 'POST', '/api/v1/tokens', { token: ADMIN, body: { name: 'p', scope: 'producer' } })).body as { id: string; token: string };
    const [a, b] = [await producer(), await producer()];
    const run = (await call(s, 'POST', '/api/v1/runs', { token: a.token, body: { name: 'shared' } })).body;
    const mintWith = (token: string) => call(s, 'POST', `/api/v1/runs/${run.id}/tokens`, { token, body: {} });
    // The clock stands still: a burst of 4 (2 s worth), then no more.
    for (let i = 0; i < 4; i++) expect((await mintWith(a.token)).status).toBe(201);
    // Before: one token minted without bound, each a row kept until it expires.
    const refused = await mintWith(a.token);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body.error.code).toBe('rate_limited');
    expect(refused.body.error.message).toContain(`token ${a.id} is minting run tokens faster than 2 per second`);
    expect(refused.body.error.message).toContain('mintRunTokensPerSecond');
    expect((await mintWith(b.token)).status).toBe(201);
    tick(500);
    expect((await mintWith(a.token)).status).toBe(201);
    expect((await mintWith(a.token)).status).toBe(429);
  });

  it('mintRunTokensPerSecond counts tokens minted: a mint refused for an unknown run or a run at maxRunTokensPerRun gives its token back', async () => {
    const { server: s } = await limitedServer({ mintRunTokensPerSecond: 2, maxRunTokensPerRun: 1, adminToken: ADMIN });
    const a = (await call(s, 'POST', '/api/v1/tokens', { token: ADMIN, body: { name: 'p', scope: 'producer' } })).body as { id: string; token: string };
    const create = async () => (await call(s, 'POST', '/api/v1/runs', { token: a.token, body: { name: 'shared' } })).body.id as string;
    const [full, open1, open2, open3] = [await create(), await create(), await create(), await create()];
    const mint = (runId: string) => call(s, 'POST', `/api/v1/runs/${runId}/tokens`, { token: a.token, body: {} });
    // The clock stands still: a burst of 4 (2 s worth). One spent on a run now at its cap.
    expect((await mint(full)).status).toBe(201);
    // Before: each refusal below spent the budget, and the mints after them were 429.
    for (let i = 0; i < 5; i++) {
      expect((await mint(full)).body.error.code).toBe('too_many_run_tokens');
      expect((await mint('run_unknown')).status).toBe(404);
    }
    for (const runId of [open1, open2, open3]) expect((await mint(runId)).status).toBe(201);
    const over = await mint(full);
    expect(over.status).toBe(429);
    expect(over.body.error.message).toContain('mintRunTokensPerSecond');
  });

  it('a run with maxRunTokensPerRun live run tokens refuses one more: 409 naming the setting, the ones it has still work; a revoked or expired one makes room; other runs count apart', async () => {
    const { server: s, tick } = await limitedServer({ maxRunTokensPerRun: 2, adminToken: ADMIN });
    const create = async () => (await call(s, 'POST', '/api/v1/runs', { token: ADMIN, body: { name: 'shared' } })).body.id as string;
    const [runId, otherRun] = [await create(), await create()];
    const mint = (id: string, ttlSeconds = 600) => call(s, 'POST', `/api/v1/runs/${id}/tokens`, { token: ADMIN, body: { ttlSeconds } });
    const kept = (await mint(runId)).body;
    const short = (await mint(runId, 1)).body;
    // Before: a run's run tokens had no bound but their expiry.
    const refused = await mint(runId);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('too_many_run_tokens');
    expect(refused.body.error.message).toContain(`run ${runId} has 2 live run tokens`);
    expect(refused.body.error.message).toContain('maxRunTokensPerRun');
    for (const { token } of [kept, short]) expect((await call(s, 'GET', `/api/v1/runs/${runId}`, { token })).status).toBe(200);
    expect((await mint(otherRun)).status).toBe(201);
    expect((await call(s, 'DELETE', `/api/v1/tokens/${kept.id}`, { token: ADMIN })).status).toBe(200);
    expect((await mint(runId)).status).toBe(201);
    expect((await mint(runId)).status).toBe(409);
    tick(1_000);
    expect((await mint(runId)).status).toBe(201);
    expect((await mint(runId)).status).toBe(409);
  });

  it('a page of GET /runs/:id/events stops at readPageBytes, its seq saying more is waiting; a reader that follows gets every event once', async () => {
    const { server: s } = await limitedServer({ readPageBytes: 4096 });
    const run = (await call(s, 'POST', '/api/v1/runs', { body: { name: 'big-events' } })).body;
    const events = Array.from({ length: 10 }, (_, i) => ({ type: 'x.big', data: { i, text: 'a'.repeat(1500) } }));
    expect((await call(s, 'POST', `/api/v1/runs/${run.id}/events`, { body: { events } })).status).toBe(200);
    // Before: the whole default page (5,000 events) at once; of 1 MiB events, 600 were a 500 and half a GB held.
    const first = await call(s, 'GET', `/api/v1/runs/${run.id}/events?after=0`);
    expect(first.status).toBe(200);
    expect(first.body.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
    expect(first.body.seq).toBe(10);
    const seen: number[] = [];
    for (let after = 0; after < 10; ) {
      const page = (await call(s, 'GET', `/api/v1/runs/${run.id}/events?after=${after}`)).body;
      seen.push(...page.events.map((e: { seq: number }) => e.seq));
      after = page.events.at(-1).seq;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('a page of GET /runs stops at readPageBytes of the runs\' inputs, its nextCursor leading to the rest', async () => {
    const { server: s } = await limitedServer({ readPageBytes: 4096 });
    const created: string[] = [];
    for (let i = 0; i < 6; i++) created.push((await call(s, 'POST', '/api/v1/runs', { body: { name: 'big-input', input: { text: 'i'.repeat(1500) } } })).body.id);
    // Before: the whole page whatever its size; 200 runs of 1 MB inputs were 200 MB to build and send, per request.
    const first = (await call(s, 'GET', '/api/v1/runs?name=big-input&limit=200')).body;
    expect(first.runs).toHaveLength(2);
    expect(first.nextCursor).toBe(first.runs[1].id);
    const seen: string[] = first.runs.map((r: { id: string }) => r.id);
    for (let cursor = first.nextCursor; cursor; ) {
      const page = (await call(s, 'GET', `/api/v1/runs?name=big-input&limit=200&cursor=${cursor}`)).body;
      seen.push(...page.runs.map((r: { id: string }) => r.id));
      cursor = page.nextCursor;
    }
    expect(seen).toEqual([...created].reverse());
  });

  it('maxUnreadAnswerBytesPerIp below readPageBytes is refused at start, naming both: a reader asking for the next page while its last is in transit would be refused each time', () => {
    expect(() => loadConfig({ maxUnreadAnswerBytesPerIp: 4096, readPageBytes: 8192 }, {})).toThrow(/maxUnreadAnswerBytesPerIp .*at least readPageBytes/);
    expect(loadConfig({ maxUnreadAnswerBytesPerIp: 8192, readPageBytes: 8192 }, {}).maxUnreadAnswerBytesPerIp).toBe(8192);
  });

  it('maxBodyBytesPerIp below bodyLimitBytes is refused at start, naming both: the largest request would be refused for ever', () => {
    expect(() => loadConfig({ maxBodyBytesPerIp: 4096, bodyLimitBytes: 8192 }, {})).toThrow(/maxBodyBytesPerIp .*at least bodyLimitBytes/);
    expect(loadConfig({ maxBodyBytesPerIp: 8192, bodyLimitBytes: 8192 }, {}).maxBodyBytesPerIp).toBe(8192);
  });

  it('trustedProxies must be IP addresses: a host name would match no connection', () => {
    expect(() => loadConfig({ trustedProxies: ['proxy.internal'] }, {})).toThrow(/trustedProxies .*IP addresses/);
    expect(loadConfig({}, { RUNTRAIL_TRUSTED_PROXIES: '10.0.0.5, ::1' }).trustedProxies).toEqual(['10.0.0.5', '::1']);
  });

  it('a ?token= never reaches a log line', () => {
    expect(redactUrl('/api/v1/stream?token=rt_secret&x=1')).toBe('/api/v1/stream?token=[redacted]&x=1');
    expect(redactUrl('/api/v1/runs/a/stream?after=3&TOKEN=rtr_a.b')).toBe('/api/v1/runs/a/stream?after=3&TOKEN=[redacted]');
    expect(redactUrl('/api/v1/runs?tokenish=1')).toBe('/api/v1/runs?tokenish=1');
    // Spelt with an escape, as the server still reads it as the token.
    expect(redactUrl('/api/v1/stream?%74oken=rt_secret')).toBe('/api/v1/stream?%74oken=[redacted]');
    expect(redactUrl('/api/v1/stream?a=%E0%A4%A&%74OKEN=rt_x#f')).toBe('/api/v1/stream?a=%E0%A4%A&%74OKEN=[redacted]#f');
  });
});
