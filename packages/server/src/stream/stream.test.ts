import { connect } from 'node:net';
import { EventSource } from 'eventsource';
import { describe, expect, test } from 'vitest';
import { STREAM_CLOSE_CODES, eventsOf, type RunEvent, type RunWithObservers } from '@runtrail/protocol';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { SseParser } from '../../../client/src/watch/sse-parser.js';
import { TARGET_FRAME_BYTES } from './frames.js';
import { liveListLabels } from './runs-subscription.js';
import { RawWsClient, isExactRange, progressEvents, startTestServer, testScope, waitFor, wsUrl } from './stream.test-kit.js';

type TestServer = Awaited<ReturnType<typeof startTestServer>>;
const { cleanups, server } = testScope();

async function wsClient(s: TestServer): Promise<RawWsClient> {
  const c = new RawWsClient(wsUrl(s));
  cleanups.push(() => c.close());
  await c.opened();
  return c;
}

/** A raw SSE reader over fetch that records events and the end. */
function sseClient(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const state = {
    events: [] as RunEvent[],
    ended: null as null | { status: string; seq: number },
    observers: [] as number[],
    errors: [] as Array<{ code: string; message: string }>,
    status: 0,
    closed: false,
    body: '',
  };
  const done = (async () => {
    const res = await fetch(url, { headers, signal: controller.signal });
    state.status = res.status;
    if (!res.ok) {
      state.body = await res.text();
      return;
    }
    const parser = new SseParser();
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      for (const r of parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))) {
        if (r.event === 'run-event') state.events.push(JSON.parse(r.data) as RunEvent);
        else if (r.event === 'end') state.ended = JSON.parse(r.data) as { status: string; seq: number };
        else if (r.event === 'observers') state.observers.push((JSON.parse(r.data) as { count: number }).count);
        else if (r.event === 'error') state.errors.push(JSON.parse(r.data) as { code: string; message: string });
      }
    }
    state.closed = true;
  })().catch((err: unknown) => {
    if (!controller.signal.aborted) throw err;
  });
  cleanups.push(() => controller.abort());
  return { state, done, abort: () => controller.abort() };
}

function sseUrl(s: TestServer, runId: string, after?: number, query = ''): string {
  const params = [after === undefined ? '' : `after=${after}`, query].filter(Boolean).join('&');
  return `${s.url}/api/v1/runs/${runId}/stream${params ? `?${params}` : ''}`;
}

async function getRun(s: TestServer, id: string): Promise<RunWithObservers> {
  return (await (await fetch(`${s.url}/api/v1/runs/${id}`)).json()) as RunWithObservers;
}

describe('late joiner', () => {
  test('a WebSocket subscriber with after=0 gets exactly seq 1..5000 from the backlog, then the live ones', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'late' });
    await s.runs.appendEvents(run.id, progressEvents(5000));
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => c.seqs(run.id).length >= 5000, { what: 'backlog' });
    expect(c.messages[0]).toMatchObject({ type: 'subscribed', runId: run.id, after: 0, seq: 5000, status: 'running' });
    // Backlog is batched: far fewer frames than events.
    expect(c.messages.filter((m) => m.type === 'events').length).toBeLessThan(100);
    await s.runs.appendEvents(run.id, progressEvents(7, 5000));
    await waitFor(() => c.seqs(run.id).length >= 5007, { what: 'live events' });
    expect(isExactRange(c.seqs(run.id), 0, 5007)).toBe(true);
  });

  test('an SSE subscriber with after=0 gets exactly seq 1..5000 with id: seq, then the live ones', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'late' });
    await s.runs.appendEvents(run.id, progressEvents(5000));
    const sse = sseClient(sseUrl(s, run.id, 0));
    await waitFor(() => sse.state.events.length >= 5000, { what: 'backlog' });
    await s.runs.appendEvents(run.id, progressEvents(3, 5000));
    await waitFor(() => sse.state.events.length >= 5003, { what: 'live events' });
    expect(isExactRange(sse.state.events.map((e) => e.seq), 0, 5003)).toBe(true);
  });

  test('a WebSocket subscriber catching up events bigger than a frame gets each one whole, between small ones', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'big' });
    // Pages of one event over 64 KiB (a frame with a 64-bit length), of many small ones (16-bit), and of one small one.
    const sizes = [10, 90_000, 20, 70_000, 70_000, 30];
    for (const [i, size] of sizes.entries()) {
      await s.runs.appendEvents(run.id, [...progressEvents(50, i * 51), { type: 'log', data: { level: 'info', message: 'é'.repeat(size) } }]);
    }
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    const total = sizes.length * 51;
    await waitFor(() => c.seqs(run.id).length >= total, { what: 'backlog' });
    const stored = (await (await fetch(`${s.url}/api/v1/runs/${run.id}/events?after=0&limit=1000`)).json()) as { events: RunEvent[] };
    expect(stored.events).toHaveLength(total);
    expect(c.events.get(run.id)).toEqual(stored.events);
  });

  test('after=N on WS and Last-Event-ID on SSE start right after N', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'resume' });
    await s.runs.appendEvents(run.id, progressEvents(50));
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 42 });
    // Last-Event-ID wins over ?after= (what a browser sends when it reconnects by itself).
    const sse = sseClient(sseUrl(s, run.id, 3), { 'last-event-id': '45' });
    await waitFor(() => c.seqs(run.id).length >= 8 && sse.state.events.length >= 5);
    expect(c.seqs(run.id)).toEqual([43, 44, 45, 46, 47, 48, 49, 50]);
    expect(sse.state.events.map((e) => e.seq)).toEqual([46, 47, 48, 49, 50]);
  });
});

