import Database from 'better-sqlite3';
import { RuntrailError, isTerminalStatus, type RunStatus } from '@runtrail/protocol';
import type { PoolClient } from 'pg';
import type { PgRunStore } from './pg-store.js';
import type { ArtifactRow } from '../rows.js';
import { eventBody } from '../event-text.js';
import { migrations } from '../migrations.js';

export interface CopyReport {
  /** Runs copied (with all their events). */
  runs: number;
  /** Runs already in the target that were brought up to date: the events after its seq, the row, checkpoint and artifact records. */
  updated: number;
  events: number;
  /** Runs already in the target and up to date (or moved on there since), left untouched. */
  skipped: number;
  /** Runs this copy copied or brought up to date that had not ended: a server still writing the data dir may give them more events. */
  notEnded: number;
  /** Tokens copied (revoked and expired ones too: a revocation must not be undone); ones already there are left as they are. */
  tokens: number;
  /** Artifact records of the runs copied or brought up to date; their content stays in the data dir's files. */
  artifacts: number;
}

export interface CopyOptions {
  /**
   * Called after each commit with the runs done so far (copied, updated or
   * skipped) and the runs of the source, and as each batch of events goes
   * in, so a run with millions of events shows it moving: `events` counts
   * those of the commit in flight too.
   */
  onProgress?: (done: number, total: number, events: number) => void;
}

/** An event as a SQLite file of any schema version holds it: `body`, or before bodies, `data`. */
interface EventColumns {
  seq: number;
  type: string;
  ts: number;
  body?: string;
  data?: string | null;
  event_id: string | null;
  terminal: number;
}

/**
 * Open a SQLite file to copy from, read-only, refusing (one line naming the
 * file) one that is not a runtrail data file (not SQLite at all, or another
 * program's database) or one a newer runtrail wrote. Called before the target is touched, so a wrong file
 * leaves nothing behind in PostgreSQL.
 */
export function openSqliteSource(filename: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(filename, { readonly: true, fileMustExist: true });
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
    const missing = ['runs', 'events'].filter((t) => !tables.has(t));
    if (missing.length > 0) throw new Error(`it has no ${missing.join(' or ')} table`);
    // A newer runtrail's columns and tables are unknown here: copied, they would be dropped without a word.
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > migrations.length) {
      throw new RuntrailError(
        'invalid_request',
        `${filename} was written by a newer runtrail (schema version ${version}, this one knows ${migrations.length}), ` +
          'so this migrate would leave out what it does not know; upgrade runtrail and run migrate again',
      );
    }
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof RuntrailError) throw err;
    throw new RuntrailError('invalid_request', `${filename} is not a runtrail data file (${(err as Error).message}); pass the data dir of a runtrail server with --data-dir`);
  }
}

/** Runs per transaction: each run goes in whole with its events, or not at all. */
const RUNS_PER_COMMIT = 200;
const EVENTS_PER_INSERT = 5000;

/** The run row's columns, in the order both the insert and the bring-up-to-date update take them. */
const RUN_COLUMNS = [
  'id', 'name', 'parent_id', 'status', 'created_at', 'started_at', 'finished_at', 'input', 'labels', 'error', 'output',
  'seq', 'execute', 'owner', 'owner_node', 'owner_kind', 'lease_ttl_ms', 'lease_expires_at', 'heartbeat_at',
  'cancel_requested_at', 'timeout_ms', 'stall_timeout_ms', 'fail_on_stall', 'last_progress_at', 'stalled_at', 'retry_of',
  'attempt', 'idempotency_key', 'snapshot_seq',
] as const;
const param = (c: string, i: number) => (c === 'labels' ? `$${i + 1}::jsonb` : `$${i + 1}`);
const INSERT_RUN = `INSERT INTO runs (${RUN_COLUMNS.join(', ')}) VALUES (${RUN_COLUMNS.map(param).join(', ')})`;
// Only a row that differs is written: an update would clear the append token of a node serving the run.
const UPDATE_RUN = `UPDATE runs SET (${RUN_COLUMNS.slice(1).join(', ')}) = (${RUN_COLUMNS.slice(1).map((c, i) => param(c, i + 1)).join(', ')})
  WHERE id = $1 AND (${RUN_COLUMNS.slice(1).join(', ')}) IS DISTINCT FROM (${RUN_COLUMNS.slice(1).map((c, i) => param(c, i + 1)).join(', ')})`;

