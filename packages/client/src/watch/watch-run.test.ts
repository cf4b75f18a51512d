import WebSocket from 'ws';
import { getEventListeners } from 'node:events';
import { describe, expect, test } from 'vitest';
import type { RunWithObservers } from '@runtrail/protocol';
import { isExactRange, listenerLeakWarnings, progressEvents, waitFor } from '@runtrail/test-support';
import { startTestServer, testScope } from '@runtrail/test-support/server';
import { TcpProxy } from '@runtrail/test-support/tcp-proxy';
import { RunWatch, watchRun, type RunWatchState, type WatchRunOptions } from './watch-run.js';
import { watchRuns } from './watch-runs.js';
import type { WebSocketConstructor } from './types.js';
import { systemClock, type Clock } from '../clock.js';
import { RuntrailClient } from '../runtrail-client.js';
import { abortCallbackCount } from '../on-abort.js';

/** A clock that runs `factor` times faster than the wall clock. */
function fastClock(factor: number): Clock {
  const start = Date.now();
  return {
    now: () => start + (Date.now() - start) * factor,
    setTimeout: (fn, ms) => setTimeout(fn, ms / factor),
    clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  };
}

type TestServer = Awaited<ReturnType<typeof startTestServer>>;
const { cleanups, server } = testScope();

async function proxyFor(s: TestServer): Promise<TcpProxy> {
  const p = await TcpProxy.start(s.url);
  cleanups.push(() => p.close());
  return p;
}

/** Node 20 has no global WebSocket: the SDK takes the `ws` class. */
const WS = WebSocket as unknown as WebSocketConstructor;

function watch(id: string, options: WatchRunOptions): RunWatch {
  const w = watchRun(id, { WebSocket: WS, backoff: { initialMs: 50, maxMs: 500 }, maxEvents: 1_000_000, ...options });
  cleanups.push(() => w.close());
  return w;
}

function seqsOf(w: RunWatch): number[] {
  return w.getState().events.map((e) => e.seq);
}

async function serverRun(s: TestServer, id: string): Promise<RunWithObservers> {
  return s.runs.get(id);
}

/** A producer appending `batch` events every `everyMs` (a steady, realistic rate) until stopped. */
function producer(s: TestServer, runId: string, batch = 20, everyMs = 5) {
  let stop = false;
  let appended = 0;
  const done = (async () => {
    while (!stop) {
      await s.runs.appendEvents(runId, progressEvents(batch, appended));
      appended += batch;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  const handle = {
    get appended() {
      return appended;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
  // Stopped before the server closes, even when the test failed half way.
  cleanups.push(() => handle.stop());
  return handle;
}

describe('late joiner through the SDK', () => {
  for (const [name, options] of [
    ['WebSocket', {}],
    ['SSE (no WebSocket available)', { WebSocket: null }],
    ['polling', { transports: ['poll'], pollIntervalMs: 20 }],
  ] as Array<[string, Partial<WatchRunOptions>]>) {
    test(`over ${name}: gets exactly 1..5000, then live events, and the server's snapshot`, async () => {
      const s = await server();
      const { run } = await s.runs.create({ name: 'late' });
      await s.runs.appendEvents(run.id, progressEvents(5000));
      const w = watch(run.id, { url: s.url, ...options });
      await waitFor(() => w.getState().seq === 5000, { what: 'backlog' });
      await s.runs.appendEvents(run.id, progressEvents(10, 5000));
      await waitFor(() => w.getState().seq === 5010, { what: 'live' });
      expect(isExactRange(seqsOf(w), 0, 5010)).toBe(true);
      // Each event whole, runId included, though WebSocket frames leave it out of their events.
      expect(w.getState().events).toEqual(await s.store.readEvents(run.id, 0, 5010));
      expect(w.getState().snapshot).toEqual((await serverRun(s, run.id)).snapshot);
      expect(w.getState().connection).toBe(options.transports ? 'polling' : 'live');
      expect(w.getState().transport).toBe(options.transports ? 'poll' : options.WebSocket === null ? 'sse' : 'ws');
    });
  }

  test('the async iterator yields every event once, in order, and finishes at the end', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'iter' });
    await s.runs.appendEvents(run.id, progressEvents(300));
    const w = watch(run.id, { url: s.url });
    const seen: number[] = [];
    const reading = (async () => {
      for await (const e of w) seen.push(e.seq);
    })();
    await s.runs.appendEvents(run.id, progressEvents(200, 300));
    await s.runs.finish(run.id, { status: 'succeeded' });
    await reading;
    expect(isExactRange(seen, 0, 501)).toBe(true);
  });

  test('a loop that breaks early closes a watcher no one else reads, so a script can end; one with a subscriber stays open', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'break' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    // Before, the watcher stayed live after the break and its socket kept the process alive until the run ended.
    const alone = watch(run.id, { url: s.url });
    for await (const e of alone) if (e.seq === 2) break;
    expect(alone.getState()).toMatchObject({ connection: 'ended', reason: 'closed_by_client' });
    expect((await alone.done).reason).toBe('closed_by_client');
    await waitFor(async () => (await s.runs.get(run.id)).observers === 0, { what: 'the closed watcher to leave the server' });

    const shown = watch(run.id, { url: s.url });
    const unsubscribe = shown.subscribe(() => undefined);
    for await (const e of shown) if (e.seq === 2) break;
    // A page still shows it: only the loop stopped.
    expect(shown.getState().connection).not.toBe('ended');
    await s.runs.appendEvents(run.id, progressEvents(1, 3));
    await waitFor(() => shown.getState().seq === 4, { what: 'the subscribed watcher to go on' });
    unsubscribe();
  });
});

describe('a run that had ended when the watch began', () => {
  test('is read once: its fields were final when read, so the end does not read them again', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'read-once', input: { prompt: 'x'.repeat(1000) } });
    await s.runs.appendEvents(run.id, progressEvents(10));
    await s.runs.finish(run.id, { status: 'succeeded', output: { score: 0.9 } });
    const reads: string[] = [];
    const countingFetch: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      if (url.pathname === `/api/v1/runs/${run.id}`) reads.push(url.pathname);
      return fetch(input, init);
    };
    const final = await watch(run.id, { url: s.url, fetch: countingFetch }).done;
    expect(final.run?.status).toBe('succeeded');
    expect(final.run?.output).toEqual({ score: 0.9 });
    expect(final.run?.finishedAt).not.toBeNull();
    expect(final.events.length).toBe(11);
    expect(reads).toHaveLength(1);
  });
});

