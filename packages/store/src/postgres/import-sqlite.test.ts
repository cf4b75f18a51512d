import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { SqliteRunStore } from '../sqlite/sqlite-store.js';
import { PgRunStore } from './pg-store.js';
import { copySqliteToPostgres } from './import-sqlite.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

describe('copying a SQLite data dir into PostgreSQL', () => {
  it("copies its run tokens' records, revocations and minters included: a run token valid there stays valid, a revoked one stays revoked", async () => {
    const dir = tempDir('runtrail-import-run-tokens-');
    cleanups.push(() => dir.remove());
    const filename = join(dir.path, 'runtrail.db');
    const sqlite = new SqliteRunStore({ filename });
    const live = { id: 'rt-live', runId: 'run-1', write: true, createdAt: 1000, expiresAt: 9_000_000_000_000, revokedAt: null, mintedBy: 'tok-producer' };
    const revoked = { id: 'rt-revoked', runId: 'run-1', write: false, createdAt: 1001, expiresAt: 9_000_000_000_000, revokedAt: null, mintedBy: null };
    await sqlite.createRunToken(live);
    await sqlite.createRunToken(revoked);
    await sqlite.revokeRunToken(revoked.id, 2000);
    await sqlite.close();
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const pg = await PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 2 });
    cleanups.push(() => pg.close());
    const report = await copySqliteToPostgres(filename, pg);
    expect(report.tokens).toBe(2);
    expect(await pg.findRunTokenById(live.id)).toEqual(live);
    expect(await pg.findRunTokenById(revoked.id)).toEqual({ ...revoked, revokedAt: 2000 });
    // Run again: what the target holds stays.
    expect((await copySqliteToPostgres(filename, pg)).tokens).toBe(0);
  });
});
