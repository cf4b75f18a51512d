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
    await waitFor(() => s.stream.stats().blockedConnections >= 1, { what: 'the stalled reader blocked' });
    // Before: it stayed open, blocked, for as long as its client kept the socket.
    await waitFor(() => s.stream.stats().connections.sse === 1, { what: 'the stalled SSE reader ended', timeoutMs: 10_000 });
    expect(s.stream.stats().blockedConnections).toBe(0);

    // The reader that reads got every event and is still streaming.
    await s.runs.appendEvents(run.id, [{ type: 'x.after-stall' }]);
    await waitFor(() => readText.includes('x.after-stall'), { what: 'the reading stream to get the event after the stall' });
    expect(readText.match(/event: run-event/g)?.length).toBe(33);
    expect(s.stream.stats().connections.sse).toBe(1);
  });
});
