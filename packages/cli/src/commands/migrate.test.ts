import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg_ from 'pg';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunEvent, Run } from '@runtrail/protocol';
import { PgRunStore, SqliteRunStore, copySqliteToPostgres, openSqliteSource, type RunStore } from '@runtrail/store';
import { progressEvents, tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
// The store's fixture of a file from before event bodies: the same run its own migration is tested on.
import { expectLegacyRunIntact, writeLegacySqliteFile } from '../../../store/src/legacy-events.test-kit.js';
// The store's own migration path, given a longer list: a schema as a newer runtrail migrates it.
import { compatibleFrom, migrations, type Migration } from '../../../store/src/migrations.js';
import { migratePostgresSchema } from '../../../store/src/postgres/pg-store.js';

/** `runtrail migrate` as a user runs it: the built binary, a real SQLite data dir, a real PostgreSQL. */
const BIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

function migrate(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'migrate', ...args], { env: { ...process.env, RUNTRAIL_DATABASE_URL: '' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function everything(store: RunStore): Promise<Array<{ run: Run; events: RunEvent[] }>> {
  const out: Array<{ run: Run; events: RunEvent[] }> = [];
  for (const run of (await store.listRuns({ limit: 500 })).runs) {
    out.push({ run, events: await store.readEvents(run.id, 0, 10_000) });
  }
  return out;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('runtrail migrate', () => {
  it('copies every run, event and snapshot of a SQLite data dir into PostgreSQL, unchanged, and skips what is already there when run again', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    const owner = { kind: 'producer' as const, node: 'laptop', id: 'sdk-1' };
    const { run: parent } = await sqlite.createRun({ id: '0190a000-0000-7000-8000-000000000001', name: 'pipeline', now: 1000, leaseTtlMs: 30_000, labels: { team: 'ml', 'we"ird': 'v' }, owner, input: { docs: 3 } });
    const { run: child } = await sqlite.createRun({ id: '0190a000-0000-7000-8000-000000000002', name: 'stage', now: 1001, leaseTtlMs: 30_000, parentId: parent.id, idempotencyKey: 'stage-1' });
    await sqlite.createRun({ id: '0190a000-0000-7000-8000-000000000003', name: 'job', now: 1002, leaseTtlMs: 5000, execute: true, timeoutMs: 60_000 });
    await sqlite.append(parent.id, [{ type: 'run.started' }, { type: 'phase', data: { name: 'gen', status: 'started', timeoutMs: 9000 } }], { now: 1100, owner });
    for (let i = 0; i < 30; i++) {
      await sqlite.append(child.id, [{ type: 'counter', data: { name: 'n', delta: 1 }, id: `c-${i}` }, { type: 'progress', data: { done: i + 1, total: 30 } }], { now: 1200 + i });
    }
    await sqlite.append(child.id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'boom' }, output: { partial: true } }, id: 'end' }], { now: 2000 });
    const before = await everything(sqlite);
    await sqlite.close();

    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const first = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('copied 3 run(s) and 63 event(s)');
    expect(first.stdout).toContain('2 copied run(s) had not ended');

    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    expect(await everything(pg)).toEqual(before);
    // Analysed once copied: the planner counts the runs and events it holds (never-analysed tables say -1).
    const planned = await pg.query<{ relname: string; reltuples: number }>(
      `SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname IN ('runs', 'events') ORDER BY c.relname`,
      [schema],
    );
    expect(planned.rows).toEqual([{ relname: 'events', reltuples: 63 }, { relname: 'runs', reltuples: 3 }]);
    expect((await pg.listRuns({ label: 'we"ird=v' })).runs.map((r) => r.id)).toEqual([parent.id]);
    // It carries on where SQLite stopped: ids, seqs, the single end and idempotency keys still hold.
    expect((await pg.append(child.id, [{ type: 'run.succeeded', data: {} }], { now: 3000 }).catch((e: { code: string }) => e.code))).toBe('run_already_terminal');
    expect((await pg.append(parent.id, [{ type: 'x.more' }, { type: 'counter', data: { name: 'n', delta: 1 }, id: 'x' }], { now: 3000, owner })).seqs).toEqual([3, 4]);
    expect((await pg.createRun({ id: 'other', name: 'stage', now: 3000, leaseTtlMs: 1000, idempotencyKey: 'stage-1' })).created).toBe(false);

    const again = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('copied 0 run(s) and 0 event(s)');
    expect(again.stdout).toContain('3 run(s) were already there');
    // Before: every later migrate repeated that a copied run had not ended, copying nothing, with the server long stopped.
    expect(again.stdout).not.toContain('had not ended');
    expect((await pg.getRun(parent.id))!.seq).toBe(4);
  });

  it('brings runs copied while the server still wrote the data dir up to date when run again: new events, the row, checkpoint and artifacts', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    // Open through the whole test, as the embedded server still running while the user migrates.
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    cleanups.push(() => sqlite.close());
    const owner = { kind: 'producer' as const, node: 'laptop', id: 'exec-1' };
    const { run: live } = await sqlite.createRun({ id: '0190b000-0000-7000-8000-000000000001', name: 'exec', now: 1000, leaseTtlMs: 30_000, owner });
    await sqlite.append(live.id, [{ type: 'run.started' }, ...progressEvents(40)], { now: 1100, owner });
    const { run: done } = await sqlite.createRun({ id: '0190b000-0000-7000-8000-000000000002', name: 'done', now: 1000, leaseTtlMs: 30_000 });
    await sqlite.append(done.id, [{ type: 'run.succeeded', data: {} }], { now: 1200 });
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const args = ['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema];

    const first = await migrate(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('copied 2 run(s) and 42 event(s)');
    expect(first.stdout).toContain('1 copied run(s) had not ended');
    expect(first.stdout).toContain('stop the server and run runtrail migrate again');
    expect(first.stdout).not.toContain('artifact record');

    // The run goes on in SQLite after its copy: past a checkpoint, an artifact, a heartbeat, its end.
    await sqlite.append(live.id, progressEvents(1500, 40), { now: 5000, owner });
    await sqlite.putArtifact({ runId: live.id, name: 'report.txt', contentType: 'text/plain', size: 3, sha256: 'c'.repeat(64), metadata: { k: 1 }, now: 5100, replace: false, maxRunBytes: 1e9 });
    await sqlite.heartbeat(live.id, { now: 5200, owner });
    await sqlite.append(live.id, [{ type: 'run.succeeded', data: { output: { ok: true } } }], { now: 6000, owner });
    const before = await everything(sqlite);
    const artifactsBefore = await sqlite.listArtifacts(live.id);

    const second = await migrate(args);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('copied 0 run(s) and 1502 event(s)');
    expect(second.stdout).toContain('brought 1 run(s) copied before up to date');
    // Where the artifacts' content is, which migrate does not copy: the nodes must be pointed at it.
    expect(second.stdout).toContain(
      `copied 1 artifact record(s); their content is not copied: it stays in ${join(dir.path, 'artifacts')} (or the --artifacts-dir that server used): ` +
        'give every node --artifacts-dir pointing at it, or at a copy of it',
    );
    expect(second.stdout).not.toContain('had not ended');
    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    expect(await everything(pg)).toEqual(before);
    expect(await pg.listArtifacts(live.id)).toEqual(artifactsBefore);

    const third = await migrate(args);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain('copied 0 run(s) and 0 event(s)');
    expect(third.stdout).toContain('2 run(s) were already there');
    expect(await everything(pg)).toEqual(before);
  });

  it('refuses to bring a run up to date whose copied events differ from the data dir, naming the run and seq, and changes nothing', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    cleanups.push(() => sqlite.close());
    const { run } = await sqlite.createRun({ id: '0190c000-0000-7000-8000-000000000001', name: 'exec', now: 1000, leaseTtlMs: 30_000 });
    await sqlite.append(run.id, progressEvents(3), { now: 1100 });
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const args = ['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema];
    expect((await migrate(args)).code).toBe(0);
    const client = new pg_.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    cleanups.push(() => client.end());
    await client.query(`UPDATE ${schema}.events SET body = replace(body, '"done":2', '"done":20') WHERE run_id = $1 AND seq = 2`, [run.id]);
    const tampered = (await client.query(`SELECT seq, body FROM ${schema}.events WHERE run_id = $1 ORDER BY seq`, [run.id])).rows;
    expect(tampered[1].body).toContain('"done":20');
    await sqlite.append(run.id, progressEvents(2, 3), { now: 1200 });

    const r = await migrate(args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toContain(`run ${run.id}'s event at seq 2 in PostgreSQL is not the data dir's`);
    expect((await client.query(`SELECT seq, body FROM ${schema}.events WHERE run_id = $1 ORDER BY seq`, [run.id])).rows).toEqual(tampered);
    expect((await client.query(`SELECT seq FROM ${schema}.runs WHERE id = $1`, [run.id])).rows[0].seq).toBe(3);
  });

  it('Ctrl-C says how many runs were copied of how many and that running it again finishes; --progress shows how far it got', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    const id = (i: number) => `0190d000-0000-7000-8000-${String(i).padStart(12, '0')}`;
    for (let i = 0; i < 400; i++) await sqlite.createRun({ id: id(i), name: 'job', now: 1000 + i, leaseTtlMs: 30_000 });
    await sqlite.close();
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    // A run of the second commit (runs go 200 a commit), locked by another session: the copy stops there, after its first commit.
    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    await pg.createRun({ id: id(300), name: 'job', now: 1300, leaseTtlMs: 30_000 });
    const locker = new pg_.Client({ connectionString: TEST_DATABASE_URL });
    await locker.connect();
    cleanups.push(() => locker.end());
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM ${schema}.runs WHERE id = $1 FOR UPDATE`, [id(300)]);

    const args = ['migrate', '--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema];
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, RUNTRAIL_DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    await waitUntil(async () => (await locker.query(`SELECT count(*)::int AS n FROM ${schema}.runs`)).rows[0].n === 201, { what: 'the first commit of 200 runs' });
    child.kill('SIGINT');
    const [code] = await exited;
    await locker.query('ROLLBACK');
    expect(code, stderr).toBe(130);
    expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
    expect(stderr).toContain('interrupted: 200 of 400 run(s) copied');
    expect(stderr).toContain('run runtrail migrate again to finish the copy');

    const again = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema, '--progress']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('copied 199 run(s)');
    expect(again.stderr.trim().split('\n').at(-1)).toBe('runtrail: migrating: 400 of 400 run(s)');
    expect((await locker.query(`SELECT count(*)::int AS n FROM ${schema}.runs`)).rows[0].n).toBe(400);
  });

  it('a run with many events shows the copy moving with its events, not "0 of 1 run(s)" until it is all done', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    const { run } = await sqlite.createRun({ id: '0190f100-0000-7000-8000-000000000001', name: 'big', now: 1000, leaseTtlMs: 30_000 });
    for (let done = 0; done < 12_000; done += 1000) await sqlite.append(run.id, progressEvents(1000, done), { now: 2000 });
    await sqlite.close();
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));

    // What the progress line is drawn from: the events of the run in flight, before its commit.
    const target = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    const calls: Array<[number, number, number]> = [];
    try {
      await copySqliteToPostgres(openSqliteSource(join(dir.path, 'runtrail.db')), target, { onProgress: (...call) => calls.push(call) });
    } finally {
      await target.close();
    }
    expect(calls).toEqual([[0, 1, 0], [0, 1, 5000], [0, 1, 10_000], [0, 1, 12_000], [1, 1, 12_000]]);

    const cliSchema = await freshSchema();
    cleanups.push(() => dropSchema(cliSchema));
    const again = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', cliSchema, '--progress']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr.trim().split('\n').at(-1)).toBe('runtrail: migrating: 1 of 1 run(s), 12000 event(s)');
  });

  it("copies the data dir's tokens, revocations included, so producers' and viewers' tokens keep working on PostgreSQL", async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    const ci = { id: 'tok-ci', name: 'ci', scope: 'producer' as const, hash: 'a'.repeat(64), createdAt: 1000, expiresAt: null, revokedAt: null };
    const old = { id: 'tok-old', name: 'old', scope: 'viewer' as const, hash: 'b'.repeat(64), createdAt: 1001, expiresAt: 9_000_000_000_000, revokedAt: 2000 };
    await sqlite.createToken(ci);
    await sqlite.createToken(old);
    await sqlite.close();
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const first = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('2 token(s)');
    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    expect(await pg.findTokenByHash(ci.hash)).toEqual(ci);
    expect(await pg.findTokenByHash(old.hash)).toEqual(old);
    const again = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('0 token(s)');
  });

  it('copies a data dir written before event bodies, every event byte for byte', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    writeLegacySqliteFile(join(dir.path, 'runtrail.db'));
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const copied = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(copied.stderr).toBe('');
    expect(copied.stdout).toContain('copied 1 run(s) and 4 event(s)');
    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    await expectLegacyRunIntact(pg);
  });

  it('--json prints what it copied for a script; a --data-dir that names runtrail.db itself is told to name its folder', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    const { run } = await sqlite.createRun({ id: '0190f000-0000-7000-8000-000000000001', name: 'job', now: 1000, leaseTtlMs: 30_000 });
    await sqlite.putArtifact({ runId: run.id, name: 'a.txt', contentType: 'text/plain', size: 1, sha256: 'd'.repeat(64), metadata: null, now: 1050, replace: false, maxRunBytes: 1e9 });
    await sqlite.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: 1100 });
    await sqlite.close();
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const file = join(dir.path, 'runtrail.db');
    const wrong = await migrate(['--data-dir', file, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(wrong.code).toBe(2);
    // Before: "no runtrail.db in …/runtrail.db", with the file right there.
    expect(wrong.stderr).toBe(`runtrail: invalid_request: ${file} is a file; --data-dir is the folder that holds runtrail.db (--data-dir ${dir.path})\n`);

    const r = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      from: file, schema, runs: 1, updated: 0, events: 2, skipped: 0, notEnded: 0, tokens: 0, artifacts: 1, artifactsDir: join(dir.path, 'artifacts'),
    });
    const again = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ runs: 0, skipped: 1, artifacts: 0, artifactsDir: null });
  });

  it('says what is missing instead of copying nothing', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const noDb = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL]);
    expect(noDb.code).toBe(2);
    expect(noDb.stderr).toContain(`no runtrail.db in ${dir.path}`);
  });

  it('refuses a runtrail.db that is not a runtrail SQLite file in one line naming it, before creating anything in PostgreSQL', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const filename = join(dir.path, 'runtrail.db');
    const other = new Database(filename);
    other.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY)');
    other.close();
    for (const content of [null, 'not a database at all\n']) {
      if (content !== null) writeFileSync(filename, content);
      const r = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toContain(`${filename} is not a runtrail data file`);
    }
    const pg = new pg_.Client({ connectionString: TEST_DATABASE_URL });
    await pg.connect();
    cleanups.push(() => pg.end());
    expect((await pg.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount).toBe(0);
  });

  it('refuses a data dir a newer runtrail wrote, saying to upgrade, before creating anything in PostgreSQL', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const filename = join(dir.path, 'runtrail.db');
    const sqlite = new SqliteRunStore({ filename });
    await sqlite.createRun({ id: '0190e000-0000-7000-8000-000000000001', name: 'job', now: 1000, leaseTtlMs: 30_000 });
    await sqlite.close();
    // As a later runtrail leaves it: one migration further, with a column this one does not copy.
    const newer = new Database(filename);
    newer.exec('ALTER TABLE runs ADD COLUMN later_thing TEXT');
    newer.pragma(`user_version = ${(newer.pragma('user_version', { simple: true }) as number) + 1}`);
    newer.close();
    const r = await migrate(['--data-dir', dir.path, '--database', TEST_DATABASE_URL, '--database-schema', schema]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toContain(`${filename} was written by a newer runtrail`);
    expect(r.stderr).toContain('upgrade runtrail and run migrate again');
    const pg = new pg_.Client({ connectionString: TEST_DATABASE_URL });
    await pg.connect();
    cleanups.push(() => pg.end());
    expect((await pg.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount).toBe(0);
  });

  describe('into a schema nodes of a newer runtrail migrated (a rolling upgrade)', () => {
    /** A schema migrated by a runtrail whose last migration is `later`. */
    async function migratedByNewer(later: Migration): Promise<string> {
      const schema = await freshSchema();
      cleanups.push(() => dropSchema(schema));
      const client = new pg_.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await client.connect();
      try {
        await client.query('BEGIN');
        await migratePostgresSchema(client, schema, [...migrations, later]);
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
      return schema;
    }
    async function dataDirWithOneRun(): Promise<string> {
      const dir = tempDir('runtrail-migrate-');
      cleanups.push(() => dir.remove());
      const sqlite = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
      await sqlite.createRun({ id: '0190f000-0000-7000-8000-000000000001', name: 'job', now: 1000, leaseTtlMs: 30_000 });
      await sqlite.close();
      return dir.path;
    }

    it('copies when the newer migrations keep older code working, warning that this runtrail should be upgraded', async () => {
      const schema = await migratedByNewer({ additive: true, sql: () => 'CREATE TABLE later_notes (id TEXT PRIMARY KEY)' });
      const r = await migrate(['--data-dir', await dataDirWithOneRun(), '--database', TEST_DATABASE_URL, '--database-schema', schema]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('copied 1 run(s)');
      // Before: it copied without a word, as though the schema were its own.
      expect(r.stderr.trim().split('\n'), r.stderr).toEqual([
        `runtrail: warning: the database's schema is at version ${migrations.length + 1}, newer than this runtrail's ${migrations.length}; ` +
          `running on it without migrating, because migration ${migrations.length + 1} keeps older code working ` +
          `(code of version ${compatibleFrom(migrations.length)} or later may use it); upgrade this node to use what they add`,
      ]);
    });

    it('refuses, in one line and copying nothing, when a newer migration changed what older code may write', async () => {
      const schema = await migratedByNewer({ additive: false, sql: () => 'ALTER TABLE runs ADD COLUMN later_priority INTEGER' });
      const r = await migrate(['--data-dir', await dataDirWithOneRun(), '--database', TEST_DATABASE_URL, '--database-schema', schema]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toContain(`upgrade runtrail on this node to a version that knows schema version ${migrations.length + 1} or later`);
      const client = new pg_.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
      await client.connect();
      cleanups.push(() => client.end());
      expect((await client.query('SELECT count(*)::int AS n FROM runs')).rows[0].n).toBe(0);
    });
  });

  it('refuses a --database that is not a PostgreSQL URL as serve does, naming the flag, before connecting anywhere', async () => {
    const dir = tempDir('runtrail-migrate-');
    cleanups.push(() => dir.remove());
    await new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') }).close();
    // pg ignores the scheme: mysql://… was tried as PostgreSQL, and a path was "the host localhost is not known".
    for (const url of ['mysql://app:secret@db.internal/app', 'db.internal:5432/runtrail', 'not a url']) {
      const r = await migrate(['--data-dir', dir.path, '--database', url]);
      expect(r.code, url).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr, url).toContain('--database must be a postgres:// or postgresql:// URL');
      expect(r.stderr).not.toContain('secret');
    }
    const newline = await migrate(['--data-dir', dir.path, '--database', 'postgres://app:secret@127.0.0.1:1/app\n']);
    expect(newline.code).toBe(2);
    expect(newline.stderr.trim()).toBe(
      "runtrail: invalid_request: --database has spaces or a line break at its start or end (a secret file's last newline?); remove them",
    );
  });
});
