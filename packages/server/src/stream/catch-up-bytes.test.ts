import WebSocket from 'ws';
import { describe, expect, test } from 'vitest';
import { eventsOf, type RunEvent, type ServerMessage } from '@runtrail/protocol';
import type { RunStore } from '@runtrail/store';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { SseParser } from '../../../client/src/watch/sse-parser.js';
import { startTestServer, testScope, waitFor, wsUrl } from './stream.test-kit.js';

/**
 * Catch-up of a log of big events is bounded by bytes, not only by count:
 * 1,000 events a read was about 1 GB with 1 MiB events (a few watchers
 * catching up at once took the server's memory with them). Every store read
 * a watcher's backlog causes returns at most readPageBytes (one event when
 * that one is bigger), and a page cut by its bytes is read on from, not
 * taken for the end of the log.
 */

type TestServer = Awaited<ReturnType<typeof startTestServer>>;
const { cleanups, server } = testScope();

const EVENTS = 300;
/** Each event's data text: events of about 512 KiB. */
const TEXT = 512 * 1024 - 128;
/** Appended this many at a time: a commit of 4 MiB. */
const BATCH = 8;

interface Read {
  method: string;
  count: number;
  bytes: number;
}

/** Every read of events from `store` from now on, with how many events and bytes it returned. */
function recordReads(store: RunStore): Read[] {
  const reads: Read[] = [];
  const methods = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const measure: Record<string, (result: never) => Omit<Read, 'method'>> = {
    readEvents: (events: RunEvent[]) => ({ count: events.length, bytes: events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0) }),
    readEventTexts: (texts: Array<{ json: string }>) => ({ count: texts.length, bytes: texts.reduce((n, t) => n + Buffer.byteLength(t.json), 0) }),
    readEventTextPage: ({ texts }: { texts: Array<{ json: string }> }) => ({ count: texts.length, bytes: texts.reduce((n, t) => n + Buffer.byteLength(t.json), 0) }),
    readJoinedEventTexts: (page: { count: number; json: Buffer }) => ({ count: page.count, bytes: page.json.length }),
  };
  for (const [method, size] of Object.entries(measure)) {
    const original = methods[method];
    if (!original) continue;
    methods[method] = async (...args: unknown[]) => {
      const result = await original.apply(store, args);
      reads.push({ method, ...size(result as never) });
      return result;
    };
  }
  return reads;
}

/** Reads that returned more than `bound` bytes of events (more than one event: a bigger one comes alone). */
const overBound = (reads: Read[], bound: number) => reads.filter((r) => r.count > 1 && r.bytes > bound);

async function appendBig(s: TestServer, runId: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += BATCH) {
    const n = Math.min(BATCH, to - i);
    await s.runs.appendEvents(runId, Array.from({ length: n }, (_, k) => ({ type: 'x.big', data: { i: i + k, text: 'x'.repeat(TEXT) } })));
  }
}

/**
 * What a watcher got: each event's seq, and whether its data came whole
 * (the events themselves are dropped: 150 MB per watcher otherwise).
 */
interface Received {
  seqs: number[];
  broken: number[];
  end: Promise<{ seq: number; status: string }>;
}

function check(received: Omit<Received, 'end'>, event: RunEvent): void {
  received.seqs.push(event.seq);
  const data = event.data as { i?: number; text?: string };
  if (event.type === 'x.big' && (data.i !== event.seq - 1 || data.text?.length !== TEXT)) received.broken.push(event.seq);
}

/** A WebSocket watcher from seq 0; `paused`: its socket is not read until `resume()` (a slow consumer). */
async function wsWatcher(s: TestServer, runId: string, paused: boolean): Promise<Received & { resume(): void }> {
  const ws = new WebSocket(wsUrl(s));
  cleanups.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const received = { seqs: [] as number[], broken: [] as number[] };
  const end = new Promise<{ seq: number; status: string }>((resolve, reject) => {
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as ServerMessage;
      if (msg.type === 'events') for (const e of eventsOf(msg)) check(received, e);
      else if (msg.type === 'end') resolve(msg);
      else if (msg.type === 'error') reject(new Error(JSON.stringify(msg)));
    });
    ws.once('close', () => reject(new Error('the WebSocket closed before the end')));
  });
  ws.send(JSON.stringify({ op: 'subscribe', runId, after: 0, compact: true }));
  // ws.pause(), not its socket's: ws resumes a socket paused behind its back when it next reads.
  if (paused) ws.pause();
  return { ...received, end, resume: () => ws.resume() };
}

/** An SSE watcher from seq 0, reading as fast as it can. */
function sseWatcher(s: TestServer, runId: string): Received {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  const received = { seqs: [] as number[], broken: [] as number[] };
  const end = (async () => {
    const res = await fetch(`${s.url}/api/v1/runs/${runId}/stream?after=0`, { signal: controller.signal });
    if (!res.ok) throw new Error(`SSE ${res.status}: ${await res.text()}`);
    const parser = new SseParser();
    const decoder = new TextDecoder();
    for await (const chunk of res.body!) {
      for (const r of parser.push(decoder.decode(chunk as Uint8Array, { stream: true }))) {
        if (r.event === 'run-event') check(received, JSON.parse(r.data) as RunEvent);
        else if (r.event === 'end') return JSON.parse(r.data) as { seq: number; status: string };
      }
    }
    throw new Error('the SSE stream ended before its end record');
  })();
  // The test awaits `end`; one that failed before it did aborts the stream at cleanup, which is no second failure.
  end.catch((err: unknown) => {
    if (!controller.signal.aborted) throw err;
  });
  return { ...received, end };
}