describe('compact subscriptions', () => {
  for (const store of ['SQLite', 'PostgreSQL'] as const) {
    test(`on ${store}: events frames leave out their events' runId, backlog and live, while a full subscription beside it gets the same events whole`, async () => {
      // SQLite's catch-up joins pages in the database; PostgreSQL's reads texts: both paths, and the hub's shared live frames.
      let options = {};
      if (store === 'PostgreSQL') {
        const schema = await freshSchema();
        cleanups.push(() => dropSchema(schema));
        options = { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema };
      }
      const s = await server(options);
      const { run } = await s.runs.create({ name: 'compact' });
      const odd = 'q"\\ \u0001 \u2028 é 😀';
      await s.runs.appendEvents(run.id, [...progressEvents(3000), { type: `x.${odd}`, data: { s: odd }, id: `id-${odd}` }]);
      const compact = await wsClient(s);
      const full = await wsClient(s);
      compact.send({ op: 'subscribe', runId: run.id, after: 0, compact: true });
      full.send({ op: 'subscribe', runId: run.id, after: 0 });
      await waitFor(() => compact.seqs(run.id).length >= 3001 && full.seqs(run.id).length >= 3001, { what: 'the backlog on both' });
      // Live, both caught up: the same flushes reach both, each in its own form.
      for (let k = 0; k < 20; k++) await s.runs.appendEvents(run.id, progressEvents(5, 3001 + k * 5));
      await s.runs.finish(run.id, { status: 'succeeded' });
      await waitFor(() => compact.ended.has(run.id) && full.ended.has(run.id), { what: 'the end on both' });

      const stored = await s.store.readEvents(run.id, 0, 10_000);
      expect(stored).toHaveLength(3102);
      const frames = (c: RawWsClient) => c.messages.filter((m) => m.type === 'events');
      expect(frames(compact).length).toBeGreaterThan(1);
      for (const frame of frames(compact)) {
        expect(frame.runId).toBe(run.id);
        for (const event of frame.events) expect(event).not.toHaveProperty('runId');
      }
      expect(frames(compact).flatMap((f) => f.events)).toEqual(stored.map(({ runId: _frames, ...event }) => event));
      expect(frames(full).flatMap((f) => f.events)).toEqual(stored);
      expect(frames(compact).flatMap((f) => eventsOf(f))).toEqual(stored);
      expect(compact.messages.at(-1)).toEqual(full.messages.at(-1));
    });
  }

  test('an SSE stream with ?compact=true leaves out every event\'s runId, backlog and live, beside a whole one', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'compact sse' });
    await s.runs.appendEvents(run.id, progressEvents(2000));
    const compact = sseClient(sseUrl(s, run.id, 0, 'compact=true'));
    const whole = sseClient(sseUrl(s, run.id, 0));
    await waitFor(() => compact.state.events.length === 2000 && whole.state.events.length === 2000, { what: 'the backlog on both' });
    // Live, both caught up: the same flushes, each in its own form.
    for (let k = 0; k < 10; k++) await s.runs.appendEvents(run.id, progressEvents(5, 2000 + k * 5));
    await s.runs.finish(run.id, { status: 'succeeded' });
    await Promise.all([compact.done, whole.done]);
    const stored = await s.store.readEvents(run.id, 0, 10_000);
    expect(stored).toHaveLength(2051);
    expect(compact.state.events).toEqual(stored.map(({ runId: _stream, ...event }) => event));
    expect(whole.state.events).toEqual(stored);
    expect(compact.state.ended).toEqual(whole.state.ended);
  });

  test('a subscribe whose compact is not true or false is refused, naming the field', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'compact' });
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0, compact: 'yes' });
    await waitFor(() => c.messages.length > 0);
    expect(c.messages[0]).toMatchObject({ type: 'error', code: 'invalid_request', message: expect.stringContaining('compact') });
  });
});

describe('subscribing to a run that does not exist', () => {
  test('on WebSocket it is an error message for that subscription, and the connection stays usable', async () => {
    const s = await server();
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: 'no-such-run', after: 0 });
    await waitFor(() => c.messages.length > 0);
    expect(c.messages[0]).toMatchObject({ type: 'error', runId: 'no-such-run', code: 'run_not_found' });
    const { run } = await s.runs.create({ name: 'later' });
    await s.runs.appendEvents(run.id, progressEvents(1));
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => c.seqs(run.id).length === 1);
  });

  test('on SSE it is a 404 JSON error before any stream', async () => {
    const s = await server();
    const res = await fetch(sseUrl(s, 'no-such-run'));
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/json');
    expect(await res.json()).toMatchObject({ error: { code: 'run_not_found' } });
  });

  test('a message that is not part of the protocol gets an invalid_request error', async () => {
    const s = await server();
    const c = await wsClient(s);
    c.ws.send('{"op":"subscribe"}');
    c.ws.send('not json');
    await waitFor(() => c.messages.length >= 2);
    expect(c.messages.map((m) => m.type === 'error' && m.code)).toEqual(['invalid_request', 'invalid_request']);
  });
});

