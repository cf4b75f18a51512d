import { statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  RuntrailError,
  runNotFound,
  MAX_LIST_LIMIT,
  isTerminalStatus,
  isTerminalType,
  foldCase,
  parseLabelFilter,
  artifactEventData,
  type Artifact,
  type EventInput,
  type ListRunsQuery,
  type ListRunsResponse,
  type RunCounts,
  type RunsFilter,
  type Owner,
  type Run,
  type RunEvent,
  type RunStatus,
  type Snapshot,
} from '@runtrail/protocol';
import type {
  AppendOptions,
  AppendResult,
  ClaimOptions,
  DueRuns,
  NewRunRecord,
  PutArtifactInput,
  PutArtifactResult,
  RunBundle,
  RunStore,
  StoreReadiness,
  TokenRecord,
  RunTokenRecord,
  HandlersAnnouncement,
  NodeHandlers,
  ReadPageOptions,
} from '../store.js';
import { fence, importParentMissing, planArtifact, runHasChildren, runsAlreadyExist, sameEventOrConflict, terminalConflict, type StoredEventRef } from '../errors.js';
import {
  artifactRow,
  importedRun,
  json,
  parse,
  rowToEvent,
  rowToEventText,
  rowToRun,
  toArtifact,
  type ArtifactRow,
  type EventRow,
  type RunRow,
  leaseAfterAppend,
  ownerField,
  leaseOfNewRun,
  HeadFold,
  headOfRow,
  runCountsOf,
  nodeHandlersOf,
  type NodeHandlersRow,
  type StatusCountRow,
  distinctLabelPairs,
  runRowBytes,
  RUN_COLUMNS_WITHOUT_INPUT,
} from '../rows.js';
import {
  READ_COMPATIBILITY_SQL,
  acceptNewerSchema,
  migrations,
  pendingMigrations,
  recordCompatibilitySql,
  sqliteDialect,
  type Migration,
  type NewerSchema,
  type OnMigrating,
  type OnNewerSchema,
} from '../migrations.js';
import { RunHeads, checkpointPolicy, type CheckpointOptions } from '../checkpoints.js';
import { ParsedInputs } from '../parsed-inputs.js';
import { eventBody, eventJson, type EventText, type EventTextPage, type JoinedEventTexts } from '../event-text.js';

export interface SqliteStoreOptions extends CheckpointOptions {
  filename: string;
  /** How many run heads (snapshots at a run's seq) to keep in memory. */
  snapshotCacheSize?: number;
  /**
   * How long one write may wait, blocking, for another connection's lock
   * (SQLite's busy_timeout). better-sqlite3 waits ON the event loop, so this
   * stays a few ms: a longer wait froze every request of the server.
   */
  busyTimeoutMs?: number;
  /**
   * How long a write keeps retrying a locked database, with the event loop
   * free between attempts, before it fails `unavailable` (503).
   */
  busyWaitMs?: number;
  onMigrating?: OnMigrating | undefined;
  /** Told when the file was migrated by a newer runtrail and is used as it is (see acceptNewerSchema). */
  onNewerSchema?: OnNewerSchema | undefined;
}

/** Retry-After given with a 503 for a database that is locked or cannot be written. */
const RETRY_AFTER_MS = 1000;
/**
 * After a write failed SQLITE_FULL, the data dir's free space at which the
 * store reads as ready again: the readiness probe rolls back, so it cannot
 * find a full disk by writing, and a few bytes freed would not take an append.
 */
const READY_AGAIN_FREE_BYTES = 1024 * 1024;
/** How long the readiness probe retries a locked database before it reports it. */
const READINESS_BUSY_WAIT_MS = 250;

interface PendingAppend {
  runId: string;
  events: EventInput[];
  options: AppendOptions;
  /** Past this time a locked database fails the append instead of retrying it. */
  deadline: number;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}



const TOKEN_COLUMNS = `id, name, scope, hash, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt`;
const RUN_TOKEN_COLUMNS = `id, run_id AS runId, write, created_at AS createdAt, expires_at AS expiresAt, revoked_at AS revokedAt, minted_by AS mintedBy`;
type RunTokenRow = Omit<RunTokenRecord, 'write'> & { write: number };
const runTokenOf = (row: RunTokenRow | undefined): RunTokenRecord | null => (row ? { ...row, write: row.write === 1 } : null);

/**
 * Bring the file's schema to the end of `list` (the adapter passes
 * `migrations`; tests pass a longer list to play a newer runtrail). A file a
 * newer runtrail migrated is used as it is when acceptNewerSchema allows it:
 * what is returned then is for the log.
 */
export function migrateSqliteSchema(db: Database.Database, list: readonly Migration[], onMigrating?: OnMigrating): NewerSchema | null {
  const versionOf = () => db.pragma('user_version', { simple: true }) as number;
  // An up-to-date file, or one a newer runtrail migrated, needs no write lock, so a read-only one still opens.
  let version = versionOf();
  if (version < list.length) {
    // Read the version under the write lock: two processes opening a new file
    // at once must not both apply the same migration.
    version = db.transaction(() => {
      const from = versionOf();
      const steps = pendingMigrations(from, sqliteDialect, list);
      if (steps.length === 0) return from;
      onMigrating?.(from, steps[steps.length - 1]!.version);
      for (const step of steps) {
        db.exec(step.sql);
        db.pragma(`user_version = ${step.version}`);
      }
      const record = recordCompatibilitySql(list);
      if (record !== null) db.exec(record);
      return list.length;
    }).immediate();
  }
  if (version <= list.length) return null;
  // The version and its marker from one snapshot: a newer node migrating meanwhile changes both at once.
  return db.transaction(() => acceptNewerSchema(versionOf(), readCompatibleFrom(db), list.length, sqliteDialect))();
}

function readCompatibleFrom(db: Database.Database): number | null {
  const table = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_compatibility'`).get();
  if (table === undefined) return null;
  return (db.prepare(READ_COMPATIBILITY_SQL).pluck().get() as number | undefined) ?? null;
}

/**
 * The embedded store: one SQLite file in WAL mode, written through
 * better-sqlite3's synchronous API. Every write is one `db.transaction`, so
 * SQLite's single writer gives the per-run seq its order for free.
 *
 * Writes that read before they write run as IMMEDIATE transactions: a
 * deferred one holds a read snapshot, and when another connection (another
 * process on the same file) commits first, SQLite cannot upgrade it to a
 * writer and fails at once with SQLITE_BUSY instead of waiting (busy_timeout
 * does not apply). IMMEDIATE takes the write lock first, waiting its turn.
 */