const stores = [
  { name: 'SQLite', options: async () => ({}) },
  {
    name: 'PostgreSQL',
    options: async () => {
      const schema = await freshSchema();
      cleanups.push(() => dropSchema(schema));
      return { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema };
    },
  },
];

describe.each(stores)('catch-up of 512 KiB events on $name', ({ options }) => {
  test(`a WebSocket watcher that stops reading and an SSE watcher, both from seq 0 half-way through a run of ${EVENTS} events of 512 KiB, each get every event whole, once and in order; no store read returns more than readPageBytes`, async () => {
    const s = await server(await options());
    const bound = s.config.readPageBytes;
    const { run } = await s.runs.create({ name: 'big events' });
    await appendBig(s, run.id, 0, EVENTS / 2);
    const reads = recordReads(s.store);
    // The WebSocket reader stops reading: its connection goes over sendBufferBytes and catches up from the store later.
    const ws = await wsWatcher(s, run.id, true);
    const sse = sseWatcher(s, run.id);
    // The rest arrives while they catch up: live flushes, held flushes and reads after them.
    await appendBig(s, run.id, EVENTS / 2, EVENTS);
    await s.runs.finish(run.id, { status: 'succeeded' });
    ws.resume();
    const total = EVENTS + 1;
    for (const watcher of [ws, sse]) {
      expect(await watcher.end).toMatchObject({ seq: total, status: 'succeeded' });
      expect(watcher.seqs).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      expect(watcher.broken).toEqual([]);
    }
    // The paused WebSocket did go over its send buffer and was moved to catch-up reads.
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(Number(/^runtrail_slow_consumer_resyncs_total\{transport="ws"\} (\d+)$/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(1);
    // The backlog came from the store, in pages of at most readPageBytes (8 MiB: 15 of these events;
    // a catch-up's pages are no bigger than the send buffer, 1 MiB, either).
    expect(reads.length).toBeGreaterThanOrEqual(Math.ceil((EVENTS / 2) / Math.floor(bound / (TEXT + 200))));
    expect(overBound(reads, bound)).toEqual([]);
  }, 180_000);

  test('watchers from seq 0 of an ended run of 60 events of 512 KiB, read one a page, nothing appended after, get them all and the end', async () => {
    // Nothing is published after their reads: a page cut by its bytes taken for the head of the log left
    // them waiting for ever. Pages of one event, so a page never fills the connection's send buffer
    // (a full buffer made the subscription read on anyway, hiding it).
    const s = await server({ ...(await options()), readPageBytes: 600 * 1024 });
    const { run } = await s.runs.create({ name: 'ended big events' });
    const events = 60;
    await appendBig(s, run.id, 0, events);
    await s.runs.finish(run.id, { status: 'failed', error: { kind: 'error', message: 'done anyway' } });
    const reads = recordReads(s.store);
    const watchers = [await wsWatcher(s, run.id, false), sseWatcher(s, run.id)];
    for (const watcher of watchers) {
      expect(await watcher.end).toMatchObject({ seq: events + 1, status: 'failed' });
      expect(watcher.seqs).toEqual(Array.from({ length: events + 1 }, (_, k) => k + 1));
      expect(watcher.broken).toEqual([]);
    }
    expect(overBound(reads, s.config.readPageBytes)).toEqual([]);
  }, 60_000);
});

describe('catch-up of 512 KiB events across two nodes on PostgreSQL', () => {
  test(`watchers on B of a run appended through A in commits of 4 MiB get all ${EVENTS} events whole, once and in order; no read of B's store returns more than B's readPageBytes`, async () => {
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const shared = { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema };
    const a = await server({ ...shared, node: 'node-a' });
    // Pages smaller than a commit: B reads each notified commit in several pages.
    const bound = 1024 * 1024 + 4096;
    const b = await server({ ...shared, node: 'node-b', readPageBytes: bound });
    const { run } = await a.runs.create({ name: 'big events elsewhere' });
    const reads = recordReads(b.store);
    // Subscribed before anything is appended: what they get comes through B's remote fan-out.
    const ws = await wsWatcher(b, run.id, false);
    const sse = sseWatcher(b, run.id);
    await waitFor(() => b.hub.watchers(run.id) === 2, { what: 'both watchers subscribed on B' });
    await appendBig(a, run.id, 0, EVENTS);
    await a.runs.finish(run.id, { status: 'succeeded' });
    const total = EVENTS + 1;
    for (const watcher of [ws, sse]) {
      expect(await watcher.end).toMatchObject({ seq: total, status: 'succeeded' });
      expect(watcher.seqs).toEqual(Array.from({ length: total }, (_, k) => k + 1));
      expect(watcher.broken).toEqual([]);
    }
    expect(reads.filter((r) => r.count > 0).length).toBeGreaterThanOrEqual(EVENTS / 2);
    expect(overBound(reads, bound)).toEqual([]);
  }, 180_000);
});