describe('a reader that says where it is, wrongly', () => {
  test('after past the last event of a running run is refused on WS (for that run) and SSE (400), not left waiting for ever', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'short' });
    await s.runs.appendEvents(run.id, progressEvents(2));
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 100 });
    await waitFor(() => c.messages.length > 0);
    expect(c.messages[0]).toMatchObject({ type: 'error', runId: run.id, code: 'invalid_request' });
    expect((c.messages[0] as { message: string }).message).toBe(
      `after=100 is past the end of run ${run.id}: its last event is seq 2; read from at most 2 (0 for the whole log)`,
    );
    const res = await fetch(sseUrl(s, run.id, 100));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_request', message: expect.stringContaining('past the end of run') } });
    // At the end exactly is a position: that reader waits for the next event.
    c.send({ op: 'subscribe', runId: run.id, after: 2 });
    await waitFor(() => c.messages.some((m) => m.type === 'subscribed'));
    await s.runs.appendEvents(run.id, progressEvents(1, 2));
    await waitFor(() => c.seqs(run.id).length === 1);
    expect(c.seqs(run.id)).toEqual([3]);
  });

  test('a malformed subscribe is answered for its run; a binary frame is told to be text', async () => {
    const s = await server();
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: 'some-run', after: -1 });
    c.ws.send(Buffer.from('{"op":"ping"}'), { binary: true });
    await waitFor(() => c.messages.length >= 2);
    expect(c.messages[0]).toMatchObject({ type: 'error', runId: 'some-run', code: 'invalid_request' });
    expect(c.messages[1]).toMatchObject({ type: 'error', code: 'invalid_request', message: 'send JSON in text frames, not binary ones' });
  });

  test('unsubscribe is answered after the old subscription\'s last frame: a resubscribe\'s frames are told apart, over many iterations', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'resubscribed' });
    await s.runs.appendEvents(run.id, progressEvents(7));
    await s.runs.finish(run.id, { status: 'succeeded' });
    for (let i = 0; i < 30; i++) {
      const c = await wsClient(s);
      c.send({ op: 'subscribe', runId: run.id, after: 0 });
      c.send({ op: 'unsubscribe', runId: run.id });
      c.send({ op: 'subscribe', runId: run.id, after: 3 });
      const split = () => c.messages.findIndex((m) => m.type === 'unsubscribed');
      await waitFor(() => split() >= 0 && c.messages.slice(split()).some((m) => m.type === 'end'), { what: `the second subscription's end (iteration ${i})` });
      // Whatever the first subscription sent comes before `unsubscribed`; the second starts at its `subscribed`.
      const second = c.messages.slice(split() + 1);
      expect(second[0], `iteration ${i}`).toMatchObject({ type: 'subscribed', after: 3 });
      const seqs = second.flatMap((m) => (m.type === 'events' ? m.events.map((e) => e.seq) : []));
      expect(seqs, `iteration ${i}`).toEqual([4, 5, 6, 7, 8]);
      expect(second.at(-1), `iteration ${i}`).toMatchObject({ type: 'end', status: 'succeeded' });
      c.close();
    }
  });
});

describe('subscribe right after create while a producer appends at full speed', () => {
  test('every event arrives exactly once, on WS and on SSE, over many iterations', async () => {
    const s = await server();
    const c = await wsClient(s);
    for (let iteration = 0; iteration < 40; iteration++) {
      const { run } = await s.runs.create({ name: `race-${iteration}` });
      let appended = 0;
      const total = 600;
      // The producer does not wait for anyone; batches of varying size interleave with the subscribe.
      const producer = (async () => {
        while (appended < total) {
          const n = Math.min(total - appended, 1 + ((appended * 7 + iteration) % 40));
          await s.runs.appendEvents(run.id, progressEvents(n, appended));
          appended += n;
        }
        await s.runs.finish(run.id, { status: 'succeeded' });
      })();
      c.send({ op: 'subscribe', runId: run.id, after: 0 });
      const sse = sseClient(sseUrl(s, run.id, 0));
      await producer;
      await waitFor(() => c.ended.has(run.id) && sse.state.ended !== null, { what: `end of iteration ${iteration}` });
      expect(isExactRange(c.seqs(run.id), 0, total + 1)).toBe(true);
      expect(isExactRange(sse.state.events.map((e) => e.seq), 0, total + 1)).toBe(true);
    }
  });

  test('appends over HTTP racing a WS subscribe are each delivered once', async () => {
    const s = await server();
    const c = await wsClient(s);
    for (let iteration = 0; iteration < 10; iteration++) {
      const created = await fetch(`${s.url}/api/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'http-race' }),
      });
      const run = (await created.json()) as { id: string };
      const producer = (async () => {
        for (let i = 0; i < 30; i++) {
          const res = await fetch(`${s.url}/api/v1/runs/${run.id}/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ events: progressEvents(5, i * 5) }),
          });
          expect(res.status).toBe(200);
        }
      })();
      c.send({ op: 'subscribe', runId: run.id, after: 0 });
      await producer;
      await waitFor(() => c.seqs(run.id).length >= 150);
      expect(isExactRange(c.seqs(run.id), 0, 150)).toBe(true);
    }
  });
});

