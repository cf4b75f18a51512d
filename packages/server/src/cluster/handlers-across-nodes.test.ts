import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import { waitUntil } from '../leases/lease.test-kit.js';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { http } from './cluster.test-kit.js';

/**
 * What "Several nodes on PostgreSQL" says of handlers: each node executes
 * the handlers it defines, a handler's `concurrency` bounds it on each node
 * (not over the cluster), and a run is accepted by any node while a live
 * node defines its handler. Two servers in this process on one schema: each
 * has its own pool, listener and executor, as separate processes would.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function twoNodes(leaseTtlMs: [number, number] = [30_000, 30_000]): Promise<[RunningServer, RunningServer]> {
  const schema = await freshSchema();
  cleanups.push(() => dropSchema(schema));
  const start = async (node: string, ttl: number) => {
    const server = await startServer({
      port: 0,
      logLevel: 'silent',
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema,
      node,
      concurrency: 4,
      shutdownGraceMs: 500,
      leaseTtlMs: ttl,
    });
    cleanups.push(() => server.close());
    return server;
  };
  return [await start('node-a', leaseTtlMs[0]), await start('node-b', leaseTtlMs[1])];
}

describe('handlers on two nodes sharing PostgreSQL', () => {
  it("a handler's concurrency holds on each node, not over the cluster: with 1 on each node, two of its runs run at once, one on each", async () => {
    const [a, b] = await twoNodes();
    const inside = new Map<string, number>();
    const most = new Map<string, number>();
    let both!: () => void;
    const bothInside = new Promise<void>((resolve) => (both = resolve));
    const gpu = (node: string) => async () => {
      const now = (inside.get(node) ?? 0) + 1;
      inside.set(node, now);
      most.set(node, Math.max(most.get(node) ?? 0, now));
      if ((inside.get('node-a') ?? 0) > 0 && (inside.get('node-b') ?? 0) > 0) both();
      // The first runs wait until one is inside on each node: two at once over the cluster.
      let deadline: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([bothInside, new Promise((_, reject) => (deadline = setTimeout(() => reject(new Error('never one on each node at once')), 20_000)))]).finally(() =>
        clearTimeout(deadline),
      );
      inside.set(node, inside.get(node)! - 1);
    };
    a.define('gpu', gpu('node-a'), { concurrency: 1 });
    b.define('gpu', gpu('node-b'), { concurrency: 1 });
    const client = new RuntrailClient({ url: a.url });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await client.startRun({ name: 'gpu' })).id);
    const runs = await waitUntil(
      async () => {
        const all = await Promise.all(ids.map((id) => client.getRun(id)));
        return all.every((r) => r.status !== 'queued' && r.status !== 'running') && all;
      },
      { timeoutMs: 30_000, what: 'the 8 runs to end' },
    );
    expect(runs.filter((r) => r.status !== 'succeeded')).toEqual([]);
    expect(new Set(runs.map((r) => r.owner?.node))).toEqual(new Set(['node-a', 'node-b']));
    expect(Object.fromEntries(most)).toEqual({ 'node-a': 1, 'node-b': 1 });
  });

  it('a run of a handler only another live node defines is accepted by any node and executed there; one no live node defines is refused, naming them', async () => {
    const [a, b] = await twoNodes();
    a.define('everywhere', async () => 'a');
    b.define('everywhere', async () => 'b');
    b.define('only-b', async () => 'done on b');
    // Checked by the node that has the schema: here, when the run reaches B's executor.
    const needsDoc = {
      safeParse: (v: unknown) =>
        typeof (v as { doc?: unknown } | null)?.doc === 'string'
          ? ({ success: true } as const)
          : ({ success: false, error: { issues: [{ path: ['doc'], message: 'a string is required' }] } } as const),
    };
    b.define('only-b-checked', async () => 'checked', { input: needsDoc });

    type Handlers = { handlers: string[]; nodes: Array<{ node: string; handlers: string[]; heardAt: number }> };
    // Each node announces its handlers in the store as it defines them.
    const listed = await waitUntil(
      async () => {
        const body = (await http<Handlers>('GET', `${a.url}/api/v1/handlers`)).body;
        return body.nodes.find((n) => n.node === 'node-b')?.handlers.includes('only-b-checked') && body;
      },
      { what: "node-b's handlers to be listed by node-a" },
    );
    expect(listed.handlers).toEqual(['everywhere']);
    expect(listed.nodes.map(({ node, handlers }) => ({ node, handlers }))).toEqual([
      { node: 'node-a', handlers: ['everywhere'] },
      { node: 'node-b', handlers: ['everywhere', 'only-b', 'only-b-checked'] },
    ]);
    // node-a knows the schemas of its own handlers only: of another node's it says so, and which nodes have them.
    expect((await new RuntrailClient({ url: a.url }).describeHandlers()).inputs).toEqual([
      { handler: 'everywhere', nodes: ['node-a', 'node-b'], input: { kind: 'any' } },
      { handler: 'only-b', nodes: ['node-b'], input: { kind: 'elsewhere', nodes: ['node-b'] } },
      { handler: 'only-b-checked', nodes: ['node-b'], input: { kind: 'elsewhere', nodes: ['node-b'] } },
    ]);
    // What the dashboard's Start run offers through node-a: every handler a live node executes.
    expect(await new RuntrailClient({ url: a.url }).startableHandlers()).toEqual(['everywhere', 'only-b', 'only-b-checked']);
    expect(await new RuntrailClient({ url: a.url }).listHandlers()).toEqual(['everywhere']);

    const made = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'only-b', execute: true });
    expect(made.status).toBe(201);
    const ended = await runEnded(a, made.body.id);
    expect(ended).toMatchObject({ status: 'succeeded', output: 'done on b', owner: { node: 'node-b' } });
    const retried = await http<Run>('POST', `${a.url}/api/v1/runs/${made.body.id}/retry`);
    expect(retried.status).toBe(201);
    expect(await runEnded(a, retried.body.id)).toMatchObject({ status: 'succeeded', attempt: 2 });

    // Refused at once by the node that has the schema; through the other, it fails when B picks it up, naming the field.
    const direct = await http<{ error: { code: string; message: string } }>('POST', `${b.url}/api/v1/runs`, { name: 'only-b-checked', execute: true, input: {} });
    expect(direct.status).toBe(400);
    expect(direct.body.error.message).toBe('the input of a "only-b-checked" run: input.doc: a string is required');
    const through = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'only-b-checked', execute: true, input: {} });
    expect(through.status).toBe(201);
    const refused = await runEnded(a, through.body.id);
    expect(refused.status).toBe('failed');
    expect(refused.error?.message).toBe('the input of a "only-b-checked" run: input.doc: a string is required');
    expect((await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'only-b-checked', execute: true, input: { doc: 'd1' } })).status).toBe(201);

    const nowhere = await http<{ error: { code: string; message: string; details: unknown } }>('POST', `${a.url}/api/v1/runs`, { name: 'nowhere', execute: true });
    expect(nowhere.status).toBe(404);
    expect(nowhere.body.error.code).toBe('handler_not_found');
    expect(nowhere.body.error.message).toBe(
      'no handler named "nowhere" on node node-a nor on the other live nodes (node-b); known handlers: everywhere, only-b, only-b-checked (a node defines one with define(name, handler) in its program, or `runtrail serve --handlers FILE`)',
    );

    // A node that shuts down leaves the registry as it stops claiming: its handlers are refused elsewhere at once.
    await b.close();
    const gone = await http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs`, { name: 'only-b', execute: true });
    expect(gone.status).toBe(404);
    expect(gone.body.error.message).toBe('no handler named "only-b" on node node-a; known handlers: everywhere (a node defines one with define(name, handler) in its program, or `runtrail serve --handlers FILE`)');
    expect((await http<Handlers>('GET', `${a.url}/api/v1/handlers`)).body.nodes.map((n) => n.node)).toEqual(['node-a']);
  });
});

describe('a node that shuts down while the store does not answer its leaving the registry', () => {
  it("still aborts its handlers' signals at once and ends within the grace", async () => {
    const [, b] = await twoNodes();
    let abortedAt = 0;
    let listening = false;
    b.define(
      'waits',
      (ctx) =>
        new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => ((abortedAt = Date.now()), resolve()));
          listening = true;
        }),
    );
    const made = (await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'waits', execute: true })).body;
    // The handler itself, not only the run's status: a run claimed ("running") whose handler has not
    // started when the node stops is ended without calling it, and its signal is never there to abort.
    await waitUntil(() => listening, { what: 'the handler to start and listen for its signal' });
    // A store that never answers this one call (a partition at the wrong moment).
    b.runs.forgetHandlers = () => new Promise<void>(() => {});
    const stoppingAt = Date.now();
    await b.executor.shutdown();
    expect(abortedAt).toBeGreaterThan(0);
    expect(abortedAt - stoppingAt).toBeLessThan(250);
    // shutdownGraceMs is 500: the registry waits no longer than that.
    expect(Date.now() - stoppingAt).toBeLessThan(2_000);
    expect((await http<Run>('GET', `${b.url}/api/v1/runs/${made.id}`)).body).toMatchObject({ status: 'failed', error: { kind: 'interrupted' } });
  });
});

describe('nodes with different lease TTLs', () => {
  it('each counts the other live for as long as the other said (2.5 of its own announcement intervals), not by its own interval', async () => {
    const [a, b] = await twoNodes([1_500, 30_000]);
    a.define('on-a', async () => 'a');
    b.define('on-b', async () => 'b');
    type Handlers = { nodes: Array<{ node: string; heardAt: number; liveUntil: number }> };
    const nodes = await waitUntil(
      async () => {
        const body = (await http<Handlers>('GET', `${a.url}/api/v1/handlers`)).body;
        return body.nodes.length === 2 && body.nodes;
      },
      { what: 'both nodes in the registry' },
    );
    // A announces every 500 ms; B every 10 s, and A must not call B gone 1.25 s after B's announcement.
    expect(nodes.map((n) => [n.node, n.liveUntil - n.heardAt])).toEqual([
      ['node-a', 1_250],
      ['node-b', 25_000],
    ]);
  });
});

describe('a cancel through one node of a run another node executes', () => {
  it("reaches the handler's ctx.signal at once, not at the owner's next heartbeat (lease TTL / 3 = 10 s), and the run ends cancelled with the reason", async () => {
    const [a, b] = await twoNodes();
    const aborted = new Map<string, { at: number; reason: string }>();
    const started = new Set<string>();
    b.define('slow', (ctx) => {
      const { signal } = ctx;
      started.add(ctx.id);
      return new Promise<void>((resolve) =>
        signal.addEventListener('abort', () => {
          aborted.set(ctx.id, { at: Date.now(), reason: (signal.reason as Error).message });
          resolve();
        }),
      );
    });
    for (let i = 0; i < 5; i++) {
      const made = (await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'slow', execute: true })).body;
      // Its handler running, not only its run claimed: a cancel before the handler starts ends the run without calling
      // it (under load the claim was seen on A well before B called the handler, and the test waited for an abort).
      await waitUntil(() => started.has(made.id), { what: "node-b to call the run's handler" });
      const cancelledAt = Date.now();
      expect((await http('POST', `${a.url}/api/v1/runs/${made.id}/cancel`, { reason: `from A ${i}` })).status).toBe(200);
      const seen = await waitUntil(() => aborted.get(made.id), { timeoutMs: 15_000, what: "the handler's signal to abort" });
      expect(seen.reason).toBe(`from A ${i}`);
      expect(seen.at - cancelledAt).toBeLessThan(3_000);
      expect(await runEnded(a, made.id)).toMatchObject({ status: 'cancelled', error: { kind: 'cancelled', message: `from A ${i}` } });
    }
  });
});

async function runEnded(node: RunningServer, id: string): Promise<Run> {
  return waitUntil(
    async () => {
      const r = (await http<Run>('GET', `${node.url}/api/v1/runs/${id}`)).body;
      return r.status !== 'queued' && r.status !== 'running' && r;
    },
    { what: `run ${id} to end` },
  );
}
