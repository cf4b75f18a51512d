import { afterEach, describe, expect, it } from 'vitest';
import { isSharedStore } from '@runtrail/store';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { dropSchema, freshSchema, proxiedDatabase } from '@runtrail/test-support/postgres';
import { startServer } from '../start.js';
import { jsonLogLines } from '../log-lines.test-kit.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('the database going away, in the log', () => {
  it("logs the pool's lost connections once, not once per connection, and its recovery with their count", async () => {
    const { proxy, url } = await proxiedDatabase();
    cleanups.push(() => proxy.close());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const dir = tempDir('runtrail-outage-log-');
    cleanups.push(() => dir.remove());
    const { lines, destination } = jsonLogLines();
    const server = await startServer({
      port: 0,
      dataDir: dir.path,
      databaseUrl: url,
      databaseSchema: schema,
      databasePoolSize: 6,
      logLevel: 'info',
      logFormat: 'json',
      stopOnSignals: false,
      logDestination: destination,
    });
    cleanups.push(() => server.close());
    const store = server.store;
    if (!isSharedStore(store)) throw new Error('expected the PostgreSQL store');
    // Several connections open and idle in the pool, as on a node that has been serving.
    await Promise.all(Array.from({ length: 6 }, () => store.countRuns({})));
    await waitUntil(() => store.databaseStats().connections.idle >= 3, { what: 'idle pool connections' });
    const idle = store.databaseStats().connections.idle;

    proxy.cut();
    const lost = () => lines.filter((l) => l.msg === 'database connection lost; the pool reconnects on next use');
    await waitUntil(() => store.databaseStats().connections.idle === 0 && lost().length > 0, { what: 'the idle connections lost' });
    expect(idle).toBeGreaterThanOrEqual(3);
    expect(lost()).toHaveLength(1);
    // Every lost connection is counted; the ones after the first were only reported with the
    // next outage's first line (or never) until the pool's next connection said it recovered.
    await waitUntil(() => store.databaseStats().connections.idle + store.databaseStats().connections.busy === 0, { what: 'the pool emptied' });
    proxy.allow();
    await store.countRuns({});
    const recovered = await waitUntil(() => lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('the pool connects to the database again')), {
      what: 'the recovery line',
    });
    // Each idle connection lost is one failure (one taken for a statement at the cut fails that statement instead).
    const failures = recovered.failures as number;
    expect(failures).toBeGreaterThanOrEqual(2);
    expect(failures).toBeLessThanOrEqual(6);
    expect(recovered).toMatchObject({ level: 30, sinceMs: expect.any(Number) });
    expect(recovered.msg).toMatch(new RegExp(`^the pool connects to the database again after ${failures} failure\\(s\\) over \\d+(\\.\\d)? s$`));
  });
});