describe('terminal', () => {
  test('after finish every WS and SSE watcher gets the terminal event then end; a late one replays the whole run and ends', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'ends' });
    await s.runs.appendEvents(run.id, progressEvents(20));
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    const sse = sseClient(sseUrl(s, run.id, 0));
    await waitFor(() => c.seqs(run.id).length === 20 && sse.state.events.length === 20);
    await s.runs.finish(run.id, { status: 'failed', error: { message: 'boom' } });
    await waitFor(() => c.ended.has(run.id) && sse.state.closed, { what: 'end on both' });
    expect(c.messages.at(-1)).toEqual({ type: 'end', runId: run.id, status: 'failed', seq: 21 });
    expect(c.events.get(run.id)!.at(-1)!.type).toBe('run.failed');
    expect(sse.state.ended).toEqual({ runId: run.id, status: 'failed', seq: 21 });

    const late = await wsClient(s);
    late.send({ op: 'subscribe', runId: run.id, after: 0 });
    const lateSse = sseClient(sseUrl(s, run.id));
    await waitFor(() => late.ended.has(run.id) && lateSse.state.closed, { what: 'late end' });
    expect(isExactRange(late.seqs(run.id), 0, 21)).toBe(true);
    expect(isExactRange(lateSse.state.events.map((e) => e.seq), 0, 21)).toBe(true);
    // Completed subscriptions no longer count as observers.
    await waitFor(async () => (await getRun(s, run.id)).observers === 0, { what: 'observers back to 0' });
  });

  test('a WS or SSE watcher that starts at or after the terminal event gets end at once, not silence', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'ended' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    await s.runs.finish(run.id, { status: 'succeeded' });
    const ws = [await wsClient(s), await wsClient(s)];
    ws[0]!.send({ op: 'subscribe', runId: run.id, after: 4 });
    ws[1]!.send({ op: 'subscribe', runId: run.id, after: 9 });
    const atEnd = sseClient(sseUrl(s, run.id, 4));
    const past = sseClient(sseUrl(s, run.id), { 'last-event-id': '9' });
    await waitFor(() => ws.every((c) => c.ended.has(run.id)) && atEnd.state.closed && past.state.closed, {
      what: 'end for every late watcher',
    });
    for (const c of ws) {
      expect(c.seqs(run.id)).toEqual([]);
      expect(c.messages.at(-1)).toEqual({ type: 'end', runId: run.id, status: 'succeeded', seq: 4 });
    }
    for (const sse of [atEnd, past]) {
      expect(sse.state.events).toEqual([]);
      expect(sse.state.ended).toEqual({ runId: run.id, status: 'succeeded', seq: 4 });
    }
  });
});

describe('a run deleted while watched', () => {
  test('WS and SSE watchers that asked for untilDeleted stay after end and are told run_not_found "was deleted" when it goes; plain ones ended at end', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'doomed' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0, untilDeleted: true });
    const plain = await wsClient(s);
    plain.send({ op: 'subscribe', runId: run.id, after: 0 });
    const sse = sseClient(sseUrl(s, run.id, 0, 'untilDeleted=true'));
    await waitFor(() => c.seqs(run.id).length === 3 && sse.state.events.length === 3 && plain.seqs(run.id).length === 3, { what: 'backlog' });
    await s.runs.finish(run.id, { status: 'succeeded' });
    await waitFor(() => c.ended.has(run.id) && sse.state.ended !== null && plain.ended.has(run.id), { what: 'end' });
    // Still following: the run is shown as it ended, and its page must hear if it goes.
    expect(sse.state.closed).toBe(false);

    await s.runs.delete(run.id);
    await waitFor(() => c.messages.at(-1)?.type === 'error' && sse.state.closed, { what: 'the deletion on WS and SSE' });
    expect(c.messages.at(-1)).toEqual({ type: 'error', runId: run.id, code: 'run_not_found', message: `run ${run.id} was deleted` });
    expect(sse.state.errors).toEqual([{ code: 'run_not_found', message: `run ${run.id} was deleted` }]);
    // A plain subscription was over at its end: nothing more for it.
    expect(plain.messages.at(-1)).toEqual({ type: 'end', runId: run.id, status: 'succeeded', seq: 4 });
  });

  test('an untilDeleted subscription made after the end gets end at once, and then the deletion', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'ended, then deleted' });
    await s.runs.finish(run.id, { status: 'cancelled' });
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 1, untilDeleted: true });
    const sse = sseClient(sseUrl(s, run.id, 1, 'untilDeleted=true'));
    await waitFor(() => c.ended.has(run.id) && sse.state.ended !== null, { what: 'end at once' });
    await s.runs.delete(run.id);
    await waitFor(() => c.messages.at(-1)?.type === 'error' && sse.state.closed, { what: 'the deletion' });
    expect(c.messages.at(-1)).toMatchObject({ code: 'run_not_found', message: `run ${run.id} was deleted` });
    expect(sse.state.errors).toEqual([{ code: 'run_not_found', message: `run ${run.id} was deleted` }]);
  });
});

