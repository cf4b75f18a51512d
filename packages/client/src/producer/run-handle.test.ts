import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_ERROR_MESSAGE_CHARS, MAX_LABEL_CHARS, MAX_LOG_MESSAGE_CHARS, RuntrailError, foldEvents, type RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer } from '@runtrail/server';
import { RuntrailClient } from '../runtrail-client.js';
import type { RunStopped } from './run-handle.js';
import type { ServerChange } from './server-watch.js';
import { ManualClock, listenerLeakWarnings, tempDir, waitUntil } from '@runtrail/test-support';
import { TcpProxy } from '@runtrail/test-support/tcp-proxy';
import { abortCallbackCount } from '../on-abort.js';

/**
 * The producer SDK against a real server on loopback with a real SQLite
 * file. Faults are injected where they happen in production: in the
 * network, between a request the server committed and the response.
 */

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;

beforeEach(async () => {
  dir = tempDir();
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
});

afterEach(async () => {
  await server.close();
  dir.remove();
});

async function allEvents(client: RuntrailClient, runId: string): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for (;;) {
    const page = await client.readEvents(runId, out.length ? out[out.length - 1]!.seq : 0);
    out.push(...page.events);
    if (page.events.length === 0 || out[out.length - 1]!.seq >= page.seq) return out;
  }
}

/** A fetch that performs the real request, then loses the response for the first `n` matching calls. */
function losingResponses(n: number, match: (url: string) => boolean) {
  let lost = 0;
  let requests = 0;
  const impl: typeof fetch = async (input, init) => {
    const url = String(input);
    if (match(url)) requests++;
    const response = await fetch(input, init);
    if (match(url) && lost < n) {
      lost++;
      await response.arrayBuffer();
      throw new TypeError('fetch failed (response lost in the network)');
    }
    return response;
  };
  return { impl, lost: () => lost, requests: () => requests };
}

