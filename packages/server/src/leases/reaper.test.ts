import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteRunStore } from '@runtrail/store';
import type { HandlersResponse, Owner, Run } from '@runtrail/protocol';
import { buildApp, type App } from '../app.js';
import { loadConfig } from '../config.js';
import { Reaper } from './reaper.js';
import { tempDir } from './lease.test-kit.js';

/**
 * The reaper's decisions, driven by an injected clock: no timers, no sleeps.
 * (The same reaper against real processes and real time is in restart.test.ts.)
 */

const producer: Owner = { kind: 'producer', node: 'laptop', id: 'proc-1' };
const executorOf = (node: string, id: string): Owner => ({ kind: 'executor', node, id });

let dir: ReturnType<typeof tempDir>;
let app: App;
let store: SqliteRunStore;
let clock: number;

async function makeApp(node = 'node-a'): Promise<App> {
  const config = loadConfig({ dataDir: dir.path, logLevel: 'silent', node, reaperIntervalMs: 50 }, {});
  return buildApp({ config, store, now: () => clock });
}

function reaperFor(a: App, incarnation = 'me', node = 'node-a', queuedOrphanTimeoutMs = 0): Reaper {
  return new Reaper({ runs: a.runs, node, incarnation, intervalMs: 50, log: a.http.log, queuedOrphanTimeoutMs });
}

/** A reaper that has started (its first sweep) and stopped again: the test sweeps by hand, at the times it sets. */
async function sweptOnceReaper(): Promise<Reaper> {
  const reaper = reaperFor(app);
  await reaper.start();
  await reaper.stop();
  return reaper;
}

async function eventsOf(id: string) {
  return store.readEvents(id, 0, 1000);
}

beforeEach(async () => {
  dir = tempDir();
  store = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
  clock = 1_700_000_000_000;
  app = await makeApp();
});

afterEach(async () => {
  await app.http.close();
  await store.close();
  dir.remove();
});

async function producerRun(extra: Partial<Parameters<App['runs']['create']>[0]> = {}): Promise<Run> {
  return (await app.runs.create({ name: 'job', owner: producer, leaseTtlMs: 1000, ...extra })).run;
}