/**
 * Copy every run of a SQLite file (rows, persisted snapshots, the whole
 * event log with seqs and ids, artifact records) into a PostgreSQL store,
 * unchanged: the two schemas hold the same columns. A run already in the
 * target is brought up to date when the source has moved on (a server still
 * wrote the data dir during an earlier copy): the events after the target's
 * seq are appended, never the ones it has, which must be the source's (else
 * `run_already_exists` naming the run and seq, and nothing of that commit is
 * written), and the row, checkpoint and artifact records are the source's.
 * A run that moved on in the target is left as it is. So an interrupted or
 * early copy is finished by running it again. The SQLite file is opened
 * read-only (a Database given is closed when done).
 */
export async function copySqliteToPostgres(source: string | Database.Database, target: PgRunStore, options: CopyOptions = {}): Promise<CopyReport> {
  const db = typeof source === 'string' ? openSqliteSource(source) : source;
  const report: CopyReport = { runs: 0, updated: 0, events: 0, skipped: 0, notEnded: 0, tokens: 0, artifacts: 0 };
  try {
    const ids = db.prepare(`SELECT id FROM runs ORDER BY id`).pluck().all() as string[];
    const runById = db.prepare(`SELECT * FROM runs WHERE id = ?`);
    // Artifact records (their content stays in the data dir's blob folder); absent in files older than artifacts.
    const hasArtifacts = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'artifacts'`).get() !== undefined;
    const artifactsOf = hasArtifacts ? db.prepare(`SELECT * FROM artifacts WHERE run_id = ? ORDER BY ordinal`) : null;
    // The run's snapshot checkpoint, wherever the file's schema keeps it: run_checkpoints (at the row's
    // snapshot_seq), or, in files older than that, the row's snapshot column (at snapshot_seq, or at seq
    // in files older than checkpoints, which wrote it with every append).
    const hasCheckpoints = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run_checkpoints'`).get() !== undefined;
    const checkpointRow = hasCheckpoints ? db.prepare(`SELECT seq, snapshot FROM run_checkpoints WHERE run_id = ?`) : null;
    const checkpointOf = (r: Record<string, unknown>): { seq: number; snapshot: string } => {
      if (checkpointRow) {
        const found = checkpointRow.get(r.id) as { seq: number; snapshot: string } | undefined;
        return found ?? { seq: 0, snapshot: '' };
      }
      return { seq: (r.snapshot_seq as number | undefined) ?? (r.seq as number), snapshot: r.snapshot as string };
    };
    // Each event's stored body, or, in files older than bodies, its data to build the body from.
    const hasBodies = db.prepare(`SELECT 1 FROM pragma_table_info('events') WHERE name = 'body'`).get() !== undefined;
    const eventsOf = db.prepare(
      `SELECT seq, type, ts, ${hasBodies ? 'body' : 'data'}, event_id, terminal FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    );
    options.onProgress?.(0, ids.length, 0);
    // Runs committed so far, and events written so far including the commit in flight.
    let runsDone = 0;
    let eventsWritten = 0;
    const bodyOf = (e: EventColumns): string => e.body ?? eventBody(e.seq, e.type, e.ts, e.data ?? null, e.event_id);
    const runValues = (r: Record<string, unknown>, snapshotSeq: number): unknown[] =>
      RUN_COLUMNS.map((c) => (c === 'execute' || c === 'fail_on_stall' ? r[c] === 1 : c === 'snapshot_seq' ? snapshotSeq : r[c]));
    // A run's events in the source up to `seq` must be the ones the target holds: the log is append-only.
    const expectSameEvents = async (c: PoolClient, id: string, upTo: number): Promise<void> => {
      for (let after = 0; after < upTo; ) {
        const limit = Math.min(EVENTS_PER_INSERT, upTo - after);
        const mine = eventsOf.all(id, after, limit) as EventColumns[];
        const theirs = (
          await c.query<{ seq: number; type: string; ts: number; body: string; event_id: string | null; terminal: boolean }>(
            `SELECT seq, type, ts, body, event_id, terminal FROM events WHERE run_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`,
            [id, after, after + limit],
          )
        ).rows;
        for (let k = 0; k < limit; k++) {
          const a = mine[k];
          const b = theirs[k];
          const seq = after + k + 1;
          if (!a || !b || a.seq !== seq || b.seq !== seq || a.type !== b.type || Number(a.ts) !== Number(b.ts) || bodyOf(a) !== b.body ||
            a.event_id !== b.event_id || (a.terminal === 1) !== b.terminal) {
            throw new RuntrailError(
              'run_already_exists',
              `run ${id}'s event at seq ${seq} in PostgreSQL is not the data dir's (the event log is append-only, so nothing of it was overwritten); ` +
                'the target holds another run with this id: copy into an empty schema',
            );
          }
        }
        after += limit;
      }
    };
    const copyEvents = async (c: PoolClient, id: string, from: number): Promise<number> => {
      let copied = 0;
      for (let after = from; ; ) {
        const rows = eventsOf.all(id, after, EVENTS_PER_INSERT) as EventColumns[];
        if (rows.length === 0) return copied;
        await c.query(
          `INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal)
           SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bool[])`,
          [id, rows.map((e) => e.seq), rows.map((e) => e.type), rows.map((e) => e.ts), rows.map(bodyOf),
            rows.map((e) => e.event_id), rows.map((e) => e.terminal === 1)],
        );
        copied += rows.length;
        eventsWritten += rows.length;
        options.onProgress?.(runsDone, ids.length, eventsWritten);
        after = rows[rows.length - 1]!.seq;
      }
    };
    // Replaced artifacts keep their ordinal, so the source's record of an ordinal wins.
    const copyArtifacts = async (c: PoolClient, id: string): Promise<number> => {
      const artifacts = (artifactsOf?.all(id) ?? []) as ArtifactRow[];
      if (artifacts.length === 0) return 0;
      await c.query(
        `INSERT INTO artifacts (run_id, ordinal, name, content_type, size, sha256, created_at, metadata)
         SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[])
         ON CONFLICT (run_id, ordinal) DO UPDATE SET name = EXCLUDED.name, content_type = EXCLUDED.content_type, size = EXCLUDED.size,
           sha256 = EXCLUDED.sha256, created_at = EXCLUDED.created_at, metadata = EXCLUDED.metadata`,
        [id, artifacts.map((a) => a.ordinal), artifacts.map((a) => a.name), artifacts.map((a) => a.content_type),
          artifacts.map((a) => a.size), artifacts.map((a) => a.sha256), artifacts.map((a) => a.created_at),
          artifacts.map((a) => a.metadata)],
      );
      return artifacts.length;
    };
    for (let i = 0; i < ids.length; i += RUNS_PER_COMMIT) {
      const chunk = ids.slice(i, i + RUNS_PER_COMMIT);
      // Counted into the report only once the commit took: a failed one copied nothing.
      const counts = { runs: 0, updated: 0, events: 0, skipped: 0, notEnded: 0, artifacts: 0 };
      await target.tx(async (c) => {
        // Locked: a node already serving a run must not append between our read of its seq and our write.
        const existing = new Map(
          (await c.query<{ id: string; seq: number }>(`SELECT id, seq FROM runs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [chunk]))
            .rows.map((r) => [r.id, r.seq]),
        );
        for (const id of chunk) {
          const r = runById.get(id) as Record<string, unknown>;
          // Counted for the runs this pass copies or brings up to date: one left as it was is no news.
          const notEnded = isTerminalStatus(r.status as RunStatus) ? 0 : 1;
          const checkpoint = checkpointOf(r);
          const theirSeq = existing.get(id);
          if (theirSeq === undefined) {
            await c.query(INSERT_RUN, runValues(r, checkpoint.seq));
            if (checkpoint.seq > 0) {
              await c.query(`INSERT INTO run_checkpoints (run_id, seq, snapshot) VALUES ($1, $2, $3)`, [id, checkpoint.seq, checkpoint.snapshot]);
            }
            counts.events += await copyEvents(c, id, 0);
            counts.artifacts += await copyArtifacts(c, id);
            counts.runs++;
            counts.notEnded += notEnded;
            continue;
          }
          const mySeq = r.seq as number;
          if (theirSeq > mySeq) {
            // Moved on in PostgreSQL (a node appended since): it is the newer one.
            counts.skipped++;
            continue;
          }
          if (theirSeq < mySeq) await expectSameEvents(c, id, theirSeq);
          const events = await copyEvents(c, id, theirSeq);
          const row = await c.query(UPDATE_RUN, runValues(r, checkpoint.seq));
          if (events === 0 && row.rowCount === 0) {
            counts.skipped++;
            continue;
          }
          if (checkpoint.seq > 0) {
            await c.query(
              `INSERT INTO run_checkpoints (run_id, seq, snapshot) VALUES ($1, $2, $3)
               ON CONFLICT (run_id) DO UPDATE SET seq = EXCLUDED.seq, snapshot = EXCLUDED.snapshot`,
              [id, checkpoint.seq, checkpoint.snapshot],
            );
          } else {
            await c.query(`DELETE FROM run_checkpoints WHERE run_id = $1`, [id]);
          }
          counts.artifacts += await copyArtifacts(c, id);
          counts.events += events;
          counts.updated++;
          counts.notEnded += notEnded;
        }
      });
      report.runs += counts.runs;
      report.updated += counts.updated;
      report.events += counts.events;
      report.skipped += counts.skipped;
      report.notEnded += counts.notEnded;
      report.artifacts += counts.artifacts;
      runsDone = i + chunk.length;
      eventsWritten = report.events;
      options.onProgress?.(runsDone, ids.length, eventsWritten);
    }
    report.tokens = await copyTokens(db, target);
    // The planner knows nothing of rows a bulk copy wrote until they are
    // analysed (autovacuum may be off, or not come round for a while): a
    // freshly migrated schema planned the runs list's first page as a scan
    // of every top-level run and a sort, not a walk of the primary key.
    if (report.runs + report.updated > 0) await target.query(`ANALYZE runs, events, run_checkpoints, artifacts`);
  } finally {
    db.close();
  }
  return report;
}