describe('a queued run that starts while watched', () => {
  test('shows it running, with its start time, as soon as its run.started arrives, not queued until the end', async () => {
    const s = await server({ concurrency: 1 });
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    let releaseSecond!: () => void;
    const secondHeld = new Promise<void>((r) => (releaseSecond = r));
    s.define('hold', async (ctx) => {
      ctx.progress(1, 2);
      await ((ctx.input as { n: number }).n === 1 ? firstHeld : secondHeld);
    });
    cleanups.push(() => (releaseFirst(), releaseSecond()));
    const { run: first } = await s.runs.create({ name: 'hold', input: { n: 1 }, execute: true });
    await waitFor(async () => (await serverRun(s, first.id)).status === 'running', { what: 'the first run to take the only slot' });
    const { run: second } = await s.runs.create({ name: 'hold', input: { n: 2 }, execute: true });
    const w = watch(second.id, { url: s.url });
    await waitFor(() => w.getState().connection === 'live', { what: 'the watch to be live' });
    expect(w.getState().run?.status).toBe('queued');
    releaseFirst();
    await waitFor(() => w.getState().snapshot.progress?.done === 1, { what: 'the second run to report progress' });
    expect(w.getState().run?.status).toBe('running');
    // From its run.started event, stamped as the server started it (the row's time may be a millisecond apart).
    const startedAt = (await serverRun(s, second.id)).startedAt!;
    expect(Math.abs(w.getState().run!.startedAt! - startedAt)).toBeLessThan(1000);
  });
});

describe('a run that does not exist', () => {
  test('watching it ends with run_not_found, never silence', async () => {
    const s = await server();
    const w = watch('no-such-run', { url: s.url });
    const final = await w.done;
    expect(final.connection).toBe('ended');
    expect(final.error?.code).toBe('run_not_found');
  });

  test('an id that is no id (an unset variable: undefined, empty) is refused when the watcher is made, and by the client', async () => {
    const s = await server();
    // Before: the watcher ended later with "buildPath(getRun): missing param id", or the server's "run  does not exist".
    expect(() => watchRun(undefined as unknown as string, { url: s.url })).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: "invalid watchRun arguments: runId: must be a run's id, not undefined" }),
    );
    expect(() => watchRun('', { url: s.url })).toThrow("invalid watchRun arguments: runId: must be a run's id, not an empty string");
    const rt = new RuntrailClient({ url: s.url, startTimeoutMs: 5_000 });
    await expect(rt.getRun('')).rejects.toMatchObject({ code: 'invalid_request', message: 'invalid getRun path: id: must be a non-empty string, not an empty string' });
    // Not retried for startTimeoutMs as if the server were away.
    await expect(rt.attach(undefined as unknown as string)).rejects.toMatchObject({ code: 'invalid_request', message: 'invalid getRun path: id: must be a non-empty string, not undefined' });
  });

  test('an after that is no seq (a string from argv or a query, NaN, negative) is refused when the watcher is made, over every transport alike', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'resume' });
    await s.runs.appendEvents(run.id, progressEvents(2));
    // Before: over WebSocket the watcher ended with the server's "not a client message of the stream
    // protocol: after: …", while over SSE '1' was taken and the state's seq was the string "1".
    for (const transports of [['ws'], ['sse'], ['poll']] as const) {
      expect(() => watchRun(run.id, { url: s.url, WebSocket: WS, transports: [...transports], after: '1' as unknown as number })).toThrow(
        expect.objectContaining({ code: 'invalid_request', message: 'invalid watchRun arguments: after: must be a seq, a whole number >= 0 (0 replays the whole log), not "1" (a string)' }),
      );
    }
    for (const after of [Number.NaN, -1, 1.5]) {
      expect(() => watchRun(run.id, { url: s.url, after })).toThrow(`invalid watchRun arguments: after: must be a seq, a whole number >= 0 (0 replays the whole log), not ${after}`);
    }
    expect(() => watchRun(run.id, undefined as unknown as WatchRunOptions)).toThrow("invalid watchRun arguments: options: must be an object with the server's url");
    // A seq it may take still resumes there.
    const w = watchRun(run.id, { url: s.url, WebSocket: WS, after: 1 });
    cleanups.push(() => w.close());
    await waitFor(() => w.getState().seq === 2, { what: 'the event after seq 1' });
    expect(w.getState().events.map((e) => e.seq)).toEqual([2]);
  });
});

