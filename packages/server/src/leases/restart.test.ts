import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailClient, type RunHandle } from '@runtrail/client';
import { isTerminalType, type Run, type RunEvent } from '@runtrail/protocol';
import { SqliteRunStore } from '@runtrail/store';
import { startServer, type RunningServer } from '../start.js';
import { freePort, kill9, repoRoot, serverFixture, spawnFixture, tempDir, waitUntil, type SpawnedNode } from './lease.test-kit.js';

/**
 * Field note 5 with real processes: servers and producers killed with
 * SIGKILL, restarted on the same data. The fixtures run the build, so
 * `tsc -b` must have run (npm test does it first).
 */

const REAPER_INTERVAL_MS = 200;

beforeAll(() => {
  for (const built of ['packages/server/dist/index.js', 'packages/client/dist/index.js']) {
    if (!existsSync(join(repoRoot, built))) throw new Error(`${built} is missing: build first (flock /tmp/build.lock npx tsc -b)`);
  }
});

let dir: ReturnType<typeof tempDir>;
const spawned: SpawnedNode[] = [];
beforeEach(() => {
  dir = tempDir('runtrail-restart-');
});
afterEach(async () => {
  for (const node of spawned.splice(0)) if (node.child.exitCode === null && node.child.signalCode === null) await kill9(node);
  dir.remove();
});

function serverEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    RUNTRAIL_PORT: String(port),
    RUNTRAIL_HOST: '127.0.0.1',
    RUNTRAIL_DATA_DIR: dir.path,
    RUNTRAIL_NODE: 'node-k',
    RUNTRAIL_REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS),
    RUNTRAIL_LOG_LEVEL: 'warn',
    RUNTRAIL_CONCURRENCY: '4',
    ...extra,
  };
}

async function startFixtureServer(port: number, extra: Record<string, string> = {}): Promise<SpawnedNode> {
  const node = await spawnFixture(serverFixture('serve-with-handlers.mjs'), serverEnv(port, extra));
  spawned.push(node);
  return node;
}

async function allEvents(client: RuntrailClient, id: string): Promise<RunEvent[]> {
  return (await client.readEvents(id, 0, 5000)).events;
}