export class SqliteRunStore implements RunStore {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly heads: RunHeads;
  private readonly inputs = new ParsedInputs();
  private readonly stmt;
  private readonly appendTx;
  private pendingAppends: PendingAppend[] = [];
  /** Set while appends wait to retry a locked database. */
  private retryTimer: NodeJS.Timeout | null = null;
  private busyAttempts = 0;
  private readonly filename: string;
  private readonly busyWaitMs: number;
  /** The file this store opened; a different inode (or none) at that path means writes would be lost. */
  private readonly identity: { dev: number; ino: number };
  /** Why writes are refused for good (the file was deleted or replaced); a restart opens the file again. */
  private fault: string | null = null;
  /** Set when a write failed SQLITE_FULL, cleared by the next commit: /readyz fails meanwhile. */
  private diskFull = false;

  constructor(options: SqliteStoreOptions) {
    this.heads = new RunHeads(checkpointPolicy(options), options.snapshotCacheSize ?? 1000);
    this.filename = options.filename;
    this.busyWaitMs = options.busyWaitMs ?? 2000;
    this.db = new Database(options.filename);
    const st = statSync(options.filename);
    this.identity = { dev: st.dev, ino: st.ino };
    // First, so that switching a new file to WAL waits for another opener.
    // Opening blocks anyway (nothing is served yet); requests get the short wait below.
    this.db.pragma('busy_timeout = 5000');
    switchToWal(this.db, 5000);
    // NORMAL in WAL mode: a commit survives a process crash (SIGKILL); only an
    // OS crash or power loss can drop the last transactions.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    const newer = migrateSqliteSchema(this.db, migrations, options.onMigrating);
    if (newer) options.onNewerSchema?.(newer);
    this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 10}`);
    const db = this.db;
    this.stmt = {
      insertRun: db.prepare(`INSERT INTO runs (id, name, parent_id, status, created_at, started_at, input, labels,
        execute, owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at, heartbeat_at, timeout_ms,
        stall_timeout_ms, fail_on_stall, retry_of, attempt, idempotency_key)
        VALUES (@id, @name, @parent_id, @status, @created_at, @started_at, @input, @labels, @execute,
        @owner, @owner_node, @owner_kind, @lease_ttl_ms, @lease_expires_at, @heartbeat_at, @timeout_ms,
        @stall_timeout_ms, @fail_on_stall, @retry_of, @attempt, @idempotency_key)`),
      runById: db.prepare(`SELECT * FROM runs WHERE id = ?`),
      checkpointOf: db.prepare(`SELECT seq, snapshot FROM run_checkpoints WHERE run_id = ?`),
      writeCheckpoint: db.prepare(`INSERT INTO run_checkpoints (run_id, seq, snapshot) VALUES (?, ?, ?)
        ON CONFLICT (run_id) DO UPDATE SET seq = excluded.seq, snapshot = excluded.snapshot`),
      deleteCheckpoint: db.prepare(`DELETE FROM run_checkpoints WHERE run_id = ?`),
      firstChild: db.prepare(`SELECT id, status FROM runs WHERE parent_id = ? LIMIT 1`),
      runByIdempotencyKey: db.prepare(`SELECT * FROM runs WHERE idempotency_key = ?`),
      insertEvent: db.prepare(
        `INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, event_id) WHERE event_id IS NOT NULL DO NOTHING`,
      ),
      eventById: db.prepare(`SELECT seq, type, ts, body FROM events WHERE run_id = ? AND event_id = ?`),
      readEvents: db.prepare(`SELECT run_id, seq, type, body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`),
      eventSizes: db.prepare(`SELECT octet_length(body) FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`).pluck(),
      // eventJson in SQL (the run id comes quoted as @runJson), joined in the database: one
      // buffer per page, no row object or string per event. The conformance suite checks it
      // byte for byte.
      // group_concat takes the rows in the order the subquery yields them (ORDER BY with LIMIT
      // keeps SQLite from flattening it into the aggregate, so it runs as a coroutine in seq
      // order): an ORDER BY inside group_concat sorted each page again, a third of the query's
      // time (100,000 events: 76 ms against 52). sqlite-store.test.ts checks the order of
      // pages of two interleaved runs at many positions and sizes.
      readJoined: db.prepare(
        `SELECT count(*) AS count, max(seq) AS last, type AS lastType,
           CAST(group_concat('{"runId":' || @runJson || ',' || substr(body, 2), ',') AS BLOB) AS json
         FROM (SELECT seq, type, body FROM events WHERE run_id = @runId AND seq > @after ORDER BY seq LIMIT @limit)`,
      ),
      // The same page without the run id (compact frames): the stored bodies as they are.
      readJoinedCompact: db.prepare(
        `SELECT count(*) AS count, max(seq) AS last, type AS lastType, CAST(group_concat(body, ',') AS BLOB) AS json
         FROM (SELECT seq, type, body FROM events WHERE run_id = @runId AND seq > @after ORDER BY seq LIMIT @limit)`,
      ),
      tailEvents: db.prepare(
        `SELECT run_id, seq, type, body FROM events WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY seq`,
      ),
      updateAfterAppend: db.prepare(`UPDATE runs SET seq = @seq, snapshot_seq = @snapshot_seq, status = @status,
        started_at = @started_at, finished_at = @finished_at, error = @error, output = @output,
        lease_expires_at = @lease_expires_at, heartbeat_at = @heartbeat_at, owner = @owner,
        owner_node = @owner_node, owner_kind = @owner_kind, cancel_requested_at = @cancel_requested_at,
        last_progress_at = @last_progress_at, stalled_at = @stalled_at WHERE id = @id`),
      // The same for the common append, which changes none of the columns the runs' indexes hold
      // (status, owner): SQLite rewrites an index entry for every indexed column in SET, changed or
      // not, and that was a quarter of a one-event commit's time (90 against 130 µs).
      updateProgress: db.prepare(`UPDATE runs SET seq = @seq, snapshot_seq = @snapshot_seq,
        lease_expires_at = @lease_expires_at, heartbeat_at = @heartbeat_at,
        last_progress_at = @last_progress_at, stalled_at = @stalled_at WHERE id = @id`),
      heartbeat: db.prepare(`UPDATE runs SET lease_expires_at = @now + lease_ttl_ms, heartbeat_at = @now,
        owner = COALESCE(@owner, owner), owner_node = COALESCE(@owner_node, owner_node),
        owner_kind = COALESCE(@owner_kind, owner_kind) WHERE id = @id AND status = 'running'`),
      deleteEvents: db.prepare(`DELETE FROM events WHERE run_id = ?`),
      deleteArtifacts: db.prepare(`DELETE FROM artifacts WHERE run_id = ?`),
      artifactsOf: db.prepare(`SELECT * FROM artifacts WHERE run_id = ? ORDER BY ordinal`),
      artifactByName: db.prepare(`SELECT * FROM artifacts WHERE run_id = ? AND name = ?`),
      artifactStats: db.prepare(`SELECT COALESCE(MAX(ordinal), 0) AS maxOrdinal, COALESCE(SUM(size), 0) AS bytes
        FROM artifacts WHERE run_id = ?`),
      insertArtifact: db.prepare(`INSERT INTO artifacts (run_id, ordinal, name, content_type, size, sha256, created_at, metadata)
        VALUES (@run_id, @ordinal, @name, @content_type, @size, @sha256, @created_at, @metadata)`),
      replaceArtifact: db.prepare(`UPDATE artifacts SET content_type = @content_type, size = @size, sha256 = @sha256,
        created_at = @created_at, metadata = @metadata WHERE run_id = @run_id AND ordinal = @ordinal`),
      blobsInUse: db.prepare(`SELECT DISTINCT sha256 FROM artifacts WHERE sha256 IN (SELECT value FROM json_each(?))`).pluck(),
      insertImportedRun: db.prepare(`INSERT INTO runs (id, name, parent_id, status, created_at, started_at, finished_at,
        input, labels, error, output, seq, snapshot_seq, execute, owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at,
        heartbeat_at, cancel_requested_at, timeout_ms, stall_timeout_ms, fail_on_stall, last_progress_at, stalled_at,
        retry_of, attempt)
        VALUES (@id, @name, @parent_id, @status, @created_at, @started_at, @finished_at, @input, @labels, @error, @output,
        @seq, @snapshot_seq, @execute, @owner, @owner_node, @owner_kind, @lease_ttl_ms, @lease_expires_at, @heartbeat_at,
        @cancel_requested_at, @timeout_ms, @stall_timeout_ms, @fail_on_stall, @last_progress_at, @stalled_at,
        @retry_of, @attempt)`),
      deleteRun: db.prepare(`DELETE FROM runs WHERE id = ?`),
      claimable: db.prepare(`SELECT id FROM runs WHERE status = 'queued' AND execute = 1
        AND name IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?`).pluck(),
      claim: db.prepare(`UPDATE runs SET status = 'running', started_at = @now, owner = @owner,
        owner_node = @owner_node, owner_kind = @owner_kind, lease_expires_at = @now + lease_ttl_ms,
        heartbeat_at = @now WHERE id = @id AND status = 'queued'`),
      queuedNames: db.prepare(`SELECT DISTINCT name FROM runs WHERE status = 'queued' AND execute = 1 ORDER BY name LIMIT ?`).pluck(),
      expired: db.prepare(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND lease_expires_at < ? ORDER BY id LIMIT ?`),
      overdue: db.prepare(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND timeout_ms IS NOT NULL
        AND started_at + timeout_ms < ? ORDER BY id LIMIT ?`),
      stalled: db.prepare(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND stall_timeout_ms IS NOT NULL
        AND stalled_at IS NULL AND COALESCE(last_progress_at, started_at) + stall_timeout_ms < ? ORDER BY id LIMIT ?`),
      // Phases live in the snapshot checkpoint, which every phase change writes (RunHeads); only running runs are scanned, and few run at once.
      phaseOverdue: db.prepare(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND EXISTS (
        SELECT 1 FROM run_checkpoints c, json_each(c.snapshot, '$.phases') p
        WHERE c.run_id = runs.id AND json_extract(p.value, '$.status') = 'started' AND json_extract(p.value, '$.timeoutMs') IS NOT NULL
          AND json_extract(p.value, '$.startedAt') + json_extract(p.value, '$.timeoutMs') < ?)
        ORDER BY id LIMIT ?`),
      insertToken: db.prepare(`INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, revoked_at)
        VALUES (@id, @name, @scope, @hash, @createdAt, @expiresAt, @revokedAt)`),
      tokenByHash: db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ?`),
      tokenById: db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`),
      listTokens: db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC`),
      revokeToken: db.prepare(`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`),
      insertRunToken: db.prepare(`INSERT INTO run_tokens (id, run_id, write, created_at, expires_at, revoked_at, minted_by) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      countLiveRunTokens: db.prepare(`SELECT COUNT(*) FROM run_tokens WHERE run_id = ? AND expires_at > ? AND revoked_at IS NULL`).pluck(),
      dropExpiredRunTokens: db.prepare(`DELETE FROM run_tokens WHERE expires_at < ?`),
      deleteRunTokens: db.prepare(`DELETE FROM run_tokens WHERE run_id = ?`),
      runTokenById: db.prepare(`SELECT ${RUN_TOKEN_COLUMNS} FROM run_tokens WHERE id = ?`),
      revokeRunToken: db.prepare(`UPDATE run_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`),
      insertSecret: db.prepare(`INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
      secretByName: db.prepare(`SELECT value FROM secrets WHERE name = ?`).pluck(),
      announceHandlers: db.prepare(`INSERT INTO node_handlers (node, handlers, heard_at, live_until, incarnation, url, slots) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (node) DO UPDATE SET handlers = excluded.handlers, heard_at = excluded.heard_at, live_until = excluded.live_until,
          incarnation = excluded.incarnation, url = excluded.url, slots = excluded.slots`),
      nodeHandlers: db.prepare(`SELECT node, handlers, heard_at, live_until, incarnation, url, slots FROM node_handlers WHERE live_until >= ? ORDER BY node`),
      forgetHandlers: db.prepare(`DELETE FROM node_handlers WHERE node = ?`),
      ownedBy: db.prepare(`SELECT * FROM runs WHERE owner_node = ? AND owner_kind = ?
        AND status IN ('queued','running') ORDER BY id`),
    };
    this.appendTx = this.db.transaction((runId: string, events: EventInput[], options: AppendOptions) =>
      this.appendInTx(runId, events, options),
    );
  }

  async createRun(record: NewRunRecord): Promise<{ run: Run; created: boolean }> {
    return this.write(() => this.db.transaction(() => {
      if (record.idempotencyKey !== undefined) {
        const existing = this.stmt.runByIdempotencyKey.get(record.idempotencyKey) as RunRow | undefined;
        if (existing) {
          if (existing.name !== record.name) {
            throw new RuntrailError(
              'idempotency_conflict',
              `Idempotency-Key ${record.idempotencyKey} was used for a run named "${existing.name}", not "${record.name}"`,
            );
          }
          return { run: this.toRun(existing), created: false };
        }
      }
      if (record.parentId !== undefined && !this.stmt.runById.get(record.parentId)) {
        throw runNotFound(record.parentId, 'parent');
      }
      const execute = record.execute === true;
      const lease = leaseOfNewRun(execute, record.now, record.leaseTtlMs);
      const owner = execute ? null : (record.owner ?? null);
      const row = {
        id: record.id,
        name: record.name,
        parent_id: record.parentId ?? null,
        status: execute ? 'queued' : 'running',
        created_at: record.now,
        started_at: execute ? null : record.now,
        input: json(record.input),
        labels: JSON.stringify(record.labels ?? {}),
        execute: execute ? 1 : 0,
        owner: json(owner ?? undefined),
        owner_node: owner?.node ?? null,
        owner_kind: owner?.kind ?? null,
        lease_ttl_ms: record.leaseTtlMs,
        lease_expires_at: lease.leaseExpiresAt,
        heartbeat_at: lease.heartbeatAt,
        timeout_ms: record.timeoutMs ?? null,
        stall_timeout_ms: record.stallTimeoutMs ?? null,
        fail_on_stall: record.failOnStall ? 1 : 0,
        retry_of: record.retryOf ?? null,
        attempt: record.attempt ?? 1,
        idempotency_key: record.idempotencyKey ?? null,
      };
      this.stmt.insertRun.run(row);
      return { run: this.toRun(this.stmt.runById.get(record.id) as RunRow), created: true };
    }).immediate());
  }

  async getRun(id: string): Promise<Run | null> {
    return this.read(() => {
      const row = this.stmt.runById.get(id) as RunRow | undefined;
      return row ? this.toRun(row) : null;
    });
  }

  async listRuns(query: ListRunsQuery, options: ReadPageOptions = {}): Promise<ListRunsResponse> {
    const { where, params } = this.filterClauses(query);
    if (query.cursor) {
      where.push('id < ?');
      params.push(query.cursor);
    }
    const limit = Math.min(query.limit ?? 50, MAX_LIST_LIMIT);
    // ids are UUIDv7: ordering by id is ordering by creation time.
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    const maxBytes = options.maxBytes ?? Infinity;
    // Row by row, so a page cut by its bytes never holds the rows after the cut.
    const { page, more } = this.read(() => {
      const taken: RunRow[] = [];
      let bytes = 0;
      for (const row of this.db.prepare(sql).iterate(...params, limit + 1) as IterableIterator<RunRow>) {
        bytes += runRowBytes(row);
        if (taken.length === limit || (taken.length > 0 && bytes > maxBytes)) return { page: taken, more: true };
        taken.push(row);
      }
      return { page: taken, more: false };
    });
    return {
      runs: page.map((r) => this.toRun(r)),
      nextCursor: more ? page[page.length - 1]!.id : null,
    };
  }

  async countRuns(filter: RunsFilter): Promise<RunCounts> {
    const { where, params } = this.filterClauses(filter);
    const whereOf = (clauses: string[]) => (clauses.length ? `WHERE ${clauses.join(' AND ')}` : '');
    return this.read(() => {
      const rows = this.db.prepare(`SELECT status, COUNT(*) AS n FROM runs ${whereOf(where)} GROUP BY status`).all(...params) as StatusCountRow[];
      // Apart, on the status index: in the count by status, stalled_at made every row be read, not the index alone.
      const running = rows.some((r) => r.status === 'running' && r.n > 0);
      const stalledSql = `SELECT COUNT(*) AS n FROM runs ${whereOf([...where, "status = 'running'", 'stalled_at IS NOT NULL'])}`;
      const stalled = running ? (this.db.prepare(stalledSql).get(...params) as { n: number }).n : 0;
      return runCountsOf(rows, stalled);
    });
  }

  /** The WHERE clauses of a runs filter (RunsFilterFields), shared by the list and its counts. */
  private filterClauses(query: RunsFilter): { where: string[]; params: unknown[] } {
    const where: string[] = [];
    const params: unknown[] = [];
    const match = (clause: string, value: unknown): void => {
      where.push(clause);
      params.push(value);
    };
    if (query.status) match('status = ?', query.status);
    if (query.name) match('name = ?', query.name);
    // instr on lower(): a substring with no LIKE wildcards to escape ('%' and '_' are plain text here).
    if (query.nameContains) match('instr(lower(name), ?) > 0', foldCase(query.nameContains));
    if (query.parentId) match('parent_id = ?', query.parentId);
    if (query.parentIds) {
      const ids = query.parentIds.split(',');
      where.push(`parent_id IN (${ids.map(() => '?').join(',')})`);
      params.push(...ids);
    }
    if (query.topLevel === 'true') where.push('parent_id IS NULL');
    if (query.topLevel === 'false') where.push('parent_id IS NOT NULL');
    if (query.createdAfter !== undefined) match('created_at >= ?', query.createdAfter);
    if (query.createdBefore !== undefined) match('created_at < ?', query.createdBefore);
    if (query.errorKind) {
      // failureKindOf in SQL: the error's kind, or a running run stalled now.
      where.push(`(json_extract(error, '$.kind') = ? OR (? = 'stalled' AND status = 'running' AND stalled_at IS NOT NULL))`);
      params.push(query.errorKind, query.errorKind);
    }
    const pairs = distinctLabelPairs(parseLabelFilter(query.label));
    if (pairs.length > 0) {
      // Matched with json_each rather than a JSON path: a path cannot quote every
      // key (one with a `"` silently matched nothing). One pass over a run's labels
      // for all the pairs: a json_each per pair made a filter of 250 pairs that
      // matched nothing read 100,000 runs' labels 250 times each, and the server
      // answered no one else for 3.8 s. A run's keys are distinct, so it matches
      // when as many of its labels are in the list as the list has pairs.
      where.push(`(SELECT count(*) FROM json_each(labels) WHERE (key, value) IN (VALUES ${pairs.map(() => '(?, ?)').join(', ')})) = ?`);
      params.push(...pairs.flat(), pairs.length);
    }
    return { where, params };
  }

  async deleteRun(id: string): Promise<void> {
    await this.write(() => this.db.transaction(() => {
      const row = this.requireHead(id);
      if (!isTerminalStatus(row.status)) {
        throw new RuntrailError(
          'run_not_terminal',
          `run ${id} is ${row.status}; cancel it and wait for it to end before deleting it (runtrail cancel ${id} --wait)`,
          { status: row.status },
        );
      }
      const child = this.stmt.firstChild.get(id) as { id: string; status: RunStatus } | undefined;
      if (child) throw runHasChildren(id, child);
      this.stmt.deleteEvents.run(id);
      this.stmt.deleteArtifacts.run(id);
      this.stmt.deleteCheckpoint.run(id);
      this.stmt.deleteRunTokens.run(id);
      this.stmt.deleteRun.run(id);
      this.heads.forget(id);
      this.inputs.forget(id);
    }).immediate());
  }

  /**
   * Appends that arrive in the same event-loop turn share one commit (group
   * commit): each runs in its own savepoint, so one that fails rolls back
   * alone, and none is answered before the commit that makes it durable.
   * A commit costs far more than an insert, so many small concurrent appends
   * (one event per HTTP request) go several times faster this way.
   */
  append(runId: string, events: EventInput[], options: AppendOptions): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.pendingAppends.push({ runId, events, options, deadline: Date.now() + this.busyWaitMs, resolve, reject });
      // While a retry is scheduled, new appends join it.
      if (this.pendingAppends.length === 1 && this.retryTimer === null) setImmediate(() => this.commitPendingAppends());
    });
  }

  private commitPendingAppends(): void {
    this.retryTimer = null;
    const batch = this.pendingAppends;
    this.pendingAppends = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ ok: AppendResult } | { err: unknown }> = [];
    try {
      this.assertWritable({ statFile: false });
      this.db.transaction(() => {
        for (const item of batch) {
          try {
            outcomes.push({ ok: this.appendTx(item.runId, item.events, item.options) });
          } catch (err) {
            // Its savepoint rolled back; the cached snapshot may be ahead of disk.
            this.heads.forget(item.runId);
            outcomes.push({ err });
          }
        }
      }).immediate();
      // Committed, but into the file we opened? If it was deleted or replaced
      // meanwhile, the events are gone with it: never acknowledge them.
      this.assertWritable();
    } catch (err) {
      const now = Date.now();
      const retry: PendingAppend[] = [];
      for (const item of batch) {
        this.heads.forget(item.runId);
        if (isBusy(err) && item.deadline > now) retry.push(item);
        else item.reject(this.storeError(err));
      }
      if (retry.length > 0) {
        this.pendingAppends = retry.concat(this.pendingAppends);
        this.retryTimer = setTimeout(() => this.commitPendingAppends(), busyRetryDelay(this.busyAttempts++));
      }
      return;
    }
    this.busyAttempts = 0;
    // Committed: the disk took it (an append refused SQLITE_FULL in its savepoint sets this again below).
    this.diskFull = false;
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if ('ok' in outcome) item.resolve(outcome.ok);
      else item.reject(this.storeError(outcome.err));
    });
  }


  private appendInTx(runId: string, events: EventInput[], options: AppendOptions): AppendResult {
    const row = this.requireHead(runId);
    const fenced = fence(runId, { status: row.status, owner: parse<Owner | null>(row.owner, null), leaseExpiresAt: row.lease_expires_at }, options.owner, options.now, 'append');
    if (fenced) throw fenced;
    const seqs: number[] = [];
    const appended: RunEvent[] = [];
    const appendedText: EventText[] = [];
    const seenInBatch = new Map<string, StoredEventRef>();
    const before = this.resolve(row).snapshot;
    const at = new HeadFold(headOfRow(row, before));
    const head = at.head;

    for (const event of events) {
      if (event.id !== undefined) {
        // An ended run takes no new events, but a retried one (a finish whose
        // answer was lost) still gets its original seq back.
        const known =
          seenInBatch.get(event.id) ??
          (isTerminalStatus(head.status) ? (this.stmt.eventById.get(runId, event.id) as StoredEventRef | undefined) : undefined);
        if (known !== undefined) {
          seqs.push(sameEventOrConflict(runId, event, known));
          continue;
        }
      }
      if (isTerminalStatus(head.status)) throw terminalConflict(runId, head.status, head.snapshot);
      const ts = event.ts ?? options.now;
      const terminal = isTerminalType(event.type);
      const data = event.data === undefined ? {} : event.data;
      // Insert first and look up only on conflict: a producer sends an id
      // with every event, and duplicates are the rare retry.
      const seq = head.seq + 1;
      const body = eventBody(seq, event.type, ts, JSON.stringify(data), event.id);
      const inserted = this.stmt.insertEvent.run(runId, seq, event.type, ts, body, event.id ?? null, terminal ? 1 : 0);
      if (inserted.changes === 0) {
        seqs.push(sameEventOrConflict(runId, event, this.stmt.eventById.get(runId, event.id) as StoredEventRef));
        continue;
      }
      const stored: RunEvent = { runId, seq, type: event.type, ts, data };
      if (event.id !== undefined) {
        stored.id = event.id;
        seenInBatch.set(event.id, { seq, type: event.type, ts, body });
      }
      appended.push(stored);
      // The body just stored, not a second serialization: watchers get these bytes.
      appendedText.push({ seq, type: event.type, json: eventJson(runId, body) });
      seqs.push(seq);
      at.apply(stored);
    }
    const { seq, snapshot, status, startedAt, finishedAt, error, output, cancelRequestedAt } = head;

    const written = appended.length > 0 || options.owner !== undefined;
    const lease = leaseAfterAppend(
      status,
      { leaseExpiresAt: row.lease_expires_at, heartbeatAt: row.heartbeat_at },
      row.lease_ttl_ms,
      options.now,
      options.renewLease !== false,
    );
    if (written) {
      const owner = options.owner;
      const checkpoint = appended.length > 0 && this.heads.shouldCheckpoint(runId, row.snapshot_seq, before, snapshot, options.now);
      const checkpointText = checkpoint ? JSON.stringify(snapshot) : null;
      if (checkpointText !== null) this.stmt.writeCheckpoint.run(runId, seq, checkpointText);
      const ownerText = owner ? JSON.stringify(owner) : row.owner;
      const progress = {
        id: runId,
        seq,
        snapshot_seq: checkpoint ? seq : row.snapshot_seq,
        lease_expires_at: lease.leaseExpiresAt,
        heartbeat_at: lease.heartbeatAt,
        last_progress_at: snapshot.lastProgressAt,
        stalled_at: snapshot.stalled?.at ?? null,
      };
      const same =
        status === row.status && startedAt === row.started_at && finishedAt === row.finished_at && error === row.error &&
        output === row.output && ownerText === row.owner && cancelRequestedAt === row.cancel_requested_at;
      if (same) this.stmt.updateProgress.run(progress);
      else {
        this.stmt.updateAfterAppend.run({
          ...progress,
          status,
          started_at: startedAt,
          finished_at: finishedAt,
          error,
          output,
          owner: ownerText,
          owner_node: owner ? owner.node : ownerField(row.owner, 'node'),
          owner_kind: owner ? owner.kind : ownerField(row.owner, 'kind'),
          cancel_requested_at: cancelRequestedAt,
        });
      }
      this.heads.appended(runId, seq, snapshot, checkpointText === null ? null : { at: options.now, bytes: checkpointText.length });
    }
    const run = this.toRun({ ...row, seq, status, started_at: startedAt, finished_at: finishedAt, error, output }, snapshot);
    // Watchers are pushed this run: it must be what was just written, owner included.
    if (written) {
      if (options.owner) run.owner = options.owner;
      run.cancelRequestedAt = cancelRequestedAt;
      run.leaseExpiresAt = lease.leaseExpiresAt;
      run.heartbeatAt = lease.heartbeatAt;
    }
    return { seq, seqs, appended, appendedText, run };
  }

  async readEvents(runId: string, after: number, limit: number): Promise<RunEvent[]> {
    return this.read(() => this.readEventRows(runId, after, limit).map(rowToEvent));
  }

  async readEventTexts(runId: string, after: number, limit: number, options: ReadPageOptions = {}): Promise<EventText[]> {
    if (options.maxBytes === undefined) return this.read(() => this.readEventRows(runId, after, limit).map(rowToEventText));
    return (await this.readEventTextPage(runId, after, limit, options)).texts;
  }

  async readEventTextPage(runId: string, after: number, limit: number, options: ReadPageOptions = {}): Promise<EventTextPage> {
    const { maxBytes } = options;
    if (maxBytes === undefined) return { texts: await this.readEventTexts(runId, after, limit), cut: false };
    return this.read(() => {
      // Row by row, stopping at the budget: reading the page whole first held every row it would then drop.
      const texts: EventText[] = [];
      let bytes = 0;
      for (const row of this.stmt.readEvents.iterate(runId, after, limit) as IterableIterator<EventRow>) {
        bytes += Buffer.byteLength(row.body);
        if (texts.length > 0 && bytes > maxBytes) return { texts, cut: true };
        texts.push(rowToEventText(row));
      }
      if (texts.length === 0) this.requireHead(runId);
      return { texts, cut: false };
    });
  }

  async readJoinedEventTexts(runId: string, after: number, limit: number, options: { compact?: boolean } & ReadPageOptions = {}): Promise<JoinedEventTexts> {
    return this.read(() => {
      const fit = options.maxBytes === undefined ? { count: limit, cut: false } : this.eventsFitting(runId, after, limit, options.maxBytes);
      const page = (
        options.compact
          ? this.stmt.readJoinedCompact.get({ runId, after, limit: fit.count })
          : this.stmt.readJoined.get({ runId, runJson: JSON.stringify(runId), after, limit: fit.count })
      ) as {
        count: number;
        last: number | null;
        lastType: string | null;
        json: Buffer | null;
      };
      if (page.count === 0) {
        this.requireHead(runId);
        return { count: 0, last: 0, lastType: '', json: Buffer.alloc(0), cut: false };
      }
      return { count: page.count, last: page.last!, lastType: page.lastType!, json: page.json!, cut: fit.cut };
    });
  }

  /**
   * How many of the events after `after` (at most `limit`) fit in `maxBytes`
   * of stored text, the first always, and whether that stopped short of
   * more. Read from their sizes alone (octet_length of a column is answered
   * from the record header, no text loaded), in the same synchronous read
   * as the page it sizes: the events it counted are still the page's first.
   */
  private eventsFitting(runId: string, after: number, limit: number, maxBytes: number): { count: number; cut: boolean } {
    let count = 0;
    let bytes = 0;
    for (const size of this.stmt.eventSizes.iterate(runId, after, limit) as IterableIterator<number>) {
      bytes += size;
      if (count > 0 && bytes > maxBytes) return { count, cut: true };
      count += 1;
    }
    return { count, cut: false };
  }

  private readEventRows(runId: string, after: number, limit: number): EventRow[] {
    const rows = this.stmt.readEvents.all(runId, after, limit) as EventRow[];
    if (rows.length === 0) this.requireHead(runId);
    return rows;
  }

  async heartbeat(runId: string, options: { now: number; owner?: Owner | undefined }): Promise<Run> {
    const owner = options.owner;
    return this.write(() =>
      this.db.transaction(() => {
        const before = this.stmt.runById.get(runId) as RunRow | undefined;
        if (!before) throw runNotFound(runId);
        const fenced = fence(runId, this.toRun(before), owner, options.now, 'heartbeat');
        if (fenced) throw fenced;
        this.stmt.heartbeat.run({
          id: runId,
          now: options.now,
          owner: owner ? JSON.stringify(owner) : null,
          owner_node: owner?.node ?? null,
          owner_kind: owner?.kind ?? null,
        });
        return this.toRun(this.stmt.runById.get(runId) as RunRow);
      }).immediate(),
    );
  }

  async claimQueued(options: ClaimOptions): Promise<Run[]> {
    if (options.names.length === 0 || options.limit <= 0) return [];
    return this.write(() => this.db.transaction(() => {
      const ids = claimOrder(options, (names, limit) => this.stmt.claimable.all(JSON.stringify(names), limit) as string[]);
      const claimed: Run[] = [];
      for (const id of ids) {
        const changes = this.stmt.claim.run({
          id,
          now: options.now,
          owner: JSON.stringify(options.owner),
          owner_node: options.owner.node,
          owner_kind: options.owner.kind,
        }).changes;
        if (changes === 1) claimed.push(this.toRun(this.stmt.runById.get(id) as RunRow));
      }
      return claimed;
    }).immediate());
  }

  async findDue(now: number, limit: number): Promise<DueRuns> {
    const rows = (stmt: Database.Statement) => this.read(() => (stmt.all(now, limit) as RunRow[]).map((r) => this.toRun(r)));
    return {
      expired: rows(this.stmt.expired),
      overdue: rows(this.stmt.overdue),
      stalled: rows(this.stmt.stalled),
      phaseOverdue: rows(this.stmt.phaseOverdue),
    };
  }

  async queuedHandlerNames(limit: number): Promise<string[]> {
    return this.read(() => this.stmt.queuedNames.all(limit) as string[]);
  }

  async findOwnedBy(node: string, kind: Owner['kind']): Promise<Run[]> {
    return this.read(() => (this.stmt.ownedBy.all(node, kind) as RunRow[]).map((r) => this.toRun(r)));
  }

  /**
   * Ready when the file at our path is still the one we opened and a write
   * transaction can begin and write (rolled back at once). Waits at most
   * busy_timeout on a lock.
   */
  async readiness(): Promise<StoreReadiness> {
    // The probe below rolls back: its success says nothing of the disk's space.
    const full = this.diskFull;
    try {
      // Retried like a write for a moment, so that another process's short
      // commit (several servers on one file) does not read as "not ready".
      await this.write(() => {
        this.db.exec('BEGIN IMMEDIATE');
        try {
          // Writes the header page in the transaction: a read-only file fails here, not at BEGIN.
          this.db.pragma(`user_version = ${migrations.length}`);
        } finally {
          this.db.exec('ROLLBACK');
        }
      }, READINESS_BUSY_WAIT_MS);
    } catch (err) {
      return { ready: false, reasons: [(this.storeError(err) as Error).message] };
    } finally {
      this.diskFull ||= full;
    }
    if (this.diskFull) {
      // The byte count stays out of the reason: a reason that changes is logged as a new outage.
      if (freeBytes(dirname(this.filename)) < READY_AGAIN_FREE_BYTES) return { ready: false, reasons: [this.diskFullError().message] };
      // Space was freed: writes are taken again (one that still fails sets it again).
      this.diskFull = false;
    }
    return { ready: true, reasons: [] };
  }

  async createToken(record: TokenRecord): Promise<void> {
    await this.write(() => this.stmt.insertToken.run(record));
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    return (this.stmt.tokenByHash.get(hash) as TokenRecord | undefined) ?? null;
  }

  async findTokenById(id: string): Promise<TokenRecord | null> {
    return (this.stmt.tokenById.get(id) as TokenRecord | undefined) ?? null;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.stmt.listTokens.all() as TokenRecord[];
  }

  async revokeToken(id: string, now: number): Promise<TokenRecord | null> {
    return this.write(() => this.db.transaction(() => {
      this.stmt.revokeToken.run(now, id);
      return (this.stmt.tokenById.get(id) as TokenRecord | undefined) ?? null;
    }).immediate());
  }

  async createRunToken(record: RunTokenRecord, maxLive = Infinity): Promise<boolean> {
    return this.write(() => this.db.transaction(() => {
      this.stmt.dropExpiredRunTokens.run(record.createdAt);
      if (maxLive !== Infinity && (this.stmt.countLiveRunTokens.get(record.runId, record.createdAt) as number) >= maxLive) return false;
      this.stmt.insertRunToken.run(record.id, record.runId, record.write ? 1 : 0, record.createdAt, record.expiresAt, record.revokedAt, record.mintedBy);
      return true;
    }).immediate());
  }

  async findRunTokenById(id: string): Promise<RunTokenRecord | null> {
    return runTokenOf(this.stmt.runTokenById.get(id) as RunTokenRow | undefined);
  }

  async revokeRunToken(id: string, now: number): Promise<RunTokenRecord | null> {
    return this.write(() => this.db.transaction(() => {
      this.stmt.revokeRunToken.run(now, id);
      return runTokenOf(this.stmt.runTokenById.get(id) as RunTokenRow | undefined);
    }).immediate());
  }

  async ensureSecret(name: string, candidate: string): Promise<string> {
    return this.write(() => this.db.transaction(() => {
      this.stmt.insertSecret.run(name, candidate);
      return this.stmt.secretByName.get(name) as string;
    }).immediate());
  }

  async findSecret(name: string): Promise<string | null> {
    return (this.stmt.secretByName.get(name) as string | undefined) ?? null;
  }

  async announceHandlers(a: HandlersAnnouncement): Promise<void> {
    await this.write(() => this.stmt.announceHandlers.run(a.node, JSON.stringify([...a.handlers].sort()), a.now, a.liveUntil, a.incarnation, a.url, a.slots ? JSON.stringify(a.slots) : null));
  }

  async nodeHandlers(now: number): Promise<NodeHandlers[]> {
    return (this.stmt.nodeHandlers.all(now) as NodeHandlersRow[]).map(nodeHandlersOf);
  }

  async forgetHandlers(node: string): Promise<void> {
    await this.write(() => this.stmt.forgetHandlers.run(node));
  }

  async putArtifact(input: PutArtifactInput): Promise<PutArtifactResult> {
    return this.write(() => {
      try {
        return this.db.transaction(() => this.putArtifactInTx(input)).immediate();
      } catch (err) {
        // The event's savepoint rolled back with the rest; the cache may be ahead.
        this.heads.forget(input.runId);
        throw err;
      }
    });
  }

  private putArtifactInTx(input: PutArtifactInput): PutArtifactResult {
    const row = this.requireHead(input.runId);
    const existing = this.stmt.artifactByName.get(input.runId, input.name) as ArtifactRow | undefined;
    const stats = this.stmt.artifactStats.get(input.runId) as { maxOrdinal: number; bytes: number };
    const record = planArtifact(input, row.status, existing, stats);
    if (record === 'unchanged') return { artifact: toArtifact(existing!), outcome: 'unchanged', append: null, displaced: null };
    if (existing) this.stmt.replaceArtifact.run(record);
    else this.stmt.insertArtifact.run(record);
    const artifact = toArtifact(record);
    const append = this.appendTx(input.runId, [{ type: 'artifact', data: artifactEventData(artifact) }], {
      now: input.now,
    });
    return { artifact, outcome: existing ? 'replaced' : 'created', append, displaced: existing?.sha256 ?? null };
  }

  async listArtifacts(runId: string): Promise<Artifact[]> {
    const rows = this.stmt.artifactsOf.all(runId) as ArtifactRow[];
    if (rows.length === 0) this.requireHead(runId);
    return rows.map(toArtifact);
  }

  async getArtifact(runId: string, name: string): Promise<Artifact | null> {
    const row = this.stmt.artifactByName.get(runId, name) as ArtifactRow | undefined;
    return row ? toArtifact(row) : null;
  }

  async blobsInUse(sha256s: string[]): Promise<Set<string>> {
    if (sha256s.length === 0) return new Set();
    return new Set(this.stmt.blobsInUse.all(JSON.stringify(sha256s)) as string[]);
  }

  async importRun(bundle: RunBundle): Promise<Run> {
    return (await this.importRuns([bundle]))[0]!;
  }

  async importRuns(bundles: RunBundle[]): Promise<Run[]> {
    // Through write() as every other write: another process holding the lock for a moment
    // is waited out (the event loop free between tries), not a raw SQLITE_BUSY 500.
    return this.write(() => this.db.transaction(() => {
      const taken = bundles.filter(({ run }) => this.stmt.runById.get(run.id)).map(({ run }) => run.id);
      if (taken.length > 0) throw runsAlreadyExist(taken);
      const runs: Run[] = [];
      for (const { run, events, artifacts } of bundles) {
        // Earlier runs of the list are already written in this transaction: a parent among them is found here.
        if (run.parentId !== null && !this.stmt.runById.get(run.parentId)) throw importParentMissing(run.id, run.parentId);
        const { columns, checkpoint } = importedRun(run, events);
        this.stmt.insertImportedRun.run({ ...columns, execute: columns.execute ? 1 : 0, fail_on_stall: columns.fail_on_stall ? 1 : 0 });
        if (checkpoint) this.stmt.writeCheckpoint.run(run.id, checkpoint.seq, checkpoint.snapshot);
        for (const e of events) {
          const body = eventBody(e.seq, e.type, e.ts, JSON.stringify(e.data ?? {}), e.id);
          this.stmt.insertEvent.run(run.id, e.seq, e.type, e.ts, body, e.id ?? null, isTerminalType(e.type) ? 1 : 0);
        }
        for (const a of artifacts) this.stmt.insertArtifact.run(artifactRow({ ...a, runId: run.id }));
        runs.push(this.toRun(this.stmt.runById.get(run.id) as RunRow));
      }
      return runs;
    }).immediate());
  }

  async close(): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const item of this.pendingAppends.splice(0)) {
      item.reject(new RuntrailError('unavailable', 'the store was closed before this append could be written'));
    }
    if (this.db.open) this.db.close();
  }

  /**
   * Run a write: refused while the file is not the one we opened; a locked
   * database is retried with the event loop free between attempts, until
   * busyWaitMs, then `unavailable`.
   */
  private async write<T>(tx: () => T, busyWaitMs = this.busyWaitMs): Promise<T> {
    const deadline = Date.now() + busyWaitMs;
    for (let attempt = 0; ; attempt++) {
      try {
        this.assertWritable({ statFile: false });
        const result = tx();
        this.assertWritable();
        this.diskFull = false;
        return result;
      } catch (err) {
        if (!isBusy(err) || Date.now() >= deadline) throw this.storeError(err);
      }
      await sleep(busyRetryDelay(attempt));
    }
  }

  private read<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.storeError(err);
    }
  }

  /** Why writes at our path would be lost, if they would: checked before every write and its acknowledgement. */
  private fileFault(): string | null {
    if (this.fault) return this.fault;
    const st = statSync(this.filename, { throwIfNoEntry: false });
    if (st && st.dev === this.identity.dev && st.ino === this.identity.ino) return null;
    this.fault =
      `the database file ${this.filename} was ${st ? 'replaced by another file' : 'deleted'} while runtrail had it open; ` +
      'writes are refused because they would be lost; restore the file or restart runtrail on a data dir it can keep';
    return this.fault;
  }

  /**
   * Refuse a write while the file is not the one this store opened. Before a
   * write only a fault already found is checked (`statFile: false`): a write
   * into a file deleted or replaced since is refused by the check after it,
   * which stats the file (two stats per commit were 2.3 % of the server's
   * profile in the stream bench's one-event-per-request workload).
   */
  private assertWritable({ statFile = true }: { statFile?: boolean } = {}): void {
    const fault = statFile ? this.fileFault() : this.fault;
    if (fault) throw new RuntrailError('unavailable', fault, { reason: 'database_file_gone', retryAfterMs: RETRY_AFTER_MS });
  }

  /** SQLite's conditions that are the database's state, not a bug: `unavailable` (503) with a reason. */
  private storeError(err: unknown): unknown {
    if (err instanceof RuntrailError) return err;
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string') return err;
    const why = (reason: string, message: string) =>
      new RuntrailError('unavailable', `the database ${this.filename} ${message}`, { reason, retryAfterMs: RETRY_AFTER_MS });
    if (isBusy(err)) return why('database_locked', 'is locked by another process; retry shortly');
    if (code.startsWith('SQLITE_READONLY')) return why('database_read_only', `cannot be written (${code}); writes are refused, reads still work`);
    if (code === 'SQLITE_FULL') {
      this.diskFull = true;
      return this.diskFullError();
    }
    if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) return why('io_error', `had an I/O error (${code}): ${(err as Error).message}`);
    return err;
  }

  private diskFullError(): RuntrailError {
    return new RuntrailError(
      'unavailable',
      `the data dir's disk is full (SQLITE_FULL) at ${dirname(this.filename)}: the database ${this.filename} cannot grow; writes are refused until space is freed`,
      { reason: 'disk_full', retryAfterMs: RETRY_AFTER_MS },
    );
  }

  private requireHead(runId: string): RunRow {
    const row = this.stmt.runById.get(runId) as RunRow | undefined;
    if (!row) throw runNotFound(runId);
    return row;
  }

  /**
   * The snapshot at the row's seq: the head in memory, else the checkpoint
   * plus the events after it (the events up to a committed seq never
   * change). When another process wrote a newer checkpoint after the row
   * was read, the row is read again: the answer is then that newer row.
   */
  private resolve(row: RunRow): { row: RunRow; snapshot: Snapshot } {
    for (let attempt = 1; ; attempt++) {
      let checkpoint: { seq: number; snapshot: string } | undefined;
      if (this.heads.needsCheckpoint(row)) {
        checkpoint = this.stmt.checkpointOf.get(row.id) as typeof checkpoint;
        if (checkpoint?.seq !== row.snapshot_seq) {
          const fresh = this.stmt.runById.get(row.id) as RunRow | undefined;
          if (!fresh) throw runNotFound(row.id);
          // Checkpoints are written at most every few hundred ms per run: more misses than this is a bug.
          if (attempt >= 10) throw new Error(`run ${row.id}: no checkpoint at seq ${fresh.snapshot_seq} after ${attempt} reads`);
          row = fresh;
          continue;
        }
      }
      const found = this.heads.snapshotOrTail(row, () => checkpoint!.snapshot);
      if ('snapshot' in found) return { row, snapshot: found.snapshot };
      const { tail } = found;
      const events = (this.stmt.tailEvents.all(tail.runId, tail.after, tail.upto) as EventRow[]).map(rowToEvent);
      return { row, snapshot: this.heads.fold(tail, events) };
    }
  }

  private toRun(row: RunRow, snapshot?: Snapshot): Run {
    const resolved = snapshot ? { row, snapshot } : this.resolve(row);
    return rowToRun(resolved.row, resolved.snapshot, this.inputs.parse(resolved.row.id, resolved.row.input));
  }

}


