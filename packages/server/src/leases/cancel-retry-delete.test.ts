import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { CLIENT_HEADER, type HeartbeatResponse, type Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import { tempDir, waitUntil } from './lease.test-kit.js';

/** Heartbeats, cancel, retry and delete over real HTTP. */

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeEach(async () => {
  dir = tempDir('runtrail-crd-');
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', node: 'crd', reaperIntervalMs: 100 });
  client = new RuntrailClient({ url: server.url });
});
afterEach(async () => {
  await server.close();
  dir.remove();
});

async function heartbeat(id: string): Promise<HeartbeatResponse> {
  return client.api.request('heartbeat', { params: { id }, body: {} });
}

describe('heartbeat and cancel', () => {
  it('a heartbeat renews the lease and tells the owner when a cancel was requested', async () => {
    const run = await client.createRun({ name: 'beats', leaseTtlMs: 30_000 });
    run.close();
    const first = await heartbeat(run.id);
    expect(first).toMatchObject({ status: 'running', cancelRequested: false });
    expect(first.leaseExpiresAt).toBeGreaterThan(Date.now() + 25_000);
    await client.cancelRun(run.id, 'enough');
    expect(await heartbeat(run.id)).toMatchObject({ status: 'running', cancelRequested: true, cancelReason: 'enough' });
    expect((await client.getRun(run.id)).snapshot).toMatchObject({ cancelRequested: true, cancelReason: 'enough' });
  });

  it("an append's answer tells its producer of a cancel and its reason", async () => {
    const run = await client.createRun({ name: 'appender', leaseTtlMs: 30_000 });
    run.close();
    const append = () => client.api.request('appendEvents', { params: { id: run.id }, body: { events: [{ type: 'progress', data: { done: 1 } }] } });
    expect(await append()).toMatchObject({ cancelRequested: false, cancelReason: null });
    await client.cancelRun(run.id, 'wrong dataset');
    expect(await append()).toMatchObject({ cancelRequested: true, cancelReason: 'wrong dataset' });
  });

  it('a heartbeat with ?waitMs= is held until a cancel is requested or the run ends, and answers then', async () => {
    const held = (id: string, waitMs: number) => {
      let settled = false;
      const answer = client.api
        .request('heartbeat', { params: { id }, query: { waitMs }, body: {}, timeoutMs: 30_000 })
        .finally(() => (settled = true));
      return { answer, settled: () => settled };
    };
    // Lease of 60 s: the server holds a heartbeat up to 20 s.
    const cancelled = await client.createRun({ name: 'held-cancel', leaseTtlMs: 60_000 });
    cancelled.close();
    const first = held(cancelled.id, 60_000);
    // Another request's whole round trip went by: the heartbeat is being held.
    await client.getRun(cancelled.id);
    expect(first.settled()).toBe(false);
    await client.cancelRun(cancelled.id, 'enough');
    expect(await first.answer).toMatchObject({ status: 'running', cancelRequested: true });

    const finished = await client.createRun({ name: 'held-end', leaseTtlMs: 60_000 });
    finished.close();
    const second = held(finished.id, 60_000);
    await client.getRun(finished.id);
    expect(second.settled()).toBe(false);
    await client.api.request('finishRun', { params: { id: finished.id }, body: { status: 'failed', error: { message: 'judge down' } } });
    expect(await second.answer).toMatchObject({ status: 'failed', cancelRequested: false });

    // Held no longer than a third of the lease (1.5 s here), whatever it asks.
    const short = await client.createRun({ name: 'held-short', leaseTtlMs: 1_500 });
    short.close();
    const started = Date.now();
    expect(await held(short.id, 60_000).answer).toMatchObject({ status: 'running', cancelRequested: false });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    // An owner that already has its cancel hears it at once.
    expect(await held(cancelled.id, 60_000).answer).toMatchObject({ cancelRequested: true });
  });

  it('holds no more heartbeats at once from one client address than its stream connection limit: the next is answered at once', async () => {
    await server.close();
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', node: 'crd', maxConnectionsPerIp: 2 });
    client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'held-many', leaseTtlMs: 60_000 });
    run.close();
    const hold = () => client.api.request('heartbeat', { params: { id: run.id }, query: { waitMs: 60_000 }, body: {}, timeoutMs: 30_000 });
    let settled = 0;
    const two = [hold(), hold()].map((p) => p.finally(() => settled++));
    await waitUntil(async () => (await (await fetch(`${server.url}/metrics`)).text()).includes('\nruntrail_held_heartbeats 2\n'), {
      what: 'the server to hold two heartbeats',
    });
    // The third is over the bound: renewed and answered at once, not held.
    expect(await hold()).toMatchObject({ status: 'running', cancelRequested: false });
    expect(settled).toBe(0);
    await client.cancelRun(run.id);
    for (const answer of await Promise.all(two)) expect(answer).toMatchObject({ cancelRequested: true });
  });

  it('a held heartbeat ends when the server closes, and the server closes at once', async () => {
    const run = await client.createRun({ name: 'held-close', leaseTtlMs: 60_000 });
    run.close();
    const answer = client.api.request('heartbeat', { params: { id: run.id }, query: { waitMs: 60_000 }, body: {}, timeoutMs: 30_000 }).then(
      () => 'answered',
      () => 'connection closed',
    );
    await client.getRun(run.id);
    const closing = Date.now();
    await server.close();
    // Not held open for the 20 s the heartbeat could wait.
    expect(Date.now() - closing).toBeLessThan(10_000);
    expect(['answered', 'connection closed']).toContain(await answer);
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', node: 'crd', reaperIntervalMs: 100 });
  });

  it("an external producer sees a cancel at its next heartbeat through run.signal and ends the run cancelled", async () => {
    const run = await client.createRun({ name: 'producer', leaseTtlMs: 1500 });
    const sawCancel = new Promise<unknown>((resolve) => run.signal.addEventListener('abort', () => resolve(run.signal.reason), { once: true }));
    await client.cancelRun(run.id, 'user pressed stop');
    const reason = await sawCancel;
    expect(String((reason as Error).message)).toContain('cancel requested: user pressed stop');
    const ended = await run.cancelled('stopped on request');
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toEqual({ kind: 'cancelled', message: 'stopped on request' });
  });

  it('a producer that stops on request without a reason of its own ends the run with the reason the cancel gave', async () => {
    const run = await client.createRun({ name: 'busy producer', leaseTtlMs: 30_000 });
    const sawCancel = new Promise<unknown>((resolve) => run.signal.addEventListener('abort', () => resolve(run.signal.reason), { once: true }));
    run.progress(1, 10);
    await run.flush();
    await client.cancelRun(run.id, 'user pressed stop');
    // A busy producer learns of it from its next append's answer, long before a heartbeat (every 10 s here).
    run.progress(2, 10);
    await run.flush();
    expect(String((await sawCancel as Error).message)).toContain('cancel requested: user pressed stop');
    const ended = await run.cancelled();
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toEqual({ kind: 'cancelled', message: 'user pressed stop' });
    expect(ended.snapshot.terminal?.error).toEqual({ kind: 'cancelled', message: 'user pressed stop' });
  });

  it('a producer that finishes anyway after a cancel request ends the run as it says, the request kept in the log', async () => {
    const run = await client.createRun({ name: 'last step', leaseTtlMs: 30_000 });
    const sawCancel = new Promise<void>((resolve) => run.signal.addEventListener('abort', () => resolve(), { once: true }));
    await client.cancelRun(run.id, 'too slow');
    run.progress(10, 10);
    await run.flush();
    await sawCancel;
    const ended = await run.succeed({ kept: true });
    expect(ended).toMatchObject({ status: 'succeeded', output: { kept: true }, error: null });
    const { events } = await client.api.request('readEvents', { params: { id: run.id }, query: {} });
    expect(events.map((e) => e.type)).toEqual(['run.cancel_requested', 'progress', 'run.succeeded']);
  });

  it('a queued run is cancelled at once; cancelling an ended run is 409 naming its end', async () => {
    server.define('never-claimed', async () => undefined);
    await server.executor.shutdown(); // nobody claims: the run stays queued
    const queued = await client.startRun({ name: 'never-claimed' });
    const cancelled = await client.cancelRun(queued.id, 'not needed');
    expect(cancelled.status).toBe('cancelled');
    const again = await client.cancelRun(queued.id).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'run_already_terminal' });
    expect((again as Error).message).toContain('already ended cancelled');
  });

  it('a cancel whose owner is gone is carried out by the reaper when the lease lapses', async () => {
    const run = await client.createRun({ name: 'abandoned', leaseTtlMs: 1000 });
    run.close(); // the producer stops heartbeating without ending the run
    await client.cancelRun(run.id, 'cleanup');
    const ended: Run = await waitUntil(
      async () => {
        const r = await client.getRun(run.id);
        return r.status !== 'running' ? r : null;
      },
      { what: 'the reaper to end the abandoned run' },
    );
    expect(ended.status).toBe('cancelled');
    expect(ended.error?.message).toContain('cancel requested');
    expect(ended.error?.message).toContain('"cleanup"');
  });
});