describe('observers', () => {
  test('GET /runs/:id counts WS and SSE subscriptions on this node, and forgets them when they leave', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'watched' });
    expect((await getRun(s, run.id)).observers).toBe(0);
    const a = await wsClient(s);
    a.send({ op: 'subscribe', runId: run.id, after: 0 });
    const sse = sseClient(sseUrl(s, run.id));
    await waitFor(async () => (await getRun(s, run.id)).observers === 2, { what: '2 observers' });
    a.send({ op: 'unsubscribe', runId: run.id });
    await waitFor(async () => (await getRun(s, run.id)).observers === 1, { what: '1 observer' });
    sse.abort();
    await waitFor(async () => (await getRun(s, run.id)).observers === 0, { what: '0 observers' });
  });

  test('a WS or SSE subscription waiting for its ended run\'s deletion (untilDeleted) counts among its observers while connected; a plain one stops at the end', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'shown after its end' });
    const observers = async () => (await getRun(s, run.id)).observers;
    const ws = await wsClient(s);
    ws.send({ op: 'subscribe', runId: run.id, after: 0, untilDeleted: true });
    const sse = sseClient(sseUrl(s, run.id, 0, 'untilDeleted=true'));
    const plain = await wsClient(s);
    plain.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(async () => (await observers()) === 3, { what: '3 observers while it runs' });
    await s.runs.finish(run.id, { status: 'succeeded' });
    await waitFor(() => ws.ended.has(run.id) && sse.state.ended !== null && plain.ended.has(run.id), { what: 'end on all three' });
    // Before: 0, as if nobody had the run open. The server counts each as it stays before sending its `end`.
    expect(await observers()).toBe(2);
    // Subscribed after the end: told `end` at once, and counted from then.
    const late = await wsClient(s);
    late.send({ op: 'subscribe', runId: run.id, after: 0, untilDeleted: true });
    await waitFor(() => late.ended.has(run.id), { what: 'end for the late subscriber' });
    expect(await observers()).toBe(3);
    ws.close();
    await waitFor(async () => (await observers()) === 2, { what: 'the closed WebSocket no longer counted' });
    late.send({ op: 'unsubscribe', runId: run.id });
    await waitFor(async () => (await observers()) === 1, { what: 'the unsubscribed one no longer counted' });
    await s.runs.delete(run.id);
    await waitFor(() => sse.state.closed, { what: 'the SSE stream told of the deletion' });
    // The deletion lets go of the last one's count as well: nothing left counted for the run on this node.
    expect(s.hub.watchers(run.id)).toBe(0);
  });

  /** The counts an `observers: true` subscription was told, in order. */
  const toldCounts = (c: RawWsClient, runId: string): number[] =>
    c.messages.flatMap((m) => (m.type === 'observers' && m.runId === runId ? [m.count] : []));
  const lastTold = (c: RawWsClient, runId: string): number | undefined => toldCounts(c, runId).at(-1);
  /** A WebSocket subscribed with observers: true, once it has been told `count` (any count when not given). */
  const follower = async (s: TestServer, runId: string, count?: number): Promise<RawWsClient> => {
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId, after: 0, observers: true });
    const told = () => (count === undefined ? lastTold(c, runId) !== undefined : lastTold(c, runId) === count);
    await waitFor(told, { what: `a follower told ${count ?? 'its count'}` });
    return c;
  };

  test('a WebSocket subscribe with observers: true, or an SSE stream with ?observers=true, is told the count at once and on every change; others are never told', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'watched' });
    const a = await follower(s, run.id, 1);
    expect(a.messages[0]).toMatchObject({ type: 'subscribed', runId: run.id });

    const b = await wsClient(s);
    b.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => lastTold(a, run.id) === 2, { what: 'a told of b' });
    const sse = sseClient(sseUrl(s, run.id, undefined, 'observers=true'));
    await waitFor(() => lastTold(a, run.id) === 3 && sse.state.observers.at(-1) === 3, { what: 'a and the SSE watcher told 3' });
    const plainSse = sseClient(sseUrl(s, run.id));
    await waitFor(() => lastTold(a, run.id) === 4 && sse.state.observers.at(-1) === 4, { what: 'both told of the plain SSE watcher' });
    plainSse.abort();
    b.close();
    await waitFor(() => lastTold(a, run.id) === 2 && sse.state.observers.at(-1) === 2, { what: 'both told b and the plain SSE watcher left' });
    sse.abort();
    await waitFor(() => lastTold(a, run.id) === 1, { what: 'a told the SSE watcher left' });
    expect(plainSse.state.observers).toEqual([]);
    // Pushed only on a change: never the same count twice in a row.
    const told = toldCounts(a, run.id);
    expect(told.every((count, i) => i === 0 || count !== told[i - 1])).toBe(true);
    expect((await getRun(s, run.id)).observers).toBe(1);
    expect(b.messages.some((m) => m.type === 'observers')).toBe(false);
  });

  test('100 watchers arriving one after another cost a follower about one message a second, and every follower settles on the true count', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'crowd' });
    const first = await follower(s, run.id, 1);
    const startedAt = Date.now();
    const crowd: RawWsClient[] = [];
    // Each arrives once the one before it has been told its count: a hundred changes, not one burst.
    for (let i = 0; i < 100; i++) crowd.push(await follower(s, run.id));
    await waitFor(() => [first, ...crowd].every((c) => lastTold(c, run.id) === 101), { timeoutMs: 20_000, what: 'every follower told 101' });
    const seconds = (Date.now() - startedAt) / 1000;
    // Told on every arrival it would have had 100 messages; at most one per
    // OBSERVER_COUNT_INTERVAL_MS (1 s) it has about as many as seconds passed.
    expect(toldCounts(first, run.id).length - 1).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    for (const c of crowd) c.close();
    await waitFor(() => lastTold(first, run.id) === 1, { what: 'the crowd gone' });
  });

  test('a follower over its send bound is not written to, and is told the count of the moment once it drains', async () => {
    const sendBufferBytes = 64 * 1024;
    const s = await server({ sendBufferBytes, streamPingIntervalMs: 10 * 60_000 });
    const { run } = await s.runs.create({ name: 'slow follower' });
    const slow = await follower(s, run.id, 1);
    const watcher = await follower(s, run.id, 2);
    slow.ws.pause();
    const message = 'x'.repeat(400);
    const total = 8000;
    await s.runs.appendEvents(run.id, Array.from({ length: total }, (_, i) => ({ type: 'log' as const, data: { level: 'info' as const, message: `${i} ${message}` } })));
    await waitFor(() => watcher.seqs(run.id).length === total, { what: 'the reading watcher has every event' });
    await waitFor(() => s.stream.stats().blockedConnections === 1, { what: 'the paused follower over its bound' });
    const more = await Promise.all([wsClient(s), wsClient(s)]);
    for (const c of more) c.send({ op: 'subscribe', runId: run.id, after: total });
    await waitFor(() => lastTold(watcher, run.id) === 4, { what: 'the reading follower told 4' });
    expect(s.stream.stats().peakQueuedBytes).toBeLessThanOrEqual(sendBufferBytes + 2 * TARGET_FRAME_BYTES);
    slow.ws.resume();
    await waitFor(() => slow.seqs(run.id).length === total && lastTold(slow, run.id) === 4, { timeoutMs: 20_000, what: 'slow caught up and told 4' });
    expect(isExactRange(slow.seqs(run.id), 0, total)).toBe(true);
  });
});

