import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { startServer, type RunningServer, type StartOptions } from '../start.js';
import { tempDir, waitUntil } from '../leases/lease.test-kit.js';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';

/** define(name, handler, { concurrency }) on a real server, on SQLite and on PostgreSQL (whose claim is its own SQL). */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const stores: Array<[string, () => Promise<Partial<StartOptions>>]> = [
  [
    'sqlite',
    async () => {
      const dir = tempDir('runtrail-handler-limit-');
      cleanups.push(() => dir.remove());
      return { dataDir: dir.path };
    },
  ],
  [
    'postgres',
    async () => {
      const schema = await freshSchema();
      cleanups.push(() => dropSchema(schema));
      return { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema };
    },
  ],
];

async function serve(store: () => Promise<Partial<StartOptions>>): Promise<{ server: RunningServer; client: RuntrailClient }> {
  const server = await startServer({ port: 0, logLevel: 'silent', node: 'limit-node', concurrency: 4, shutdownGraceMs: 500, ...(await store()) });
  cleanups.push(() => server.close());
  return { server, client: new RuntrailClient({ url: server.url }) };
}

function gate(): { wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** `wait`, or go on after `ms` (a deadline: the assertions after it then say what did not happen). */
async function within(wait: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([wait, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

async function allEnded(client: RuntrailClient, ids: string[]): Promise<Run[]> {
  return waitUntil(
    async () => {
      const runs = await Promise.all(ids.map((id) => client.getRun(id)));
      return runs.every((r) => r.status !== 'queued' && r.status !== 'running') ? runs : null;
    },
    { timeoutMs: 30_000, what: `${ids.length} runs to end` },
  );
}

/** A few turns of the event loop: long enough for other handlers to start beside this one if the executor let them. */
async function work(ctx: { progress(done: number, total: number): void }): Promise<void> {
  for (let i = 1; i <= 5; i++) {
    await new Promise<void>((r) => setImmediate(r));
    ctx.progress(i, 5);
  }
}

describe.each(stores)('a handler defined with concurrency (%s)', (_kind, store) => {
  it('runs one of its runs at a time over many runs, while another handler runs beside it in the free slots', async () => {
    const { server, client } = await serve(store);
    const spans: Array<{ name: string; start: number; end: number }> = [];
    let clock = 0;
    const inside = new Map<string, number>();
    const most = new Map<string, number>();
    // The first CPU run waits for a second one to start beside it (on a busy machine a quick one
    // could end before the next was claimed): an executor that ran them one at a time keeps it waiting.
    const twoCpus = gate();
    const track = (name: string) => async (ctx: { progress(done: number, total: number): void }) => {
      const start = ++clock;
      const now = (inside.get(name) ?? 0) + 1;
      inside.set(name, now);
      most.set(name, Math.max(most.get(name) ?? 0, now));
      if (name === 'cpu' && now >= 2) twoCpus.open();
      if (name === 'cpu' && now === 1 && (most.get('cpu') ?? 0) < 2) await within(twoCpus.wait, 10_000);
      await work(ctx);
      inside.set(name, inside.get(name)! - 1);
      spans.push({ name, start, end: ++clock });
    };
    server.define('gpu', track('gpu'), { concurrency: 1 });
    server.define('cpu', track('cpu'));
    // The GPU runs first: a backlog of a saturated handler must not hold back the others queued behind it.
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push((await client.startRun({ name: 'gpu' })).id);
    for (let i = 0; i < 40; i++) ids.push((await client.startRun({ name: 'cpu' })).id);
    const runs = await allEnded(client, ids);
    expect(runs.filter((r) => r.status !== 'succeeded')).toEqual([]);
    expect(most.get('gpu')).toBe(1);
    expect(most.get('cpu')).toBeGreaterThan(1);
    expect(most.get('cpu')).toBeLessThanOrEqual(4);
    const gpu = spans.filter((s) => s.name === 'gpu').sort((a, b) => a.start - b.start);
    expect(gpu).toHaveLength(40);
    for (let i = 1; i < gpu.length; i++) expect(gpu[i]!.start).toBeGreaterThan(gpu[i - 1]!.end);
    // The CPU runs did not wait for the GPU ones: some ran while one of those did.
    const cpu = spans.filter((s) => s.name === 'cpu');
    expect(cpu.some((c) => gpu.some((g) => c.start < g.end && g.start < c.end))).toBe(true);
  });

  it('leaves its other runs queued and unclaimed while its slot is taken, and claims the next when it frees', async () => {
    const { server, client } = await serve(store);
    const held = gate();
    const started = gate();
    server.define(
      'gpu',
      async () => {
        started.open();
        await held.wait;
      },
      { concurrency: 1 },
    );
    const cpuHeld = gate();
    server.define('cpu', async () => {
      await cpuHeld.wait;
    });
    const first = await client.startRun({ name: 'gpu' });
    await started.wait;
    const waiting = await Promise.all([1, 2, 3].map(async () => (await client.startRun({ name: 'gpu' })).id));
    const cpu = await Promise.all([1, 2, 3].map(async () => (await client.startRun({ name: 'cpu' })).id));
    await waitUntil(async () => (await Promise.all(cpu.map((id) => client.getRun(id)))).every((r) => r.status === 'running'), {
      what: 'the cpu runs to run in the free slots',
    });
    for (const id of waiting) expect(await client.getRun(id)).toMatchObject({ status: 'queued', owner: null, startedAt: null });
    expect(server.executor.running).toBe(4);
    held.open();
    cpuHeld.open();
    const runs = await allEnded(client, [first.id, ...waiting, ...cpu]);
    expect(runs.map((r) => r.status)).toEqual(Array(7).fill('succeeded'));
  });
});

describe('define(name, handler, { concurrency })', () => {
  it('refuses a concurrency that is not a whole number from 1, saying what it must be', async () => {
    const dir = tempDir('runtrail-handler-limit-');
    cleanups.push(() => dir.remove());
    const server = await startServer({ port: 0, logLevel: 'silent', dataDir: dir.path, concurrency: 2 });
    cleanups.push(() => server.close());
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '2' as unknown as number]) {
      expect(() => server.define('gpu', async () => undefined, { concurrency: bad })).toThrow(
        `the concurrency of "gpu" must be a whole number from 1 (runs of it at once on this node); got ${String(bad)}`,
      );
    }
    expect(server.executor.names()).toEqual([]);
    // Above the node's own: allowed (the same handlers module serves nodes of several sizes); the node's bounds it.
    server.define('gpu', async () => undefined, { concurrency: 8 });
    expect(server.executor.names()).toEqual(['gpu']);
  });

  it('refuses an option it does not know, naming it, rather than running the handler without the limit a misspelt one meant', async () => {
    const dir = tempDir('runtrail-handler-limit-');
    cleanups.push(() => dir.remove());
    const server = await startServer({ port: 0, logLevel: 'silent', dataDir: dir.path, concurrency: 2 });
    cleanups.push(() => server.close());
    const misspelt = { concurency: 1 } as unknown as { concurrency: number };
    expect(() => server.define('gpu', async () => undefined, misspelt)).toThrow(
      'the options of "gpu" have no "concurency"; a handler\'s options are input, concurrency',
    );
    expect(server.executor.names()).toEqual([]);
  });
});