describe('polling a run of large events', () => {
  test('reads page after page at once when the server cuts pages by bytes', async () => {
    // Pages of 64 KiB (3 of these 20 KB events), and a poll interval of a minute.
    const s = await server({ readPageBytes: 65_536 });
    const { run } = await s.runs.create({ name: 'large events' });
    await s.runs.appendEvents(run.id, Array.from({ length: 30 }, (_, i) => ({ type: 'x.big', data: { i, text: 'x'.repeat(20_000) } })));
    const w = watch(run.id, { url: s.url, transports: ['poll'], pollIntervalMs: 60_000, after: 0 });
    // Before: a page short of 5,000 events read as "nothing more yet", so each next page came a poll interval (here a minute) later.
    await waitFor(() => w.getState().events.at(-1)?.seq === 30, { timeoutMs: 10_000, what: 'the watcher to read every page of the running run' });
    expect(seqsOf(w)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(w.getState().connection).toBe('polling');
  });
});

describe('a position past the end of the run', () => {
  // Before: on a running run the watcher reconnected for ever (WS, SSE) or polled in silence; on an ended
  // one it ended cleanly reporting the bad position as the run's seq.
  for (const transport of ['ws', 'sse', 'poll'] as const) {
    test(`watching from it ends with invalid_request naming the run's last seq, running or ended (${transport})`, async () => {
      const s = await server();
      const { run: running } = await s.runs.create({ name: 'running' });
      await s.runs.appendEvents(running.id, progressEvents(3));
      const { run: ended } = await s.runs.create({ name: 'ended' });
      await s.runs.appendEvents(ended.id, progressEvents(2));
      await s.runs.finish(ended.id, { status: 'succeeded' });
      for (const [run, last] of [[running, 3], [ended, 3]] as const) {
        const final = await watch(run.id, { url: s.url, after: 100, transports: [transport] }).done;
        expect(final.connection).toBe('ended');
        expect(final.error?.code).toBe('invalid_request');
        expect(final.error?.message).toBe(`after=100 is past the end of run ${run.id}: its last event is seq ${last}; watch from at most ${last} (0 for the whole log)`);
      }
    });
  }
});

describe('reconnect', () => {
  async function outage(kind: 'server-close' | 'tcp-kill', outageMs: number, transport: Partial<WatchRunOptions>, clock: Clock = systemClock, minAppended = 0) {
    const s = await server();
    const proxy = await proxyFor(s);
    const { run } = await s.runs.create({ name: `outage-${kind}` });
    const states = new Set<string>();
    const w = watch(run.id, { url: proxy.url, backoff: { initialMs: 50, maxMs: 1000 }, clock, ...transport });
    w.subscribe(() => states.add(w.getState().connection));
    const p = producer(s, run.id);
    await waitFor(() => w.getState().seq > 200, { what: 'watcher live mid-stream' });

    const refusedBefore = proxy.refused;
    if (kind === 'server-close') {
      // The server ends the stream cleanly; then the network goes away too
      // (else the watcher would come straight back over a pooled HTTP connection).
      proxy.block();
      expect(s.stream.disconnectAll('close')).toBeGreaterThan(0);
      await waitFor(() => w.getState().connection !== 'live', { what: 'watcher saw the close' });
      proxy.cut();
    } else proxy.cut();
    const cutAt = clock.now();
    const seqAtCut = w.getState().seq;
    const appendedAtCut = p.appended;
    // The outage lasts until the watcher has tried to come back at least once, outageMs
    // passed on its clock, and the producer appended at least minAppended meanwhile.
    await waitFor(() => proxy.refused > refusedBefore && clock.now() - cutAt >= outageMs && p.appended - appendedAtCut >= minAppended, {
      timeoutMs: 20_000,
      what: 'outage',
    });
    expect(w.getState().connection).not.toBe('live');
    proxy.allow();
    // Back and moving while the producer still appends; then the producer stops and the run ends.
    await waitFor(() => w.getState().seq > seqAtCut + 100, { timeoutMs: 20_000, what: 'watcher back and moving' });
    await p.stop();
    await s.runs.finish(run.id, { status: 'succeeded', output: { total: p.appended } });
    const final = await w.done;
    const expected = await serverRun(s, run.id);
    expect(final.connection).toBe('ended');
    expect(isExactRange(seqsOf(w), 0, expected.seq)).toBe(true);
    expect(final.snapshot).toEqual(expected.snapshot);
    expect(final.run?.status).toBe('succeeded');
    expect(states.has('reconnecting')).toBe(true);
    return { appendedDuringOutage: expected.seq - seqAtCut };
  }

  test('after a server-side close and a 2 s outage, over WebSocket: every seq once, same snapshot', async () => {
    await outage('server-close', 2000, {});
  });

  test('after a killed TCP connection and a 2 s outage, over WebSocket: every seq once, same snapshot', async () => {
    await outage('tcp-kill', 2000, {});
  });

  test('over SSE, a server that cannot be reached is named in the watcher\'s error, with why, not just "fetch failed"', async () => {
    const s = await server();
    const {
      run: { id },
    } = await s.runs.create({ name: 'sse unreachable' });
    const proxy = await proxyFor(s);
    const w = watch(id, { url: proxy.url, transports: ['sse'] });
    await waitFor(() => w.getState().connection === 'live', { what: 'the stream' });
    proxy.cut();
    // The stream's own reconnect fails first (the HTTP reads already said which server and why).
    await waitFor(() => /\/stream|^fetch failed$/.test(w.getState().error?.message ?? ''), { what: 'the stream to fail to reconnect' });
    expect(w.getState().error?.message).toMatch(new RegExp(`^cannot reach the runtrail server: GET ${proxy.url}/api/v1/runs/${id}/stream\\S* failed \\((ECONNREFUSED|ECONNRESET)\\)$`));
  });

  test('after a killed TCP connection and a 2 s outage, over SSE: every seq once, same snapshot', async () => {
    await outage('tcp-kill', 2000, { WebSocket: null });
  });

  test('after a server-side close and a 30 s outage (falling back while down): every seq once, same snapshot', async () => {
    // The watcher's clock runs 15x fast: its backoff, transport pauses and polling see 30 s pass in 2 s.
    // (Its idle watchdog is set out of reach: the server's keepalives keep wall-clock time.)
    const { appendedDuringOutage } = await outage(
      'server-close',
      30_000,
      { backoff: { initialMs: 100, maxMs: 2000 }, transportRetryMs: 1000, idleTimeoutMs: 3_600_000 },
      fastClock(15),
      1000,
    );
    expect(appendedDuringOutage).toBeGreaterThan(1000);
  });
});

describe('a connection that dies silently', () => {
  for (const [name, options] of [
    ['WebSocket', {}],
    ['SSE', { WebSocket: null }],
  ] as Array<[string, Partial<WatchRunOptions>]>) {
    test(`over ${name}: the watcher notices the silence, reconnects and misses nothing`, async () => {
      const s = await server({ streamPingIntervalMs: 100 });
      const proxy = await proxyFor(s);
      const { run } = await s.runs.create({ name: 'black-hole' });
      const w = watch(run.id, { url: proxy.url, idleTimeoutMs: 600, ...options });
      await waitFor(() => w.getState().connection === 'live');
      await s.runs.appendEvents(run.id, progressEvents(10));
      await waitFor(() => w.getState().seq === 10);
      const acceptedBefore = proxy.accepted;
      proxy.freeze();
      await s.runs.appendEvents(run.id, progressEvents(10, 10));
      await waitFor(() => w.getState().seq === 20, { what: 'caught up over a new connection' });
      expect(proxy.accepted).toBeGreaterThan(acceptedBefore);
      expect(isExactRange(seqsOf(w), 0, 20)).toBe(true);
    });
  }
});

describe('lastHeardAt', () => {
  for (const [name, options] of [
    ['WebSocket', { transports: ['ws'] }],
    ['SSE', { transports: ['sse'] }],
    ['polling', { transports: ['poll'], pollIntervalMs: 50 }],
  ] as Array<[string, Partial<WatchRunOptions>]>) {
    test(`over ${name}: it follows what arrives, keepalives and empty polls included, and stays at the last answer while the watcher reconnects through a proxy gone silent`, async () => {
      const s = await server({ streamPingIntervalMs: 100 });
      const proxy = await proxyFor(s);
      const { run } = await s.runs.create({ name: 'heard' });
      // A silent connection is noticed an idle timeout later (a poll: a request timeout later).
      const w = watch(run.id, { url: proxy.url, idleTimeoutMs: 600, requestTimeoutMs: 600, backoff: { initialMs: 50, maxMs: 200 }, ...options });
      expect(w.getState().lastHeardAt).toBeNull();
      await waitFor(() => w.getState().connection === (name === 'polling' ? 'polling' : 'live'), { what: 'connected' });
      await s.runs.appendEvents(run.id, progressEvents(10));
      await waitFor(() => w.getState().seq === 10, { what: 'the events' });
      // Nothing more is appended: what arrives now is keepalives (pongs, SSE comments) or empty polls.
      const afterEvents = Date.now();
      await waitFor(() => (w.getState().lastHeardAt ?? 0) > afterEvents, { what: 'a keepalive or an empty poll to be heard' });

      const heardBefore = w.getState().lastHeardAt!;
      proxy.block();
      proxy.freeze();
      const frozenAt = Date.now();
      await waitFor(() => w.getState().connection === 'reconnecting', { what: 'the watcher to notice the silence' });
      const noticedAt = Date.now();
      const { lastHeardAt } = w.getState();
      expect(lastHeardAt).toBeGreaterThanOrEqual(heardBefore);
      expect(lastHeardAt).toBeLessThanOrEqual(frozenAt);
      // A stream notices only after its idle timeout of silence: "as of" the noticing would have been that much too late.
      if (name !== 'polling') expect(noticedAt - lastHeardAt!).toBeGreaterThanOrEqual(600);
      // Refused reconnects hear nothing either.
      await waitFor(() => proxy.refused > 0, { what: 'a refused reconnect' });
      expect(w.getState().lastHeardAt).toBe(lastHeardAt);

      proxy.allow();
      const allowedAt = Date.now();
      await waitFor(() => (w.getState().lastHeardAt ?? 0) >= allowedAt, { what: 'the server heard again' });
      w.close();
    });
  }
});

describe('transport fallback', () => {
  test('WebSocket unavailable -> SSE; SSE refused by a proxy -> polling; the watcher still ends complete', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'fallback' });
    await s.runs.appendEvents(run.id, progressEvents(50));
    // A network in between that refuses WebSocket upgrades and event streams (some corporate proxies do).
    const refusing: typeof fetch = (input, init) => {
      const url = String(input);
      if (url.includes('/stream')) return Promise.resolve(new Response('blocked by proxy', { status: 502 }));
      return fetch(input, init);
    };
    class RefusedWebSocket extends (WebSocket as unknown as new (url: string) => WebSocket) {
      constructor(url: string) {
        super(url.replace('/api/v1/stream', '/nowhere'));
      }
    }
    const seenTransports = new Set<string>();
    const w = watch(run.id, {
      url: s.url,
      WebSocket: RefusedWebSocket as unknown as WebSocketConstructor,
      fetch: refusing,
      pollIntervalMs: 20,
    });
    w.subscribe(() => seenTransports.add(`${w.getState().transport}:${w.getState().connection}`));
    await waitFor(() => w.getState().connection === 'polling' && w.getState().seq === 50, { what: 'polling' });
    expect([...seenTransports].some((t) => t.startsWith('ws:'))).toBe(true);
    expect([...seenTransports].some((t) => t.startsWith('sse:'))).toBe(true);
    await s.runs.finish(run.id, { status: 'succeeded' });
    const final = await w.done;
    expect(isExactRange(seqsOf(w), 0, 51)).toBe(true);
    expect(final.snapshot).toEqual((await serverRun(s, run.id)).snapshot);
  });

  test('when its server goes away, a polling watcher says it is reconnecting, never "polling" (which means it receives)', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'server-away' });
    const w = watch(run.id, { url: s.url, transports: ['poll'], pollIntervalMs: 20, backoff: { initialMs: 10, maxMs: 20 } });
    await waitFor(() => w.getState().connection === 'polling', { what: 'polling' });
    const seen: string[] = [];
    w.subscribe(() => seen.push(w.getState().connection));
    await s.close();
    await waitFor(() => seen.filter((c) => c === 'reconnecting').length >= 3, { what: 'three failed polls' });
    const away = seen.slice(seen.indexOf('reconnecting'));
    expect(away).not.toContain('polling');
  });

  test('a watcher that fell back to polling comes back to WebSocket when it works again', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'comeback' });
    let refuse = true;
    class FlakyWebSocket extends (WebSocket as unknown as new (url: string) => WebSocket) {
      constructor(url: string) {
        super(refuse ? url.replace('/api/v1/stream', '/nowhere') : url);
      }
    }
    const w = watch(run.id, {
      url: s.url,
      WebSocket: FlakyWebSocket as unknown as WebSocketConstructor,
      transports: ['ws', 'poll'],
      transportRetryMs: 300,
      pollIntervalMs: 20,
    });
    await waitFor(() => w.getState().connection === 'polling', { what: 'polling' });
    refuse = false;
    await waitFor(() => w.getState().transport === 'ws' && w.getState().connection === 'live', { what: 'back on ws' });
    await s.runs.appendEvents(run.id, progressEvents(5));
    await waitFor(() => w.getState().seq === 5);
  });
});

