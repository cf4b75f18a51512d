import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { runStoreConformance } from '../conformance.js';
import { builtStoreUrl, requireFreshBuild } from '../fresh-build.test-kit.js';
import { checkpointSuite, type CheckpointRow } from '../checkpoints.test-kit.js';
import { waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema, proxiedDatabase } from '@runtrail/test-support/postgres';
import { migrations, postgresDialect } from '../migrations.js';
import { LEGACY_RUN_ID, LEGACY_RUN_SQL, LEGACY_VERSION, expectLegacyRunIntact, legacyEventRows, legacySchema } from '../legacy-events.test-kit.js';
import { EVENTS_PAGE_SQL, PgRunStore, migratePostgresSchema } from './pg-store.js';
import { rollingUpgradeSuite } from '../rolling-upgrade.test-kit.js';

interface PlanNode {
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: PlanNode[];
}
import { dispatchNotification } from './notifications.js';
import type { Run } from '@runtrail/protocol';

/** location = `<schema>`: every store of a test opens the same schema of the test database. */
runStoreConformance(
  'postgres',
  async (location) => {
    const schema = location ?? (await freshSchema());
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 4 });
    return {
      store,
      location: schema,
      cleanup: async () => {
        await store.close();
        if (location === undefined) await dropSchema(schema);
      },
    };
  },
  {
    worker: {
      get moduleUrl() {
        requireFreshBuild();
        return builtStoreUrl;
      },
      exportName: 'connectStore',
      argument: (schema) => ({ dataDir: '', databaseUrl: TEST_DATABASE_URL, databaseSchema: schema, poolSize: 2 }),
    },
  },
);

