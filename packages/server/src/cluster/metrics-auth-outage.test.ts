import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { dropSchema, freshSchema, proxiedDatabase } from '@runtrail/test-support/postgres';
import { startServer } from '../start.js';
import { sample } from '../http/metrics.test-kit.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const ADMIN = 'metrics-outage-admin-token-0123456789';

describe('/metrics with auth on while the database is down', () => {
  it("answers the scraper's token checked before the outage (runtrail_ready 0), as the README promises; a token never seen is still refused", async () => {
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const { proxy, url: proxied } = await proxiedDatabase();
    cleanups.push(() => proxy.close());
    const dir = tempDir('runtrail-metrics-outage-');
    cleanups.push(() => dir.remove());
    const server = await startServer({
      port: 0,
      node: `${schema}-a`,
      dataDir: dir.path,
      databaseUrl: proxied,
      databaseSchema: schema,
      databasePoolSize: 2,
      adminToken: ADMIN,
      // Expired long before the outage is noticed: the check must go to the store.
      tokenCacheMs: 50,
      logLevel: 'silent',
      stopOnSignals: false,
    });
    cleanups.push(() => server.close());
    const minted = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'prometheus', scope: 'viewer' }),
    });
    expect(minted.status).toBe(201);
    const { token } = (await minted.json()) as { token: string };
    const scrape = async (bearer: string) => {
      const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${bearer}` } });
      return { status: response.status, text: await response.text() };
    };
    expect((await scrape(token)).status).toBe(200);

    proxy.cut();
    // Before: 503 `unavailable` from the token check, so the scraper lost the node exactly when runtrail_ready 0 was to be seen.
    const down = await waitUntil(
      async () => {
        const got = await scrape(token);
        return got.status === 200 && sample(got.text, 'runtrail_ready') === 0 ? got : null;
      },
      { timeoutMs: 15_000, what: "a scrape with the viewer token answering runtrail_ready 0 while the database is down" },
    );
    expect(down.text).toContain('runtrail_database_listening 0');
    // Nothing is let in that was not checked before: an unknown token cannot be judged, so it is not served.
    expect((await scrape('rt_never-minted-token-0123456789')).status).not.toBe(200);
    proxy.allow();
  });
});
