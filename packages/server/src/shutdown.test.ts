import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailError } from '@runtrail/protocol';
import { openStore, type RunStore } from '@runtrail/store';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { createServer, startServer } from './start.js';
import { jsonLogLines } from './log-lines.test-kit.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanups.splice(0)) fn();
});

describe('shutdown', () => {
  it('ends its log with one line saying it stopped and how long stopping took', async () => {
    const dir = tempDir('runtrail-shutdown-');
    cleanups.push(() => dir.remove());
    const { lines, destination } = jsonLogLines();
    const server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'info', logFormat: 'json', stopOnSignals: false, logDestination: destination });
    await server.close();
    expect(lines.at(-1)).toMatchObject({ level: 30, ms: expect.any(Number), msg: expect.stringMatching(/^stopped in \d+\.\d s: handlers ended, streams closed, store closed$/) });
  });

  it('a start refused before it serves (a live node under its name) ends its log with the refusal, not a "stopped in" line', async () => {
    const dir = tempDir('runtrail-refused-start-');
    cleanups.push(() => dir.remove());
    // Two nodes of one name on one store (as on PostgreSQL): the second asks the first, which answers, and refuses to start.
    const store = openStore({ dataDir: dir.path });
    const node = await createServer({ port: 0, dataDir: dir.path, node: 'same-name', store, logLevel: 'silent', stopOnSignals: false });
    node.define('work', async () => undefined);
    const first = await node.listen();
    cleanups.push(() => void first.close());
    const { lines, destination } = jsonLogLines();
    const second = await createServer({ port: 0, dataDir: dir.path, node: 'same-name', store, logLevel: 'debug', logFormat: 'json', stopOnSignals: false, logDestination: destination });
    await expect(second.listen()).rejects.toThrow('node name "same-name" is taken');
    // Before: "stopped in 0.0 s: handlers ended, streams closed, store closed", as if this process had served.
    expect(lines.filter((l) => String(l.msg).startsWith('stopped in'))).toEqual([]);
    expect(lines.at(-1)).toMatchObject({ msg: 'closed without serving: store closed' });
  });

  it('stops the reaper before handlers get their grace period: no sweep (failing or not) while the executor waits for them', async () => {
    const dir = tempDir('runtrail-shutdown-reaper-');
    cleanups.push(() => dir.remove());
    const { lines, destination } = jsonLogLines();
    // The reaper's sweep starts with findDue: once the handler has been told to stop, every
    // sweep is recorded and fails, as it would with the database gone during a shutdown.
    const sqlite = openStore({ dataDir: dir.path });
    let stopping = false;
    let sweepsWhileStopping = 0;
    const store = new Proxy(sqlite, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (key !== 'findDue' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
        return (...args: unknown[]) => {
          if (!stopping) return value.apply(target, args);
          sweepsWhileStopping++;
          return Promise.reject(new RuntrailError('unavailable', 'the database is gone'));
        };
      },
    }) as RunStore;
    const server = await createServer({
      port: 0,
      dataDir: dir.path,
      store,
      reaperIntervalMs: 50,
      // Ten sweeps' worth: before the fix the reaper swept (and failed) about ten times in it.
      shutdownGraceMs: 500,
      logLevel: 'info',
      logFormat: 'json',
      stopOnSignals: false,
      logDestination: destination,
    });
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(release);
    let started = false;
    // A handler that does not stop when asked: the executor waits its whole grace period.
    server.define('stubborn', async (ctx) => {
      started = true;
      ctx.signal.addEventListener('abort', () => (stopping = true), { once: true });
      await released;
    });
    const running = await server.listen();
    const created = await fetch(`${running.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'stubborn', execute: true }),
    });
    expect(created.status).toBe(201);
    await waitUntil(() => started, { what: 'the handler to start' });

    await running.close();
    expect(stopping).toBe(true);
    expect(lines.some((l) => l.msg === 'executor stopping: asking handlers to stop')).toBe(true);
    expect(lines.some((l) => typeof l.msg === 'string' && l.msg.includes('did not stop within the grace period'))).toBe(true);
    expect(sweepsWhileStopping).toBe(0);
    expect(lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('reaper sweep'))).toEqual([]);
  });

  it('answers /readyz 503 naming the shutdown while handlers get their grace period, so a load balancer stops sending it requests', async () => {
    const dir = tempDir('runtrail-shutdown-ready-');
    cleanups.push(() => dir.remove());
    const server = await createServer({ port: 0, dataDir: dir.path, node: 'node-s', shutdownGraceMs: 60_000, logLevel: 'silent', stopOnSignals: false });
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    cleanups.push(release);
    let started = false;
    // Stops only when released: the executor holds the shutdown open until then.
    server.define('slow-to-stop', async () => {
      started = true;
      await released;
    });
    const running = await server.listen();
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
    const created = await fetch(`${running.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'slow-to-stop', execute: true }),
    });
    expect(created.status).toBe(201);
    await waitUntil(() => started, { what: 'the handler to start' });

    const closed = running.close();
    const ready = await fetch(`${running.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ error: { code: 'unavailable', details: { reasons: ['node node-s is shutting down'] } } });
    // Liveness is not readiness: the process still answers.
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    release();
    await closed;
  });
});