describe('server restart', () => {
  it('a server killed with SIGKILL while executing runs: restarted on the same data, it ends them orphaned at start-up, before their lease could lapse, with every acknowledged event kept', async () => {
    const port = await freePort();
    const first = await startFixtureServer(port, { RUNTRAIL_LEASE_TTL_MS: '30000' });
    const client = new RuntrailClient({ url: first.hello.url as string });
    const ids = await Promise.all([1, 2, 3].map(async () => (await client.startRun({ name: 'slow' })).id));
    await waitUntil(async () => (await Promise.all(ids.map((id) => client.getRun(id)))).every((r) => r.seq >= 20), {
      what: 'the handlers to report progress',
    });
    const acknowledged = new Map<string, RunEvent[]>();
    for (const id of ids) acknowledged.set(id, await allEvents(client, id));

    await kill9(first);
    await startFixtureServer(port, { RUNTRAIL_LEASE_TTL_MS: '30000' });

    for (const id of ids) {
      const run = await client.getRun(id);
      expect(run.status).toBe('failed');
      expect(run.error?.kind).toBe('orphaned');
      expect(run.error?.message).toContain('node node-k restarted while its executor was running this run');
      // Read as soon as the restarted server answers, long before the 30 s
      // lease could lapse: already ended, with the recovery's message above.
      const after = await allEvents(client, id);
      const before = acknowledged.get(id)!;
      expect(after.slice(0, before.length)).toEqual(before);
      const terminal = after.filter((e) => isTerminalType(e.type));
      expect(terminal).toHaveLength(1);
      expect(after.at(-1)!.type).toBe('run.failed');
    }

    // The restarted node executes new runs as usual.
    const fresh = await client.startRun({ name: 'slow' });
    await waitUntil(async () => (await client.getRun(fresh.id)).seq >= 3, { what: 'the new incarnation to run a handler' });
    await client.cancelRun(fresh.id);
    await waitUntil(async () => (await client.getRun(fresh.id)).status === 'cancelled', { what: 'cancel' });
  });

  it('a second process given the node name of a live one refuses to start, naming it, and leaves its runs running; once that one is dead, it starts', async () => {
    const first = await startFixtureServer(await freePort());
    const client = new RuntrailClient({ url: first.hello.url as string });
    const { id } = await client.startRun({ name: 'slow' });
    await waitUntil(async () => (await client.getRun(id)).seq >= 5, { what: 'the handler to report progress' });
    const port = await freePort();

    // Before: it took the live process's run for a dead predecessor's and ended it orphaned (and stopped its subprocesses).
    await expect(startFixtureServer(port)).rejects.toThrow(
      `node name "node-k" is taken: the runtrail at ${first.hello.url as string} executes runs as node-k and answers; ` +
        "under the same name this process would end its running runs as a dead process's. " +
        `Point clients at that server (their --server or RUNTRAIL_URL: ${first.hello.url as string}), or give this process its own name (--node, RUNTRAIL_NODE)`,
    );
    const seq = (await client.getRun(id)).seq;
    await waitUntil(async () => (await client.getRun(id)).seq > seq + 5, { what: 'the run to go on after the refused start' });
    expect((await client.getRun(id)).status).toBe('running');

    // A dead one does not answer: the start goes on, and ends its runs at once as before.
    await kill9(first);
    const second = await startFixtureServer(port);
    const ended = await new RuntrailClient({ url: second.hello.url as string }).getRun(id);
    expect(ended.status).toBe('failed');
    expect(ended.error?.kind).toBe('orphaned');
  });

  it('a node with no handlers is found by its name all the same: a second process under it refuses to start', async () => {
    // Before: only a node with handlers announced itself, so one serving no handlers (--no-demo-handler) had its name taken silently.
    const first = await startServer({ port: 0, dataDir: dir.path, node: 'node-bare', logLevel: 'silent' });
    try {
      await expect(startServer({ port: 0, dataDir: dir.path, node: 'node-bare', logLevel: 'silent' })).rejects.toThrow(
        `node name "node-bare" is taken: the runtrail at ${first.url} executes runs as node-bare and answers`,
      );
    } finally {
      await first.close();
    }
  });

  it("an external producer's run survives a server restart with no lost and no duplicate events, and ends succeeded", async () => {
    const port = await freePort();
    let server = await startFixtureServer(port);
    const url = server.hello.url as string;
    const rt = new RuntrailClient({ url, requestTimeoutMs: 2_000 });
    const run: RunHandle = await rt.createRun({ name: 'survivor', leaseTtlMs: 1500 });

    let emitted = 0;
    let producing = true;
    const producer = (async () => {
      while (producing) {
        run.event('x.tick', { n: emitted++ });
        run.count('ticks');
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    await waitUntil(async () => (await rt.getRun(run.id)).seq >= 40, { what: 'events before the kill' });
    await kill9(server);
    // Keep producing through the outage: these wait in the handle's queue.
    const atKill = emitted;
    await waitUntil(() => emitted >= atKill + 30, { what: 'events during the outage' });
    server = await startFixtureServer(port);
    const atRestart = emitted;
    await waitUntil(async () => (await rt.getRun(run.id)).seq >= 2 * (atRestart + 10), {
      timeoutMs: 20_000,
      what: 'the producer to catch up after the restart',
    });
    producing = false;
    await producer;
    const ended = await run.succeed({ ticks: emitted });

    expect(ended.status).toBe('succeeded');
    const events = await allEvents(rt, run.id);
    const ticks = events.filter((e) => e.type === 'x.tick').map((e) => (e.data as { n: number }).n);
    expect(ticks).toEqual(Array.from({ length: emitted }, (_, i) => i));
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    expect((await rt.getRun(run.id)).snapshot.counters.named.ticks).toBe(emitted);
  });

  it('SIGTERM stops a server gracefully: its handlers are asked to stop, and what does not stop in time ends interrupted', async () => {
    const port = await freePort();
    const server = await startFixtureServer(port, { RUNTRAIL_SHUTDOWN_GRACE_MS: '500' });
    const client = new RuntrailClient({ url: server.hello.url as string });
    const slow = await client.startRun({ name: 'slow' });
    const stubborn = await client.startRun({ name: 'stubborn' });
    await waitUntil(async () => (await client.getRun(slow.id)).seq >= 3 && (await client.getRun(stubborn.id)).status === 'running', {
      what: 'both handlers to run',
    });
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });

    const store = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    try {
      const a = (await store.getRun(slow.id))!;
      const b = (await store.getRun(stubborn.id))!;
      expect(a.error).toEqual({ kind: 'interrupted', message: 'node node-k is shutting down' });
      expect(b.error?.kind).toBe('interrupted');
      expect(b.error?.message).toContain('did not stop within the grace period of 500 ms');
      expect((await store.listRuns({ status: 'running' })).runs).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

/** The README's server program (serve-as-readme.mjs) with its cooperative (`slow`) and its `stubborn` handler both running. */
async function readmeServerRunningBoth(port: number, shutdownGraceMs: string) {
  const node = await spawnFixture(serverFixture('serve-as-readme.mjs'), serverEnv(port, { RUNTRAIL_SHUTDOWN_GRACE_MS: shutdownGraceMs }));
  spawned.push(node);
  const client = new RuntrailClient({ url: node.hello.url as string });
  const slow = await client.startRun({ name: 'slow' });
  const stubborn = await client.startRun({ name: 'stubborn' });
  await waitUntil(async () => (await client.getRun(slow.id)).seq >= 3 && (await client.getRun(stubborn.id)).status === 'running', {
    what: 'both handlers to run',
  });
  return { node, client, slow, stubborn };
}

describe('a server started as the README shows (startServer, no signal handling of its own)', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`stops gracefully on ${signal}: its handlers are asked to stop, nothing is left running, then the process ends by the signal`, async () => {
      const port = await freePort();
      const { node, slow, stubborn } = await readmeServerRunningBoth(port, '500');
      node.child.kill(signal);
      expect(await node.exited).toEqual({ code: null, signal });

      const store = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
      try {
        expect((await store.getRun(slow.id))!.error).toEqual({ kind: 'interrupted', message: 'node node-k is shutting down' });
        const b = (await store.getRun(stubborn.id))!;
        expect(b.error?.kind).toBe('interrupted');
        expect(b.error?.message).toContain('did not stop within the grace period of 500 ms');
        expect((await store.listRuns({ status: 'running' })).runs).toEqual([]);
      } finally {
        await store.close();
      }
    });
  }

  it('the log lines of the shutdown (which runs ended how) are all written before the process ends by the signal (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const port = await freePort();
      const node = await spawnFixture(serverFixture('serve-as-readme.mjs'), serverEnv(port, { RUNTRAIL_SHUTDOWN_GRACE_MS: '300', RUNTRAIL_LOG_LEVEL: 'info', RUNTRAIL_LOG_FORMAT: 'json' }));
      spawned.push(node);
      const client = new RuntrailClient({ url: node.hello.url as string });
      const ids = [(await client.startRun({ name: 'slow' })).id, (await client.startRun({ name: 'stubborn' })).id];
      await waitUntil(async () => (await Promise.all(ids.map((id) => client.getRun(id)))).every((r) => r.status === 'running'), { what: 'both handlers to run' });
      node.child.kill('SIGTERM');
      expect(await node.exited).toEqual({ code: null, signal: 'SIGTERM' });
      const logged = (await node.stdout).flatMap((line) => {
        try {
          return [JSON.parse(line) as { msg?: string; runId?: string }];
        } catch (err) {
          void err; // not a log line (none expected, but not this test's concern)
          return [];
        }
      });
      const endedLines = logged.filter((l) => l.msg === 'run ended failed').map((l) => l.runId);
      expect(endedLines.sort(), `round ${round}`).toEqual([...ids].sort());
    }
  }, 60_000);

  it('a second SIGTERM while it waits for a stubborn handler ends the process at once', async () => {
    const port = await freePort();
    const { node, client, slow } = await readmeServerRunningBoth(port, '600000');
    node.child.kill('SIGTERM');
    // The cooperative handler stopping shows the shutdown under way; the stubborn one holds it for 10 minutes.
    await waitUntil(async () => (await client.getRun(slow.id)).status === 'failed', { what: 'the slow handler to stop' });
    node.child.kill('SIGTERM');
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([node.exited, new Promise((resolve) => (deadline = setTimeout(() => resolve('still running after 5 s'), 5_000)))]);
    clearTimeout(deadline);
    expect(exited).toEqual({ code: null, signal: 'SIGTERM' });
  });
});

describe('several reapers', () => {
  it('two server processes reaping one database end each abandoned run once', async () => {
    const [a, b] = await Promise.all([
      startFixtureServer(await freePort(), { RUNTRAIL_NODE: 'node-a' }),
      startFixtureServer(await freePort(), { RUNTRAIL_NODE: 'node-b' }),
    ]);
    const clients = [a, b].map((s) => new RuntrailClient({ url: s.hello.url as string }));
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const run = await clients[i % 2]!.createRun({ name: `abandoned-${i}`, leaseTtlMs: 1000 });
      run.close(); // never heartbeats again
      ids.push(run.id);
    }
    for (const id of ids) {
      const run = await waitUntil(
        async () => {
          const r = await clients[0]!.getRun(id);
          return r.status !== 'running' ? r : null;
        },
        { what: `run ${id} to be reaped` },
      );
      expect(run.error?.kind).toBe('orphaned');
      const events = await allEvents(clients[1]!, id);
      expect(events.filter((e) => isTerminalType(e.type))).toHaveLength(1);
    }
  });
});

