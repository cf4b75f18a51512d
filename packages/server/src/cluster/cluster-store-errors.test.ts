import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Run } from '@runtrail/protocol';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema, proxiedDatabase } from '@runtrail/test-support/postgres';
import { startServer, type RunningServer } from '../start.js';
import { RawWsClient } from '../stream/stream.test-kit.js';
import { sample, scrape } from '../http/metrics.test-kit.js';
import { http } from './cluster.test-kit.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const CLUSTER_SERIES = ['databaseNow', 'announceWatchers', 'fanoutRead'].map((operation) => `runtrail_store_errors_total{operation="${operation}"}`);

async function node(name: string, databaseUrl: string, schema: string): Promise<RunningServer> {
  const dir = tempDir(`runtrail-${name}-`);
  cleanups.push(() => dir.remove());
  const server = await startServer({
    port: 0,
    node: name,
    dataDir: dir.path,
    databaseUrl,
    databaseSchema: schema,
    databasePoolSize: 4,
    // The clock is measured again every lease TTL at least, and watcher counts repeated every TTL / 3.
    leaseTtlMs: 3000,
    logLevel: 'silent',
    stopOnSignals: false,
  });
  cleanups.push(() => server.close());
  return server;
}

describe("a node's cluster parts losing the database", () => {
  it('count their failures in runtrail_store_errors_total: the clock (databaseNow), watcher counts (announceWatchers) and the reads of other nodes\u2019 appends (fanoutRead)', async () => {
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const { proxy, url: proxied } = await proxiedDatabase();
    cleanups.push(() => proxy.close());
    const nameA = `${schema}-a`;
    // Node A reaches the database through the proxy, node B directly.
    const a = await node(nameA, proxied, schema);
    const b = await node(`${schema}-b`, TEST_DATABASE_URL, schema);

    for (const series of CLUSTER_SERIES) expect(sample(await scrape(a.url), series), series).toBe(0);
    const { body: run } = await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'watched-across-nodes', leaseTtlMs: 3_600_000 });
    const watcher = new RawWsClient(`${a.url.replace(/^http/, 'ws')}/api/v1/stream`);
    cleanups.push(() => watcher.close());
    await watcher.opened();
    watcher.send({ op: 'subscribe', runId: run.id, after: 0 });
    await waitUntil(() => watcher.messages.some((m) => m.type === 'subscribed'), { what: 'the subscription on node A' });

    // Node A loses its pool (its listening connection stays, so it still hears B's appends) and
    // cannot connect again: every statement it sends from now on fails.
    proxy.block();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`runtrail ${nameA}`]);
    } finally {
      await admin.end();
    }
    const { status } = await http('POST', `${b.url}/api/v1/runs/${run.id}/events`, { events: [{ type: 'progress', data: { done: 1 } }] });
    expect(status).toBe(200);

    await waitUntil(
      async () => {
        const text = await scrape(a.url);
        return CLUSTER_SERIES.every((series) => (sample(text, series) ?? 0) >= 1);
      },
      { timeoutMs: 30_000, what: 'the clock, watcher-count and fan-out failures of node A in its /metrics' },
    );
    // Node B never lost the database: nothing counted there.
    for (const series of CLUSTER_SERIES) expect(sample(await scrape(b.url), series), series).toBe(0);
    proxy.allow();
  });
});
