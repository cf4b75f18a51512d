import Database from 'better-sqlite3';
import { RuntrailError } from '@runtrail/protocol';
import type { PgRunStore } from './pg-store.js';
import type { ArtifactRow } from '../rows.js';
import { eventBody } from '../event-text.js';

export interface CopyReport {
  /** Runs copied (with all their events). */
  runs: number;
  events: number;
  /** Runs already in the target, left untouched. */
  skipped: number;
  /** Tokens copied (revoked and expired ones too: a revocation must not be undone); ones already there are left as they are. */
  tokens: number;
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
 * file) one that is not a runtrail data file: not SQLite at all, or another
 * program's database. Called before the target is touched, so a wrong file
 * leaves nothing behind in PostgreSQL.
 */
export function openSqliteSource(filename: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(filename, { readonly: true, fileMustExist: true });
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
    const missing = ['runs', 'events'].filter((t) => !tables.has(t));
    if (missing.length > 0) throw new Error(`it has no ${missing.join(' or ')} table`);
    return db;
  } catch (err) {
    db?.close();
    throw new RuntrailError('invalid_request', `${filename} is not a runtrail data file (${(err as Error).message}); pass the data dir of a runtrail server with --data-dir`);
  }
}

/** Runs per transaction: each run goes in whole with its events, or not at all. */
const RUNS_PER_COMMIT = 200;
const EVENTS_PER_INSERT = 5000;

/**
 * Copy every run of a SQLite file (rows, persisted snapshots, the whole
 * event log with seqs and ids) into a PostgreSQL store, unchanged: the two
 * schemas hold the same columns. A run already in the target is skipped,
 * so an interrupted copy can simply be run again. The SQLite file is opened
 * read-only (a Database given is closed when done); copy from a data dir no server is writing to.
 */
export async function copySqliteToPostgres(source: string | Database.Database, target: PgRunStore): Promise<CopyReport> {
  const db = typeof source === 'string' ? openSqliteSource(source) : source;
  const report: CopyReport = { runs: 0, events: 0, skipped: 0, tokens: 0 };
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
    const bodyOf = (e: EventColumns): string => e.body ?? eventBody(e.seq, e.type, e.ts, e.data ?? null, e.event_id);
    for (let i = 0; i < ids.length; i += RUNS_PER_COMMIT) {
      const chunk = ids.slice(i, i + RUNS_PER_COMMIT);
      await target.tx(async (c) => {
        const existing = new Set(
          (await c.query<{ id: string }>(`SELECT id FROM runs WHERE id = ANY($1::text[])`, [chunk])).rows.map((r) => r.id),
        );
        for (const id of chunk) {
          if (existing.has(id)) {
            report.skipped++;
            continue;
          }
          const r = runById.get(id) as Record<string, unknown>;
          const checkpoint = checkpointOf(r);
          await c.query(
            `INSERT INTO runs (id, name, parent_id, status, created_at, started_at, finished_at, input, labels, error, output,
               seq, execute, owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at, heartbeat_at,
               cancel_requested_at, timeout_ms, stall_timeout_ms, fail_on_stall, last_progress_at, stalled_at, retry_of,
               attempt, idempotency_key, snapshot_seq)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29)`,
            [
              r.id, r.name, r.parent_id, r.status, r.created_at, r.started_at, r.finished_at, r.input, r.labels, r.error,
              r.output, r.seq, r.execute === 1, r.owner, r.owner_node, r.owner_kind, r.lease_ttl_ms,
              r.lease_expires_at, r.heartbeat_at, r.cancel_requested_at, r.timeout_ms, r.stall_timeout_ms,
              r.fail_on_stall === 1, r.last_progress_at, r.stalled_at, r.retry_of, r.attempt, r.idempotency_key,
              checkpoint.seq,
            ],
          );
          if (checkpoint.seq > 0) {
            await c.query(`INSERT INTO run_checkpoints (run_id, seq, snapshot) VALUES ($1, $2, $3)`, [id, checkpoint.seq, checkpoint.snapshot]);
          }
          for (let after = 0; ; ) {
            const rows = eventsOf.all(id, after, EVENTS_PER_INSERT) as EventColumns[];
            if (rows.length === 0) break;
            await c.query(
              `INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal)
               SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bool[])`,
              [id, rows.map((e) => e.seq), rows.map((e) => e.type), rows.map((e) => e.ts), rows.map(bodyOf),
                rows.map((e) => e.event_id), rows.map((e) => e.terminal === 1)],
            );
            report.events += rows.length;
            after = rows[rows.length - 1]!.seq;
          }
          const artifacts = (artifactsOf?.all(id) ?? []) as ArtifactRow[];
          if (artifacts.length > 0) {
            await c.query(
              `INSERT INTO artifacts (run_id, ordinal, name, content_type, size, sha256, created_at, metadata)
               SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[])`,
              [id, artifacts.map((a) => a.ordinal), artifacts.map((a) => a.name), artifacts.map((a) => a.content_type),
                artifacts.map((a) => a.size), artifacts.map((a) => a.sha256), artifacts.map((a) => a.created_at),
                artifacts.map((a) => a.metadata)],
            );
          }
          report.runs++;
        }
      });
    }
    report.tokens = await copyTokens(db, target);
  } finally {
    db.close();
  }
  return report;
}

/**
 * The data dir's tokens (hashes only, as stored) and the secret run tokens
 * are signed with, so the tokens handed out keep working after the move.
 * What the target holds already wins: an id or hash there, or its own secret.
 */
async function copyTokens(db: Database.Database, target: PgRunStore): Promise<number> {
  const has = (table: string) => db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table) !== undefined;
  if (!has('tokens')) return 0;
  const tokens = db.prepare(`SELECT id, name, scope, hash, created_at, expires_at, revoked_at FROM tokens ORDER BY id`).all() as Array<{
    id: string; name: string; scope: string; hash: string; created_at: number; expires_at: number | null; revoked_at: number | null;
  }>;
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
    for (const secret of secrets) {
      await c.query(`INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [secret.name, secret.value]);
    }
    return copied;
  });
}