describe('reaper', () => {
  it('ends a run whose lease lapsed as failed/orphaned, naming the owner and its last heartbeat', async () => {
    const run = await producerRun();
    const reaper = await sweptOnceReaper();
    clock += 600;
    await app.runs.heartbeat(run.id, producer);
    const lastBeat = clock;
    clock += 1000; // exactly at expiry: still the owner's
    expect((await reaper.sweep()).orphaned).toEqual([]);
    clock += 1;
    expect((await reaper.sweep()).orphaned).toEqual([run.id]);
    const ended = (await store.getRun(run.id))!;
    expect(ended.status).toBe('failed');
    expect(ended.error?.kind).toBe('orphaned');
    expect(ended.error?.message).toContain('producer proc-1 on laptop');
    expect(ended.error?.message).toContain(new Date(lastBeat).toISOString());
  });

  it("within a lease of its start, a reaper leaves a lapsed producer run alone without reading it whole; then it ends it", async () => {
    const run = await producerRun({ input: { prompt: 'p'.repeat(100_000) } });
    clock += 5000; // lapsed before this node started
    const reaper = reaperFor(app);
    const reads: string[] = [];
    const find = app.runs.find.bind(app.runs);
    app.runs.find = async (id: string) => {
      reads.push(id);
      return find(id);
    };
    await reaper.start();
    await reaper.stop();
    clock += 500;
    // Before: each sweep in the grace read the due run again, input and all (200 runs of 1 MiB inputs: 500 MB held).
    expect((await reaper.sweep()).orphaned).toEqual([]);
    expect(reads).toEqual([]);
    clock += 501;
    expect((await reaper.sweep()).orphaned).toEqual([run.id]);
    expect(reads).toEqual([run.id]);
    expect((await store.getRun(run.id))!.error?.kind).toBe('orphaned');
  });

  it('keeps a run alive for as long as its owner heartbeats or appends', async () => {
    const run = await producerRun();
    const reaper = await sweptOnceReaper();
    for (let i = 0; i < 10; i++) {
      clock += 900;
      if (i % 2 === 0) await app.runs.heartbeat(run.id, producer);
      else await app.runs.append(run.id, { events: [{ type: 'log', data: { level: 'info', message: `tick ${i}` } }] });
      await reaper.sweep();
    }
    expect((await store.getRun(run.id))!.status).toBe('running');
  });

  it('a cancel request does not keep an abandoned run alive, and the run ends cancelled when its owner is gone', async () => {
    const run = await producerRun();
    const reaper = await sweptOnceReaper();
    clock += 900;
    await app.runs.cancel(run.id, 'user pressed stop');
    clock += 101;
    await reaper.sweep();
    const ended = (await store.getRun(run.id))!;
    expect(ended.status).toBe('cancelled');
    expect(ended.error?.message).toMatch(/cancel requested at .*stopped heartbeating/);
  });

  it('fails a run past its total timeout with kind timeout', async () => {
    const run = await producerRun({ leaseTtlMs: 60_000, timeoutMs: 5_000 });
    const reaper = reaperFor(app);
    clock += 5_001;
    await app.runs.heartbeat(run.id, producer);
    expect((await reaper.sweep()).timedOut).toEqual([run.id]);
    const ended = (await store.getRun(run.id))!;
    expect(ended.error).toEqual({ kind: 'timeout', message: expect.stringContaining('total timeout of 5000 ms') });
  });

  it('fails a run whose open phase overran its timeoutMs, naming the phase', async () => {
    const run = await producerRun({ leaseTtlMs: 60_000 });
    const reaper = reaperFor(app);
    await app.runs.append(run.id, { events: [{ type: 'phase', data: { name: 'fetch', status: 'started', timeoutMs: 2_000 } }] });
    clock += 1_500;
    await app.runs.append(run.id, { events: [{ type: 'progress', data: { done: 1 } }] });
    expect((await reaper.sweep()).timedOut).toEqual([]);
    clock += 501;
    expect((await reaper.sweep()).timedOut).toEqual([run.id]);
    expect((await store.getRun(run.id))!.error?.message).toContain('phase "fetch" exceeded its timeout of 2000 ms');
  });

  it('a phase that completed in time is not a timeout', async () => {
    const run = await producerRun({ leaseTtlMs: 60_000 });
    await app.runs.append(run.id, { events: [{ type: 'phase', data: { name: 'fetch', status: 'started', timeoutMs: 2_000 } }] });
    clock += 1_000;
    await app.runs.append(run.id, { events: [{ type: 'phase', data: { name: 'fetch', status: 'completed' } }] });
    clock += 5_000;
    await app.runs.heartbeat(run.id, producer);
    expect((await reaperFor(app).sweep()).timedOut).toEqual([]);
  });

  it('records a stall as a run.stalled event shown in the snapshot, once, and clears it on the next progress', async () => {
    const run = await producerRun({ leaseTtlMs: 60_000, stallTimeoutMs: 3_000 });
    const reaper = reaperFor(app);
    await app.runs.append(run.id, { events: [{ type: 'progress', data: { done: 1, total: 10 } }] });
    const progressAt = clock;
    clock += 2_000;
    // Heartbeats and logs are not progress: they do not hold a stall off.
    await app.runs.heartbeat(run.id, producer);
    await app.runs.append(run.id, { events: [{ type: 'log', data: { level: 'info', message: 'still here' } }] });
    clock += 1_001;
    expect((await reaper.sweep()).stalled).toEqual([run.id]);
    expect((await reaper.sweep()).stalled).toEqual([]);
    const stalled = (await store.getRun(run.id))!;
    expect(stalled.status).toBe('running');
    expect(stalled.snapshot.stalled).toEqual({ at: clock, stallTimeoutMs: 3_000, lastProgressAt: progressAt });
    expect((await eventsOf(run.id)).filter((e) => e.type === 'run.stalled')).toHaveLength(1);
    await app.runs.append(run.id, { events: [{ type: 'progress', data: { done: 2 } }] });
    expect((await store.getRun(run.id))!.snapshot.stalled).toBeNull();
  });

  it('fails a stalled run with kind stalled when the run asks for it', async () => {
    const run = await producerRun({ leaseTtlMs: 60_000, stallTimeoutMs: 3_000, failOnStall: true });
    clock += 3_001;
    await app.runs.heartbeat(run.id, producer);
    await reaperFor(app).sweep();
    const ended = (await store.getRun(run.id))!;
    expect(ended.status).toBe('failed');
    expect(ended.error?.kind).toBe('stalled');
    expect((await eventsOf(run.id)).map((e) => e.type)).toEqual(['run.stalled', 'run.failed']);
  });

  it('at start-up ends at once the runs a previous incarnation of this node was executing, and leaves producer runs alone', async () => {
    const mine = (await app.runs.create({ name: 'h', execute: true, leaseTtlMs: 60_000 })).run;
    await store.claimQueued({ owner: executorOf('node-a', 'old-process'), names: ['h'], limit: 1, now: clock });
    const otherNode = (await app.runs.create({ name: 'h2', execute: true, leaseTtlMs: 60_000 })).run;
    await store.claimQueued({ owner: executorOf('node-b', 'x'), names: ['h2'], limit: 1, now: clock });
    const external = await producerRun({ leaseTtlMs: 60_000 });
    clock += 10;
    const recovered = await reaperFor(app, 'new-process').recoverOwnRuns();
    expect(recovered).toEqual([mine.id]);
    const ended = (await store.getRun(mine.id))!;
    expect(ended.error?.kind).toBe('orphaned');
    expect(ended.error?.message).toContain('node node-a restarted');
    expect(ended.error?.message).toContain('old-process');
    expect((await store.getRun(otherNode.id))!.status).toBe('running');
    expect((await store.getRun(external.id))!.status).toBe('running');
  });

  it('gives producers a full lease after this node starts before calling them gone', async () => {
    const run = await producerRun();
    clock += 5_000; // the server was down; the producer could not heartbeat
    const reaper = await sweptOnceReaper();
    expect((await store.getRun(run.id))!.status).toBe('running');
    clock += 1_001;
    await reaper.sweep();
    expect((await store.getRun(run.id))!.error?.kind).toBe('orphaned');
  });

  it('several reapers sweeping at once write one terminal event per run', async () => {
    const runs: Run[] = [];
    for (let i = 0; i < 20; i++) runs.push(await producerRun({ stallTimeoutMs: 500, failOnStall: i % 2 === 0 }));
    clock += 1_001;
    const reapers = Array.from({ length: 4 }, (_, i) => reaperFor(app, `r${i}`));
    await Promise.all(reapers.map((r) => r.sweep()));
    for (const run of runs) {
      const events = await eventsOf(run.id);
      expect(events.filter((e) => ['run.failed', 'run.succeeded', 'run.cancelled'].includes(e.type))).toHaveLength(1);
      expect(events.filter((e) => e.type === 'run.stalled').length).toBeLessThanOrEqual(1);
    }
  });
  describe('queued runs of a handler no live node defines', () => {
    const announce = (node: string, handlers: string[]) =>
      app.runs.announceHandlers({ node, handlers, incarnation: `${node}-1`, url: null, liveForMs: 10_000 });
    const queued = async (name: string) => (await app.runs.create({ name, execute: true })).run;

    it('end failed/orphaned, naming the handler, once it has gone undefined for queuedOrphanTimeoutMs', async () => {
      await announce('node-b', ['kept']);
      const gone = [await queued('resize'), await queued('resize')];
      const kept = await queued('kept');
      const reaper = reaperFor(app, 'me', 'node-a', 60_000);
      expect((await reaper.sweep()).orphaned).toEqual([]);
      clock += 5_000;
      await announce('node-b', ['kept']);
      clock += 54_999;
      expect((await reaper.sweep()).orphaned).toEqual([]);
      expect((await store.getRun(gone[0]!.id))!.status).toBe('queued');
      clock += 1;
      expect((await reaper.sweep()).orphaned.sort()).toEqual(gone.map((r) => r.id).sort());
      for (const run of gone) {
        const ended = (await store.getRun(run.id))!;
        expect(ended.status).toBe('failed');
        expect(ended.error).toEqual({ kind: 'orphaned', message: expect.stringContaining('no live node has defined handler "resize" since') });
        expect(ended.error!.message).toContain('queuedOrphanTimeoutMs 60000 ms');
      }
      // A handler some live node defines keeps its queued runs however long they wait.
      expect((await store.getRun(kept.id))!.status).toBe('queued');
      expect((await reaper.sweep()).orphaned).toEqual([]);
    });

    it('wait again from the start when a node defines the handler before the time is up', async () => {
      const run = await queued('render');
      const reaper = reaperFor(app, 'me', 'node-a', 60_000);
      await reaper.sweep();
      clock += 50_000;
      await announce('node-c', ['render']);
      await reaper.sweep();
      // node-c stops announcing: it counts as gone once its announcement's liveUntil has passed.
      clock += 10_001;
      await reaper.sweep();
      clock += 59_999;
      expect((await reaper.sweep()).orphaned).toEqual([]);
      expect((await store.getRun(run.id))!.status).toBe('queued');
      clock += 1;
      expect((await reaper.sweep()).orphaned).toEqual([run.id]);
    });

    it('are reported by GET /handlers with the moment the reaper ends them, counted from its first sweep that finds the handler undefined, not from when each run was queued', async () => {
      const handlers = async () => (await app.http.inject({ method: 'GET', url: '/api/v1/handlers' })).json<HandlersResponse>();
      const first = await queued('resize');
      // Not counted before a sweep has looked: nothing to report yet, only the setting.
      expect(await handlers()).toMatchObject({ queuedOrphanTimeoutMs: 600_000, unclaimable: [] });
      clock += 1_234;
      const countedFrom = clock;
      await app.reaper.sweep();
      clock += 30_000;
      // Queued later, it ends with the others: the count is the handler's.
      const later = await queued('resize');
      await app.reaper.sweep();
      const reported = { handler: 'resize', undefinedSince: countedFrom, endsAt: countedFrom + 600_000 };
      expect((await handlers()).unclaimable).toEqual([reported]);
      clock = reported.endsAt - 1;
      expect((await app.reaper.sweep()).orphaned).toEqual([]);
      clock = reported.endsAt;
      expect((await app.reaper.sweep()).orphaned.sort()).toEqual([first.id, later.id].sort());
      expect((await store.getRun(later.id))!.error!.message).toContain(`since ${new Date(reported.undefinedSince).toISOString()}`);
      // Nothing queued is left for it: nothing to report.
      await app.reaper.sweep();
      expect((await handlers()).unclaimable).toEqual([]);
    });

    it('are reported by GET /handlers as waiting for ever when the setting is 0', async () => {
      await app.http.close();
      app = await buildApp({ config: loadConfig({ dataDir: dir.path, logLevel: 'silent', node: 'node-a', queuedOrphanTimeoutMs: 0 }, {}), store, now: () => clock });
      await queued('resize');
      await app.reaper.sweep();
      const body = (await app.http.inject({ method: 'GET', url: '/api/v1/handlers' })).json<HandlersResponse>();
      expect(body).toMatchObject({ queuedOrphanTimeoutMs: 0, unclaimable: [] });
    });

    it('are left queued when the setting is 0', async () => {
      const run = await queued('resize');
      const reaper = reaperFor(app, 'me', 'node-a', 0);
      await reaper.sweep();
      clock += 365 * 24 * 3_600_000;
      expect((await reaper.sweep()).orphaned).toEqual([]);
      expect((await store.getRun(run.id))!.status).toBe('queued');
    });
  });
});
