import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { testScope, waitFor } from './stream.test-kit.js';

/**
 * An SSE reader that stops reading: its send buffer bounds the memory it
 * holds, but nothing bounded for how long. A WebSocket that stops reading
 * misses a pong and is dropped; an SSE response has no pong, so one that
 * took nothing of a full buffer held its connection, its slot under
 * maxConnectionsPerIp and up to sendBufferBytes for ever.
 */
const { cleanups, server } = testScope();

describe('an SSE reader that takes nothing', () => {
  it('is ended after a ping interval with its send buffer full and nothing taken; a reader that reads stays', async () => {
    const s = await server({ sendBufferBytes: 16 * 1024, streamPingIntervalMs: 200 });
    const { run } = await s.runs.create({ name: 'stalled-sse' });

    // A reader that reads everything, to the end of the test.
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const reading = await fetch(`${s.url}/api/v1/runs/${run.id}/stream?after=0`, { signal: controller.signal });
    expect(reading.status).toBe(200);
    let readText = '';
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of reading.body!) readText += decoder.decode(chunk as Uint8Array, { stream: true });
    })().catch(() => undefined /* aborted at the end of the test */);

    // A reader that sends its request and then never reads a byte.
    const port = Number(new URL(s.url).port);
    const stalled = createConnection({ host: '127.0.0.1', port }, () => {
      stalled.write(`GET /api/v1/runs/${run.id}/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      stalled.pause();
    });
    // The server ends it; nothing to report from this side.
    stalled.on('error', () => undefined);
    cleanups.push(() => stalled.destroy());
    await waitFor(() => s.stream.stats().connections.sse === 2, { what: 'both SSE streams open' });

    // More than loopback's socket buffers take, so the stalled reader's queue fills and stays full.
    for (let i = 0; i < 32; i++) {
      await s.runs.appendEvents(run.id, [{ type: 'x.big', data: { i, text: 'x'.repeat(512 * 1024) } }]);
    }
    // Not waited for as "blocked" first: under load the appends above can outlast the two ping
    // intervals the server gives it, and the blocked spell is over before a poll sees it.
    // Before: it stayed open, blocked, for as long as its client kept the socket.
    await waitFor(() => s.stream.stats().connections.sse === 1, { what: 'the stalled SSE reader ended', timeoutMs: 10_000 });
    expect(s.stream.stats().blockedConnections).toBe(0);

    // The reader that reads got every event and is still streaming.
    await s.runs.appendEvents(run.id, [{ type: 'x.after-stall' }]);
    await waitFor(() => readText.includes('x.after-stall'), { what: 'the reading stream to get the event after the stall' });
    expect(readText.match(/event: run-event/g)?.length).toBe(33);
    expect(s.stream.stats().connections.sse).toBe(1);
  });

  it('that ended, its last bytes unread, is closed after connectionIdleTimeoutMs', async () => {
    // A send buffer that takes the whole log: the stream writes it all, then its end, and is over.
    const s = await server({ connectionIdleTimeoutMs: 1000, streamPingIntervalMs: 60_000, sendBufferBytes: 64 * 1024 * 1024 });
    const { run } = await s.runs.create({ name: 'ended-unread' });
    // More than loopback's socket buffers hold, so most of it waits in the server's queue.
    for (let i = 0; i < 12; i++) await s.runs.appendEvents(run.id, [{ type: 'x.big', data: { i, text: 'x'.repeat(1000 * 1024) } }]);
    await s.runs.finish(run.id, { status: 'succeeded' });
    const serverConnections = () => new Promise<number>((resolve, reject) => s.http.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    const port = Number(new URL(s.url).port);
    const stalled = createConnection({ host: '127.0.0.1', port }, () => {
      stalled.write(`GET /api/v1/runs/${run.id}/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      stalled.pause();
    });
    // The server ends it; nothing to report from this side.
    stalled.on('error', () => undefined);
    cleanups.push(() => stalled.destroy());
    // The stream wrote its log and its end, and let go of its slot; most of its bytes wait in the connection's queue.
    await waitFor(() => s.stream.stats().peakQueuedBytes > 4 * 1024 * 1024 && s.stream.stats().connections.sse === 0, { what: 'the stream to write everything and end' });
    expect(await serverConnections()).toBe(1);
    // Before: the idle timeout the stream took off its connection stayed off, and the connection
    // (and the bytes queued on it, up to sendBufferBytes and a frame) stayed as long as the client kept it.
    await waitFor(async () => (await serverConnections()) === 0, { what: 'the connection closed', timeoutMs: 10_000 });
  });
});
