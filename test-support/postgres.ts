import pg from 'pg';

/**
 * The PostgreSQL the tests use: RUNTRAIL_TEST_DATABASE_URL, or the one these
 * machines (and `.ci/run`) run on 127.0.0.1:5432 with trust auth. Tests that
 * need it FAIL with this message when it is unreachable; they never skip.
 */
export const TEST_DATABASE_URL = process.env.RUNTRAIL_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<void> | null = null;

export function requirePostgres(): Promise<void> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL, connectionTimeoutMillis: 5000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
    } catch (err) {
      throw new Error(
        `PostgreSQL is not reachable at ${TEST_DATABASE_URL} (${(err as Error).message}). ` +
          'Start it (.ci/run does: pg_ctlcluster --skip-systemctl-redirect 15 main start) ' +
          'or point RUNTRAIL_TEST_DATABASE_URL at another server.',
      );
    } finally {
      await client.end().catch(() => undefined /* it never connected: nothing to end */);
    }
  })();
  return reachable;
}

let counter = 0;

/** A fresh, empty schema name for one test; `dropSchema` removes it with everything in it. */
export async function freshSchema(): Promise<string> {
  await requirePostgres();
  return `rt_test_${process.pid}_${Date.now().toString(36)}_${(counter++).toString(36)}`;
}

export async function dropSchema(schema: string, url = TEST_DATABASE_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