describe('transports that leave nothing to connect with', () => {
  test("only 'ws' with no WebSocket class (Node 20 without the ws package), a misspelt or an empty list: refused when the watcher is made, naming why", async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'no transport' });
    const make = (options: Partial<WatchRunOptions>) => () => watchRun(run.id, { url: s.url, WebSocket: null, ...options });
    expect(make({ transports: ['ws'] })).toThrow(/no WebSocket class.*import WebSocket from 'ws'/);
    expect(make({ transports: ['websocket' as 'ws', 'poll'] })).toThrow(/unknown transport "websocket"/);
    expect(make({ transports: [] })).toThrow(/the list is empty/);
    expect(() => watchRuns({ url: s.url, WebSocket: null, transports: ['ws'] })).toThrow(/no WebSocket class/);
    // Without a WebSocket class the defaults still work: over SSE.
    await s.runs.appendEvents(run.id, progressEvents(3));
    await s.runs.finish(run.id, { status: 'succeeded' });
    const w = watch(run.id, { url: s.url, WebSocket: null });
    const final = await w.done;
    expect(final.transport).toBe('sse');
    expect(final.seq).toBe(4);
  });
});

describe('after the server was away', () => {
  test('a watcher that fell back to polling while nothing answered is back on WebSocket as soon as the server is, not after transportRetryMs', async () => {
    const s = await server();
    const proxy = await proxyFor(s);
    const { run } = await s.runs.create({ name: 'restarted' });
    const w = watch(run.id, { url: proxy.url, backoff: { initialMs: 20, maxMs: 200 }, transportRetryMs: 3_600_000, pollIntervalMs: 50 });
    await waitFor(() => w.getState().connection === 'live' && w.getState().transport === 'ws', { what: 'live over WebSocket' });
    // The server goes away: every transport fails in turn until the watcher is down to polling.
    proxy.cut();
    await waitFor(() => w.getState().transport === 'poll', { timeoutMs: 20_000, what: 'the watcher down to polling' });
    proxy.allow();
    // A pause of an hour for transports that do not work here must not keep it polling now that the server answers.
    await waitFor(() => w.getState().transport === 'ws' && w.getState().connection === 'live', { what: 'back on WebSocket' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    await waitFor(() => w.getState().seq === 3, { what: 'events after the return' });
    w.close();
  });

  test('one that fell back while the server answered 503 (stopping, starting) is back on WebSocket as soon as it serves, even when its first poll is answered', async () => {
    const s = await server();
    const proxy = await proxyFor(s);
    const { run } = await s.runs.create({ name: 'restarting' });
    const w = watch(run.id, { url: proxy.url, backoff: { initialMs: 20, maxMs: 200 }, transportRetryMs: 3_600_000, pollIntervalMs: 50 });
    await waitFor(() => w.getState().connection === 'live' && w.getState().transport === 'ws', { what: 'live over WebSocket' });
    // The server comes back just as the watcher falls back to polling: polling never fails, so only
    // SSE's 503s say the server was away (they used to count as SSE not working here: an hour of polling).
    let fellBackToPolling = false;
    const off = w.subscribe(() => {
      const state = w.getState();
      if (!fellBackToPolling && state.transport === 'poll' && state.reason === 'fallback') {
        fellBackToPolling = true;
        proxy.allow();
      }
    });
    cleanups.push(off);
    proxy.answerUnavailable();
    await waitFor(() => fellBackToPolling, { timeoutMs: 20_000, what: 'the fallback to polling' });
    await waitFor(() => w.getState().transport === 'ws' && w.getState().connection === 'live', { what: 'back on WebSocket' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    await waitFor(() => w.getState().seq === 3, { what: 'events after the return' });
    w.close();
  });
});

describe('giveUpAfterMs', () => {
  test('a watcher whose server stays away stops with unavailable naming the server and the option: done resolves, a for-await loop throws', async () => {
    const s = await server();
    const proxy = await proxyFor(s);
    const { run } = await s.runs.create({ name: 'abandoned' });
    await s.runs.appendEvents(run.id, progressEvents(2));
    const w = watch(run.id, { url: proxy.url, giveUpAfterMs: 400, backoff: { initialMs: 20, maxMs: 100 } });
    const loop = (async () => {
      for await (const event of w) void event;
    })();
    await waitFor(() => w.getState().connection === 'live' && w.getState().seq === 2, { what: 'live' });
    proxy.cut();
    const final = await w.done;
    expect(final.connection).toBe('ended');
    expect(final.error?.code).toBe('unavailable');
    expect(final.error?.message).toMatch(new RegExp(`^no answer from ${proxy.url.replace(/[.]/g, '\\.')} for 400 ms \\(.+\\); gave up \\(giveUpAfterMs\\)$`));
    expect(final.error?.details).toMatchObject({ reason: 'gave_up', giveUpAfterMs: 400 });
    await expect(loop).rejects.toMatchObject({ code: 'unavailable' });
    // It stopped: the server back does not bring it back, and it has kept what it had.
    proxy.allow();
    expect(w.getState().seq).toBe(2);
  });

  test('a server that answers again within the time keeps the watcher going; one that never answered is given up on too', async () => {
    const s = await server();
    const proxy = await proxyFor(s);
    const { run } = await s.runs.create({ name: 'blip' });
    const w = watch(run.id, { url: proxy.url, giveUpAfterMs: 5_000, backoff: { initialMs: 20, maxMs: 50 } });
    await waitFor(() => w.getState().connection === 'live', { what: 'live' });
    proxy.cut();
    await waitFor(() => w.getState().connection === 'reconnecting', { what: 'reconnecting' });
    proxy.allow();
    await waitFor(() => w.getState().connection === 'live', { what: 'live again' });
    await s.runs.appendEvents(run.id, progressEvents(3));
    await s.runs.finish(run.id, { status: 'succeeded' });
    const final = await w.done;
    expect(final.error).toBeNull();
    expect(final.seq).toBe(4);

    proxy.cut();
    const never = watch(run.id, { url: proxy.url, giveUpAfterMs: 300, backoff: { initialMs: 20, maxMs: 50 } });
    expect((await never.done).error?.message).toContain('gave up (giveUpAfterMs)');
    const list = watchRuns({ url: proxy.url, WebSocket: WS, giveUpAfterMs: 300, backoff: { initialMs: 20, maxMs: 50 } });
    cleanups.push(() => list.close());
    await waitFor(() => list.getState().connection === 'ended', { what: 'the list given up on' });
    expect(list.getState().error?.message).toContain('gave up (giveUpAfterMs)');
  });

  test('a value that is no positive number of ms is refused when the watcher is made, naming it', async () => {
    const s = await server();
    for (const bad of [0, -1, Number.NaN, Infinity, '30s' as unknown as number]) {
      expect(() => watchRun('r', { url: s.url, WebSocket: WS, giveUpAfterMs: bad }), String(bad)).toThrow(/giveUpAfterMs: a number of milliseconds above 0/);
    }
  });
});

describe('gaps and duplicates', () => {
  test('a lost frame is detected as a gap and refetched; replayed frames are dropped', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'lossy' });
    let frames = 0;
    // A lossy, repeating network element: drops the 3rd events frame, repeats the 5th.
    class LossyWebSocket extends (WebSocket as unknown as new (url: string) => WebSocket) {
      set onmessage(handler: ((e: { data: unknown }) => void) | null) {
        super.onmessage = handler
          ? (e: { data: unknown }) => {
              if (String(e.data).startsWith('{"type":"events"')) {
                frames++;
                if (frames === 3) return;
                if (frames === 5) handler(e);
              }
              handler(e);
            }
          : null;
      }
      get onmessage() {
        return super.onmessage;
      }
    }
    const w = watch(run.id, { url: s.url, WebSocket: LossyWebSocket as unknown as WebSocketConstructor });
    await waitFor(() => w.getState().connection === 'live');
    // The server may merge appends into one frame (more so on a loaded machine): append until five frames went through.
    let appended = 0;
    await waitFor(
      async () => {
        if (frames >= 5) return true;
        await s.runs.appendEvents(run.id, progressEvents(10, appended));
        appended += 10;
        return false;
      },
      { what: 'five events frames through the lossy socket' },
    );
    await waitFor(() => w.getState().seq === appended, { what: `all ${appended}` });
    expect(isExactRange(seqsOf(w), 0, appended)).toBe(true);
    expect(w.getState().snapshot).toEqual((await serverRun(s, run.id)).snapshot);
  });
});

describe('watcher counts', () => {
  test('with observers: true, state.observers follows the watchers on the server, pushed over WebSocket or SSE; null without it, while disconnected and after the end', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'counted' });
    const a = watch(run.id, { url: s.url, observers: true });
    await waitFor(() => a.getState().observers === 1, { what: 'a counts itself' });
    const plain = watch(run.id, { url: s.url });
    await waitFor(() => a.getState().observers === 2, { what: 'a counts the plain watcher' });
    const overSse = watch(run.id, { url: s.url, observers: true, WebSocket: null });
    await waitFor(() => a.getState().observers === 3 && overSse.getState().observers === 3, { what: 'both count the SSE watcher' });
    const polling = watch(run.id, { url: s.url, observers: true, transports: ['poll'] });
    await waitFor(() => polling.getState().connection === 'polling', { what: 'the polling watcher connected' });
    // Not asked for, or polling (no stream to push it): not known.
    expect(plain.getState().observers).toBeNull();
    expect(polling.getState().observers).toBeNull();
    plain.close();
    await waitFor(() => a.getState().observers === 2 && overSse.getState().observers === 2, { what: 'both see the plain watcher leave' });

    // A dropped connection: no count while away (it would be stale), the fresh one once back. Seen
    // through its state changes: it may be live again before a poll of its state could catch it away.
    const away: Array<number | null> = [];
    const stopWatching = a.subscribe(() => {
      if (a.getState().connection !== 'live') away.push(a.getState().observers);
    });
    expect(s.stream.disconnectAll('close')).toBeGreaterThan(0);
    await waitFor(() => away.length > 0, { what: 'a saw the close' });
    stopWatching();
    expect(away.every((observers) => observers === null)).toBe(true);
    await waitFor(() => a.getState().connection === 'live' && overSse.getState().connection === 'live' && a.getState().observers === 2, {
      what: 'both back and counted',
    });

    await s.runs.finish(run.id, { status: 'succeeded' });
    expect((await a.done).observers).toBeNull();
  });
});

