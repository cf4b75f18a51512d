import { describe, expect, it } from 'vitest';
import { RawWsClient, testScope, waitFor, wsUrl } from '../stream/stream.test-kit.js';
import { waitUntil } from '@runtrail/test-support';
import { RUN_STORE_OPERATIONS } from '@runtrail/store';
import { TARGET_FRAME_BYTES } from '../stream/frames.js';
import { promtool, readmeMetricsDrift, sample } from './metrics.test-kit.js';

const { server: startTestServer, cleanups } = testScope();

describe('/metrics', () => {
  it('passes promtool check metrics, and its values move as runs are created, appended to, streamed, reaped and ended', async () => {
    const server = await startTestServer({ reaperIntervalMs: 50, concurrency: 3 });
    const scrape = async () => {
      const response = await fetch(`${server.url}/metrics`);
      expect(response.headers.get('content-type')).toContain('text/plain');
      return response.text();
    };
    const post = (path: string, body: unknown) =>
      fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    const before = await scrape();
    expect(await promtool(before)).toEqual({ code: 0, output: '' });
    expect(sample(before, 'runtrail_runs{status="running"}')).toBe(0);
    expect(sample(before, 'runtrail_executor_workers')).toBe(3);
    // The database's series are a shared store's (PostgreSQL): none on SQLite.
    expect(before).not.toContain('runtrail_database_');
    expect(sample(before, 'runtrail_append_duration_seconds_count')).toBe(0);
    // Every store operation's failures are counted from 0 before the first one: rate() and
    // increase() see an outage from its first failed call, not from the second scrape after it.
    const storeErrors = (text: string) => [...text.matchAll(/^runtrail_store_errors_total\{operation="(\w+)"\} (\S+)$/gm)].map((m) => [m[1], Number(m[2])]);
    expect(storeErrors(before)).toEqual([...RUN_STORE_OPERATIONS].map((operation) => [operation, 0]));

    const run = (await (await post('/api/v1/runs', { name: 'measured' })).json()) as { id: string };
    // Watchers on both transports, live before the appends.
    const ws = new RawWsClient(wsUrl(server));
    cleanups.push(() => ws.close());
    await ws.opened();
    ws.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => ws.messages.some((m) => m.type === 'subscribed'), { what: 'the WS subscription' });
    const sse = new AbortController();
    cleanups.push(() => sse.abort());
    const sseResponse = await fetch(`${server.url}/api/v1/runs/${run.id}/stream`, { signal: sse.signal });
    const reader = sseResponse.body!.getReader();
    let sseText = '';
    void (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (done) return;
        sseText += new TextDecoder().decode(value);
      }
    })();
    await waitFor(() => sseText.includes('retry:'), { what: 'the SSE stream to open' });
    const streaming = await scrape();
    expect(sample(streaming, 'runtrail_stream_connections{transport="ws"}')).toBe(1);
    expect(sample(streaming, 'runtrail_stream_connections{transport="sse"}')).toBe(1);
    expect(sample(streaming, 'runtrail_stream_subscriptions{transport="ws"}')).toBe(1);

    await post(`/api/v1/runs/${run.id}/events`, {
      events: [{ type: 'progress', data: { done: 1 } }, { type: 'log', data: { level: 'info', message: 'hi' } }],
    });
    await post(`/api/v1/runs/${run.id}/events`, { events: [{ type: 'x.custom', data: {} }] });
    // A rejected batch commits nothing and must count nothing.
    expect((await post(`/api/v1/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: -1 } }] })).status).toBe(400);
    await waitFor(() => ws.seqs(run.id).length === 3 && sseText.includes('id: 3'), { what: 'both watchers to get 3 events' });

    const during = await scrape();
    expect(await promtool(during)).toEqual({ code: 0, output: '' });
    expect(sample(during, 'runtrail_events_appended_total{type="progress"}')).toBe(1);
    expect(sample(during, 'runtrail_events_appended_total{type="log"}')).toBe(1);
    expect(sample(during, 'runtrail_events_appended_total{type="x.*"}')).toBe(1);
    expect(sample(during, 'runtrail_append_duration_seconds_count')).toBe(3);
    expect(sample(during, 'runtrail_delivery_latency_seconds_count{transport="ws"}')).toBeGreaterThanOrEqual(1);
    expect(sample(during, 'runtrail_delivery_latency_seconds_count{transport="sse"}')).toBeGreaterThanOrEqual(1);
    expect(sample(during, 'runtrail_runs{status="running"}')).toBe(1);
    expect(sample(during, 'runtrail_runs_created_total')).toBe(1);

    // A run whose owner stops heartbeating is ended by the reaper as orphaned.
    const orphan = (await (await post('/api/v1/runs', { name: 'abandoned', leaseTtlMs: 1000 })).json()) as { id: string };
    await post(`/api/v1/runs/${run.id}/finish`, { status: 'failed', error: { kind: 'timeout', message: 'too slow' } });
    const after = await waitUntil(
      async () => {
        const text = await scrape();
        return sample(text, 'runtrail_reaped_runs_total{kind="orphaned"}') === 1 ? text : undefined;
      },
      { what: `the reaper to end ${orphan.id}` },
    );
    expect(await promtool(after)).toEqual({ code: 0, output: '' });
    expect(sample(after, 'runtrail_runs_ended_total{status="failed",kind="timeout"}')).toBe(1);
    expect(sample(after, 'runtrail_runs_ended_total{status="failed",kind="orphaned"}')).toBe(1);
    expect(sample(after, 'runtrail_runs{status="running"}')).toBe(0);
    expect(sample(after, 'runtrail_runs{status="failed"}')).toBe(2);
    expect(storeErrors(after)).toEqual([...RUN_STORE_OPERATIONS].map((operation) => [operation, 0]));
    expect(after).toContain('runtrail_process_resident_memory_bytes');
    // The README's Metrics table is what an operator builds dashboards from: every series and label as served (PostgreSQL's aside).
    expect(readmeMetricsDrift(after, (name) => !name.startsWith('runtrail_database_'))).toEqual([]);
  });

  it('shows a watcher past its send bound in runtrail_stream_blocked_connections until it drains, and the most one connection queued since the previous scrape', async () => {
    const sendBufferBytes = 64 * 1024;
    const server = await startTestServer({ sendBufferBytes, streamPingIntervalMs: 10 * 60_000 });
    const scrape = async () => (await fetch(`${server.url}/metrics`)).text();
    const idle = await scrape();
    expect(sample(idle, 'runtrail_stream_blocked_connections')).toBe(0);
    expect(sample(idle, 'runtrail_stream_peak_queued_bytes')).toBe(0);

    const { run } = await server.runs.create({ name: 'firehose' });
    const slow = new RawWsClient(wsUrl(server));
    cleanups.push(() => slow.close());
    await slow.opened();
    slow.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => slow.messages.some((m) => m.type === 'subscribed'), { what: 'the WS subscription' });
    // A reader that stops reading: its kernel buffers fill, then the server's send buffer passes its bound.
    slow.ws.pause();
    const total = 8000;
    const message = 'x'.repeat(400);
    await server.runs.appendEvents(run.id, Array.from({ length: total }, (_, i) => ({ type: 'log' as const, data: { level: 'info' as const, message: `${i} ${message}` } })));
    const blocked = await waitUntil(
      async () => {
        const text = await scrape();
        return sample(text, 'runtrail_stream_blocked_connections') === 1 ? text : undefined;
      },
      { what: 'the paused watcher over its bound in /metrics' },
    );
    expect(await promtool(blocked)).toEqual({ code: 0, output: '' });
    const peak = sample(blocked, 'runtrail_stream_peak_queued_bytes')!;
    expect(peak).toBeGreaterThan(sendBufferBytes);
    expect(peak).toBeLessThanOrEqual(sendBufferBytes + 2 * TARGET_FRAME_BYTES);

    slow.ws.resume();
    await waitFor(() => slow.seqs(run.id).length === total, { timeoutMs: 20_000, what: 'the watcher caught up' });
    const drained = await waitUntil(
      async () => {
        const text = await scrape();
        return sample(text, 'runtrail_stream_blocked_connections') === 0 ? text : undefined;
      },
      { what: 'the watcher no longer blocked in /metrics' },
    );
    // The peak since the previous scrape: the drained connection holds less than its bound now,
    // and the next scrape after the one that saw the burst shows that, not the burst for ever.
    expect(sample(await scrape(), 'runtrail_stream_peak_queued_bytes')).toBeLessThanOrEqual(sendBufferBytes);
    expect(await promtool(drained)).toEqual({ code: 0, output: '' });
  });
});