describe('runs list subscription', () => {
  test('streams created, updated and deleted runs matching the filter', async () => {
    const s = await server();
    const c = await wsClient(s);
    // The issue's spelling of subscribeRuns.
    c.send({ op: 'subscribe', runs: { name: 'listed' } });
    await waitFor(() => c.messages.some((m) => m.type === 'subscribedRuns'));
    const { run } = await s.runs.create({ name: 'listed' });
    await s.runs.create({ name: 'other' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    await s.runs.finish(run.id, { status: 'succeeded' });
    await s.runs.delete(run.id);
    await waitFor(() => c.messages.some((m) => m.type === 'run' && m.change === 'deleted'));
    const changes = c.messages.filter((m) => m.type === 'run');
    expect(changes.every((m) => m.type === 'run' && m.run.name === 'listed')).toBe(true);
    expect(changes[0]).toMatchObject({ change: 'created' });
    expect(changes.at(-1)).toMatchObject({ change: 'deleted', run: { id: run.id } });
  });

  test('a run with a large input sends it to the lists once, when created; its updates leave it out', async () => {
    const s = await server();
    const lists = [await wsClient(s), await wsClient(s)];
    const bytes = [0, 0];
    lists.forEach((c, i) => c.ws.on('message', (data: Buffer) => (bytes[i]! += data.length)));
    for (const c of lists) c.send({ op: 'subscribeRuns', filter: { name: 'big-input' } });
    await waitFor(() => lists.every((c) => c.messages.some((m) => m.type === 'subscribedRuns')));
    const input = { prompt: 'p'.repeat(200_000) };
    const { run } = await s.runs.create({ name: 'big-input', input });
    await waitFor(() => lists.every((c) => c.messages.some((m) => m.type === 'run' && m.change === 'created')));
    for (let i = 0; i < 20; i++) await s.runs.appendEvents(run.id, progressEvents(1, i));
    await waitFor(() => lists.every((c) => c.messages.some((m) => m.type === 'run' && m.run.seq === 20)), { what: 'the last update on both lists' });
    for (const [i, c] of lists.entries()) {
      const changes = c.messages.filter((m) => m.type === 'run');
      expect(changes[0]).toMatchObject({ change: 'created', run: { input } });
      expect(changes.slice(1).every((m) => m.type === 'run' && m.change === 'updated' && !('input' in m.run))).toBe(true);
      // The input crossed the wire once per list, however many updates followed.
      expect(bytes[i]!).toBeLessThan(2 * 200_000);
    }
  });

  test('filters by labels, and refuses a malformed label filter with an error naming it', async () => {
    const s = await server();
    const c = await wsClient(s);
    c.send({ op: 'subscribeRuns', filter: { label: 'team=search,tier=gold' } });
    await waitFor(() => c.messages.some((m) => m.type === 'subscribedRuns'));
    await s.runs.create({ name: 'a', labels: { team: 'search' } });
    const { run: match } = await s.runs.create({ name: 'b', labels: { team: 'search', tier: 'gold', extra: 'x' } });
    await s.runs.create({ name: 'c', labels: { team: 'ads', tier: 'gold' } });
    await s.runs.finish(match.id, { status: 'succeeded' });
    await waitFor(() => c.messages.some((m) => m.type === 'run' && m.run.status === 'succeeded'));
    const ids = new Set(c.messages.filter((m) => m.type === 'run').map((m) => (m.type === 'run' ? m.run.id : '')));
    expect([...ids]).toEqual([match.id]);

    c.send({ op: 'subscribeRuns', filter: { label: 'no-equals-sign' } });
    await waitFor(() => c.messages.some((m) => m.type === 'error' && m.message.includes('"no-equals-sign" must be key=value')));
  });

  test('a live list matches a label filter of repeated pairs as the pairs once, and one key with two values as nothing', async () => {
    // Each pair once: every run change is matched against every live list, and 250 copies of a pair on 1,000 lists cut appends 5-13 fold.
    expect(liveListLabels(Array.from({ length: 250 }, () => 'team=search').join(',') + ',tier=gold,team=search')).toEqual([['team', 'search'], ['tier', 'gold']]);
    const s = await server();
    const repeated = await wsClient(s);
    const conflicting = await wsClient(s);
    repeated.send({ op: 'subscribeRuns', filter: { label: Array.from({ length: 80 }, () => 'team=search').join(',') } });
    conflicting.send({ op: 'subscribeRuns', filter: { label: 'team=search,team=ads' } });
    await waitFor(() => [repeated, conflicting].every((c) => c.messages.some((m) => m.type === 'subscribedRuns')));
    const { run } = await s.runs.create({ name: 'a', labels: { team: 'search' } });
    await waitFor(() => repeated.messages.some((m) => m.type === 'run' && m.run.id === run.id));
    // The clock: a pong, sent behind anything the run's creation put on that connection.
    conflicting.send({ op: 'ping' });
    await waitFor(() => conflicting.messages.some((m) => m.type === 'pong'));
    expect(conflicting.messages.some((m) => m.type === 'run')).toBe(false);
  });

  test('a misspelt filter or message field is refused naming it, never dropped (a dropped parentid would list every run)', async () => {
    const s = await server();
    const { run: parent } = await s.runs.create({ name: 'parent' });
    const c = await wsClient(s);
    c.send({ op: 'subscribeRuns', filter: { parentid: parent.id } });
    c.send({ op: 'subscribe', runId: parent.id, after: 0, compcat: true });
    c.send({ op: 'ping', extra: 1 });
    c.send({ runId: parent.id, after: 0 });
    c.send({ op: 'subscrbe', runId: parent.id });
    await waitFor(() => c.messages.length >= 5);
    // Before: subscribedRuns with no filter at all, and every run of the server on this list.
    expect(c.messages).toEqual([
      { type: 'error', code: 'invalid_request', message: 'not a client message of the stream protocol: filter.parentid: unknown field (only the fields this object defines are accepted)' },
      { type: 'error', runId: parent.id, code: 'invalid_request', message: 'not a client message of the stream protocol: compcat: unknown field (only the fields this object defines are accepted)' },
      { type: 'error', code: 'invalid_request', message: 'not a client message of the stream protocol: extra: unknown field (only the fields this object defines are accepted)' },
      // A message without its op says the op is missing (it said "expected one of", as if one had been given).
      { type: 'error', runId: parent.id, code: 'invalid_request', message: expect.stringMatching(/^not a client message of the stream protocol: op: required: one of subscribe, /) },
      { type: 'error', runId: parent.id, code: 'invalid_request', message: expect.stringMatching(/^not a client message of the stream protocol: op: got "subscrbe", expected one of subscribe, /) },
    ]);
    await s.runs.create({ name: 'unrelated' });
    c.send({ op: 'ping' });
    await waitFor(() => c.messages.some((m) => m.type === 'pong'));
    expect(c.messages.some((m) => m.type === 'subscribedRuns' || m.type === 'run' || m.type === 'subscribed')).toBe(false);
  });
});

describe('keepalive', () => {
  test('a peer that stops answering pings is terminated and stops counting as an observer', async () => {
    const s = await server({ streamPingIntervalMs: 100 });
    const { run } = await s.runs.create({ name: 'dead-peer' });
    const c = await wsClient(s);
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(async () => (await getRun(s, run.id)).observers === 1);
    // A live peer answers pings: it survives several intervals.
    const alive = await wsClient(s);
    c.ws.pause();
    await waitFor(() => s.stream.stats().connections.ws === 1, { what: 'dead peer terminated' });
    expect((await getRun(s, run.id)).observers).toBe(0);
    expect(alive.ws.readyState).toBe(alive.ws.OPEN);
  });
});

describe('server-side drop', () => {
  test('the eventsource package resumes with Last-Event-ID after the server drops it, with every seq once', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'es' });
    await s.runs.appendEvents(run.id, progressEvents(100));
    const seen: number[] = [];
    let ended = false;
    let opens = 0;
    const es = new EventSource(sseUrl(s, run.id, 0));
    cleanups.push(() => es.close());
    es.addEventListener('open', () => opens++);
    es.addEventListener('run-event', (e) => seen.push(Number((e as MessageEvent).lastEventId)));
    es.addEventListener('end', () => {
      ended = true;
      es.close();
    });
    await waitFor(() => seen.length >= 100);
    expect(s.stream.disconnectAll('close')).toBe(1);
    await s.runs.appendEvents(run.id, progressEvents(50, 100));
    await waitFor(() => opens >= 2 && seen.length >= 150, { what: 'EventSource reconnected and caught up' });
    expect(s.stream.disconnectAll('reset')).toBe(1);
    await s.runs.appendEvents(run.id, progressEvents(50, 150));
    await s.runs.finish(run.id, { status: 'succeeded' });
    await waitFor(() => ended, { what: 'end after the second drop' });
    expect(opens).toBeGreaterThanOrEqual(3);
    expect(isExactRange(seen, 0, 201)).toBe(true);
  });
});