describe('producer SDK', () => {
  it('50 createRun retrying a server out of reach with one signal print no listener-leak warning, and its abort ends them all', async () => {
    const leaks = listenerLeakWarnings();
    const proxy = await TcpProxy.start(server.url);
    try {
      proxy.cut();
      const client = new RuntrailClient({ url: proxy.url, startTimeoutMs: 60_000 });
      const app = new AbortController();
      const creating = Array.from({ length: 50 }, (_, i) => client.createRun({ name: `never made ${i}` }, { signal: app.signal }).catch((e: unknown) => e));
      // Each refused at least twice: all are in their backoff, waiting on the signal.
      await waitUntil(() => proxy.refused >= 100, { what: 'every createRun to be refused and retry' });
      const reason = new Error('the app is closing');
      app.abort(reason);
      expect(await Promise.all(creating)).toEqual(Array.from({ length: 50 }, () => reason));
      expect(abortCallbackCount(app.signal)).toBe(0);
      expect(await leaks.seen()).toEqual([]);
    } finally {
      leaks.stop();
      await proxy.close();
    }
  });

  it('stores 2,000 events in the order they were queued, in far fewer requests than events', async () => {
    const counting = losingResponses(0, (url) => url.endsWith('/events'));
    const client = new RuntrailClient({ url: server.url, fetch: counting.impl });
    const run = await client.createRun({ name: 'batched' });
    for (let i = 1; i <= 2000; i++) run.progress(i, 2000);
    await run.flush();
    const events = await allEvents(client, run.id);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(events.map((e) => (e.data as { done: number }).done)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(counting.requests()).toBeLessThanOrEqual(20);
    run.close();
  });

  it('creates its run once though the answer to the create was lost, and waits for a server that is still starting', async () => {
    const losing = losingResponses(1, (url) => url.endsWith('/api/v1/runs'));
    const client = new RuntrailClient({ url: server.url, fetch: losing.impl });
    const run = await client.createRun({ name: 'created-once' });
    expect(losing.lost()).toBe(1);
    expect((await client.listRuns({})).runs.filter((r) => r.name === 'created-once').map((r) => r.id)).toEqual([run.id]);
    run.close();

    // A server that is not listening yet: it is started when the first attempt has failed.
    const port = Number(new URL(server.url).port);
    await server.close();
    let attempts = 0;
    let starting: Promise<RunningServer> | null = null;
    const late = new RuntrailClient({
      url: `http://127.0.0.1:${port}`,
      fetch: async (input, init) => {
        attempts++;
        try {
          return await fetch(input, init);
        } catch (err) {
          starting ??= startServer({ port, dataDir: dir.path, logLevel: 'silent' });
          throw err;
        }
      },
    });
    const early = await late.createRun({ name: 'before-the-server' });
    server = await starting!;
    expect(attempts).toBeGreaterThan(1);
    expect((await late.getRun(early.id)).status).toBe('running');
    early.close();
  });

  it('retries a run (retryRun) once though the answer was lost: one new attempt, not two', async () => {
    server.define('to-retry', async () => {
      throw new Error('flaky');
    });
    const first = await new RuntrailClient({ url: server.url }).startRun({ name: 'to-retry' });
    const ended = await waitUntil(async () => {
      const run = await server.runs.get(first.id);
      return run.status === 'failed' && run;
    }, { what: 'the first attempt to fail' });
    const losing = losingResponses(1, (url) => url.endsWith(`/runs/${ended.id}/retry`));
    const client = new RuntrailClient({ url: server.url, fetch: losing.impl });
    const attempt = await client.retryRun(ended.id);
    expect(losing.lost()).toBe(1);
    expect(losing.requests()).toBe(2);
    // Before: no Idempotency-Key and no retry, so the lost answer was an error, and clicking again made a second attempt.
    const attempts = (await client.listRuns({ name: 'to-retry' })).runs.filter((r) => r.retryOf === ended.id);
    expect(attempts.map((r) => r.id)).toEqual([attempt.id]);
    expect(attempt.attempt).toBe(2);
  });

  it('mints a run token that may write (createRunToken with write) and one that only reads', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'token-kinds' });
    expect((await client.createRunToken(run.id, { write: true })).write).toBe(true);
    expect((await client.createRunToken(run.id, { ttlSeconds: 60 })).write).toBe(false);
    expect((await client.createRunToken(run.id, 60)).write).toBe(false);
    run.close();
  });

  it('retries a batch whose response was lost with the same ids, so every event is stored exactly once', async () => {
    const lossy = losingResponses(3, (url) => url.endsWith('/events'));
    const client = new RuntrailClient({ url: server.url, fetch: lossy.impl });
    const run = await client.createRun({ name: 'lossy' });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 300; i++) run.count('items');
      await run.flush();
    }
    expect(lossy.lost()).toBe(3);
    const events = await allEvents(client, run.id);
    expect(events).toHaveLength(1500);
    expect(new Set(events.map((e) => e.id)).size).toBe(1500);
    const stored = await client.getRun(run.id);
    expect(stored.snapshot.counters.named.items).toBe(1500);
    expect(stored.snapshot).toEqual(foldEvents(events));
    run.close();
  });

  it("waits out a 503's Retry-After before sending the batch again (issue 11)", async () => {
    let attempts = 0;
    const busyOnce: typeof fetch = async (input, init) => {
      if (!String(input).endsWith('/events')) return fetch(input, init);
      attempts++;
      if (attempts > 1) return fetch(input, init);
      // What a server with a locked database answers.
      const body = { error: { code: 'unavailable', message: 'the database is locked by another process; retry shortly' } };
      return new Response(JSON.stringify(body), { status: 503, headers: { 'content-type': 'application/json', 'retry-after': '1' } });
    };
    // The handle waits on our clock: the retry is due exactly when we move time past Retry-After.
    const clock = new ManualClock();
    const client = new RuntrailClient({ url: server.url, fetch: busyOnce, producer: { clock } });
    const run = await client.createRun({ name: 'busy' });
    run.count('n');
    const flushed = run.flush();
    const timersBefore = clock.pending;
    await waitUntil(() => attempts === 1 && clock.pending > timersBefore, { what: 'the 503 and the wait it asks for' });
    clock.advance(999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(attempts).toBe(1);
    clock.advance(1);
    await flushed;
    expect(attempts).toBe(2);
    expect((await client.getRun(run.id)).snapshot.counters.named.n).toBe(1);
    run.close();
  });

  for (const holdHeartbeat of [false, true]) {
    it(`beats again soon after a heartbeat the server did not take, not a whole period (lease/3) later, which an outage ending just after could see the lease lapse in (holdHeartbeat: ${holdHeartbeat})`, async () => {
      // Each heartbeat request as it is sent: the first refused, the rest passed on (a held one is answered only later).
      const sent: string[] = [];
      const refusingOneBeat: typeof fetch = async (input, init) => {
        if (!String(input).endsWith('/heartbeat') && !String(input).includes('/heartbeat?')) return fetch(input, init);
        sent.push(sent.length === 0 ? 'refused' : 'passed on');
        if (sent.length === 1) {
          const body = { error: { code: 'unavailable', message: "the data dir's disk is full (SQLITE_FULL)" } };
          return new Response(JSON.stringify(body), { status: 503, headers: { 'content-type': 'application/json' } });
        }
        return fetch(input, init);
      };
      const clock = new ManualClock();
      const client = new RuntrailClient({ url: server.url, fetch: refusingOneBeat, producer: { clock, holdHeartbeat } });
      const run = await client.createRun({ name: 'missed-beat', leaseTtlMs: 30_000 });
      // The first beat (a third of the lease in; a held one at once): refused.
      clock.advance(holdHeartbeat ? 0 : 10_000);
      // The retry comes within its backoff (at most 250 ms for the first), far inside the period.
      await waitUntil(() => sent.length === 1 && (clock.nextDueInMs ?? Infinity) <= 250, { what: 'the refused beat and a retry due within 250 ms' });
      clock.advance(250);
      await waitUntil(() => sent.length === 2, { what: 'the beat again, before the next period' });
      expect(sent).toEqual(['refused', 'passed on']);
      run.close();
    });
  }

  it('keeps every event through a server restart and stores none twice', async () => {
    const { port } = new URL(server.url);
    const client = new RuntrailClient({ url: server.url, requestTimeoutMs: 1000 });
    const run = await client.createRun({ name: 'outage' });
    for (let i = 1; i <= 100; i++) run.progress(i);
    await run.flush();
    await server.close();
    // Queued while nobody listens: the handle must hold and retry them.
    for (let i = 101; i <= 200; i++) run.progress(i);
    const flushed = run.flush();
    server = await startServer({ port: Number(port), dataDir: dir.path, logLevel: 'silent' });
    await flushed;
    const events = await allEvents(client, run.id);
    expect(events.map((e) => (e.data as { done: number }).done)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    await run.succeed();
  });

  it('records calls: retried failures count as retries, the last error clears on success', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'calls' });
    let attempts = 0;
    const value = await run.call(
      'Evaluating doc_1 with gpt-4',
      async () => {
        attempts++;
        if (attempts < 3) throw new Error('429 rate limited');
        return 42;
      },
      { retries: 2, retryDelayMs: () => 1 },
    );
    expect(value).toBe(42);
    await run.flush();
    let snapshot = (await client.getRun(run.id)).snapshot;
    expect(snapshot.counters).toMatchObject({ ok: 1, failed: 0, retries: 2 });
    expect(snapshot.lastError).toBeNull();
    expect(snapshot.current).toEqual({});

    await expect(
      run.call('Evaluating doc_2 with gpt-4', async () => Promise.reject(new Error('boom')), { retries: 1, retryDelayMs: () => 1 }),
    ).rejects.toThrow('boom');
    await run.flush();
    snapshot = (await client.getRun(run.id)).snapshot;
    expect(snapshot.counters).toMatchObject({ ok: 1, failed: 1, retries: 3 });
    expect(snapshot.lastError?.message).toBe('boom');
    await run.succeed();
  });

  it('a thrown value that is not JSON (a cycle, a BigInt) still ends its call and the run, and call() rethrows that value', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'odd throws' });
    const cyclic: Record<string, unknown> = { status: 429 };
    cyclic.self = cyclic;
    // Without a prototype it has no string form either.
    const bare = Object.create(null) as Record<string, unknown>;
    bare.self = bare;
    for (const thrown of [bare, 7n, cyclic]) {
      const caught = await run.call('Evaluating doc_1 with gpt-4', async () => Promise.reject(thrown)).catch((e: unknown) => e);
      // The script's own value, not the SDK's TypeError from describing it.
      expect(caught).toBe(thrown);
    }
    await run.flush();
    const snapshot = (await client.getRun(run.id)).snapshot;
    // Every call ended failed: none stays in flight for ever.
    expect(snapshot.counters).toMatchObject({ ok: 0, failed: 3 });
    expect(snapshot.current).toEqual({});
    expect(snapshot.lastError?.message).toBe('[object Object]');
    const failures = (await allEvents(client, run.id)).filter((e) => e.type === 'call.failed').map((e) => (e.data as { error: string }).error);
    expect(failures).toEqual(['[object Object]', '7n', '[object Object]']);
    const ended = await run.fail(cyclic);
    expect(ended.status).toBe('failed');
    expect(ended.error?.message).toBe('[object Object]');
  });

  it("long texts (an API's whole answer in an error, a long log line, label or progress message) are cut, as the Python client cuts them, not refused", async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'long texts' });
    const long = new Error(`400 Bad Request: ${'x'.repeat(20_000)}`);
    // Before: the call rethrew the SDK's refusal of its own call.failed event, fail() was refused
    // (leaving the run running), and a long log line or label threw at the call site.
    await expect(run.call('judge', async () => Promise.reject(long))).rejects.toBe(long);
    run.log('y'.repeat(20_000), 'error');
    run.progress(1, 2, 'z'.repeat(600));
    await run.call('w'.repeat(600), async () => 1);
    await run.flush();
    const events = await allEvents(client, run.id);
    const failed = (events.find((e) => e.type === 'call.failed')!.data as { error: string }).error;
    expect(failed).toBe(`400 Bad Request: ${'x'.repeat(MAX_ERROR_MESSAGE_CHARS - 18)}…`);
    expect((events.find((e) => e.type === 'log')!.data as { message: string }).message).toBe(`${'y'.repeat(MAX_LOG_MESSAGE_CHARS - 1)}…`);
    expect((events.find((e) => e.type === 'progress')!.data as { message: string }).message).toBe(`${'z'.repeat(MAX_LABEL_CHARS - 1)}…`);
    expect((events.filter((e) => e.type === 'call.started')[1]!.data as { label: string }).label).toBe(`${'w'.repeat(MAX_LABEL_CHARS - 1)}…`);
    const ended = await run.fail(long);
    expect(ended.status).toBe('failed');
    expect(ended.snapshot.terminal?.error?.message).toBe(failed);
  });

  it('records data as it was at the call: changing the object afterwards, before it is sent, changes no event', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'reused-object' });
    // One object, updated and recorded step by step, as a training loop would.
    const state = { step: 0, losses: [] as number[] };
    for (let step = 1; step <= 3; step++) {
      state.step = step;
      state.losses.push(1 / step);
      run.event('x.state', state);
    }
    state.step = 99;
    state.losses.length = 0;
    await run.flush();
    const events = await allEvents(client, run.id);
    expect(events.map((e) => e.data)).toEqual([
      { step: 1, losses: [1] },
      { step: 2, losses: [1, 1 / 2] },
      { step: 3, losses: [1, 1 / 2, 1 / 3] },
    ]);
    run.close();
  });

  it('rejects bad data at the call site, naming the field, and sends nothing', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'bad-data' });
    expect(() => run.progress(-1, 10)).toThrow(/data\.done/);
    expect(() => run.metric('loss', Number.NaN)).toThrow(/data\.value/);
    expect(() => run.event('no.such.type' as 'x.y', {})).toThrow(/unknown event type/);
    await run.flush();
    expect((await client.getRun(run.id)).seq).toBe(0);
    run.close();
  });

  it('from plain JS, text that is not a string and a call of something that is not a function are refused naming the field, and nothing is recorded', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'plain-js' });
    // What a JavaScript caller can pass where the types say string or function.
    const loose = run as unknown as {
      log(message: unknown): void;
      progress(done: number, total: number, message: unknown): void;
      call(label: unknown, fn: unknown): Promise<unknown>;
    };
    expect(() => loose.log({ step: 1 })).toThrow('invalid log event: log[0].data.message: Invalid input: expected string, received object');
    expect(() => loose.progress(1, 2, 3)).toThrow('invalid progress event: progress[0].data.message: Invalid input: expected string, received number');
    await expect(loose.call(undefined, async () => 1)).rejects.toThrow('invalid call.started event: call.started[0].data.label: required: expected string');
    await expect(loose.call(42, async () => 1)).rejects.toThrow('call.started[0].data.label: Invalid input: expected string, received number');
    await expect(loose.call('judge doc_1', 'not a function')).rejects.toThrow('invalid call: fn: must be the function that does the work, not a string');
    for (const err of [() => loose.log(null), () => loose.progress(1, 2, {})]) expect(err).toThrow(RuntrailError);
    await run.flush();
    // Not a failed call, not a half-written call: nothing.
    expect((await client.getRun(run.id)).seq).toBe(0);
    await run.succeed();
  });

  it("from plain JS, a call's retries that are no whole number 0 or more and a retryDelayMs that is no function are refused before anything is recorded", async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'plain-js options' });
    const loose = run as unknown as { call(label: string, fn: () => Promise<number>, options: unknown): Promise<number> };
    let attempts = 0;
    const fails = async () => {
      attempts++;
      throw new Error('flaky');
    };
    // Before: '2' was taken as 2 by coercion, NaN and -1 as no retries, 2.5 as three attempts more, silently.
    for (const [retries, shown] of [['2', '"2" (a string)'], [Number.NaN, 'NaN'], [-1, '-1'], [2.5, '2.5']] as const) {
      await expect(loose.call('judge', fails, { retries })).rejects.toThrow(
        `invalid call: options.retries: must be a whole number 0 or more (extra attempts after the first), not ${shown}`,
      );
    }
    await expect(loose.call('judge', fails, { retries: 1, retryDelayMs: 100 })).rejects.toThrow(
      'invalid call: options.retryDelayMs: must be a function of the attempt number giving milliseconds, not a number',
    );
    expect(attempts).toBe(0);
    await run.flush();
    expect((await client.getRun(run.id)).seq).toBe(0);
    // What the types allow still works: one retry, then its error.
    await expect(loose.call('judge', fails, { retries: 1, retryDelayMs: () => 0 })).rejects.toThrow('flaky');
    expect(attempts).toBe(2);
    await run.succeed();
  });

  it('stores 60 events of 200 KB (12 MB, more than a request may carry) and the run succeeds', async () => {
    const counting = losingResponses(0, (url) => url.endsWith('/events'));
    const client = new RuntrailClient({ url: server.url, fetch: counting.impl });
    const run = await client.createRun({ name: 'big-events' });
    for (let i = 0; i < 60; i++) run.event('x.chunk', { i, s: 'a'.repeat(200_000) });
    const ended = await run.succeed();
    expect(ended.status).toBe('succeeded');
    expect(ended.seq).toBe(61);
    const events = await allEvents(client, run.id);
    expect(events.filter((e) => e.type === 'x.chunk').map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    // Batches of about 1 MiB: 5 events each, not one event per request.
    expect(counting.requests()).toBeLessThanOrEqual(15);
  });

  it("refuses an event over the server's data limit at the call site, naming it, its size and the limit; the run goes on and succeeds", async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'one-big-event' });
    run.progress(1, 10);
    const big = { s: 'a'.repeat(2_000_000) };
    expect(() => run.event('x.big', big)).toThrow('the data of a x.big event is 2000008 bytes as JSON, over the limit of 1048576 bytes');
    expect(() => run.meta({ notes: 'n'.repeat(70_000) })).toThrow(/meta event is 70012 bytes as JSON, over the limit of 65536 bytes/);
    // Multi-byte characters count as the bytes the server counts, not as characters.
    expect(() => run.event('x.wide', { s: 'é'.repeat(600_000) })).toThrow(/1200008 bytes/);
    run.progress(2, 10);
    const ended = await run.succeed();
    expect(ended.status).toBe('succeeded');
    const events = await allEvents(client, run.id);
    expect(events.map((e) => e.type)).toEqual(['progress', 'progress', 'run.succeeded']);
    expect(ended.snapshot.progress).toMatchObject({ done: 2, total: 10 });
  });

  describe('against a server with smaller limits than the SDK assumes', () => {
    let small: RunningServer;
    let smallDir: ReturnType<typeof tempDir>;

    beforeEach(async () => {
      smallDir = tempDir();
      small = await startServer({ port: 0, dataDir: smallDir.path, logLevel: 'silent', bodyLimitBytes: 100_000 });
    });

    afterEach(async () => {
      await small.close();
      smallDir.remove();
    });

    it('splits a batch the server refuses as too large (413) and stores every event, in order', async () => {
      const counting = losingResponses(0, (url) => url.endsWith('/events'));
      const client = new RuntrailClient({ url: small.url, fetch: counting.impl });
      const run = await client.createRun({ name: 'small-server' });
      for (let i = 0; i < 100; i++) run.event('x.chunk', { i, s: 'a'.repeat(10_000) });
      await run.flush();
      for (let i = 100; i < 200; i++) run.event('x.chunk', { i, s: 'a'.repeat(10_000) });
      const ended = await run.succeed();
      expect(ended.status).toBe('succeeded');
      const events = await allEvents(client, run.id);
      expect(events.filter((e) => e.type === 'x.chunk').map((e) => (e.data as { i: number }).i)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      // The smaller limit is learned once: the second hundred is not refused again.
      expect(counting.requests()).toBeLessThanOrEqual(2 * 20 + 5);
    });

    it('an event the server alone refuses stops the handle with why; the events before it are stored and fail() still ends the run', async () => {
      const client = new RuntrailClient({ url: small.url });
      const run = await client.createRun({ name: 'refused-event' });
      run.progress(1, 10);
      run.event('x.big', { s: 'a'.repeat(200_000) });
      run.progress(2, 10);
      const err = await run.succeed().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntrailError);
      expect((err as RuntrailError).code).toBe('payload_too_large');
      const message = (err as RuntrailError).message;
      expect(message).toContain(`the server refused the x.big event`);
      expect(message).toContain('The events queued before it are stored; it and the 1 queued after it are not');
      expect(message).toContain('request body is larger than the limit of this server');
      expect(() => run.progress(3, 10)).toThrow(message);
      const ended = await run.fail(err);
      expect(ended.status).toBe('failed');
      expect(ended.error?.message).toBe(message);
      const events = await allEvents(client, run.id);
      expect(events.map((e) => e.type)).toEqual(['progress', 'run.failed']);
    });
  });

  it('answers a retried finish whose response was lost with the run, and a second finisher with a conflict', async () => {
    const lossy = losingResponses(1, (url) => url.endsWith('/finish'));
    const client = new RuntrailClient({ url: server.url, fetch: lossy.impl });
    const run = await client.createRun({ name: 'finish' });
    run.progress(1, 1);
    const ended = await run.succeed({ answer: 42 });
    expect(lossy.lost()).toBe(1);
    expect(ended.status).toBe('succeeded');
    expect(ended.output).toEqual({ answer: 42 });
    const events = await allEvents(client, run.id);
    expect(events.filter((e) => e.type === 'run.succeeded')).toHaveLength(1);

    const err = await client.api
      .request('finishRun', { params: { id: run.id }, body: { status: 'failed', error: { message: 'late' } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntrailError);
    expect((err as RuntrailError).code).toBe('run_already_terminal');
    expect((err as RuntrailError).message).toContain('succeeded');
  });

  it('refuses at once an output that is not JSON (a cycle, a BigInt), naming why, and the run can still be ended', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'unsendable' });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    for (const output of [cyclic, { n: 10n }]) {
      const err = await run.succeed(output).catch((e: unknown) => e);
      expect(RuntrailError.isCode(err, 'invalid_request')).toBe(true);
      expect((err as Error).message).toMatch(new RegExp(`^invalid end of run ${run.id}: \\(root\\): is not JSON: (Converting circular structure|Do not know how to serialize a BigInt)`));
    }
    expect((await run.fail('bad output')).status).toBe('failed');
  });

  it('refuses data JSON would change without a word (a Map, a Set, NaN, Infinity), naming where it is, and stores nothing of it', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'silently-changed' });
    run.event('x.before', { ok: 1 });
    // An eval script's scores kept in a Map, a de-duplicated list kept as a Set, a score that came out NaN.
    const refused: Array<[unknown, RegExp]> = [
      [{ scores: new Map([['acc', 0.9]]) }, /^invalid x\.score event: data\.scores: is a Map, which JSON writes as \{\} \(its entries lost\): send Object\.fromEntries\(map\)$/],
      [{ tags: new Set(['a']) }, /^invalid x\.score event: data\.tags: is a Set/],
      [{ runs: [{ acc: 0.5 }, { acc: Number.NaN }] }, /^invalid x\.score event: data\.runs\[1\]\.acc: is NaN, which JSON cannot hold \(it would be stored as null\)$/],
      [{ at: new Date(0), best: -Infinity }, /^invalid x\.score event: data\.best: is -Infinity/],
      [Number.POSITIVE_INFINITY, /^invalid x\.score event: data: is Infinity/],
    ];
    for (const [data, message] of refused) {
      let err: unknown = null;
      try {
        run.event('x.score', data);
      } catch (e) {
        err = e;
      }
      expect(RuntrailError.isCode(err, 'invalid_request')).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
    // meta is a known type whose values are the producer's own: the same rule.
    expect(() => run.meta({ split: new Set(['test']) })).toThrow(/data\.split: is a Set/);
    // The end of the run and any other request body: refused before anything is sent, not retried as a network failure.
    const ended = await run.succeed({ perDataset: new Map([['gsm8k', 0.7]]) }).catch((e: unknown) => e);
    expect((ended as Error).message).toBe(`invalid end of run ${run.id}: output.perDataset: is a Map, which JSON writes as {} (its entries lost): send Object.fromEntries(map)`);
    const created = await client.createRun({ name: 'bad-input', input: { limits: new Map() } }).catch((e: unknown) => e);
    expect(RuntrailError.isCode(created, 'invalid_request')).toBe(true);
    expect((created as Error).message).toMatch(/^invalid createRun request: input\.limits: is a Map/);
    await run.flush();
    const events = await allEvents(client, run.id);
    expect(events.map((e) => e.type)).toEqual(['x.before']);
    expect((await run.succeed({ perDataset: { gsm8k: 0.7 } })).status).toBe('succeeded');
  });

  it('a handle that ended its run answers the same end again, and refuses another end naming how the run ended', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'ended twice' });
    await run.succeed({ answer: 42 });
    expect((await run.succeed({ answer: 42 })).status).toBe('succeeded');
    // e.g. a catch block that calls fail() after succeed() threw on something else
    for (const late of [() => run.fail(new Error('late')), () => run.cancelled('too late'), () => run.succeed({ answer: 43 })]) {
      const err = await late().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntrailError);
      expect((err as RuntrailError).code).toBe('run_already_terminal');
      expect((err as RuntrailError).message).toContain(`run ${run.id} already ended succeeded`);
    }
    const stored = await client.getRun(run.id);
    expect(stored.status).toBe('succeeded');
    expect(stored.output).toEqual({ answer: 42 });
  });

  it('a second end asked for while the first is still being sent is answered as one after it: the run, or how the run ended, never an event id conflict', async () => {
    const client = new RuntrailClient({ url: server.url });
    // e.g. an abort listener that calls cancelled() or fail() while the script's succeed() is on its way
    for (const [second, expected] of [
      [(run: Awaited<ReturnType<typeof client.createRun>>) => run.succeed({ answer: 42 }), 'succeeded'],
      [(run: Awaited<ReturnType<typeof client.createRun>>) => run.cancelled('stop'), 'run_already_terminal'],
      [(run: Awaited<ReturnType<typeof client.createRun>>) => run.fail(new Error('late')), 'run_already_terminal'],
    ] as const) {
      const run = await client.createRun({ name: 'ended at once twice' });
      run.progress(1, 2);
      const [first, other] = await Promise.allSettled([run.succeed({ answer: 42 }), second(run)]);
      expect(first).toMatchObject({ status: 'fulfilled', value: { status: 'succeeded' } });
      if (expected === 'succeeded') expect(other).toMatchObject({ status: 'fulfilled', value: { status: 'succeeded' } });
      else {
        expect(other).toMatchObject({ status: 'rejected', reason: { code: 'run_already_terminal' } });
        expect((other as PromiseRejectedResult).reason.message).toMatch(new RegExp(`^run ${run.id} already ended succeeded \\(this handle ended it\\); it cannot also end (cancelled|failed)$`));
      }
      const stored = await client.getRun(run.id);
      expect([stored.status, stored.output, stored.seq]).toEqual(['succeeded', { answer: 42 }, 2]);
    }
  });

  it('tells its listener once that the server stopped answering, and when the lease lapses, then once that it answers again', async () => {
    const { port } = new URL(server.url);
    let failed = 0;
    const counting: typeof fetch = (input, init) => fetch(input, init).catch((err: unknown) => (failed++, Promise.reject(err)));
    const client = new RuntrailClient({ url: server.url, requestTimeoutMs: 1000, fetch: counting });
    const run = await client.createRun({ name: 'outage', leaseTtlMs: 20_000 });
    const changes: ServerChange[] = [];
    run.onServerChange((change) => changes.push(change));
    run.progress(1);
    await run.flush();
    const lastAnswer = Date.now();
    await server.close();
    run.progress(2);
    const flushed = run.flush();
    run.progress(3);
    // Retried, with backoff, while nobody listens: still one change.
    await waitUntil(() => failed >= 4, { what: 'the batch to be retried' });
    expect(changes.map((c) => c.state)).toEqual(['not_answering']);
    server = await startServer({ port: Number(port), dataDir: dir.path, logLevel: 'silent' });
    await flushed;
    expect(changes.map((c) => c.state)).toEqual(['not_answering', 'answering']);
    const [away, back] = changes as [Extract<ServerChange, { state: 'not_answering' }>, Extract<ServerChange, { state: 'answering' }>];
    expect((away.error as Error).name).toBe('TypeError');
    // The lease runs from the last request the server answered, not from when the outage was seen.
    expect(away.leaseExpiresAt).toBeGreaterThanOrEqual(lastAnswer - 1_000 + 20_000);
    expect(away.leaseExpiresAt).toBeLessThanOrEqual(lastAnswer + 20_000);
    expect(back.since).toBe(away.since);
    expect(back.at).toBeGreaterThan(away.since);
    expect((await client.getRun(run.id)).snapshot.progress?.done).toBe(3);
    await run.succeed();
  });

  it('a run ended elsewhere (a timeout, the reaper) aborts the signal of a busy producer with how it ended', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'ended elsewhere', leaseTtlMs: 30_000 });
    run.progress(1, 10);
    await run.flush();
    await client.api.request('finishRun', { params: { id: run.id }, body: { status: 'failed', error: { kind: 'timeout', message: 'took longer than 2 h' } } });
    run.progress(2, 10);
    const err = await run.flush().catch((e: unknown) => e);
    expect((err as RuntrailError).code).toBe('run_already_terminal');
    expect(run.signal.aborted).toBe(true);
    expect((run.signal.reason as Error).message).toContain('already ended failed (timeout: took longer than 2 h)');
    // Not a cancel to honour but an end that happened: `runtrail exec` says so and stops its command.
    expect((run.signal.reason as RunStopped).kind).toBe('ended');
  });

  it('a run ended elsewhere aborts the signal of an idle producer with how it ended, from its heartbeat', async () => {
    const client = new RuntrailClient({ url: server.url, producer: { holdHeartbeat: true } });
    const run = await client.createRun({ name: 'ended while idle', leaseTtlMs: 600_000 });
    await client.api.request('finishRun', { params: { id: run.id }, body: { status: 'failed', error: { kind: 'timeout', message: 'took longer than 2 h' } } });
    await waitUntil(() => run.signal.aborted, { what: 'the held heartbeat to bring the end' });
    expect((run.signal.reason as Error).message).toBe(`run ${run.id}: already ended failed (timeout: took longer than 2 h)`);
    expect((run.signal.reason as RunStopped).kind).toBe('ended');
  });

  it('aborts the handle signal at its next heartbeat when someone cancels the run', async () => {
    // The handle's clock is ours: its heartbeat (every leaseTtlMs / 3) comes when we move time, not after 10 real seconds.
    const clock = new ManualClock();
    const client = new RuntrailClient({ url: server.url, producer: { clock } });
    const run = await client.createRun({ name: 'cancel-me', leaseTtlMs: 30_000 });
    await client.cancelRun(run.id, 'user pressed cancel');
    clock.advance(9_999);
    expect(run.signal.aborted).toBe(false);
    clock.advance(1);
    await waitUntil(() => run.signal.aborted, { what: 'the handle to see the cancel request' });
    expect(String((run.signal.reason as Error).message)).toContain('cancel requested');
    expect((run.signal.reason as RunStopped).kind).toBe('cancel_requested');
    const ended = await run.cancelled('stopping as asked');
    expect(ended.status).toBe('cancelled');
  });

  it('a cancel while a call waits to retry ends the call failed, not left in flight for ever, and call() throws the stop', async () => {
    const client = new RuntrailClient({ url: server.url, producer: { holdHeartbeat: true } });
    const run = await client.createRun({ name: 'cancel-in-retry-wait', leaseTtlMs: 600_000 });
    let attempts = 0;
    const calling = run
      .call(
        'judge',
        async () => {
          attempts++;
          throw new Error('judge model overloaded');
        },
        { retries: 3, retryDelayMs: () => 3_600_000 },
      )
      .catch((e: unknown) => e);
    await waitUntil(() => attempts === 1, { what: 'the first attempt to fail' });
    await client.cancelRun(run.id, 'wrong dataset');
    const stopped = await calling;
    expect((stopped as RunStopped).kind).toBe('cancel_requested');
    expect(attempts).toBe(1);
    await run.flush();
    const events = await allEvents(client, run.id);
    const failed = events.filter((e) => e.type === 'call.failed').map((e) => e.data);
    expect(failed).toEqual([
      { callId: 'c1', error: 'judge model overloaded', willRetry: true },
      { callId: 'c1', error: 'stopped while waiting to retry: cancel requested: wrong dataset', willRetry: false },
    ]);
    const snapshot = foldEvents(events);
    expect(snapshot.counters.failed).toBe(1);
    expect(Object.keys(snapshot.current)).toEqual([]);
    expect((await run.cancelled('stopping as asked')).status).toBe('cancelled');
  });

  it('with holdHeartbeat, aborts its signal as the cancel is made, not at its next heartbeat; closing it ends the open heartbeat', async () => {
    const client = new RuntrailClient({ url: server.url, producer: { holdHeartbeat: true } });
    // The next plain heartbeat would come 200 s after the start.
    const run = await client.createRun({ name: 'held', leaseTtlMs: 600_000 });
    // Whether the held heartbeat is open when the cancel comes, or comes after it, the handle hears it now.
    await client.getRun(run.id);
    await client.cancelRun(run.id, 'wrong model');
    await waitUntil(() => run.signal.aborted, { what: 'the handle to hear the cancel' });
    expect(String((run.signal.reason as Error).message)).toContain('cancel requested');
    expect((await run.cancelled('stopping as asked')).status).toBe('cancelled');

    // A handle closed with its heartbeat open: the request is dropped, and nothing fails.
    const other = await client.createRun({ name: 'held-closed', leaseTtlMs: 600_000 });
    await client.getRun(other.id);
    other.close();
    await other.flush();
    expect((await other.succeed()).status).toBe('succeeded');
  });

  it('renews its lease by heartbeat every third of the lease while nothing else is sent, and stops when closed', async () => {
    const clock = new ManualClock();
    const client = new RuntrailClient({ url: server.url, producer: { clock } });
    const run = await client.createRun({ name: 'quiet-producer', leaseTtlMs: 30_000 });
    const created = await client.getRun(run.id);
    clock.advance(10_000);
    const renewed = await waitUntil(
      async () => {
        const now = await client.getRun(run.id);
        return now.heartbeatAt! > created.heartbeatAt! ? now : null;
      },
      { what: 'the first heartbeat to reach the server' },
    );
    expect(renewed.leaseExpiresAt).toBe(renewed.heartbeatAt! + 30_000);
    expect(renewed.status).toBe('running');
    run.close();
    expect(clock.pending).toBe(0);
  });
});
