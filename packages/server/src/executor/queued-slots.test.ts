import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { slotWaitText } from '@runtrail/protocol';
import { startServer, type RunningServer, type StartOptions } from '../start.js';
import { tempDir, waitUntil } from '../leases/lease.test-kit.js';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';

/** GET /handlers tells each live node's slots, so a queued run held by a concurrency limit can say so. */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sqlite(): Promise<Partial<StartOptions>> {
  const dir = tempDir('runtrail-queued-slots-');
  cleanups.push(() => dir.remove());
  return { dataDir: dir.path };
}

async function postgres(): Promise<Partial<StartOptions>> {
  const schema = await freshSchema();
  cleanups.push(() => dropSchema(schema));
  return { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema };
}

async function serve(node: string, store: Partial<StartOptions>, concurrency = 4): Promise<{ server: RunningServer; client: RuntrailClient }> {
  const server = await startServer({ port: 0, logLevel: 'silent', node, concurrency, shutdownGraceMs: 500, ...store });
  cleanups.push(() => server.close());
  return { server, client: new RuntrailClient({ url: server.url }) };
}

/** A handler that holds its slot until the test lets it go (or the run is stopped). */
function holding(): { handler: (ctx: { signal: AbortSignal }) => Promise<void>; release(): void } {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  return { handler: (ctx) => Promise.race([held, new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()))]), release };
}

describe.each([
  ['sqlite', sqlite],
  ['postgres', postgres],
])('GET /handlers slots (%s)', (_kind, store) => {
  it("names each handler's concurrency and how many of its runs the node runs now, and the node's overall limit and use", async () => {
    const { server, client } = await serve('node-a', await store());
    const gpu = holding();
    cleanups.push(() => gpu.release());
    server.define('gpu', gpu.handler, { concurrency: 1 });
    server.define('cpu', async () => {});
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.startRun({ name: 'gpu' })).id);
    const answer = await waitUntil(
      async () => {
        const a = await client.describeHandlers();
        return a.nodes[0]?.slots?.runningByHandler.gpu === 1 ? a : null;
      },
      { timeoutMs: 10_000, what: 'node-a to tell one gpu run running' },
    );
    expect(answer.nodes).toEqual([
      expect.objectContaining({ node: 'node-a', handlers: ['cpu', 'gpu'], slots: { concurrency: 4, running: 1, handlerConcurrency: { gpu: 1 }, runningByHandler: { gpu: 1 } } }),
    ]);
    const third = await client.getRun(ids[2]!);
    expect(third.status).toBe('queued');
    expect(slotWaitText('gpu', answer.nodes, 1)).toBe(
      'Queued: the limit of its handler is reached on every node that defines it: gpu runs 1 at a time on node-a (its concurrency), and 1 runs there now. It starts when one of them ends. It is 2nd in line (1 queued run of it is older).',
    );
    gpu.release();
    await waitUntil(
      async () => {
        const a = await client.describeHandlers();
        return a.nodes[0]?.slots?.running === 0 ? a : null;
      },
      { timeoutMs: 10_000, what: 'node-a to tell its slots free once the runs ended' },
    );
  });
});

describe('GET /handlers slots of two nodes on one PostgreSQL database', () => {
  it("tells every node's slots, and a run waits for a limit only when every node that defines its handler is at one", async () => {
    const db = await postgres();
    const a = await serve('node-a', db, 1);
    const b = await serve('node-b', db, 3);
    const held = holding();
    cleanups.push(() => held.release());
    a.server.define('gpu', held.handler);
    a.server.define('other', held.handler);
    b.server.define('gpu', held.handler, { concurrency: 2 });
    // node-a's one slot taken by another handler; node-b's gpu limit of 2 reached.
    await a.client.startRun({ name: 'other' });
    await waitUntil(async () => ((await a.client.describeHandlers()).nodes.find((n) => n.node === 'node-a')?.slots?.running === 1 ? true : null), {
      timeoutMs: 10_000,
      what: 'node-a to run its other run',
    });
    for (let i = 0; i < 3; i++) await b.client.startRun({ name: 'gpu' });
    const nodes = await waitUntil(
      async () => {
        const n = (await a.client.describeHandlers()).nodes;
        return n.find((x) => x.node === 'node-b')?.slots?.runningByHandler.gpu === 2 ? n : null;
      },
      { timeoutMs: 10_000, what: 'node-b to tell two gpu runs running' },
    );
    expect(nodes.map((n) => [n.node, n.slots])).toEqual([
      ['node-a', { concurrency: 1, running: 1, handlerConcurrency: {}, runningByHandler: { other: 1 } }],
      ['node-b', { concurrency: 3, running: 2, handlerConcurrency: { gpu: 2 }, runningByHandler: { gpu: 2 } }],
    ]);
    expect(slotWaitText('gpu', nodes)).toBe(
      "Queued: every node that defines its handler is at a limit: gpu runs 2 at a time on node-b (its concurrency), and 2 run there now; node-a runs 1 run at a time (its executor's concurrency), and it is in use. It starts when one of them ends.",
    );
  });
});