function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** Bytes an unprivileged writer may still use on the filesystem of `dir`. */
function freeBytes(dir: string): number {
  const fs = statfsSync(dir);
  return fs.bavail * fs.bsize;
}

/** 5, 10, 20, 40, 50, 50 … ms between attempts at a locked database. */
function busyRetryDelay(attempt: number): number {
  return Math.min(50, 5 * 2 ** attempt);
}

/**
 * `journal_mode = WAL`, retried for up to `waitMs` while SQLite answers
 * SQLITE_BUSY. Two processes opening one new data file at once (two nodes
 * started together) can get that answer at once, without SQLite calling
 * the busy handler that busy_timeout sets: seen in CI as
 * restart.test.ts's second server exiting with "database is locked" at
 * this pragma. Blocking is fine here: nothing is served before the store
 * is open.
 */
function switchToWal(db: Database.Database, waitMs: number): void {
  const deadline = Date.now() + waitMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

/**
 * The ids to claim, oldest first: up to `limit`, at most `perName` of each
 * capped name. Each capped name is looked up on its own (at most its cap),
 * the rest together: with one lookup of the oldest `limit` runs, a backlog
 * of a saturated handler's runs would fill it, and runs of other handlers
 * queued behind them would never be claimed.
 */
function claimOrder(options: ClaimOptions, oldest: (names: string[], limit: number) => string[]): string[] {
  const perName = options.perName;
  if (!perName) return oldest(options.names, options.limit);
  const free = options.names.filter((n) => !perName.has(n));
  const ids = free.length ? oldest(free, options.limit) : [];
  for (const name of options.names) {
    const cap = Math.min(perName.get(name) ?? 0, options.limit);
    if (cap > 0) ids.push(...oldest([name], cap));
  }
  return ids.sort().slice(0, options.limit);
}
