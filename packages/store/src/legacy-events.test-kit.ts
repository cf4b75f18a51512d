import Database from 'better-sqlite3';
import { expect } from 'vitest';
import { foldEvents, type RunEvent } from '@runtrail/protocol';
import { pendingMigrations, sqliteDialect, type Dialect } from './migrations.js';
import type { RunStore } from './store.js';

/**
 * A run as a schema before event bodies (migration 7) stored it: each
 * event's data in its own column, NULL for an event stored without data,
 * and names that need escaping in JSON. Every adapter's migration, and
 * `runtrail migrate` from such a file, must read it back unchanged.
 */
export const LEGACY_VERSION = 6;
export const LEGACY_RUN_ID = '0190a000-0000-7000-8000-0000000000aa';

/** The events table's columns as that schema held them. */
export const legacyEventRows: Array<{ seq: number; type: string; ts: number; data: string | null; event_id: string | null; terminal: boolean }> = [
  { seq: 1, type: 'run.started', ts: 1001, data: null, event_id: null, terminal: false },
  { seq: 2, type: 'x.we"ird\\type/ü', ts: 1002, data: '{"b":1,"a":[true,null,"é\\n\u2028"]}', event_id: 'id "quoted" \\ ü', terminal: false },
  { seq: 3, type: 'progress', ts: 1003, data: '{"done":1,"total":2}', event_id: 'p-1', terminal: false },
  { seq: 4, type: 'counter', ts: 1004, data: '{"name":"n","delta":2}', event_id: null, terminal: false },
];

/** What they read back as. */
export const legacyEvents: RunEvent[] = [
  { runId: LEGACY_RUN_ID, seq: 1, type: 'run.started', ts: 1001, data: {} },
  { runId: LEGACY_RUN_ID, seq: 2, type: 'x.we"ird\\type/ü', ts: 1002, data: { b: 1, a: [true, null, 'é\n\u2028'] }, id: 'id "quoted" \\ ü' },
  { runId: LEGACY_RUN_ID, seq: 3, type: 'progress', ts: 1003, data: { done: 1, total: 2 }, id: 'p-1' },
  { runId: LEGACY_RUN_ID, seq: 4, type: 'counter', ts: 1004, data: { name: 'n', delta: 2 } },
];

/** The schema at LEGACY_VERSION, as each adapter applied it. */
export function legacySchema(dialect: Dialect): Array<{ sql: string; version: number }> {
  return pendingMigrations(0, dialect).slice(0, LEGACY_VERSION);
}

/** The run row (running, no checkpoint: its snapshot is the fold of its events). */
export const LEGACY_RUN_SQL = `INSERT INTO runs (id, name, status, created_at, started_at, labels, seq, lease_ttl_ms)
  VALUES ('${LEGACY_RUN_ID}', 'legacy', 'running', 1000, 1001, '{}', ${legacyEventRows.length}, 60000)`;

/** A SQLite data file as a runtrail at LEGACY_VERSION left it, holding the legacy run. */
export function writeLegacySqliteFile(filename: string): void {
  const db = new Database(filename);
  try {
    for (const step of legacySchema(sqliteDialect)) {
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    }
    db.exec(LEGACY_RUN_SQL);
    const insert = db.prepare(`INSERT INTO events (run_id, seq, type, ts, data, event_id, terminal) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    for (const e of legacyEventRows) insert.run(LEGACY_RUN_ID, e.seq, e.type, e.ts, e.data, e.event_id, e.terminal ? 1 : 0);
  } finally {
    db.close();
  }
}

/**
 * The legacy run as `store` reads it after a migration: its events, their
 * texts byte for byte, its snapshot, retries of its stored ids answered
 * with their seqs (a reused id refused), and appending carries on.
 */
export async function expectLegacyRunIntact(store: RunStore): Promise<void> {
  expect(await store.readEvents(LEGACY_RUN_ID, 0, 100)).toEqual(legacyEvents);
  const texts = legacyEvents.map((e) => JSON.stringify(e));
  expect((await store.readEventTexts(LEGACY_RUN_ID, 0, 100)).map((t) => t.json)).toEqual(texts);
  if (store.readJoinedEventTexts) {
    const page = await store.readJoinedEventTexts(LEGACY_RUN_ID, 1, 100);
    expect(page.json.toString('utf8')).toBe(texts.slice(1).join(','));
    expect([page.count, page.last, page.lastType]).toEqual([3, 4, 'counter']);
    const compact = await store.readJoinedEventTexts(LEGACY_RUN_ID, 1, 100, { compact: true });
    expect(compact.json.toString('utf8')).toBe(legacyEvents.slice(1).map(({ runId: _inTheFrame, ...event }) => JSON.stringify(event)).join(','));
  }
  expect((await store.getRun(LEGACY_RUN_ID))!.snapshot).toEqual(foldEvents(legacyEvents));

  const retried = await store.append(
    LEGACY_RUN_ID,
    [{ type: 'progress', data: { total: 2, done: 1 }, id: 'p-1' }, { type: 'x.we"ird\\type/ü', data: { a: [true, null, 'é\n\u2028'], b: 1 }, id: 'id "quoted" \\ ü' }],
    { now: 2000 },
  );
  expect(retried.seqs).toEqual([3, 2]);
  await expect(store.append(LEGACY_RUN_ID, [{ type: 'progress', data: { done: 2, total: 2 }, id: 'p-1' }], { now: 2001 })).rejects.toMatchObject({
    code: 'event_id_conflict',
  });
  const next = await store.append(LEGACY_RUN_ID, [{ type: 'progress', data: { done: 2, total: 2 }, id: 'p-2' }], { now: 2002 });
  expect(next.seqs).toEqual([5]);
  expect(next.run.snapshot).toEqual(foldEvents(await store.readEvents(LEGACY_RUN_ID, 0, 100)));
}