describe('retry and delete', () => {
  it('retry creates a new run with the same input linked by retryOf and attempt, and an executed one runs again', async () => {
    let calls = 0;
    server.define('flaky', async (ctx) => {
      if (++calls === 1) throw new Error('transient');
      return { attempt: ctx.run.attempt, input: ctx.input };
    });
    const first = await client.startRun({ name: 'flaky', input: { doc: 3 } });
    await waitUntil(async () => (await client.getRun(first.id)).status === 'failed', { what: 'the first attempt to fail' });
    const second = await client.retryRun(first.id);
    expect(second).toMatchObject({ retryOf: first.id, attempt: 2, input: { doc: 3 }, execute: true });
    const done = await waitUntil(async () => {
      const r = await client.getRun(second.id);
      return r.status === 'succeeded' ? r : null;
    });
    expect(done.output).toEqual({ attempt: 2, input: { doc: 3 } });
  });

  it('retry of a run that is still queued or running is a 409 run_not_retryable saying so, and starts no second attempt', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    server.define('long', async () => {
      entered();
      await held;
    });
    const run = await client.startRun({ name: 'long' });
    await inside;
    const err = await client.retryRun(run.id).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'run_not_retryable', status: 409 });
    expect((err as Error).message).toBe(`run ${run.id} (long) is still running: a retry runs it again once it has ended; cancel it first (runtrail cancel ${run.id} --wait) to run it again now`);
    release();
    await waitUntil(async () => (await client.getRun(run.id)).status === 'succeeded', { what: 'the run to end' });
    expect((await client.listRuns({ name: 'long' })).runs).toHaveLength(1);
    expect((await client.retryRun(run.id)).attempt).toBe(2);
  });

  it('two retries sent at once with the same Idempotency-Key make one new attempt, and both answers name it (many times)', async () => {
    server.define('fails', async () => {
      throw new Error('always');
    });
    const firsts = await Promise.all(Array.from({ length: 25 }, async () => (await client.startRun({ name: 'fails' })).id));
    await waitUntil(async () => (await Promise.all(firsts.map((id) => client.getRun(id)))).every((r) => r.status === 'failed'), {
      what: 'the first attempts to fail',
    });
    const retry = async (id: string, key: string) => {
      const res = await fetch(`${server.url}/api/v1/runs/${id}/retry`, { method: 'POST', headers: { [CLIENT_HEADER]: 'test', 'idempotency-key': key } });
      return { status: res.status, body: (await res.json()) as Run & { error?: { code: string; message: string } } };
    };
    for (const [i, id] of firsts.entries()) {
      const answers = await Promise.all([retry(id, `retry-${i}`), retry(id, `retry-${i}`)]);
      expect(answers.map((a) => a.status).sort()).toEqual([200, 201]);
      expect(answers[0]!.body.id).toBe(answers[1]!.body.id);
      expect(answers[0]!.body).toMatchObject({ retryOf: id, attempt: 2 });
      // Sent again later (its answer was lost): the same attempt still.
      expect(await retry(id, `retry-${i}`)).toMatchObject({ status: 200, body: { id: answers[0]!.body.id } });
    }
    const all = await client.listRuns({ name: 'fails', limit: 200 });
    expect(all.runs.filter((r) => r.retryOf !== null)).toHaveLength(firsts.length);
    // A new key is a new attempt; a key used for another run's retry, or for a created run, is refused.
    expect((await retry(firsts[0]!, 'retry-0-again')).status).toBe(201);
    const reused = await retry(firsts[1]!, 'retry-0');
    expect(reused.status).toBe(409);
    expect(reused.body.error?.code).toBe('idempotency_conflict');
    expect(reused.body.error?.message).toMatch(new RegExp(`^Idempotency-Key retry-0 was used for run \\S+, which is not a retry of run ${firsts[1]}; use a new key for each retry$`));
  });

  it('retry of a run no handler executes is a 409 run_not_retryable, and creates no phantom run', async () => {
    const produced = await client.createRun({ name: 'by-a-producer' });
    await produced.succeed();
    await expect(client.retryRun(produced.id)).rejects.toMatchObject({ code: 'run_not_retryable', status: 409 });
    expect((await client.listRuns({ name: 'by-a-producer' })).runs).toHaveLength(1);
  });

  it('delete removes an ended run with its events and its output log, and refuses a running one', async () => {
    server.define('prints', async (ctx) => {
      await ctx.exec('sh', ['-c', 'echo hello']);
    });
    const { id } = await client.startRun({ name: 'prints' });
    const run = await waitUntil(async () => {
      const r = await client.getRun(id);
      return r.status === 'succeeded' ? r : null;
    });
    const logFile = fileURLToPath(run.snapshot.artifacts.find((a) => a.name === 'output.log')!.uri!);
    expect(existsSync(logFile)).toBe(true);

    const running = await client.createRun({ name: 'busy' });
    await expect(client.deleteRun(running.id)).rejects.toMatchObject({ code: 'run_not_terminal' });
    await running.succeed();

    await client.deleteRun(id);
    await expect(client.getRun(id)).rejects.toMatchObject({ code: 'run_not_found' });
    await expect(client.readEvents(id)).rejects.toMatchObject({ code: 'run_not_found' });
    await waitUntil(() => !existsSync(logFile), { what: 'the output log to be removed' });
  });

  it('delete takes every run under the run with it, and refuses, deleting nothing, while one of them runs', async () => {
    const parent = await client.createRun({ name: 'autotune' });
    const children = await Promise.all([0, 1, 2].map((i) => client.createRun({ name: `trial-${i}`, parentId: parent.id })));
    const grandchild = await client.createRun({ name: 'trial-1-eval', parentId: children[1]!.id });
    const other = await client.createRun({ name: 'unrelated' });
    for (const run of [parent, children[0]!, children[2]!, other]) await run.succeed();
    await children[1]!.succeed();

    // The grandchild still runs: nothing goes, and the answer names it.
    const refused = await client.deleteRun(parent.id).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'run_not_terminal', details: { runId: grandchild.id } });
    expect((refused as Error).message).toBe(`run ${grandchild.id} under run ${parent.id} is running; cancel it and wait for it to end before deleting it (runtrail cancel ${grandchild.id} --wait)`);
    for (const run of [parent, ...children, grandchild]) expect((await client.getRun(run.id)).id).toBe(run.id);

    await grandchild.fail(new Error('judge down'));
    await client.deleteRun(parent.id);
    for (const run of [parent, ...children, grandchild]) await expect(client.getRun(run.id)).rejects.toMatchObject({ code: 'run_not_found' });
    expect((await client.getRun(other.id)).status).toBe('succeeded');
    // Nothing is left pointing at a run that is gone.
    expect((await client.listRuns({ parentId: children[1]!.id })).runs).toEqual([]);
  });

  /** Runs `create` (another node's create of a run under the family) just before the store deletes `at`, once. */
  const createWhileDeleting = (at: string, create: () => Promise<void>) => {
    const store = server.store;
    const deleteRun = store.deleteRun.bind(store);
    let done = false;
    store.deleteRun = async (id) => {
      if (id === at && !done) {
        done = true;
        await create();
      }
      return deleteRun(id);
    };
    return () => done;
  };

  it('a run created under the family while it is being deleted goes with it, and one still running refuses the delete', async () => {
    const parent = await client.createRun({ name: 'sweep' });
    const child = await client.createRun({ name: 'trial', parentId: parent.id });
    await child.succeed();
    await parent.succeed();
    let late: Run | undefined;
    const created = createWhileDeleting(child.id, async () => {
      const handle = await client.createRun({ name: 'late-trial', parentId: parent.id });
      await handle.succeed();
      late = await client.getRun(handle.id);
    });
    await client.deleteRun(parent.id);
    expect(created()).toBe(true);
    for (const run of [parent, child, late!]) await expect(client.getRun(run.id)).rejects.toMatchObject({ code: 'run_not_found' });

    const parent2 = await client.createRun({ name: 'sweep' });
    const child2 = await client.createRun({ name: 'trial', parentId: parent2.id });
    await child2.succeed();
    await parent2.succeed();
    let running: string | undefined;
    createWhileDeleting(child2.id, async () => {
      const handle = await client.createRun({ name: 'late-trial', parentId: parent2.id });
      handle.close();
      running = handle.id;
    });
    const refused = await client.deleteRun(parent2.id).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'run_not_terminal', details: { runId: running } });
    // The late run still has its parent: nothing points at a run that is gone.
    expect((await client.getRun(running!)).parentId).toBe(parent2.id);
    expect((await client.getRun(parent2.id)).status).toBe('succeeded');
  });
});