describe('terminal through the SDK', () => {
  test('after finish the watcher ends with the terminal snapshot; one that connects after the end gets the full run and ends', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'fin' });
    const live = watch(run.id, { url: s.url });
    const liveSse = watch(run.id, { url: s.url, WebSocket: null });
    await waitFor(() => live.getState().connection === 'live' && liveSse.getState().connection === 'live');
    await s.runs.appendEvents(run.id, [
      { type: 'phase', data: { name: 'load', status: 'started' } },
      { type: 'call.started', data: { callId: 'c1', label: 'x' } },
      { type: 'call.failed', data: { callId: 'c1', error: 'nope', willRetry: false } },
      { type: 'progress', data: { done: 3, total: 10 } },
    ]);
    await s.runs.finish(run.id, { status: 'failed', error: { message: 'gave up' }, output: { partial: true } });
    const expected = await serverRun(s, run.id);
    for (const w of [live, liveSse, watch(run.id, { url: s.url }), watch(run.id, { url: s.url, transports: ['poll'] })]) {
      const final = await w.done;
      expect(final.connection).toBe('ended');
      expect(final.error).toBeNull();
      expect(final.snapshot).toEqual(expected.snapshot);
      expect(final.snapshot.terminal?.status).toBe('failed');
      expect(final.run).toMatchObject({ status: 'failed', finishedAt: expected.finishedAt, error: expected.error });
      expect(isExactRange(seqsOf(w), 0, 5)).toBe(true);
    }
  });

  test('fromSnapshot starts at the persisted snapshot without replaying history', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'snap' });
    await s.runs.appendEvents(run.id, progressEvents(1000));
    const w = watch(run.id, { url: s.url, fromSnapshot: true });
    await waitFor(() => w.getState().connection === 'live');
    expect(w.getState().events).toHaveLength(0);
    await s.runs.appendEvents(run.id, progressEvents(2, 1000));
    await waitFor(() => w.getState().seq === 1002);
    expect(seqsOf(w)).toEqual([1001, 1002]);
    expect(w.getState().snapshot).toEqual((await serverRun(s, run.id)).snapshot);
  });

  test('a watcher that starts at or after the end (fromSnapshot, after=N) ends at once with the terminal state', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'ended-early' });
    await s.runs.appendEvents(run.id, progressEvents(10));
    await s.runs.finish(run.id, { status: 'succeeded' });
    const expected = await serverRun(s, run.id);
    for (const options of [{ fromSnapshot: true }, { after: 11 }, { after: 11, transports: ['poll'] as const }, { after: 11, WebSocket: null }]) {
      const final = await watch(run.id, { url: s.url, ...options, transports: options.transports ? [...options.transports] : undefined }).done;
      expect(final.connection).toBe('ended');
      expect(final.error).toBeNull();
      expect(final.run?.status).toBe('succeeded');
      if (options.fromSnapshot) expect(final.snapshot).toEqual(expected.snapshot);
    }
  });

  test('state.events keeps only the latest maxEvents', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'bounded' });
    await s.runs.appendEvents(run.id, progressEvents(3000));
    const w = watch(run.id, { url: s.url, maxEvents: 100 });
    await waitFor(() => w.getState().events.at(-1)?.seq === 3000);
    expect(seqsOf(w)).toEqual(Array.from({ length: 100 }, (_, i) => 2901 + i));
  });
});