/**
 * The data dir's tokens (hashes only, as stored), its run tokens' records
 * and the secret run tokens are signed with, so the tokens handed out keep
 * working after the move (and revoked ones stay revoked).
 * What the target holds already wins: an id or hash there, or its own secret.
 */
async function copyTokens(db: Database.Database, target: PgRunStore): Promise<number> {
  const has = (table: string) => db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) !== undefined;
  if (!has('tokens')) return 0;
  const tokens = db.prepare(`SELECT id, name, scope, hash, created_at, expires_at, revoked_at FROM tokens ORDER BY id`).all() as Array<{
    id: string; name: string; scope: string; hash: string; created_at: number; expires_at: number | null; revoked_at: number | null;
  }>;
  // A file from before minters were recorded has no minted_by: its run tokens' minters are unknown (null), as after an upgrade in place.
  const mintedBy = has('run_tokens') && db.prepare(`SELECT 1 FROM pragma_table_info('run_tokens') WHERE name = 'minted_by'`).get() !== undefined ? 'minted_by' : 'NULL';
  const runTokens = has('run_tokens')
    ? (db.prepare(`SELECT id, run_id, write, created_at, expires_at, revoked_at, ${mintedBy} AS minted_by FROM run_tokens ORDER BY id`).all() as Array<{
        id: string; run_id: string; write: number; created_at: number; expires_at: number; revoked_at: number | null; minted_by: string | null;
      }>)
    : [];
  const secrets = has('secrets') ? (db.prepare(`SELECT name, value FROM secrets`).all() as Array<{ name: string; value: string }>) : [];
  return target.tx(async (c) => {
    let copied = 0;
    if (tokens.length > 0) {
      const result = await c.query(
        `INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, revoked_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])
         ON CONFLICT DO NOTHING`,
        [tokens.map((t) => t.id), tokens.map((t) => t.name), tokens.map((t) => t.scope), tokens.map((t) => t.hash),
          tokens.map((t) => t.created_at), tokens.map((t) => t.expires_at), tokens.map((t) => t.revoked_at)],
      );
      copied = result.rowCount ?? 0;
    }
    // Run tokens too: a signed run token is valid only while its record is there (revoked ones stay revoked).
    if (runTokens.length > 0) {
      const result = await c.query(
        `INSERT INTO run_tokens (id, run_id, write, created_at, expires_at, revoked_at, minted_by)
         SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
         ON CONFLICT DO NOTHING`,
        [runTokens.map((t) => t.id), runTokens.map((t) => t.run_id), runTokens.map((t) => t.write === 1), runTokens.map((t) => t.created_at),
          runTokens.map((t) => t.expires_at), runTokens.map((t) => t.revoked_at), runTokens.map((t) => t.minted_by)],
      );
      copied += result.rowCount ?? 0;
    }
    for (const secret of secrets) {
      await c.query(`INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [secret.name, secret.value]);
    }
    return copied;
  });
}