describe('slow consumer', () => {
  test('a reader that stops reading while 40,000 events flow keeps the server buffer bounded, others keep getting every event in order, and it catches up with no gap (latency and heap figures: bench/slow-consumer.mjs)', async () => {
    const sendBufferBytes = 256 * 1024;
    // The paused reader cannot answer keepalive pings: on a loaded machine this
    // test outlasts two default ping intervals and the reader was terminated.
    const s = await server({ sendBufferBytes, streamPingIntervalMs: 10 * 60_000 });
    const { run } = await s.runs.create({ name: 'firehose' });
    const slow = await wsClient(s);
    slow.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => slow.messages.length > 0);

    // The fast watcher only tracks its position, so the test's own memory stays flat.
    const fast = new (await import('ws')).default(wsUrl(s));
    cleanups.push(() => fast.terminate());
    let fastSeq = 0;
    let fastOrdered = true;
    fast.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string; events?: RunEvent[] };
      for (const e of msg.events ?? []) {
        if (e.seq !== fastSeq + 1) fastOrdered = false;
        fastSeq = e.seq;
      }
    });
    await new Promise((r) => fast.once('open', r));
    fast.send(JSON.stringify({ op: 'subscribe', runId: run.id, after: 0 }));

    slow.ws.pause();
    const message = 'x'.repeat(400);
    const batch = 2000;
    // 18 MiB: seventy times the send bound, so the bound is what holds it.
    const total = 40_000;
    for (let done = 0; done < total; done += batch) {
      const events = Array.from({ length: batch }, (_, i) => ({ type: 'log' as const, data: { level: 'info' as const, message: `${done + i} ${message}` } }));
      await s.runs.appendEvents(run.id, events);
      await waitFor(() => fastSeq >= done + batch, { what: `fast watcher at ${done + batch}` });
      const stats = s.stream.stats();
      // The server holds no more than the bound plus one frame for anyone.
      expect(stats.peakQueuedBytes).toBeLessThanOrEqual(sendBufferBytes + 2 * TARGET_FRAME_BYTES);
    }
    const stats = s.stream.stats();
    expect(stats.blockedConnections).toBe(1);
    expect(fastOrdered).toBe(true);
    slow.ws.resume();
    await waitFor(() => slow.seqs(run.id).length >= total, { timeoutMs: 30_000, what: 'slow reader caught up' });
    expect(isExactRange(slow.seqs(run.id), 0, total)).toBe(true);
  });
});