describe('a run longer than the watcher keeps', () => {
  /** A fetch that counts the events it carried: SSE `run-event`s and the events of HTTP reads. */
  function countingFetch(): { fetch: typeof fetch; received: () => number } {
    let received = 0;
    const counting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const url = String(input);
      if (url.includes('/stream') && response.body) {
        const decoder = new TextDecoder();
        const counted = response.body.pipeThrough(
          new TransformStream({
            transform: (chunk, c) => {
              received += decoder.decode(chunk, { stream: true }).split('event: run-event').length - 1;
              c.enqueue(chunk);
            },
          }),
        );
        return new Response(counted, { status: response.status, headers: response.headers });
      }
      if (/\/events\?/.test(url)) received += ((await response.clone().json()) as { events: unknown[] }).events.length;
      return response;
    };
    return { fetch: counting, received: () => received };
  }

  test("a page's watcher is sent only the events it keeps, shows the run's counters at once, and follows live", async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'long eval' });
    await s.runs.appendEvents(run.id, callEvents(900));
    const before = await serverRun(s, run.id);
    expect(before.seq).toBeGreaterThan(3000);

    const counted = countingFetch();
    const w = watch(run.id, { url: s.url, WebSocket: null, fetch: counted.fetch, maxEvents: 100 });
    const states: RunWatchState[] = [];
    w.subscribe(() => states.push(w.getState()));
    await waitFor(() => w.getState().connection === 'live', { what: 'the watcher is live' });
    // The first state with the run already shows the whole log's counters, before any event is read.
    const first = states.find((st) => st.run !== null)!;
    expect(first.snapshot.counters).toEqual(before.snapshot.counters);
    expect(first.events).toEqual([]);
    expect(seqsOf(w)).toEqual(Array.from({ length: 100 }, (_, i) => before.seq - 99 + i));

    const live = callEvents(5, 900);
    await s.runs.appendEvents(run.id, live);
    await waitFor(() => w.getState().seq === before.seq + live.length, { what: 'the live events arrived' });
    expect(w.getState().snapshot).toEqual((await serverRun(s, run.id)).snapshot);
    expect(seqsOf(w)).toEqual(Array.from({ length: 100 }, (_, i) => before.seq + live.length - 99 + i));
    // Not the 3,000-odd events of the whole log: the 100 kept, then the live ones.
    expect(counted.received()).toBe(100 + live.length);
  });

  test('an async iterator made before it connects still gets every event from seq 1', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'long eval' });
    await s.runs.appendEvents(run.id, progressEvents(300));
    await s.runs.finish(run.id, { status: 'succeeded' });
    const w = watch(run.id, { url: s.url, maxEvents: 100 });
    const seen: number[] = [];
    for await (const e of w) seen.push(e.seq);
    expect(isExactRange(seen, 0, 301)).toBe(true);
    expect(seqsOf(w)).toEqual(Array.from({ length: 100 }, (_, i) => 202 + i));
  });
});

