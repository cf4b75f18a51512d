import pg from 'pg';
import { TcpProxy } from './tcp-proxy.js';

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
        { cause: err },
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

/** Whether `schema` exists (a test that expects nothing to have been made asks this). */
export async function schemaExists(schema: string, url = TEST_DATABASE_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return ((await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

/** Ends the server's connections whose last statement was `query` (as a network cut would); how many it ended. */
export async function terminateConnections(query: string, url = TEST_DATABASE_URL): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rowCount } = await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1`, [query]);
    return rowCount ?? 0;
  } finally {
    await client.end();
  }
}

/**
 * A PostgreSQL of its own for a test that stops and restarts the server
 * (the shared one on 5432 serves everyone's tests and must never be
 * restarted): initdb in a temp dir, a free port, trust auth, fsync off.
 * Run as the `postgres` user when the tests run as root (PostgreSQL refuses
 * to run as root).
 */
export interface ThrowawayPostgres {
  url: string;
  port: number;
  start(): Promise<void>;
  /** Fast shutdown: open connections are terminated, as in a real restart. */
  stop(): Promise<void>;
  remove(): Promise<void>;
}

const PG_BIN = process.env.RUNTRAIL_TEST_PG_BIN || '/usr/lib/postgresql/15/bin';

export async function throwawayPostgres(): Promise<ThrowawayPostgres> {
  const { mkdtempSync, chownSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { execFile } = await import('node:child_process');
  const { createServer } = await import('node:net');
  if (!existsSync(join(PG_BIN, 'initdb'))) {
    throw new Error(`no PostgreSQL binaries in ${PG_BIN} (set RUNTRAIL_TEST_PG_BIN to the folder with initdb and pg_ctl)`);
  }
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, cmd), ...args]] : [join(PG_BIN, cmd), args];
      execFile(file, argv as string[], { timeout: 60_000 }, (err, _stdout, stderr) =>
        err ? reject(new Error(`${cmd} failed: ${err.message}\n${stderr}`)) : resolve(),
      );
    });
  const dir = mkdtempSync(join(tmpdir(), 'runtrail-pg-'));
  if (asRoot) {
    const { execFileSync } = await import('node:child_process');
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const port = await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const data = join(dir, 'data');
  await run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
  const pg = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => run('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']),
    stop: () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']),
    async remove() {
      await pg.stop().catch(() => undefined /* already stopped */);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await pg.start();
  return pg;
}

/** A TcpProxy in front of the test database (`cut()` it for an outage), and the database's URL through it. */
export async function proxiedDatabase(): Promise<{ proxy: TcpProxy; url: string }> {
  const proxy = await TcpProxy.start(TEST_DATABASE_URL.replace(/^postgres:/, 'http:'));
  const url = new URL(TEST_DATABASE_URL);
  url.host = new URL(proxy.url).host;
  return { proxy, url: url.toString() };
}