describe('SSE slow consumer', () => {
  test('an SSE reader that stops reading keeps the server buffer bounded and catches up with no gap', async () => {
    const sendBufferBytes = 64 * 1024;
    const s = await server({ sendBufferBytes });
    const { run } = await s.runs.create({ name: 'sse-firehose' });
    const http = await import('node:http');
    const seqs: number[] = [];
    const parser = new SseParser();
    let response: import('node:http').IncomingMessage | null = null;
    const request = http.get(sseUrl(s, run.id, 0), (res) => {
      response = res;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        for (const r of parser.push(chunk)) if (r.event === 'run-event') seqs.push(Number(r.id));
      });
    });
    cleanups.push(() => request.destroy());
    await waitFor(() => response !== null && s.stream.stats().connections.sse === 1);
    response!.pause();
    const total = 40_000;
    for (let done = 0; done < total; done += 2000) {
      await s.runs.appendEvents(
        run.id,
        Array.from({ length: 2000 }, (_, i) => ({ type: 'log' as const, data: { level: 'info' as const, message: `${done + i} ${'y'.repeat(300)}` } })),
      );
    }
    await waitFor(() => s.stream.stats().blockedConnections === 1, { what: 'the SSE connection hit its bound' });
    expect(s.stream.stats().peakQueuedBytes).toBeLessThanOrEqual(sendBufferBytes + 2 * TARGET_FRAME_BYTES);
    expect(seqs.length).toBeLessThan(total);
    response!.resume();
    await waitFor(() => seqs.length >= total, { timeoutMs: 20_000, what: 'SSE reader caught up' });
    expect(isExactRange(seqs, 0, total)).toBe(true);
  });
});

describe('shutdown', () => {
  test('closing the server ends open WebSocket and SSE streams at once instead of waiting for them', async () => {
    const s = await startTestServer();
    const { run } = await s.runs.create({ name: 'open-streams' });
    const c = new RawWsClient(wsUrl(s));
    await c.opened();
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    const sse = sseClient(sseUrl(s, run.id));
    await waitFor(() => s.stream.stats().connections.ws === 1 && s.stream.stats().connections.sse === 1);
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    // An HTTP server's close waits for its open connections, and an SSE
    // response or a WebSocket never ends by itself: cleanup resolving at all
    // means the server ended them.
    await s.cleanup();
    expect(await closed).toBe(STREAM_CLOSE_CODES.goingAway);
    await waitFor(() => sse.state.closed, { what: 'SSE stream ended' });
  });

  test('a watcher of a run whose handler ignores the stop sees the run end interrupted, then its stream closes', async () => {
    const s = await startTestServer({ shutdownGraceMs: 300 });
    s.define('stubborn', async (ctx) => {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        ctx.progress(1);
      }
    });
    const { run } = await s.runs.create({ name: 'stubborn', execute: true });
    const c = new RawWsClient(wsUrl(s));
    await c.opened();
    c.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitFor(() => (c.events.get(run.id)?.length ?? 0) > 3, { what: 'the handler running' });
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    await s.cleanup();
    expect(await closed).toBe(STREAM_CLOSE_CODES.goingAway);
    // The end the executor wrote while shutting down reached the watcher before the close did.
    expect(c.events.get(run.id)!.at(-1)).toMatchObject({ type: 'run.failed', data: { error: { kind: 'interrupted' } } });
    expect(c.ended.has(run.id)).toBe(true);
  });

  test('a WebSocket watcher that does not read cannot hold the shutdown: its connection is reset instead of awaited for 30 s', async () => {
    const s = await startTestServer();
    const { run } = await s.runs.create({ name: 'silent-watcher' });
    // A raw peer that completes the upgrade, subscribes, then never reads again:
    // it never sees the server's close frame, so never answers it.
    const { port } = new URL(s.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined /* the reset this test expects */);
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
    });
    socket.write(
      `GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await waitFor(() => head.includes('\r\n\r\n'), { what: 'the upgrade answered' });
    expect(head).toMatch(/^HTTP\/1\.1 101/);
    socket.write(maskedTextFrame(JSON.stringify({ op: 'subscribe', runId: run.id, after: 0 })));
    await waitFor(() => s.stream.stats().subscriptions.ws === 1, { what: 'the silent peer subscribed' });
    socket.pause();
    const closed = s.cleanup().then(() => 'closed' as const);
    // Far under the ws library's own 30 s wait for a close answer, far over CLOSE_ANSWER_MS.
    const deadline = new Promise<'deadline'>((resolve) => setTimeout(() => resolve('deadline'), 15_000).unref());
    expect(await Promise.race([closed, deadline])).toBe('closed');
    socket.destroy();
  });
});

/** One client-to-server text frame (clients must mask; the mask here is zero). */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length > 125) throw new Error('short frames only');
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}