/** `n` LLM-style calls from call number `start`: every 5th fails once and is retried (about 3.4 events a call). */
function callEvents(n: number, start = 0): Array<{ type: string; data: Record<string, unknown> }> {
  const events: Array<{ type: string; data: Record<string, unknown> }> = [];
  for (let i = start; i < start + n; i++) {
    const callId = `c${i}`;
    events.push({ type: 'call.started', data: { callId, label: `doc ${i}` } });
    if (i % 5 === 0) {
      events.push({ type: 'call.failed', data: { callId, error: 'rate limited', willRetry: true } });
      events.push({ type: 'call.retried', data: { callId, attempt: 2 } });
    }
    events.push({ type: 'call.succeeded', data: { callId, durationMs: 5 } });
    events.push({ type: 'progress', data: { done: i + 1 } });
  }
  return events;
}

/**
 * Every number a watcher exposes, in both places it exposes them (its
 * snapshot and its run's snapshot), never drops below anything it exposed
 * before: what a page bound to it renders never goes down.
 */
function expectNeverDecreasing(states: RunWatchState[]): void {
  const highest = new Map<string, number>();
  states.forEach((state, i) => {
    const values: Array<[string, number]> = [['seq', state.seq]];
    for (const snap of [state.snapshot, state.run?.snapshot]) {
      if (!snap) continue;
      values.push(['snapshot.seq', snap.seq], ['ok', snap.counters.ok], ['failed', snap.counters.failed], ['retries', snap.counters.retries], ['done', snap.progress?.done ?? 0]);
    }
    if (state.run) values.push(['run.seq', state.run.seq]);
    for (const [name, value] of values) {
      const before = highest.get(name) ?? 0;
      if (value < before) throw new Error(`state ${i} of ${states.length}: ${name} went back from ${before} to ${value}`);
      highest.set(name, value);
    }
  });
}

describe('a reload never shows lower numbers (issue 10)', () => {
  for (const [name, options] of [
    ['WebSocket', {}],
    ['SSE', { WebSocket: null }],
  ] as Array<[string, Partial<WatchRunOptions>]>) {
    test(`over ${name}: watchers of a 1,360-event run, taken mid-run and after the end, whose backlog arrives in several frames, never expose a lower counter`, async () => {
      const s = await server();
      const { run } = await s.runs.create({ name: 'reload' });
      await s.runs.appendEvents(run.id, callEvents(400));
      const persisted = await serverRun(s, run.id);
      expect(persisted.seq).toBeGreaterThanOrEqual(1300);

      let frames = 0;
      const countingFetch: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        if (!String(input).includes('/stream') || !response.body) return response;
        // Count the chunks the event stream arrives in.
        const counted = response.body.pipeThrough(new TransformStream({ transform: (chunk, c) => (frames++, c.enqueue(chunk)) }));
        return new Response(counted, { status: response.status, headers: response.headers });
      };
      class CountingWebSocket extends (WebSocket as unknown as new (url: string) => WebSocket) {
        constructor(url: string) {
          super(url);
          this.addEventListener('message', (e) => {
            if (String(e.data).startsWith('{"type":"events"')) frames++;
          });
        }
      }
      const observe = (w: RunWatch): RunWatchState[] => {
        const states = [w.getState()];
        w.subscribe(() => states.push(w.getState()));
        return states;
      };

      // Mid-run: the producer keeps appending while the watcher replays.
      const midRun = watch(run.id, { url: s.url, ...options, ...(options.WebSocket === null ? { fetch: countingFetch } : { WebSocket: CountingWebSocket as unknown as WebSocketConstructor }) });
      const midStates = observe(midRun);
      await s.runs.appendEvents(run.id, callEvents(10, 400));
      await waitFor(() => midRun.getState().events.at(-1)?.seq === persisted.seq + 34, { what: 'the mid-run watcher caught up' });
      expect(frames).toBeGreaterThan(1);
      expect(midStates.find((st) => st.run !== null)?.snapshot.counters.ok).toBeGreaterThanOrEqual(persisted.snapshot.counters.ok);

      await s.runs.finish(run.id, { status: 'succeeded' });
      const ended = await serverRun(s, run.id);
      // After the end: a fresh watcher (a reload of a finished run's page).
      frames = 0;
      const afterEnd = watch(run.id, { url: s.url, ...options, ...(options.WebSocket === null ? { fetch: countingFetch } : { WebSocket: CountingWebSocket as unknown as WebSocketConstructor }) });
      const endStates = observe(afterEnd);
      for (const w of [midRun, afterEnd]) {
        const final = await w.done;
        expect(final.snapshot).toEqual(ended.snapshot);
        expect(isExactRange(seqsOf(w), 0, ended.seq)).toBe(true);
      }
      expect(frames).toBeGreaterThan(1);
      expectNeverDecreasing(midStates);
      expectNeverDecreasing(endStates);
      expect(endStates.find((st) => st.run !== null)?.snapshot).toEqual(ended.snapshot);
    });
  }
});