/** A connection to the test database with `schema` as its search path, as the store's pool has. */
async function clientOn<T>(schema: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A login role of its own for one test (`kind` in its name), with an admin
 * connection to the test database; dropped afterwards with what it was
 * granted on the database, and `schema` (the test's, which it may own).
 */
async function withTestRole(kind: string, schema: string, fn: (role: string, admin: pg.Client) => Promise<void>): Promise<void> {
  const role = `rt_test_${kind}_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    await fn(role, admin);
  } finally {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.query(`REVOKE ALL ON DATABASE ${new URL(TEST_DATABASE_URL).pathname.slice(1)} FROM ${role}`).catch((err: unknown) => {
      // No such role (its CREATE failed): nothing was granted, and the DROP below says nothing either.
      void err;
    });
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  }
}

/** location = the schema. */
rollingUpgradeSuite('postgres', {
  fresh: () => freshSchema(),
  open: (schema, onNewerSchema) => PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2, onNewerSchema }),
  migrateWith: (schema, list) =>
    clientOn(schema, async (client) => {
      await client.query('BEGIN');
      try {
        await migratePostgresSchema(client, schema, list);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    }),
  versionOf: (schema) => clientOn(schema, async (client) => (await client.query<{ v: number }>('SELECT max(version) AS v FROM runtrail_migrations')).rows[0]!.v),
  remove: (schema) => dropSchema(schema),
});

checkpointSuite('postgres', async (policy) => {
  const schema = await freshSchema();
  const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2, ...policy });
  return {
    store,
    checkpointOf: async (runId) => {
      const { rows } = await store.query<CheckpointRow>(
        `SELECT r.seq, r.snapshot_seq, c.seq AS checkpoint_seq, c.snapshot FROM runs r
         LEFT JOIN run_checkpoints c ON c.run_id = r.id WHERE r.id = $1`,
        [runId],
      );
      return rows[0]!;
    },
    close: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
});

describe('PgRunStore specifics', () => {
  const schemas: string[] = [];
  afterEach(async () => {
    for (const s of schemas.splice(0)) await dropSchema(s);
  });
  /** A store on a fresh schema and a second connection LISTENing on its channel (what another node hears); both closed after `use`. */
  const withListener = async (use: (store: PgRunStore, listener: pg.Client) => Promise<void>) => {
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: await schema(), poolSize: 2 });
    const listener = new pg.Client({ connectionString: TEST_DATABASE_URL });
    try {
      await listener.connect();
      await listener.query(`LISTEN "${store.channel}"`);
      await use(store, listener);
    } finally {
      await listener.end();
      await store.close();
    }
  };

  const schema = async () => {
    const s = await freshSchema();
    schemas.push(s);
    return s;
  };

  it('migrates a new schema once when 4 nodes start at the same time, and records the version', async () => {
    const s = await schema();
    const stores = await Promise.all([0, 1, 2, 3].map(() => PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 1 })));
    try {
      const { rows } = await stores[0]!.query<{ version: number }>(`SELECT version FROM runtrail_migrations ORDER BY version`);
      expect(rows.map((r) => r.version)).toEqual(migrations.map((_, i) => i + 1));
      expect((await stores[3]!.listRuns({})).runs).toEqual([]);
    } finally {
      await Promise.all(stores.map((st) => st.close()));
    }
  });

  it('reads every event of a schema written before event bodies back byte for byte, and carries on appending', async () => {
    const s = await schema();
    const legacy = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await legacy.connect();
    try {
      // The schema as a runtrail at LEGACY_VERSION migrated it, holding the legacy run.
      await legacy.query(`CREATE SCHEMA ${s}; SET search_path TO ${s}`);
      await legacy.query(`CREATE TABLE runtrail_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      for (const step of legacySchema(postgresDialect)) {
        await legacy.query(step.sql);
        await legacy.query(`INSERT INTO runtrail_migrations (version) VALUES ($1)`, [step.version]);
      }
      await legacy.query(LEGACY_RUN_SQL);
      for (const e of legacyEventRows) {
        await legacy.query(`INSERT INTO events (run_id, seq, type, ts, data, event_id, terminal) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
          LEGACY_RUN_ID, e.seq, e.type, e.ts, e.data, e.event_id, e.terminal,
        ]);
      }
    } finally {
      await legacy.end();
    }
    const told: Array<[number, number]> = [];
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 2, onMigrating: (from, to) => told.push([from, to]) });
    try {
      expect(told).toEqual([[LEGACY_VERSION, migrations.length]]);
      await expectLegacyRunIntact(store);
    } finally {
      await store.close();
    }
  });

  it('reads a page of a long run by its own rows only, whatever the statistics say (a table never analyzed)', async () => {
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: await schema(), poolSize: 2 });
    try {
      await store.createRun({ id: 'long', name: 'n', now: 1, leaseTtlMs: 60_000 });
      for (let i = 0; i < 20; i++) {
        await store.append('long', Array.from({ length: 1000 }, (_, k) => ({ type: 'x.e', data: { i: i * 1000 + k } })), { now: 2 });
      }
      // How many rows each plan node produced, over all its loops: the scans of a page of 1,000 must not read the other 9,000 after it.
      const rowsRead = (node: PlanNode): number[] => [node['Actual Rows'] * node['Actual Loops'], ...(node.Plans ?? []).flatMap(rowsRead)];
      for (const after of [0, 10_000, 19_500]) {
        const { rows } = await store.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${EVENTS_PAGE_SQL}`, ['long', after, 1000]);
        const read = rowsRead(rows[0]!['QUERY PLAN'][0]!.Plan);
        expect(Math.max(...read), `rows read by the plan of a page after ${after}`).toBe(Math.min(1000, 20_000 - after));
      }
      expect((await store.readEvents('long', 19_500, 1000)).map((e) => e.seq)).toEqual(Array.from({ length: 500 }, (_, k) => 19_501 + k));
    } finally {
      await store.close();
    }
  });

  it('refuses a database a newer runtrail migrated with no record of which versions may use it, saying to upgrade', async () => {
    const s = await schema();
    const first = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 1 });
    // Without the marker of which versions may use it, as a schema of a runtrail before the marker is.
    await first.query(`INSERT INTO runtrail_migrations (version) VALUES ($1)`, [migrations.length + 1]);
    await first.query(`DELETE FROM schema_compatibility`);
    await first.close();
    await expect(PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 1 })).rejects.toThrow(
      new RegExp(`schema version ${migrations.length + 1}, known ${migrations.length}.*upgrade runtrail`),
    );
  });

  it('answers `unavailable` (not a crash) when the database cannot be reached', async () => {
    // A port nothing listens on: find one by binding and closing.
    const { createServer } = await import('node:net');
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const err = await PgRunStore.open({ connectionString: `postgres://postgres@127.0.0.1:${port}/test` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'unavailable' });
    expect((err as Error).message).toBe(
      `cannot use the PostgreSQL database "test" at 127.0.0.1:${port} as user "postgres": nothing accepts connections at 127.0.0.1:${port} (ECONNREFUSED); ` +
        "is PostgreSQL running there, and are the URL's host and port right?",
    );
  });

  it('survives a connection lost while a transaction holds it between statements: that transaction gets `unavailable`, the process carries on', async () => {
    const { proxy, url } = await proxiedDatabase();
    const store = await PgRunStore.open({ connectionString: url, schema: await schema(), poolSize: 2 });
    try {
      const failed = store.tx(async (client) => {
        // Checked out, nothing in flight: the cut reaches only the client's own 'error' event.
        const lost = new Promise<void>((resolve) => client.once('end', () => resolve()));
        proxy.cut();
        await lost;
        return client.query('SELECT 1');
      });
      await expect(failed).rejects.toMatchObject({ code: 'unavailable' });
      proxy.allow();
      await waitUntil(async () => (await store.readiness()).ready, { what: 'the store answers again through the proxy' });
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  /** TEST_DATABASE_URL with another user or database. */
  const urlWith = (change: (url: URL) => void): string => {
    const url = new URL(TEST_DATABASE_URL);
    change(url);
    return url.toString();
  };
  const openFailure = (connectionString: string, schema?: string) =>
    PgRunStore.open({ connectionString, poolSize: 1, ...(schema ? { schema } : {}) }).then(
      async (store) => {
        await store.close();
        throw new Error('opened');
      },
      (e: unknown) => e as Error,
    );

  it('a database that does not exist, or a user the server refuses, is named in one line saying what to do', async () => {
    const missing = `runtrail_test_missing_${process.pid}`;
    const noDatabase = await openFailure(urlWith((u) => (u.pathname = `/${missing}`)));
    expect(noDatabase).toMatchObject({ code: 'unavailable' });
    expect(noDatabase.message.startsWith(`cannot use the PostgreSQL database "${missing}" at `)).toBe(true);
    expect(noDatabase.message).toContain(`: there is no database "${missing}" (3D000); create it (createdb -h `);
    expect(noDatabase.message.endsWith(` ${missing}) or name one that exists`)).toBe(true);
    const noRole = await openFailure(urlWith((u) => (u.username = `runtrail_test_nobody_${process.pid}`)));
    expect(noRole.message).toMatch(/as user "runtrail_test_nobody_\d+": role "runtrail_test_nobody_\d+" does not exist \(28000\); check the URL's user/);
  });

  it('a URL asking for SSL of a server without it is told which, not shown a stack', async () => {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    const { rows } = await admin.query<{ ssl: string }>('SHOW ssl').finally(() => admin.end());
    // The case is the server saying no to SSL: the tests' own server has it off (.ci/run's cluster).
    expect(rows[0]!.ssl, 'this test needs a RUNTRAIL_TEST_DATABASE_URL server with ssl off').toBe('off');
    const refused = await openFailure(urlWith((u) => u.searchParams.set('sslmode', 'no-verify')));
    expect(refused).toMatchObject({ code: 'unavailable' });
    expect(refused.message).toMatch(/^cannot use the PostgreSQL database ".+" at .+: the server at .+ does not accept SSL, and the URL asks for it \(sslmode\); drop sslmode from the URL/);
  });

  /** A TCP server on loopback that is not PostgreSQL: `onConnection` decides what it does with each connection. */
  const notPostgres = async (onConnection: (socket: import('node:net').Socket) => void) => {
    const { createServer } = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      onConnection(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    return {
      port,
      close: () => {
        for (const socket of sockets) socket.destroy();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  };

  it('a URL pg cannot read (a port that is not a number, or past 65535) is one line, no stack, no password', async () => {
    for (const url of ['postgres://runtrail:s3cret@127.0.0.1:notaport/test', 'postgres://runtrail:s3cret@127.0.0.1:99999/test']) {
      const err = await openFailure(url);
      expect(err, url).toMatchObject({ code: 'invalid_request' });
      expect(err.message, url).toBe(
        'cannot use the PostgreSQL database: its URL is not a valid URL (postgres://user:password@host:5432/database); ' +
          'the port must be a number, and @ : / ? # in the user name or password must be percent-encoded (@ as %40)',
      );
    }
  });

  it('a URL naming no user, with USER and PGUSER unset (as in many containers), is not said to be user "postgres"; a socket directory given as ?host= is named', async () => {
    const saved = { USER: process.env.USER, PGUSER: process.env.PGUSER };
    delete process.env.USER;
    delete process.env.PGUSER;
    try {
      const url = new URL(TEST_DATABASE_URL);
      const err = await openFailure(`postgres://${url.host}/test`);
      // Before: 'as user "postgres": no PostgreSQL user name specified in startup packet', a user pg never sent.
      expect(err.message).toMatch(/^cannot use the PostgreSQL database "test" at .+ with no user name \(the URL names none, and PGUSER and USER are unset\): .+\(28000\); check the URL's user/);
      const socket = await openFailure('postgres://nobody@localhost/test?host=/nonexistent-socket-dir');
      expect(socket.message).toBe(
        'cannot use the PostgreSQL database "test" at /nonexistent-socket-dir:5432 as user "nobody": there is no PostgreSQL socket in /nonexistent-socket-dir for port 5432 (ENOENT); ' +
          "is PostgreSQL running there, and are the URL's host (the socket directory) and port right?",
      );
    } finally {
      for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value;
    }
  });

  it('a port where something else closes the connection, or never answers, is named with what to check', async () => {
    const closes = await notPostgres((socket) => socket.destroy());
    const silent = await notPostgres(() => undefined /* holds the connection and says nothing, as a wrong service or a proxy may */);
    try {
      const closed = await openFailure(`postgres://postgres@127.0.0.1:${closes.port}/test`);
      expect(closed).toMatchObject({ code: 'unavailable' });
      expect(closed.message).toBe(
        `cannot use the PostgreSQL database "test" at 127.0.0.1:${closes.port} as user "postgres": 127.0.0.1:${closes.port} closed the connection before answering as PostgreSQL; ` +
          "is it PostgreSQL's port (it is usually 5432), and does a firewall or proxy between let the connection through?",
      );
      const timedOut = await PgRunStore.open({ connectionString: `postgres://postgres@127.0.0.1:${silent.port}/test`, poolSize: 1, connectTimeoutMs: 300 }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(timedOut).toMatchObject({ code: 'unavailable' });
      expect(timedOut?.message).toBe(
        `cannot use the PostgreSQL database "test" at 127.0.0.1:${silent.port} as user "postgres": 127.0.0.1:${silent.port} accepted the connection but did not answer as PostgreSQL within 300 ms; ` +
          'is PostgreSQL listening on that port (it is usually 5432), or is a firewall or proxy holding the connection?',
      );
    } finally {
      await closes.close();
      await silent.close();
    }
  });

  it('a statement cancelled by the statement timeout says so and names the limit, not that the database is down', async () => {
    const s = await schema();
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 2, statementTimeoutMs: 200 });
    const locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await locker.connect();
    try {
      await store.createRun({ id: 'locked-1', name: 'locked', now: 1, leaseTtlMs: 1000 });
      // Another session holds the table: the store's read waits on the lock until its statement timeout.
      await locker.query(`BEGIN; LOCK TABLE ${s}.runs IN ACCESS EXCLUSIVE MODE`);
      const err = await store.listRuns({ limit: 10 }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err).toMatchObject({ code: 'unavailable' });
      expect(err?.message).toBe(
        'PostgreSQL cancelled a statement that ran longer than the statement timeout (200 ms) (57014): a lock held by another session, or an overloaded database; ' +
          'retry shortly, or raise databaseStatementTimeoutMs (--database-statement-timeout-ms) if such statements are expected',
      );
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
      await store.close();
    }
  });

  it('a user that may not create schemas is told so; given a schema of its own, it needs no more', async () => {
    const own = await schema();
    await withTestRole('role', own, async (role, admin) => {
      const asRole = urlWith((u) => (u.username = role));
      const refused = await openFailure(asRole, `${own}_other`);
      expect(refused).toMatchObject({ code: 'unavailable' });
      expect(refused.message).toMatch(/permission denied for database .+ \(42501\): runtrail makes its schema and tables when it starts; grant the user CREATE on the database, or name a schema it may use with --database-schema$/);
      // The advice holds: a schema the role owns is enough (no CREATE on the database).
      await admin.query(`CREATE SCHEMA ${own} AUTHORIZATION ${role}`);
      const store = await PgRunStore.open({ connectionString: asRole, schema: own, poolSize: 1 });
      try {
        const { run } = await store.createRun({ id: 'owned-1', name: 'owned', now: 1, leaseTtlMs: 1000 });
        expect((await store.append(run.id, [{ type: 'x' }], { now: 2 })).seq).toBe(1);
      } finally {
        await store.close();
      }
    });
  });

  it('a running node whose user may no longer log in (NOLOGIN, its backends ended) answers `unavailable`, not an internal error', async () => {
    const own = await schema();
    await withTestRole('nologin', own, async (role, admin) => {
      await admin.query(`CREATE SCHEMA ${own} AUTHORIZATION ${role}`);
      const store = await PgRunStore.open({ connectionString: urlWith((u) => (u.username = role)), schema: own, poolSize: 1 });
      try {
        await store.listRuns({});
        await admin.query(`ALTER ROLE ${role} NOLOGIN`);
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role]);
        // The pool drops the ended connection; the next statement must connect anew, and is refused (28000).
        await waitUntil(() => store.databaseStats().connections.idle === 0, { what: "the pool to drop the role's ended connection" });
        const err = await store.listRuns({}).then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err).toMatchObject({ code: 'unavailable' });
        expect(err?.message).toContain(`role "${role}" is not permitted to log in`);
      } finally {
        await store.close();
      }
    });
  });

  it('a user with CREATE on the database but not on an existing schema is told about the schema, not to grant what it has', async () => {
    const theirs = await schema();
    await withTestRole('schema', theirs, async (role, admin) => {
      await admin.query(`GRANT CREATE ON DATABASE ${new URL(TEST_DATABASE_URL).pathname.slice(1)} TO ${role}`);
      await admin.query(`CREATE SCHEMA ${theirs}`);
      const advice = `schema ${theirs} exists and this user may not create in it; make the user its owner (ALTER SCHEMA ${theirs} OWNER TO ${role}), or name another schema with --database-schema`;
      // No USAGE on it: before, pg's 'no schema has been selected to create in' came out raw (the CLI printed its stack).
      const unusable = await openFailure(urlWith((u) => (u.username = role)), theirs);
      expect(unusable).toMatchObject({ code: 'unavailable' });
      expect(unusable.message).toMatch(new RegExp(`as user "${role}": no schema has been selected to create in \\(3F000\\): `));
      expect(unusable.message.endsWith(advice)).toBe(true);
      // USAGE but not CREATE: before, 'grant the user CREATE on the database', which it had.
      await admin.query(`GRANT USAGE ON SCHEMA ${theirs} TO ${role}`);
      const refused = await openFailure(urlWith((u) => (u.username = role)), theirs);
      expect(refused).toMatchObject({ code: 'unavailable' });
      expect(refused.message).toMatch(new RegExp(`as user "${role}": permission denied for schema ${theirs} \\(42501\\): `));
      expect(refused.message.endsWith(advice)).toBe(true);
    });
  });

  it("names its connections, pool and listener, so an operator tells nodes apart in pg_stat_activity; a name in the URL wins", async () => {
    const s = await schema();
    const activity = async (pattern: string) => {
      const probe = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await probe.connect();
      try {
        const { rows } = await probe.query<{ name: string }>('SELECT application_name AS name FROM pg_stat_activity WHERE application_name LIKE $1', [pattern]);
        return rows.map((r) => r.name);
      } finally {
        await probe.end();
      }
    };
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 2, applicationName: `runtrail ${s}` });
    const feed = await store.listen({ onAppend() {}, onDelete() {}, onReconnect() {}, onDisconnect() {} });
    try {
      await store.listRuns({});
      expect(new Set(await activity(`runtrail ${s}%`))).toEqual(new Set([`runtrail ${s}`, `runtrail ${s} listener`]));
    } finally {
      await feed.close();
      await store.close();
    }
    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set('application_name', `ops ${s}`);
    const named = await PgRunStore.open({ connectionString: url.toString(), schema: s, poolSize: 1, applicationName: `runtrail ${s}` });
    try {
      await named.listRuns({});
      expect(await activity(`ops ${s}`)).toEqual([`ops ${s}`]);
    } finally {
      await named.close();
    }
  });

  it('sends one notification per run per commit, carrying only the run id and the seqs the commit took', async () => {
    await withListener(async (store, listener) => {
      const got: string[] = [];
      listener.on('notification', (n) => got.push(n.payload ?? ''));
      const { run } = await store.createRun({ id: 'r 1', name: 'n', now: 1, leaseTtlMs: 1000 });
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.append(run.id, [{ type: 'x.a' }, { type: 'x.b', id: `e${i}` }], { now: 2 })));
      const head = (await store.getRun(run.id))!.seq;
      expect(head).toBe(40);
      await waitUntil(() => got.some((p) => p.startsWith('a ') && p.endsWith(` ${head} r 1`)), { what: `the notification that takes the run to seq ${head}` });
      expect(got[0]).toBe('a 0 0 r 1');
      // Group commit: fewer notifications than appends; each takes the run on from where the last left it.
      expect(got.length).toBeLessThanOrEqual(21);
      const feed = { appends: [] as Array<[string, number, number]>, onAppend(runId: string, seq: number, from: number) { this.appends.push([runId, from, seq]); }, onDelete() {}, onReconnect() {}, onDisconnect() {} };
      for (const payload of got) dispatchNotification(payload, feed);
      expect(feed.appends.map(([runId]) => runId)).toEqual(got.map(() => 'r 1'));
      feed.appends.slice(1).forEach(([, from], i) => expect(from).toBe(feed.appends[i]![2]));
      expect(feed.appends.at(-1)![2]).toBe(40);
    });
  });

  it("notifies a stop after the append of a cancel request or an end, and only then, naming the run", async () => {
    await withListener(async (store, listener) => {
      const got: string[] = [];
      listener.on('notification', (n) => got.push(n.payload ?? ''));
      const { run } = await store.createRun({ id: 'stop me', name: 'n', now: 1, leaseTtlMs: 1000 });
      const { run: other } = await store.createRun({ id: 'other', name: 'n', now: 1, leaseTtlMs: 1000 });
      await store.append(run.id, [{ type: 'progress', data: { done: 1 } }], { now: 2 });
      await store.append(other.id, [{ type: 'x.a' }], { now: 2 });
      await store.append(run.id, [{ type: 'run.cancel_requested', data: { reason: 'enough' } }], { now: 3 });
      await store.append(run.id, [{ type: 'run.cancelled', data: {} }], { now: 4 });
      await waitUntil(() => got.filter((p) => p.startsWith('s ')).length === 2, { what: 'the stop notifications' });
      // Each after the append it belongs to, and none for the other appends.
      expect(got.filter((p) => !p.startsWith('a 0 0 '))).toEqual(['a 0 1 stop me', 'a 0 1 other', 'a 1 2 stop me', 's stop me', 'a 2 3 stop me', 's stop me']);
      const stops: string[] = [];
      const feed = { onAppend() {}, onStop: (runId: string) => stops.push(runId), onDelete() {}, onReconnect() {}, onDisconnect() {} };
      for (const payload of got) dispatchNotification(payload, feed);
      expect(stops).toEqual(['stop me', 'stop me']);
    });
  });

  it('notifies each revoke, a scoped token by its hash and id, a run token by its id; an id that is no token notifies nothing', async () => {
    await withListener(async (store, listener) => {
      const got: string[] = [];
      listener.on('notification', (n) => got.push(n.payload ?? ''));
      const { run } = await store.createRun({ id: 'shared', name: 'n', now: 1, leaseTtlMs: 1000 });
      const hash = 'ab'.repeat(32);
      await store.createToken({ id: 'tok 1', name: 'viewer', scope: 'viewer', hash, createdAt: 1, expiresAt: null, revokedAt: null });
      await store.createRunToken({ id: 'link 1', runId: run.id, write: false, createdAt: 1, expiresAt: 10_000, revokedAt: null, mintedBy: null });
      expect(await store.revokeToken('no such token', 2)).toBeNull();
      await store.revokeToken('tok 1', 2);
      await store.revokeRunToken('link 1', 2);
      await waitUntil(() => got.filter((p) => p.startsWith('r ')).length === 2, { what: 'the revoke notifications' });
      expect(got.filter((p) => p.startsWith('r '))).toEqual([`r ${hash} tok 1`, 'r - link 1']);
      const revoked: Array<{ id: string; hash: string | null }> = [];
      const feed = { onAppend() {}, onDelete() {}, onReconnect() {}, onDisconnect() {}, onTokenRevoked: (r: { id: string; hash: string | null }) => revoked.push(r) };
      for (const payload of got) dispatchNotification(payload, feed);
      // A payload of another shape is ignored.
      dispatchNotification('r ', feed);
      dispatchNotification('r nohash', feed);
      expect(revoked).toEqual([{ id: 'tok 1', hash }, { id: 'link 1', hash: null }]);
    });
  });

  it("announces a node's watcher counts to every listener, in payloads under PostgreSQL's cap however many runs", async () => {
    await withListener(async (store, listener) => {
      const got: string[] = [];
      listener.on('notification', (n) => got.push(n.payload ?? ''));
      // 400 runs with long ids: more than one payload's worth.
      const counts = Array.from({ length: 400 }, (_, i): [string, number] => [`run ${i} ${'x'.repeat(40)} "ünï"`, i % 3]);
      await store.announceWatchers({ node: 'node-a', refreshMs: 10_000, counts });
      await waitUntil(() => got.join('').includes(`"run 399 `), { what: 'the last run of the announcement' });
      expect(got.length).toBeGreaterThan(1);
      expect(got.every((p) => Buffer.byteLength(p) < 8000)).toBe(true);
      const heard: Array<[string, number]> = [];
      const feed = {
        onAppend() {},
        onDelete() {},
        onReconnect() {},
        onDisconnect() {},
        onWatchers(a: { node: string; refreshMs: number; counts: Array<[string, number]> }) {
          expect([a.node, a.refreshMs]).toEqual(['node-a', 10_000]);
          heard.push(...a.counts);
        },
      };
      for (const payload of got) dispatchNotification(payload, feed);
      // A payload of another shape (a newer node's, or not JSON) is ignored.
      dispatchNotification('w {not json', feed);
      dispatchNotification('w {"node":"x","refreshMs":-1,"counts":[]}', feed);
      expect(heard).toEqual(counts);
    });
  });

  describe('appends on rows as this node last wrote them (append tokens)', () => {
    const owner = (id: string) => ({ kind: 'producer' as const, node: `node-${id}`, id });
    /** Two nodes' stores on one schema. */
    const twoNodes = async () => {
      const s = await schema();
      const a = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 3 });
      const b = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 3 });
      return { a, b, close: () => Promise.all([a.close(), b.close()]) };
    };

    it('commits a run’s appends without reading its row once this node wrote it last', async () => {
      const { a, close } = await twoNodes();
      try {
        await a.createRun({ id: 'r', name: 'n', now: 1, leaseTtlMs: 60_000, owner: owner('a') });
        for (let i = 1; i <= 30; i++) {
          const r = await a.append('r', [{ type: 'x.tick', data: { i }, id: `e${i}` }], { now: 1 + i, owner: owner('a') });
          expect(r.seq).toBe(i);
        }
        // The first append reads the row under its lock; every later one takes the unread way.
        expect(a.commitCounts).toEqual({ locked: 1, unread: 29 });
      } finally {
        await close();
      }
    });

    it('sees every change another node made to the row since (a heartbeat, a takeover, appends), 200 times', async () => {
      const { a, b, close } = await twoNodes();
      try {
        let now = 1_000;
        let seq = 0;
        for (let round = 0; round < 200; round++) {
          const id = `r${round}`;
          await a.createRun({ id, name: 'n', now, leaseTtlMs: 1_000, owner: owner('a') });
          // A writes the row, so its next append would go unread...
          seq = (await a.append(id, [{ type: 'x.tick' }], { now: ++now, owner: owner('a') })).seq;
          expect(seq).toBe(1);
          // ...but B changes it first, in one of three ways.
          switch (round % 3) {
            case 0: {
              // B appends: A's next events come after B's, with no gap.
              const fromB = await b.append(id, [{ type: 'x.b' }, { type: 'x.b' }], { now: ++now });
              expect(fromB.seq).toBe(3);
              const next = await a.append(id, [{ type: 'x.tick' }], { now: ++now, owner: owner('a') });
              expect(next.seq).toBe(4);
              break;
            }
            case 1: {
              // B's producer takes over once A's lease lapsed: A is refused, naming B's owner.
              now += 2_000;
              await b.heartbeat(id, { now, owner: owner('b') });
              await expect(a.append(id, [{ type: 'x.tick' }], { now: ++now, owner: owner('a') })).rejects.toMatchObject({
                code: 'lease_lost',
                message: expect.stringContaining('node-b'),
              });
              break;
            }
            default: {
              // B renews the lease (a heartbeat of the same owner): A's append keeps B's renewal, not its own copy.
              now += 500;
              const beat = await b.heartbeat(id, { now, owner: owner('a') });
              const next = await a.append(id, [{ type: 'x.tick' }], { now, owner: owner('a'), renewLease: false });
              expect(next.seq).toBe(2);
              expect(next.run.leaseExpiresAt).toBe(beat.leaseExpiresAt);
            }
          }
          const [fromA, fromB] = [await a.getRun(id), await b.getRun(id)];
          expect(fromA).toEqual(fromB);
          const events = await b.readEvents(id, 0, 100);
          expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        }
        // Each change was found by the token (A's unread write failed whole and was made again on
        // the row read under its lock), not by luck: 200 first appends and 200 such retries.
        expect(a.commitCounts).toEqual({ locked: 400, unread: 0 });
      } finally {
        await close();
      }
    });

    it('gives seq exactly 1..4,000 and snapshots equal to the fold when both nodes append to one run at once, 16 appenders each', async () => {
      const { a, b, close } = await twoNodes();
      try {
        await a.createRun({ id: 'r', name: 'n', now: 1, leaseTtlMs: 60_000 });
        const perNode = 2_000;
        const appender = (store: PgRunStore, node: string, k: number) => async () => {
          for (let i = k; i < perNode; i += 16) {
            await store.append('r', [{ type: 'counter', data: { name: node, delta: 1 }, id: `${node}-${i}` }], { now: 2 });
            // Readers on both nodes meanwhile: a node's snapshot must never be folded on seqs another node took.
            if (i % 160 === k) await Promise.all([a.getRun('r'), b.getRun('r')]);
          }
        };
        await Promise.all([
          ...Array.from({ length: 16 }, (_, k) => appender(a, 'a', k)()),
          ...Array.from({ length: 16 }, (_, k) => appender(b, 'b', k)()),
        ]);
        const events = await a.readEvents('r', 0, 10_000);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 2 * perNode }, (_, i) => i + 1));
        expect(new Set(events.map((e) => e.id)).size).toBe(2 * perNode);
        for (const store of [a, b]) {
          const run = (await store.getRun('r'))!;
          expect(run.seq).toBe(2 * perNode);
          expect(run.snapshot.counters.named).toEqual({ a: perNode, b: perNode });
        }
        // One more append on each node folds on its own head: still right.
        await a.append('r', [{ type: 'counter', data: { name: 'a', delta: 1 } }], { now: 3 });
        const last = await b.append('r', [{ type: 'counter', data: { name: 'b', delta: 1 } }], { now: 3 });
        expect(last.run.snapshot.counters.named).toEqual({ a: perNode + 1, b: perNode + 1 });
        expect((await a.getRun('r'))!.snapshot.counters.named).toEqual({ a: perNode + 1, b: perNode + 1 });
        // Both took the unread way, and both found the other's writes in the way.
        for (const store of [a, b]) {
          expect(store.commitCounts.unread).toBeGreaterThan(0);
          expect(store.commitCounts.locked).toBeGreaterThan(1);
        }
      } finally {
        await close();
      }
    });
  });

  it('tells other nodes of a deleted run with its list fields, or only its id when they do not fit in a notification', async () => {
    await withListener(async (store, listener) => {
      const deleted: Array<[string, Run | null]> = [];
      const feed = { onAppend() {}, onDelete: (runId: string, run: Run | null) => deleted.push([runId, run]), onReconnect() {}, onDisconnect() {} };
      listener.on('notification', (n) => dispatchNotification(n.payload ?? '', feed));
      const bigLabels = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`label${i}`, 'x'.repeat(400)]));
      for (const [id, labels] of [['small', { team: 'a' }], ['big', bigLabels]] as const) {
        await store.createRun({ id, name: 'n', now: 1, leaseTtlMs: 1000, labels, input: { prompt: 'kept out of the notification' } });
        await store.append(id, [{ type: 'run.succeeded' }], { now: 2 });
        await store.deleteRun(id);
      }
      await waitUntil(() => deleted.length >= 2, { what: 'both deletes to be told' });
      expect(deleted[0]![0]).toBe('small');
      expect(deleted[0]![1]).toMatchObject({ id: 'small', name: 'n', labels: { team: 'a' }, status: 'succeeded', input: null });
      expect(deleted[1]).toEqual(['big', null]);
    });
  });

  it("a run created under a run another node is deleting waits for the delete and is refused, never left pointing at nothing", async () => {
    const s = await schema();
    const store = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema: s, poolSize: 2 });
    const deleter = new pg.Client({ connectionString: TEST_DATABASE_URL });
    try {
      await store.createRun({ id: 'parent', name: 'p', now: 1, leaseTtlMs: 1000 });
      await store.append('parent', [{ type: 'run.succeeded' }], { now: 2 });
      await deleter.connect();
      await deleter.query(`SET search_path TO "${s}"`);
      // The other node's delete has locked the parent and found no run under it.
      await deleter.query('BEGIN');
      await deleter.query(`SELECT 1 FROM runs WHERE id = 'parent' FOR UPDATE`);
      const child = store.createRun({ id: 'child', name: 'c', now: 3, leaseTtlMs: 1000, parentId: 'parent' }).then(
        () => null,
        (e: unknown) => e,
      );
      await waitUntil(
        async () => {
          const { rows } = await deleter.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))`,
          );
          return rows[0]!.n > 0;
        },
        { what: "the child's create to wait for the parent's row lock" },
      );
      await deleter.query(`DELETE FROM runs WHERE id = 'parent'`);
      await deleter.query('COMMIT');
      expect(await child).toMatchObject({ code: 'run_not_found', details: { parentId: 'parent' } });
      expect(await store.getRun('child')).toBeNull();
    } finally {
      await deleter.end();
      await store.close();
    }
  });
});