describe('producer leases', () => {
  let server: RunningServer;
  beforeEach(async () => {
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', node: 'lease-node', reaperIntervalMs: REAPER_INTERVAL_MS });
  });
  afterEach(() => server.close());

  it('a producer that is killed has its run ended orphaned within TTL + reaper interval, naming the producer', async () => {
    const ttl = 1000;
    const producer = await spawnFixture(serverFixture('producer.mjs'), { RUNTRAIL_URL: server.url, LEASE_TTL_MS: String(ttl) });
    spawned.push(producer);
    const runId = producer.hello.runId as string;
    const client = new RuntrailClient({ url: server.url });
    // Well past one TTL of appends: the lease is being renewed, not coasting on its first grant.
    await waitUntil(async () => (await client.getRun(runId)).snapshot.counters.named.ticks! >= 60, { what: 'the producer to tick' });
    expect((await client.getRun(runId)).status).toBe('running');

    const killedAt = Date.now();
    await kill9(producer);
    const run: Run = await waitUntil(
      async () => {
        const r = await client.getRun(runId);
        return r.status !== 'running' ? r : null;
      },
      { timeoutMs: 10_000, what: 'the run to be reaped' },
    );
    expect(run.status).toBe('failed');
    expect(run.error?.kind).toBe('orphaned');
    expect(run.error?.message).toContain(`producer`);
    expect(run.error?.message).toContain(`on pid-${producer.hello.pid as number}`);
    expect(run.error?.message).toMatch(/last heartbeat at \d{4}-\d\d-\d\dT/);
    // Scheduling slack on a loaded 2-core runner, on top of the guarantee.
    expect(run.finishedAt! - killedAt).toBeLessThanOrEqual(ttl + REAPER_INTERVAL_MS + 400);
  });
});