describe('stopping watchers with an AbortSignal', () => {
  test('one signal stops many watchers and a for-await loop: done says closed_by_client, the server counts no watcher left', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'watched by many' });
    const stop = new AbortController();
    const many = Array.from({ length: 20 }, () => watch(run.id, { url: s.url, signal: stop.signal }));
    const seen: number[] = [];
    const loop = (async () => {
      for await (const event of watch(run.id, { url: s.url, signal: stop.signal })) seen.push(event.seq);
      return seen;
    })();
    await s.runs.appendEvents(run.id, progressEvents(3));
    // The loop's own copy too: its watcher may connect last, and abort before it has handed the loop anything.
    await waitFor(() => many.every((w) => w.getState().seq === 3) && seen.length === 3, { what: 'every watcher and the loop to see the events' });
    await waitFor(async () => (await s.runs.get(run.id)).observers === 21, { what: 'all 21 watchers connected' });
    stop.abort();
    const finals = await Promise.all(many.map((w) => w.done));
    expect(finals.every((f) => f.connection === 'ended' && f.reason === 'closed_by_client')).toBe(true);
    expect(await loop).toEqual([1, 2, 3]);
    await waitFor(async () => (await s.runs.get(run.id)).observers === 0, { what: 'every socket closed' });
  });

  test('an aborted signal opens nothing; a watcher whose run ended stops listening to a signal that lives on', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'short' });
    const w = watch(run.id, { url: s.url, signal: AbortSignal.abort() });
    expect((await w.done).reason).toBe('closed_by_client');
    expect((await s.runs.get(run.id)).observers).toBe(0);

    const appSignal = new AbortController().signal;
    const ended = watch(run.id, { url: s.url, signal: appSignal });
    expect(getEventListeners(appSignal, 'abort')).toHaveLength(1);
    await s.runs.appendEvents(run.id, [{ type: 'run.succeeded', data: {} }]);
    expect((await ended.done).reason).toBe('run_ended');
    expect(getEventListeners(appSignal, 'abort')).toHaveLength(0);
  });

  test('50 watchers on one signal print no listener-leak warning, and its abort stops them all', async () => {
    const leaks = listenerLeakWarnings();
    cleanups.push(() => leaks.stop());
    const s = await server();
    const { run } = await s.runs.create({ name: 'watched by 50' });
    const stop = new AbortController();
    const many = Array.from({ length: 50 }, () => watch(run.id, { url: s.url, signal: stop.signal }));
    await s.runs.appendEvents(run.id, progressEvents(2));
    await waitFor(() => many.every((w) => w.getState().seq === 2), { what: 'every watcher to see the events' });
    await waitFor(async () => (await s.runs.get(run.id)).observers === 50, { what: 'all 50 watchers connected' });
    // The SDK's one listener, however many watchers share the signal.
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1);
    expect(abortCallbackCount(stop.signal)).toBe(50);
    stop.abort();
    const finals = await Promise.all(many.map((w) => w.done));
    expect(finals.every((f) => f.connection === 'ended' && f.reason === 'closed_by_client')).toBe(true);
    await waitFor(async () => (await s.runs.get(run.id)).observers === 0, { what: 'every socket closed' });
    expect(await leaks.seen()).toEqual([]);
  });

  test('200 watchers started and ended one after another on one long-lived signal leave nothing on it, and it still stops the next', async () => {
    const leaks = listenerLeakWarnings();
    cleanups.push(() => leaks.stop());
    const s = await server();
    const { run: ended } = await s.runs.create({ name: 'already over' });
    await s.runs.finish(ended.id, { status: 'succeeded' });
    const { run: live } = await s.runs.create({ name: 'goes on' });
    const app = new AbortController();
    for (let i = 0; i < 200; i++) {
      // Half end on their own (the run ended), half are closed while live.
      if (i % 2 === 0) {
        const w = watch(ended.id, { url: s.url, signal: app.signal });
        expect((await w.done).reason).toBe('run_ended');
      } else {
        const w = watch(live.id, { url: s.url, signal: app.signal });
        await waitFor(() => w.getState().connection === 'live', { what: `watcher ${i} live` });
        expect(abortCallbackCount(app.signal)).toBe(1);
        w.close();
        expect((await w.done).reason).toBe('closed_by_client');
      }
      expect(abortCallbackCount(app.signal)).toBe(0);
    }
    expect(getEventListeners(app.signal, 'abort')).toHaveLength(0);
    const next = watch(live.id, { url: s.url, signal: app.signal });
    await waitFor(() => next.getState().connection === 'live', { what: 'the next watcher live' });
    app.abort();
    expect((await next.done).reason).toBe('closed_by_client');
    expect(await leaks.seen()).toEqual([]);
  });
});

describe('a run deleted while watched', () => {
  for (const transport of ['ws', 'sse', 'poll'] as const) {
    test(`over ${transport}, an untilDeleted watcher shows the ended run, then stops with reason deleted when it is deleted, without reconnecting`, async () => {
      const s = await server();
      const { run } = await s.runs.create({ name: 'deleted under a watcher' });
      await s.runs.appendEvents(run.id, progressEvents(3));
      const w = watch(run.id, { url: s.url, transports: [transport], pollIntervalMs: 50, untilDeleted: true });
      let settled: RunWatchState | null = null;
      void w.done.then((state) => (settled = state));
      await waitFor(() => w.getState().seq === 3, { what: 'the events' });
      await s.runs.finish(run.id, { status: 'succeeded' });
      await waitFor(() => w.getState().reason === 'run_ended', { what: 'the end' });
      expect(w.getState()).toMatchObject({ connection: 'ended', seq: 4, run: { status: 'succeeded' } });
      expect(settled).toBeNull();

      await s.runs.delete(run.id);
      await waitFor(() => settled !== null, { what: 'done after the deletion' });
      expect(settled!).toMatchObject({ connection: 'ended', reason: 'deleted', seq: 4 });
      expect(settled!.error).toMatchObject({ code: 'run_not_found' });
      expect(settled!.error!.message).toBe(`run ${run.id} was deleted`);
      // What it showed stays readable (a page decides what to do with it).
      expect(w.getState().run?.id).toBe(run.id);
    });
  }

  test('a watcher without untilDeleted still stops at the end', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'plain' });
    await s.runs.finish(run.id, { status: 'succeeded' });
    const w = watch(run.id, { url: s.url });
    const state = await w.done;
    expect(state).toMatchObject({ connection: 'ended', reason: 'run_ended' });
  });
});
