import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { startServer, type RunningServer } from '../start.js';
import { promtool, readmeMetricsDrift, sample } from '../http/metrics.test-kit.js';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';

describe('runtrail serve on PostgreSQL', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('is selected by RUNTRAIL_DATABASE_URL (a flag wins over it) and keeps runs in the database', async () => {
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    expect(loadConfig({}, { RUNTRAIL_DATABASE_URL: TEST_DATABASE_URL }).databaseUrl).toBe(TEST_DATABASE_URL);
    expect(loadConfig({ databaseUrl: 'postgres://other/db' }, { RUNTRAIL_DATABASE_URL: TEST_DATABASE_URL }).databaseUrl).toBe('postgres://other/db');
    expect(() => loadConfig({}, { RUNTRAIL_DATABASE_URL: 'mysql://x' })).toThrow(/postgres/);

    const start = () =>
      startServer({ port: 0, logLevel: 'silent', databaseUrl: TEST_DATABASE_URL, databaseSchema: schema, node: 'pg-node' });
    let server: RunningServer = await start();
    cleanups.push(() => server.close());
    expect(server.store.kind).toBe('postgres');
    const created = await fetch(`${server.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'on-pg' }),
    }).then((r) => r.json() as Promise<{ id: string }>);
    await fetch(`${server.url}/api/v1/runs/${created.id}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: [{ type: 'progress', data: { done: 1, total: 2 } }] }),
    });
    // Its pool and listening connection, read without asking the database, for sizing databasePoolSize.
    const metrics = await fetch(`${server.url}/metrics`).then((r) => r.text());
    expect(await promtool(metrics)).toEqual({ code: 0, output: '' });
    const busy = sample(metrics, 'runtrail_database_connections{state="busy"}')!;
    const idle = sample(metrics, 'runtrail_database_connections{state="idle"}')!;
    expect(busy + idle).toBeGreaterThanOrEqual(1);
    expect(busy + idle).toBeLessThanOrEqual(10);
    expect(sample(metrics, 'runtrail_database_waiting_queries')).toBe(0);
    expect(sample(metrics, 'runtrail_database_listening')).toBe(1);
    expect(sample(metrics, 'runtrail_database_listener_reconnects_total')).toBe(0);
    expect(sample(metrics, 'runtrail_runs{status="running"}')).toBe(1);
    expect(readmeMetricsDrift(metrics, (name) => name.startsWith('runtrail_database_'))).toEqual([]);
    await server.close();
    server = await start();
    const run = await fetch(`${server.url}/api/v1/runs/${created.id}`).then((r) => r.json() as Promise<{ seq: number; snapshot: { progress: { done: number } } }>);
    expect(run.seq).toBe(1);
    expect(run.snapshot.progress.done).toBe(1);
  });
});
