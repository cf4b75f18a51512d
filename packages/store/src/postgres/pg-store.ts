import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import {
  RuntrailError,
  MAX_LIST_LIMIT,
  initialSnapshot,
  isTerminalStatus,
  isTerminalType,
  tellsOwnerToStop,
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
  AppendFeed,
  AppendOptions,
  AppendResult,
  DatabaseStats,
  ClaimOptions,
  DueRuns,
  NewRunRecord,
  PutArtifactInput,
  PutArtifactResult,
  RunBundle,
  SharedRunStore,
  StoreReadiness,
  TokenRecord,
  RunTokenRecord,
  WatchersAnnouncement,
  HandlersAnnouncement,
  NodeHandlers,
  ReadPageOptions,
} from '../store.js';
import { fence, importParentMissing, notFound, planArtifact, runHasChildren, runsAlreadyExist, sameEventOrConflict, terminalConflict, type StoredEventRef } from '../errors.js';
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
  type RunRow as BaseRunRow,
  leaseAfterAppend,
  leaseOfNewRun,
  ownerField,
  HeadFold,
  headOfRow,
  type RunHead,
  runCountsOf,
  nodeHandlersOf,
  type NodeHandlersRow,
  type StatusCountRow,
  distinctLabelPairs,
  labelPairsConflict,
  RUN_COLUMNS_WITHOUT_INPUT,
} from '../rows.js';
import {
  READ_COMPATIBILITY_SQL,
  acceptNewerSchema,
  migrations,
  pendingMigrations,
  postgresDialect,
  recordCompatibilitySql,
  type Migration,
  type NewerSchema,
  type OnMigrating,
  type OnNewerSchema,
} from '../migrations.js';
import { RunHeads, checkpointPolicy, type CheckpointOptions, type WrittenCheckpoint } from '../checkpoints.js';
import { ParsedInputs } from '../parsed-inputs.js';
import { eventBody, eventJson, type EventText, type EventTextPage } from '../event-text.js';
import { appendPayload, appendPayloadSql, deletedPayload, revokedPayloadSql, stopPayloadSql, watchersPayloads } from './notifications.js';
import { explainOpenFailure } from './open-failure.js';
import { PgListener } from './pg-listener.js';
import { loadPg, pgDriver } from './driver.js';

const TOKEN_COLUMNS = `id, name, scope, hash, created_at, expires_at, revoked_at`;
interface TokenRow {
  id: string;
  name: string;
  scope: TokenRecord['scope'];
  hash: string;
  created_at: string | number;
  expires_at: string | number | null;
  revoked_at: string | number | null;
}
/** BIGINT columns arrive as strings from pg. */
const tokenOf = (r: TokenRow): TokenRecord => ({
  id: r.id,
  name: r.name,
  scope: r.scope,
  hash: r.hash,
  createdAt: Number(r.created_at),
  expiresAt: r.expires_at === null ? null : Number(r.expires_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
});

const RUN_TOKEN_COLUMNS = `id, run_id, write, created_at, expires_at, revoked_at, minted_by`;
interface RunTokenRow {
  id: string;
  run_id: string;
  write: boolean;
  created_at: string | number;
  expires_at: string | number;
  revoked_at: string | number | null;
  minted_by: string | null;
}
const runTokenOf = (r: RunTokenRow): RunTokenRecord => ({
  id: r.id,
  runId: r.run_id,
  write: r.write,
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  mintedBy: r.minted_by,
});

export interface PgStoreOptions extends CheckpointOptions {
  /** `postgres://user@host:port/database` */
  connectionString: string;
  /** Schema holding runtrail's tables (created if missing). Default `public`. */
  schema?: string | undefined;
  /** Connections in the pool (default 10). */
  poolSize?: number | undefined;
  /** Longest a statement may run before PostgreSQL cancels it (ms, default 30 000; 0 = none). */
  statementTimeoutMs?: number | undefined;
  /** How long to wait for a new connection to be answered (ms, default 10 000). */
  connectTimeoutMs?: number | undefined;
  /** How many run heads (snapshots at a run's seq) to keep in memory. */
  snapshotCacheSize?: number | undefined;
  /** Told about errors of idle pool connections (a restarting server); they never crash the process. */
  onError?: ((err: Error) => void) | undefined;
  /** Told each time the pool makes a new connection (after losses reported to onError: the database is back). */
  onConnect?: (() => void) | undefined;
  onMigrating?: OnMigrating | undefined;
  /** Told when the schema was migrated by a newer runtrail and is used as it is (see acceptNewerSchema). */
  onNewerSchema?: OnNewerSchema | undefined;
  /**
   * The connections' application_name (default `runtrail`; a server sets
   * `runtrail <node>`, its listener `runtrail <node> listener`), so an
   * operator tells nodes apart in pg_stat_activity. One in the URL wins.
   */
  applicationName?: string | undefined;
}

/** PostgreSQL's run row: booleans and jsonb labels, plus the owner columns the updates read. */
interface RunRow extends BaseRunRow {
  labels: Record<string, string>;
  execute: boolean;
  fail_on_stall: boolean;
  owner_node: string | null;
  owner_kind: string | null;
}


interface PendingAppend {
  runId: string;
  events: EventInput[];
  options: AppendOptions;
  resolve(result: AppendResult): void;
  reject(err: unknown): void;
}

/** A run's state while a batch of appends is folded onto it in memory. */
interface RunState extends RunHead {
  row: RunRow;
  leaseExpiresAt: number | null;
  heartbeatAt: number | null;
  owner: string | null;
  dirty: boolean;
  /** The snapshot before the batch, and the server time of the batch's last append to the run (checkpoint policy). */
  before: Snapshot;
  now: number;
}

const RUN_HEAD = `id, name, parent_id, status, created_at, started_at, finished_at, input, labels,
  error, output, seq, snapshot_seq, execute, owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at, heartbeat_at,
  cancel_requested_at, timeout_ms, stall_timeout_ms, fail_on_stall, last_progress_at, stalled_at, retry_of, attempt`;

/** Appends committed together at most (one transaction, one NOTIFY per run)... */
const MAX_APPENDS_PER_COMMIT = 256;
/** ...and events: past this a batch's one INSERT is big enough to pay for its commit. */
const MAX_EVENTS_PER_COMMIT = 5_000;

/**
 * An append batch's write: its events (parameter 1, one JSON array of
 * rows), its changed runs (2-15, 17: each run's seq before the batch; 4, the
 * snapshot, is null when the checkpoint stays, else it is written at the
 * run's new seq) and one notification per run (16 = channel). Data-modifying
 * WITH parts all run, once, whether or not the final SELECT reads them.
 *
 * The events go as JSON, not as one text[] per column: `pg` writes an
 * array parameter as an array literal, escaping every element with two
 * regular expressions, and for the bodies (JSON themselves, full of quotes)
 * that was the largest single cost of a 500-event append on the node
 * (escapeElement, 10 % of the batched bench's samples); JSON.stringify is
 * native. PostgreSQL's json reads every string back as it was: the bodies
 * hold no raw control character or lone surrogate (they are JSON.stringify's
 * output), and types and ids come checked (protocol/text.ts refuses control
 * characters and lone surrogates in them; given to the store directly, a
 * lone surrogate fails the append with 22P02 where a text[] turned it into
 * U+FFFD).
 *
 * Each run's row is stamped with a new append token (18). A batch folded on
 * the rows as this node last wrote them, without reading them (see
 * `appendUnread`), names the token it expects (19; null when the rows are
 * locked and read): a run whose row was changed since is not updated, and
 * runtrail_expect_runs then fails the statement, which updated fewer runs
 * than the 20 it was given.
 */
const APPEND_SQL = `WITH inserted AS (
    INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal)
    SELECT e.run, e.seq, e.type, e.ts, e.body, e.id, e.terminal FROM json_to_recordset($1::json)
      AS e(run text, seq int, type text, ts bigint, body text, id text, terminal boolean)
  ), v AS (
    SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[],
      $10::bigint[], $11::bigint[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $17::int[], $18::text[], $19::text[], $21::bool[])
      AS v(id, seq, snapshot, status, started_at, finished_at, error, output, lease_expires_at, heartbeat_at, owner,
        cancel_requested_at, last_progress_at, stalled_at, from_seq, token, expected_token, stop)
  ), c AS (
    INSERT INTO run_checkpoints (run_id, seq, snapshot) SELECT v.id, v.seq, v.snapshot FROM v WHERE v.snapshot IS NOT NULL
    ON CONFLICT (run_id) DO UPDATE SET seq = EXCLUDED.seq, snapshot = EXCLUDED.snapshot
  ), u AS (
    UPDATE runs r SET seq = v.seq, snapshot_seq = CASE WHEN v.snapshot IS NULL THEN r.snapshot_seq ELSE v.seq END, status = v.status, started_at = v.started_at,
      finished_at = v.finished_at, error = v.error, output = v.output, lease_expires_at = v.lease_expires_at,
      heartbeat_at = v.heartbeat_at, owner = v.owner, owner_node = (v.owner::jsonb)->>'node',
      owner_kind = (v.owner::jsonb)->>'kind', cancel_requested_at = v.cancel_requested_at,
      last_progress_at = v.last_progress_at, stalled_at = v.stalled_at, append_token = v.token
    FROM v WHERE r.id = v.id AND (v.expected_token IS NULL OR r.append_token = v.expected_token)
    RETURNING r.id, r.seq, v.from_seq, v.stop
  )
  SELECT runtrail_expect_runs($20, count(*)), count(pg_notify($16, ${appendPayloadSql('u.from_seq', 'u.seq', 'u.id')})),
    count(CASE WHEN u.stop THEN pg_notify($16, ${stopPayloadSql('u.id')}) END) FROM u`;

/**
 * A page of a run's events: the `$3` after seq `$2`. A run's seqs have no
 * gaps, so they are exactly the seqs up to `$2 + $3`, and the upper bound
 * keeps a page to its own rows whatever plan PostgreSQL picks. Without it,
 * a run bigger than the statistics knew (a table not yet analyzed, or one
 * long run among many short ones) was read by a bitmap scan of every event
 * after `$2` and a sort, for each page: a 100,000-event catch-up read
 * 5 million rows and took 1.7 s. `$2` is a bigint from its first use: a
 * reader may ask for anything after any seq up to 2^53 (past the end is an
 * empty page), which as the seq column's integer type was a 500.
 */
export const EVENTS_PAGE_SQL = `SELECT run_id, seq, type, body FROM events
  WHERE run_id = $1 AND seq > $2::bigint AND seq <= $2::bigint + $3::bigint ORDER BY seq LIMIT $3`;

/**
 * The same page, cut before the event that takes it past $4 bytes (the
 * first is always taken): the sizes are summed in the database, so the
 * bodies past the cut are never sent. The first event past the cut comes
 * too, without its body (null): the page can so say it was cut short
 * (EventTextPage.cut) for the cost of one row's seq and type. An event
 * is in the page when the events before it fit (`upto - bytes`), or it is
 * the second (the first is always in); it has its body when it fits too.
 */
export const EVENTS_PAGE_BYTES_SQL = `SELECT run_id, seq, type, CASE WHEN upto <= $4::bigint OR n = 1 THEN body END AS body FROM (
    SELECT run_id, seq, type, body, octet_length(body) AS bytes,
      sum(octet_length(body)) OVER (ORDER BY seq) AS upto, row_number() OVER (ORDER BY seq) AS n
    FROM events WHERE run_id = $1 AND seq > $2::bigint AND seq <= $2::bigint + $3::bigint ORDER BY seq LIMIT $3
  ) page
  WHERE upto - bytes <= $4::bigint OR n <= 2
  ORDER BY seq`;

/** BIGINT columns hold epoch milliseconds and durations: numbers, not strings. */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    const { types } = pgDriver();
    if (oid === types.builtins.INT8) return (value: string) => Number(value);
    return types.getTypeParser(oid, format);
  },
};

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A column of stored JSON text as jsonb, for a query that reads a field of
 * it. JSON text holds escapes jsonb refuses: \u0000 and lone surrogates, from
 * free-form data (a log line's message in a checkpoint) or from errors stored
 * before the protocol refused them. Here each becomes \ufffd, in the query
 * only (the stored text is unchanged), so one such row cannot fail a query
 * over every run. Replacing the six characters \uXXXX with \ufffd keeps any
 * JSON text valid, also where the backslash is itself escaped ("\\u0000").
 * JSON.stringify writes \u only for such escapes and other control
 * characters, so most rows skip the regular expression.
 */
function storedJsonb(column: string): string {
  return `(CASE WHEN strpos(${column}, '\\u') = 0 THEN ${column}
    ELSE regexp_replace(${column}, '\\\\u(0000|[dD][89abAB][0-9a-fA-F]{2})', '\\\\ufffd', 'g') END)::jsonb`;
}

/**
 * Bring the schema (the connection's search_path) to the end of `list`, in
 * the caller's transaction (the adapter passes `migrations`; tests pass a
 * longer list to play a newer runtrail). A schema a newer runtrail migrated
 * is used as it is when acceptNewerSchema allows it: what is returned then
 * is for the log.
 */
export async function migratePostgresSchema(
  c: pg.ClientBase,
  schema: string,
  list: readonly Migration[],
  onMigrating?: OnMigrating,
): Promise<NewerSchema | null> {
  // Two nodes starting at once: the second waits here, then finds nothing to do.
  await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`runtrail.migrate.${schema}`]);
  // Made only when missing: CREATE SCHEMA needs CREATE on the database even
  // with IF NOT EXISTS, which a user given a schema of its own may not have.
  const { rowCount } = await c.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [schema]);
  if (rowCount === 0) await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await c.query(`CREATE TABLE IF NOT EXISTS runtrail_migrations (
    version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
  const { rows } = await c.query<{ v: number | null }>(`SELECT max(version) AS v FROM runtrail_migrations`);
  const version = rows[0]?.v ?? 0;
  if (version > list.length) {
    // A missing table would abort the transaction: asked first (a newer schema of a runtrail before the marker has none).
    const { rows: table } = await c.query<{ found: boolean }>(`SELECT to_regclass('schema_compatibility') IS NOT NULL AS found`);
    const marker = table[0]!.found ? (await c.query<{ compatible_from: number }>(READ_COMPATIBILITY_SQL)).rows[0]?.compatible_from ?? null : null;
    return acceptNewerSchema(version, marker, list.length, postgresDialect);
  }
  const steps = pendingMigrations(version, postgresDialect, list);
  if (steps.length === 0) return null;
  onMigrating?.(version, steps[steps.length - 1]!.version);
  for (const step of steps) {
    await c.query(step.sql);
    await c.query(`INSERT INTO runtrail_migrations (version) VALUES ($1)`, [step.version]);
  }
  const record = recordCompatibilitySql(list);
  if (record !== null) await c.query(record);
  return null;
}

/**
 * The shared store of several runtrail nodes: PostgreSQL, through a `pg`
 * pool. Per-run order comes from a row lock on the run (`FOR UPDATE`), held
 * from reading its seq to the commit, so appenders on any number of nodes
 * are serialised per run and never per database.
 *
 * Appends that arrive while the previous commit is in flight are committed
 * together (group commit): one transaction locks all their runs in id order
 * (no deadlock between two such batches), checks every event id in one
 * query, inserts all events in one statement, updates each run once and
 * sends ONE notification per run. An append that is refused (ended run,
 * missing run, lost lease) is refused before anything is written, so it
 * never takes the others down; a database error retries each append alone.
 */
export class PgRunStore implements SharedRunStore {
  readonly kind = 'postgres';
  readonly schema: string;
  /** NOTIFY channel of this schema's run changes (payloads: ./notifications.ts). */
  readonly channel: string;
  private readonly applicationName: string;
  private readonly pool: pg.Pool;
  private readonly options: PgStoreOptions;
  /** Named in the error of a statement PostgreSQL cancelled for outlasting it. */
  private readonly statementTimeoutMs: number;
  private readonly heads: RunHeads;
  private readonly inputs = new ParsedInputs();
  private pending: PendingAppend[] = [];
  /** Group commits in flight; at most one per pool connection but one. */
  private committing = 0;
  /** The runs with a commit from this node in flight: their next appends wait for it (schedule). */
  private readonly committingRuns = new Set<string>();
  private readonly maxCommitting: number;
  /**
   * Per run, its row and snapshot as this node's last append wrote them,
   * and the append token that append stamped the row with: the next append
   * folds on them without reading the row (appendUnread). Any other write
   * of the row clears the token in the database (a trigger), and that
   * append then fails as a whole and is made again on the row read under
   * its lock.
   */
  private readonly written = new Map<string, WrittenRow>();
  /** Append tokens: unique across nodes and restarts (a random prefix), one per run per commit. */
  private readonly tokenPrefix = randomBytes(9).toString('base64url');
  private tokens = 0;
  /** The listening connection, once `listen` made it. */
  private listener: PgListener | null = null;
  /** The connection appendUnread queues its commits on, while any is in flight. */
  private lane: { client: Promise<pg.PoolClient>; inFlight: number; broken: Error | undefined } | null = null;
  /** Commits made on rows as last written (`unread`) and on rows read under their lock (`locked`): tests read it. */
  readonly commitCounts = { unread: 0, locked: 0 };
  private closed = false;

  private constructor(options: PgStoreOptions) {
    this.options = options;
    this.schema = options.schema ?? 'public';
    if (!SCHEMA_NAME.test(this.schema)) {
      throw new RuntrailError('invalid_request', `schema name "${this.schema}" must be lower case letters, digits and _`);
    }
    this.channel = `runtrail_events.${this.schema}`;
    this.heads = new RunHeads(checkpointPolicy(options), options.snapshotCacheSize ?? 1000);
    this.applicationName = options.applicationName ?? 'runtrail';
    this.statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
    const poolSize = options.poolSize ?? 10;
    this.maxCommitting = Math.max(1, poolSize - 1);
    this.pool = new (pgDriver().Pool)({
      connectionString: options.connectionString,
      max: poolSize,
      types,
      options: `-c search_path=${this.schema} -c statement_timeout=${this.statementTimeoutMs}`,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      application_name: this.applicationName,
      // Statements sent without waiting (an append's write and its COMMIT) share one round trip.
      pipeline: true,
    });
    // An idle connection that dies (server restart) emits here; unhandled, it would end the process.
    this.pool.on('error', (err) => options.onError?.(err));
    // The pool listens for a connection's errors only while it is idle. One that
    // dies while checked out with no statement in flight (between a transaction's
    // statements, or on the commit lane between commits) emits on the client with
    // nobody listening: a network cut while a run appended ended the process.
    // Nothing is lost by not acting here: the next statement on that client
    // fails ("Client has encountered a connection error", mapped to 503) and
    // the client is released broken, so the pool drops it.
    this.pool.on('connect', (client) => {
      client.on('error', () => undefined);
      options.onConnect?.();
    });
  }

  /** Connect, create the schema if needed and apply pending migrations (under an advisory lock). */
  static async open(options: PgStoreOptions): Promise<PgRunStore> {
    await loadPg();
    const store = new PgRunStore(options);
    let newer: NewerSchema | null;
    try {
      newer = await store.tx((c) => migratePostgresSchema(c, store.schema, migrations, options.onMigrating));
    } catch (err) {
      await store.pool.end();
      throw explainOpenFailure(err, options.connectionString, options.connectTimeoutMs ?? 10_000, store.schema);
    }
    // After the commit: the schema is used as it is only once the lock is let go.
    if (newer) options.onNewerSchema?.(newer);
    return store;
  }

  /** Feed this node the appends of every node: one LISTEN connection, reconnecting by itself. */
  async listen(feed: AppendFeed): Promise<{ close(): Promise<void> }> {
    const listener = new PgListener(this.options.connectionString, this.channel, feed, `${this.applicationName} listener`);
    try {
      await listener.start();
    } catch (err) {
      throw asUnavailable(err, this.statementTimeoutMs);
    }
    this.listener = listener;
    return listener;
  }

  async announceWatchers(announcement: WatchersAnnouncement): Promise<void> {
    for (const payload of watchersPayloads(announcement)) await this.query(`SELECT pg_notify($1, $2)`, [this.channel, payload]);
  }

  databaseStats(): DatabaseStats {
    const { totalCount, idleCount, waitingCount } = this.pool;
    return {
      connections: { busy: totalCount - idleCount, idle: idleCount },
      waitingQueries: waitingCount,
      listening: this.listener?.listening ?? false,
      listenerReconnects: this.listener?.reconnects ?? 0,
    };
  }

  /** The database's clock (epoch ms): leases of several nodes are judged on one clock. */
  async databaseNow(): Promise<number> {
    const { rows } = await this.query<{ now: string }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::text AS now`);
    return Math.round(Number(rows[0]!.now));
  }

  async createRun(record: NewRunRecord): Promise<{ run: Run; created: boolean }> {
    return this.tx(async (c) => {
      if (record.parentId !== undefined) {
        // KEY SHARE: a delete of the parent (FOR UPDATE) waits for this run to commit and then finds it, or this
        // waits for the delete and finds no parent; appends to the parent (no key update) are not held up.
        const parent = await c.query(`SELECT 1 FROM runs WHERE id = $1 FOR KEY SHARE`, [record.parentId]);
        if (parent.rowCount === 0) {
          throw new RuntrailError('run_not_found', `parent run ${record.parentId} does not exist`, { parentId: record.parentId });
        }
      }
      const execute = record.execute === true;
      const lease = leaseOfNewRun(execute, record.now, record.leaseTtlMs);
      const owner = execute ? null : (record.owner ?? null);
      const values = [
        record.id,
        record.name,
        record.parentId ?? null,
        execute ? 'queued' : 'running',
        record.now,
        execute ? null : record.now,
        json(record.input),
        JSON.stringify(record.labels ?? {}),
        execute,
        json(owner ?? undefined),
        owner?.node ?? null,
        owner?.kind ?? null,
        record.leaseTtlMs,
        lease.leaseExpiresAt,
        lease.heartbeatAt,
        record.timeoutMs ?? null,
        record.stallTimeoutMs ?? null,
        record.failOnStall === true,
        record.retryOf ?? null,
        record.attempt ?? 1,
        record.idempotencyKey ?? null,
      ];
      // ON CONFLICT waits for a racing creator with the same key to commit, then yields to it.
      const inserted = await c.query<RunRow>(
        `INSERT INTO runs (id, name, parent_id, status, created_at, started_at, input, labels, execute,
          owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at, heartbeat_at, timeout_ms, stall_timeout_ms,
          fail_on_stall, retry_of, attempt, idempotency_key)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8::jsonb,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
        values,
      );
      if (inserted.rows[0]) {
        // Other nodes' live run lists learn of it (seq 0 = created).
        await c.query(`SELECT pg_notify($1, $2)`, [this.channel, appendPayload(0, 0, record.id)]);
        return { run: await this.toRun(inserted.rows[0], c), created: true };
      }
      const existing = (await c.query<RunRow>(`SELECT * FROM runs WHERE idempotency_key = $1`, [record.idempotencyKey])).rows[0]!;
      if (existing.name !== record.name) {
        throw new RuntrailError(
          'idempotency_conflict',
          `Idempotency-Key ${record.idempotencyKey} was used for a run named "${existing.name}", not "${record.name}"`,
        );
      }
      return { run: await this.toRun(existing, c), created: false };
    });
  }

  async getRun(id: string): Promise<Run | null> {
    const { rows } = await this.query<RunRow>(`SELECT * FROM runs WHERE id = $1`, [id]);
    return (await this.runsOf(rows))[0] ?? null;
  }

  async listRuns(query: ListRunsQuery, options: ReadPageOptions = {}): Promise<ListRunsResponse> {
    const { where, params } = this.filterClauses(query);
    if (query.cursor) {
      params.push(query.cursor);
      where.push(`id < $${params.length}`);
    }
    const limit = Math.min(query.limit ?? 50, MAX_LIST_LIMIT);
    params.push(limit + 1);
    // ids are UUIDv7: ordering by id is ordering by creation time.
    const whereSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
    let sql = `SELECT * FROM runs ${whereSql} ORDER BY id DESC LIMIT $${params.length}`;
    if (options.maxBytes !== undefined) {
      // Cut by bytes in the database (runRowBytes in SQL), so the runs past the cut are never sent;
      // the run that crosses the budget (or the second, when the first alone does) comes along, as the
      // one past the limit does, to say more is waiting.
      params.push(options.maxBytes);
      const bytes = 'coalesce(octet_length(input), 0) + coalesce(octet_length(output), 0) + coalesce(octet_length(error), 0)';
      sql = `SELECT * FROM (
          SELECT *, ${bytes} AS row_bytes, sum(${bytes}) OVER (ORDER BY id DESC) AS page_bytes, row_number() OVER (ORDER BY id DESC) AS page_row
          FROM runs ${whereSql} ORDER BY id DESC LIMIT $${params.length - 1}
        ) page WHERE page_row <= 2 OR page_bytes - row_bytes <= $${params.length}::bigint ORDER BY id DESC`;
    }
    const { rows } = await this.query<RunRow & { page_bytes?: number }>(sql, params);
    const maxBytes = options.maxBytes ?? Infinity;
    const page = rows.filter((row, i) => i === 0 || (row.page_bytes ?? 0) <= maxBytes).slice(0, limit);
    return { runs: await this.runsOf(page), nextCursor: rows.length > page.length ? page[page.length - 1]!.id : null };
  }

  async countRuns(filter: RunsFilter): Promise<RunCounts> {
    const { where, params } = this.filterClauses(filter);
    const whereOf = (clauses: string[]) => (clauses.length ? `WHERE ${clauses.join(' AND ')}` : '');
    const { rows } = await this.query<StatusCountRow>(`SELECT status, count(*) AS n FROM runs ${whereOf(where)} GROUP BY status`, params);
    // Apart, on the status index: in the count by status, stalled_at made every row be read, not the index alone.
    const running = rows.some((r) => r.status === 'running' && r.n > 0);
    const stalledSql = `SELECT count(*) AS n FROM runs ${whereOf([...where, "status = 'running'", 'stalled_at IS NOT NULL'])}`;
    const stalled = running ? (await this.query<{ n: number }>(stalledSql, params)).rows[0]!.n : 0;
    return runCountsOf(rows, stalled);
  }

  /** The WHERE clauses of a runs filter (RunsFilterFields), shared by the list and its counts. */
  private filterClauses(query: RunsFilter): { where: string[]; params: unknown[] } {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: (n: number) => string, ...values: unknown[]) => {
      where.push(clause(params.length + 1));
      params.push(...values);
    };
    if (query.status) add((n) => `status = $${n}`, query.status);
    if (query.name) add((n) => `name = $${n}`, query.name);
    // strpos on lower(): a substring with no LIKE wildcards to escape ('%' and '_' are plain text here).
    if (query.nameContains) add((n) => `strpos(lower(name COLLATE "C"), $${n}) > 0`, foldCase(query.nameContains));
    if (query.parentId) add((n) => `parent_id = $${n}`, query.parentId);
    if (query.parentIds) add((n) => `parent_id = ANY($${n}::text[])`, query.parentIds.split(','));
    if (query.topLevel === 'true') where.push('parent_id IS NULL');
    if (query.topLevel === 'false') where.push('parent_id IS NOT NULL');
    if (query.createdAfter !== undefined) add((n) => `created_at >= $${n}`, query.createdAfter);
    if (query.createdBefore !== undefined) add((n) => `created_at < $${n}`, query.createdBefore);
    if (query.errorKind) {
      // failureKindOf in SQL: the error's kind, or a running run stalled now.
      add((n) => `((${storedJsonb('error')})->>'kind' = $${n} OR ($${n} = 'stalled' AND status = 'running' AND stalled_at IS NOT NULL))`, query.errorKind);
    }
    const pairs = distinctLabelPairs(parseLabelFilter(query.label));
    // One containment of all the pairs (a test per pair read each run's labels once per pair);
    // two values of one key are in no run.
    if (labelPairsConflict(pairs)) where.push('false');
    else if (pairs.length > 0) add((n) => `labels @> $${n}::jsonb`, JSON.stringify(Object.fromEntries(pairs)));
    return { where, params };
  }

  async deleteRun(id: string): Promise<void> {
    await this.tx(async (c) => {
      const row = (await c.query<RunRow>(`SELECT ${RUN_HEAD} FROM runs WHERE id = $1 FOR UPDATE`, [id])).rows[0];
      if (!row) throw notFound(id);
      if (!isTerminalStatus(row.status)) {
        throw new RuntrailError('run_not_terminal', `run ${id} is ${row.status}; cancel it and wait for it to end before deleting it (runtrail cancel ${id} --wait)`, {
          status: row.status,
        });
      }
      const child = (await c.query<{ id: string; status: RunStatus }>(`SELECT id, status FROM runs WHERE parent_id = $1 LIMIT 1`, [id])).rows[0];
      if (child) throw runHasChildren(id, child);
      await c.query(`DELETE FROM events WHERE run_id = $1`, [id]);
      await c.query(`DELETE FROM artifacts WHERE run_id = $1`, [id]);
      await c.query(`DELETE FROM run_checkpoints WHERE run_id = $1`, [id]);
      await c.query(`DELETE FROM run_tokens WHERE run_id = $1`, [id]);
      await c.query(`DELETE FROM runs WHERE id = $1`, [id]);
      // Other nodes' live run lists drop it.
      await c.query(`SELECT pg_notify($1, $2)`, [this.channel, deletedPayload(rowToRun(row, initialSnapshot(), null))]);
    });
    this.forgetRun(id);
  }

  append(runId: string, events: EventInput[], options: AppendOptions): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.pending.push({ runId, events, options, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Start group commits while connections are free, at most one per run:
   * a run's appends that arrive while its commit is in flight wait, in
   * arrival order, and all go into its next commit. Under many concurrent
   * one-event appends (HTTP producers, each request on its own turn) the
   * node's CPU is the limit, and each commit costs it far more than each
   * append in it: a second commit in flight per run, started as soon as the
   * first had sent its write, carried the one or two appends of that
   * moment, so under 32 HTTP clients commits averaged 3.9 appends, against
   * 7.2 this way, for less server CPU per append and more appends/s, and
   * more where two nodes write one run (figures: README, "Appends on
   * PostgreSQL").
   */
  private schedule(): void {
    while (this.pending.length > 0 && this.committing < this.maxCommitting) {
      const batch: PendingAppend[] = [];
      const waiting: PendingAppend[] = [];
      let events = 0;
      for (const item of this.pending) {
        const full = batch.length >= MAX_APPENDS_PER_COMMIT || events >= MAX_EVENTS_PER_COMMIT;
        // A run's appends wait all together or none (once full, every later one waits): order is kept.
        if (full || this.committingRuns.has(item.runId)) waiting.push(item);
        else {
          batch.push(item);
          events += item.events.length;
        }
      }
      if (batch.length === 0) return;
      const runs = [...new Set(batch.map((item) => item.runId))];
      for (const runId of runs) this.committingRuns.add(runId);
      this.pending = waiting;
      this.committing++;
      void this.commitBatch(batch).finally(() => {
        this.committing--;
        for (const runId of runs) this.committingRuns.delete(runId);
        this.schedule();
      });
    }
  }

  private async commitBatch(batch: PendingAppend[]): Promise<void> {
    let outcomes: Outcome[] | null;
    try {
      outcomes = await this.appendUnread(batch);
      if (outcomes === null) {
        try {
          outcomes = await this.lockedTx(batch, (c, heads, beforeCommit) =>
            this.appendBatch(c, batch, heads, { lookupIds: false, beforeCommit }),
          );
        } catch (err) {
          if (!isEventIdConflict(err) && !(err instanceof IdLookupNeeded)) throw err;
          // Some event id of the batch may be stored already (a producer's retry): the
          // unique index said so, or an ended run; now look every id up and give retries their seqs.
          for (const item of batch) this.forgetRun(item.runId);
          outcomes = await this.lockedTx(batch, (c, heads, beforeCommit) =>
            this.appendBatch(c, batch, heads, { lookupIds: true, beforeCommit }),
          );
        }
        this.commitCounts.locked++;
      }
    } catch (err) {
      for (const item of batch) this.forgetRun(item.runId);
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // Something failed in the database itself: give each append its own chance, in order.
      for (const item of batch) await this.commitBatch([item]);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if ('ok' in outcome) item.resolve(outcome.ok);
      else item.reject(outcome.err);
    });
  }

  /**
   * Commit a batch folded on its runs' rows as this node's last appends
   * wrote them, without reading them. BEGIN, the write and COMMIT are queued
   * at once on the lane, one connection that takes these commits in order:
   * PostgreSQL runs each right after the one before, with no round trip to
   * this node between them, and a run's row lock is held for its write and
   * commit only.
   *
   * Null, with nothing written, when a run's row or snapshot is not known
   * here, when an append would be refused (that is judged on the row read
   * under its lock, never on this node's copy), or when a row changed since
   * this node wrote it: its append token differs, so the write fails as a
   * whole (runtrail_expect_runs, or the seqs it took are taken). The caller
   * then commits the batch the locked way.
   */
  private async appendUnread(batch: PendingAppend[]): Promise<Outcome[] | null> {
    // In id order, as lockedTx takes row locks: the write updates (and locks) the runs in this order.
    const runIds = [...new Set(batch.map((item) => item.runId))].sort();
    if (!runIds.every((runId) => this.written.has(runId))) return null;
    const lane = (this.lane ??= { client: this.pool.connect(), inFlight: 0, broken: undefined });
    lane.inFlight++;
    let client: pg.PoolClient | undefined;
    const queued: Array<Promise<unknown>> = [];
    try {
      client = await lane.client;
      // From here to the COMMIT nothing waits: no other commit's statements can come between these.
      const resolved: Array<{ row: RunRow; snapshot: Snapshot }> = [];
      const unread: UnreadRuns = { tokens: new Map(), heads: [] };
      for (const runId of runIds) {
        const last = this.written.get(runId);
        if (!last) return null;
        resolved.push({ row: last.row, snapshot: last.snapshot });
        unread.tokens.set(runId, last.token);
      }
      queued.push(client.query('BEGIN'));
      let outcomes: Outcome[];
      try {
        outcomes = this.foldBatch(client, batch, resolved, new Map(), { lookupIds: false, beforeCommit: queued, unread });
      } catch (err) {
        queued.push(client.query('ROLLBACK'));
        throw err;
      }
      // After a failed statement PostgreSQL answers COMMIT with a rollback, and the failure rejects here.
      queued.push(client.query('COMMIT'));
      await Promise.all(queued);
      for (const head of unread.heads) this.heads.appended(head.runId, head.seq, head.snapshot, head.checkpoint);
      this.commitCounts.unread++;
      return outcomes;
    } catch (err) {
      // The others' outcomes follow from `err`; all are answered before the connection is released.
      await Promise.allSettled(queued);
      const mapped = asUnavailable(err, this.statementTimeoutMs);
      if (RuntrailError.isCode(mapped, 'unavailable')) {
        // The lane's connection may be gone: commits after this one take a new one.
        lane.broken = err as Error;
        if (this.lane === lane) this.lane = null;
      }
      for (const runId of runIds) this.forgetRun(runId);
      // A stale copy, a refusal to judge on the row or a stored event id: the locked way decides.
      if (err instanceof UnreadRefused || isStaleUnreadWrite(err) || isEventIdConflict(err)) return null;
      throw mapped;
    } finally {
      if (--lane.inFlight === 0) {
        if (this.lane === lane) this.lane = null;
        if (client) client.release(lane.broken);
      }
    }
  }

  private rememberWritten(runId: string, written: WrittenRow): void {
    this.written.delete(runId);
    this.written.set(runId, written);
    // As many as the heads kept.
    if (this.written.size > (this.options.snapshotCacheSize ?? 1000)) {
      const oldest = this.written.keys().next().value;
      if (oldest !== undefined) this.written.delete(oldest);
    }
  }

  /** This node's copies of a run (its head, its row as last written): a write that may be in them failed, or the run is gone. */
  private forgetRun(runId: string): void {
    this.heads.forget(runId);
    this.written.delete(runId);
    this.inputs.forget(runId);
  }

  /**
   * One transaction holding the row locks of the batch's runs, taken in id
   * order (two batches never wait on each other in a cycle). BEGIN and the
   * lock go to the server as one message: a round trip less per commit.
   */
  private async lockedTx<T>(
    batch: PendingAppend[],
    fn: (c: pg.PoolClient, heads: RunRow[], beforeCommit: Array<Promise<unknown>>) => Promise<T>,
  ): Promise<T> {
    const runIds = [...new Set(batch.map((b) => b.runId))].sort();
    const ids = runIds.map((id) => pgDriver().escapeLiteral(id)).join(', ');
    return this.tx(
      (c, heads, beforeCommit) => fn(c, heads!.rows, beforeCommit),
      `SELECT ${RUN_HEAD} FROM runs WHERE id IN (${ids}) ORDER BY id FOR UPDATE`,
    );
  }

  /**
   * Fold a batch of appends onto its runs (locked by the caller, `heads`)
   * and send its write (the events, the runs and one notification per run,
   * in one statement) into `beforeCommit`: the caller's COMMIT follows it
   * without waiting for it. Event ids are looked up first only when `lookupIds`: without
   * it a stored id makes the insert fail on the unique index (the caller
   * then retries with the lookup), which spares the common case, new ids,
   * a query as costly as the insert.
   */
  private async appendBatch(
    c: pg.PoolClient,
    batch: PendingAppend[],
    heads: RunRow[],
    { lookupIds, beforeCommit }: { lookupIds: boolean; beforeCommit: Array<Promise<unknown>> },
  ): Promise<Outcome[]> {
    // The rows are locked: their checkpoints cannot move while this reads them.
    const resolved = await this.resolve(heads, c);
    // Every event id of the batch that is already stored, in one query.
    const runIds = new Set(resolved.map(({ row }) => row.id));
    const idRuns: string[] = [];
    const idValues: string[] = [];
    for (const item of batch) {
      if (!runIds.has(item.runId)) continue;
      for (const e of item.events) {
        if (e.id === undefined) continue;
        idRuns.push(item.runId);
        idValues.push(e.id);
      }
    }
    const known = new Map<string, StoredEventRef>();
    if (lookupIds && idValues.length > 0) {
      const found = await c.query<{ run_id: string; event_id: string } & StoredEventRef>({
        name: 'runtrail.known-event-ids',
        text: `SELECT e.run_id, e.event_id, e.seq, e.type, e.ts, e.body FROM events e
         JOIN unnest($1::text[], $2::text[]) AS k(run_id, event_id) ON e.run_id = k.run_id AND e.event_id = k.event_id`,
        values: [idRuns, idValues],
      });
      for (const r of found.rows) known.set(`${r.run_id}\u0000${r.event_id}`, { seq: r.seq, type: r.type, ts: r.ts, body: r.body });
    }
    return this.foldBatch(c, batch, resolved, known, { lookupIds, beforeCommit });
  }

  /**
   * appendBatch's fold and write, on runs with their snapshots (`resolved`)
   * and the stored event ids it knows of (`known`). Synchronous: the write is
   * queued on `c` in the same turn as whatever the caller queued before it.
   * `unread`: the rows are this node's copies (appendUnread), and the write
   * expects their append tokens.
   */
  private foldBatch(
    c: pg.PoolClient,
    batch: PendingAppend[],
    resolved: Array<{ row: RunRow; snapshot: Snapshot }>,
    known: Map<string, StoredEventRef>,
    { lookupIds, beforeCommit, unread }: { lookupIds: boolean; beforeCommit: Array<Promise<unknown>>; unread?: UnreadRuns },
  ): Outcome[] {
    const states = new Map<string, RunState>();
    for (const { row, snapshot } of resolved) {
      states.set(row.id, {
        ...headOfRow(row, snapshot),
        row,
        before: snapshot,
        now: 0,
        leaseExpiresAt: row.lease_expires_at,
        heartbeatAt: row.heartbeat_at,
        owner: row.owner,
        dirty: false,
      });
    }

    const rows: Array<{ run: string; seq: number; type: string; ts: number; body: string; id: string | null; terminal: boolean }> = [];
    const results: Array<{ ok: { state: RunState; seqs: number[]; appended: RunEvent[]; appendedText: EventText[]; options: AppendOptions } } | { err: unknown }> = [];
    for (const item of batch) {
      const state = states.get(item.runId);
      if (!state) {
        results.push({ err: notFound(item.runId) });
        continue;
      }
      try {
        const draft = foldAppend(state, item, known);
        // Only a fully accepted append touches the shared state or the rows to insert.
        Object.assign(state, draft.state);
        state.now = item.options.now;
        const appendedText: EventText[] = [];
        draft.appended.forEach((e, i) => {
          // Serialized once: the stored body is also what watchers are sent.
          const body = draft.bodies[i]!;
          rows.push({ run: e.runId, seq: e.seq, type: e.type, ts: e.ts, body, id: e.id ?? null, terminal: isTerminalType(e.type) });
          appendedText.push({ seq: e.seq, type: e.type, json: eventJson(e.runId, body) });
          if (e.id !== undefined) known.set(`${e.runId}\u0000${e.id}`, { seq: e.seq, type: e.type, ts: e.ts, body });
        });
        results.push({ ok: { state, seqs: draft.seqs, appended: draft.appended, appendedText, options: item.options } });
      } catch (err) {
        // Refused on this node's copy of the row: judged again on the row itself.
        if (unread) throw new UnreadRefused();
        // An ended run takes nothing new, but a retry of its stored events gets their seqs: look the ids up.
        if (!lookupIds && RuntrailError.isCode(err, 'run_already_terminal') && item.events.some((e) => e.id !== undefined)) {
          throw new IdLookupNeeded();
        }
        results.push({ err });
      }
    }

    const dirty = [...states.values()].filter((s) => s.dirty);
    const tokens = dirty.map(() => `${this.tokenPrefix}.${++this.tokens}`);
    // Runs whose owner this commit tells to stop: their `s` notification wakes held heartbeats everywhere.
    const stopping = new Set(rows.filter((r) => tellsOwnerToStop(r.type)).map((r) => r.run));
    const checkpoint = dirty.map((s) =>
      s.seq > s.row.seq && this.heads.shouldCheckpoint(s.row.id, s.row.snapshot_seq, s.before, s.snapshot, s.now) ? JSON.stringify(s.snapshot) : null,
    );
    if (dirty.length > 0) {
      // ONE statement inserts the events, updates every changed run and notifies once per
      // run: watchers on every node learn (runId, seqs) and read the events from the table.
      // Nothing here needs its answer: it goes out with the COMMIT, in one round trip.
      beforeCommit.push(c.query({ name: 'runtrail.append', text: APPEND_SQL, values: [
        JSON.stringify(rows),
        dirty.map((s) => s.row.id),
        dirty.map((s) => s.seq),
        checkpoint,
        dirty.map((s) => s.status),
        dirty.map((s) => s.startedAt),
        dirty.map((s) => s.finishedAt),
        dirty.map((s) => s.error),
        dirty.map((s) => s.output),
        dirty.map((s) => s.leaseExpiresAt),
        dirty.map((s) => s.heartbeatAt),
        dirty.map((s) => s.owner),
        dirty.map((s) => s.cancelRequestedAt),
        dirty.map((s) => s.snapshot.lastProgressAt),
        dirty.map((s) => s.snapshot.stalled?.at ?? null),
        this.channel,
        dirty.map((s) => s.row.seq),
        tokens,
        dirty.map((s) => unread?.tokens.get(s.row.id) ?? null),
        dirty.length,
        dirty.map((s) => stopping.has(s.row.id)),
      ] }));
    }
    // Remember rows and snapshots only once the commit is certain to be attempted; a failed
    // commit forgets them (commitBatch, appendUnread).
    dirty.forEach((s, i) => {
      const text = checkpoint[i]!;
      const head = { runId: s.row.id, seq: s.seq, snapshot: s.snapshot, checkpoint: text === null ? null : { at: s.now, bytes: text.length } };
      // Under the row lock, these seqs are the run's if the commit takes. Folded unread they
      // may be another node's meanwhile: this node's head at them (which readers here fold
      // on) waits for the commit (appendUnread).
      if (unread) unread.heads.push(head);
      else this.heads.appended(head.runId, head.seq, head.snapshot, head.checkpoint);
      this.rememberWritten(s.row.id, { token: tokens[i]!, row: rowAfter(s, text !== null), snapshot: s.snapshot });
    });
    return results.map((r) => {
      if ('err' in r) return r;
      const { state, seqs, appended, appendedText } = r.ok;
      return { ok: { seq: state.seq, seqs, appended, appendedText, run: this.runOf(state) } };
    });
  }

  async readEvents(runId: string, after: number, limit: number): Promise<RunEvent[]> {
    return (await this.readEventRows(runId, after, limit)).map(rowToEvent);
  }

  async readEventTexts(runId: string, after: number, limit: number, options: ReadPageOptions = {}): Promise<EventText[]> {
    return (await this.readEventTextPage(runId, after, limit, options)).texts;
  }

  async readEventTextPage(runId: string, after: number, limit: number, options: ReadPageOptions = {}): Promise<EventTextPage> {
    if (options.maxBytes === undefined) return { texts: (await this.readEventRows(runId, after, limit)).map(rowToEventText), cut: false };
    const { rows } = await this.query<Omit<EventRow, 'body'> & { body: string | null }>(EVENTS_PAGE_BYTES_SQL, [runId, after, limit, options.maxBytes]);
    if (rows.length === 0) await this.requireRun(runId);
    // The first event past a cut comes without its body (EVENTS_PAGE_BYTES_SQL).
    const cut = rows.length > 1 && rows[rows.length - 1]!.body === null;
    if (cut) rows.pop();
    return { texts: (rows as EventRow[]).map(rowToEventText), cut };
  }

  private async readEventRows(runId: string, after: number, limit: number): Promise<EventRow[]> {
    const { rows } = await this.query<EventRow>(EVENTS_PAGE_SQL, [runId, after, limit]);
    if (rows.length === 0) await this.requireRun(runId);
    return rows;
  }

  /** An empty page of a run that does not exist is run_not_found, not "nothing yet". */
  private async requireRun(runId: string): Promise<void> {
    const exists = await this.query(`SELECT 1 FROM runs WHERE id = $1`, [runId]);
    if (exists.rowCount === 0) throw notFound(runId);
  }

  async heartbeat(runId: string, options: { now: number; owner?: Owner | undefined }): Promise<Run> {
    const owner = options.owner;
    return this.tx(async (c) => {
      const row = (await c.query<RunRow>(`SELECT * FROM runs WHERE id = $1 FOR UPDATE`, [runId])).rows[0];
      if (!row) throw notFound(runId);
      const run = await this.toRun(row, c);
      const fenced = fence(runId, run, owner, options.now, 'heartbeat');
      if (fenced) throw fenced;
      if (row.status !== 'running') return run;
      const updated = await c.query<RunRow>(
        `UPDATE runs SET lease_expires_at = $2 + lease_ttl_ms, heartbeat_at = $2,
           owner = COALESCE($3, owner), owner_node = COALESCE($4, owner_node), owner_kind = COALESCE($5, owner_kind)
         WHERE id = $1 RETURNING *`,
        [runId, options.now, owner ? JSON.stringify(owner) : null, owner?.node ?? null, owner?.kind ?? null],
      );
      return rowToRun(updated.rows[0]!, run.snapshot, run.input);
    });
  }

  async claimQueued(options: ClaimOptions): Promise<Run[]> {
    if (options.names.length === 0 || options.limit <= 0) return [];
    // SKIP LOCKED: claimers on several nodes take disjoint runs without waiting on each other.
    const owned = [options.now, JSON.stringify(options.owner), options.owner.node, options.owner.kind];
    const perName = options.perName;
    const { rows } = perName
      ? // Each name looked up on its own, at most its cap (capped names) or
        // `limit`, then the oldest `limit` of those: one lookup of the oldest
        // runs would be filled by a saturated handler's backlog, and runs of
        // other handlers behind it never claimed. The few locked but not
        // claimed are released when the statement ends.
        await this.query<RunRow>(
          `UPDATE runs SET status = 'running', started_at = $1, owner = $2, owner_node = $3, owner_kind = $4,
             lease_expires_at = $1 + lease_ttl_ms, heartbeat_at = $1
           WHERE id IN (
             SELECT r.id FROM unnest($5::text[], $6::int[]) AS n(name, cap),
               LATERAL (SELECT id FROM runs WHERE status = 'queued' AND execute AND name = n.name
                 ORDER BY id LIMIT n.cap FOR UPDATE SKIP LOCKED) r
             ORDER BY r.id LIMIT $7)
           AND status = 'queued'
           RETURNING *`,
          [
            ...owned,
            options.names,
            options.names.map((n) => Math.min(perName.get(n) ?? options.limit, options.limit)),
            options.limit,
          ],
        )
      : await this.query<RunRow>(
          `UPDATE runs SET status = 'running', started_at = $1, owner = $2, owner_node = $3, owner_kind = $4,
             lease_expires_at = $1 + lease_ttl_ms, heartbeat_at = $1
           WHERE id IN (
             SELECT id FROM runs WHERE status = 'queued' AND execute AND name = ANY($5::text[])
             ORDER BY id LIMIT $6 FOR UPDATE SKIP LOCKED)
           AND status = 'queued'
           RETURNING *`,
          [...owned, options.names, options.limit],
        );
    return this.runsOf(rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  }

  async findDue(now: number, limit: number): Promise<DueRuns> {
    const rows = async (sql: string) => this.runsOf((await this.query<RunRow>(sql, [now, limit])).rows);
    const [expired, overdue, stalled, phaseOverdue] = await Promise.all([
      rows(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND lease_expires_at < $1 ORDER BY id LIMIT $2`),
      rows(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND timeout_ms IS NOT NULL AND started_at + timeout_ms < $1 ORDER BY id LIMIT $2`),
      rows(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND stall_timeout_ms IS NOT NULL AND stalled_at IS NULL
        AND COALESCE(last_progress_at, started_at) + stall_timeout_ms < $1 ORDER BY id LIMIT $2`),
      // Phases live in the snapshot checkpoint, which every phase change writes (RunHeads); only running runs are scanned, and few run at once.
      rows(`SELECT ${RUN_COLUMNS_WITHOUT_INPUT} FROM runs WHERE status = 'running' AND EXISTS (
        SELECT 1 FROM run_checkpoints c, jsonb_array_elements(${storedJsonb('c.snapshot')} -> 'phases') p
        WHERE c.run_id = runs.id AND p->>'status' = 'started' AND jsonb_typeof(p->'timeoutMs') = 'number'
          AND (p->>'startedAt')::float8 + (p->>'timeoutMs')::float8 < $1)
        ORDER BY id LIMIT $2`),
    ]);
    return { expired, overdue, stalled, phaseOverdue };
  }

  async queuedHandlerNames(limit: number): Promise<string[]> {
    // The runs_queued partial index holds exactly these rows, by name.
    const { rows } = await this.query<{ name: string }>(
      `SELECT DISTINCT name FROM runs WHERE status = 'queued' AND execute ORDER BY name LIMIT $1`,
      [limit],
    );
    return rows.map((r) => r.name);
  }

  async findOwnedBy(node: string, kind: Owner['kind']): Promise<Run[]> {
    const { rows } = await this.query<RunRow>(
      `SELECT * FROM runs WHERE owner_node = $1 AND owner_kind = $2 AND status IN ('queued','running') ORDER BY id`,
      [node, kind],
    );
    return this.runsOf(rows);
  }

  /** Ready while a query gets through; otherwise why not (the database down, restarting, out of connections). */
  async readiness(): Promise<StoreReadiness> {
    try {
      await this.query('SELECT 1');
      return { ready: true, reasons: [] };
    } catch (err) {
      return { ready: false, reasons: [(err as Error).message] };
    }
  }

  async createToken(record: TokenRecord): Promise<void> {
    await this.query(
      `INSERT INTO tokens (id, name, scope, hash, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [record.id, record.name, record.scope, record.hash, record.createdAt, record.expiresAt, record.revokedAt],
    );
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    const { rows } = await this.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = $1`, [hash]);
    return rows[0] ? tokenOf(rows[0]) : null;
  }

  async findTokenById(id: string): Promise<TokenRecord | null> {
    const { rows } = await this.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = $1`, [id]);
    return rows[0] ? tokenOf(rows[0]) : null;
  }

  async listTokens(): Promise<TokenRecord[]> {
    const { rows } = await this.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id DESC`);
    return rows.map(tokenOf);
  }

  async revokeToken(id: string, now: number): Promise<TokenRecord | null> {
    // The notification goes with the update: every node drops the token from its cache and ends its streams at once.
    const { rows } = await this.query<TokenRow>(
      `WITH r AS (UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ${TOKEN_COLUMNS})
       SELECT r.*, pg_notify($3, ${revokedPayloadSql('r.hash', 'r.id')}) FROM r`,
      [id, now, this.channel],
    );
    return rows[0] ? tokenOf(rows[0]) : null;
  }

  async createRunToken(record: RunTokenRecord, maxLive = Infinity): Promise<boolean> {
    const values = [record.id, record.runId, record.write, record.createdAt, record.expiresAt, record.revokedAt, record.mintedBy];
    if (maxLive === Infinity) {
      // One round trip: the expired records go with the insert.
      await this.query(
        `WITH dropped AS (DELETE FROM run_tokens WHERE expires_at < $4)
         INSERT INTO run_tokens (id, run_id, write, created_at, expires_at, revoked_at, minted_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        values,
      );
      return true;
    }
    return this.tx(async (c) => {
      // Per run, for the count and the insert together: without it, minters racing on one run
      // (on any node) each counted the others' tokens as not there yet and all passed the cap.
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`runtrail.run_tokens.${this.schema}.${record.runId}`]);
      await c.query(`DELETE FROM run_tokens WHERE expires_at < $1`, [record.createdAt]);
      const { rows } = await c.query<{ live: string }>(
        `SELECT COUNT(*) AS live FROM run_tokens WHERE run_id = $1 AND expires_at > $2 AND revoked_at IS NULL`,
        [record.runId, record.createdAt],
      );
      if (Number(rows[0]!.live) >= maxLive) return false;
      await c.query(
        `INSERT INTO run_tokens (id, run_id, write, created_at, expires_at, revoked_at, minted_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        values,
      );
      return true;
    });
  }

  async findRunTokenById(id: string): Promise<RunTokenRecord | null> {
    const { rows } = await this.query<RunTokenRow>(`SELECT ${RUN_TOKEN_COLUMNS} FROM run_tokens WHERE id = $1`, [id]);
    return rows[0] ? runTokenOf(rows[0]) : null;
  }

  async revokeRunToken(id: string, now: number): Promise<RunTokenRecord | null> {
    const { rows } = await this.query<RunTokenRow>(
      `WITH r AS (UPDATE run_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ${RUN_TOKEN_COLUMNS})
       SELECT r.*, pg_notify($3, ${revokedPayloadSql('NULL', 'r.id')}) FROM r`,
      [id, now, this.channel],
    );
    return rows[0] ? runTokenOf(rows[0]) : null;
  }

  async ensureSecret(name: string, candidate: string): Promise<string> {
    await this.query(`INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, [name, candidate]);
    const { rows } = await this.query<{ value: string }>(`SELECT value FROM secrets WHERE name = $1`, [name]);
    return rows[0]!.value;
  }

  async findSecret(name: string): Promise<string | null> {
    const { rows } = await this.query<{ value: string }>(`SELECT value FROM secrets WHERE name = $1`, [name]);
    return rows[0]?.value ?? null;
  }

  async announceHandlers(a: HandlersAnnouncement): Promise<void> {
    await this.query(
      `INSERT INTO node_handlers (node, handlers, heard_at, live_until, incarnation, url, slots) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (node) DO UPDATE SET handlers = excluded.handlers, heard_at = excluded.heard_at, live_until = excluded.live_until,
         incarnation = excluded.incarnation, url = excluded.url, slots = excluded.slots`,
      [a.node, JSON.stringify([...a.handlers].sort()), a.now, a.liveUntil, a.incarnation, a.url, a.slots ? JSON.stringify(a.slots) : null],
    );
  }

  async nodeHandlers(now: number): Promise<NodeHandlers[]> {
    const { rows } = await this.query<NodeHandlersRow>(
      `SELECT node, handlers, heard_at, live_until, incarnation, url, slots FROM node_handlers WHERE live_until >= $1 ORDER BY node COLLATE "C"`,
      [now],
    );
    return rows.map(nodeHandlersOf);
  }

  async forgetHandlers(node: string): Promise<void> {
    await this.query(`DELETE FROM node_handlers WHERE node = $1`, [node]);
  }

  async putArtifact(input: PutArtifactInput): Promise<PutArtifactResult> {
    try {
      return await this.tx(async (c, _first, beforeCommit) => {
        // The run's row lock orders this put with every append and put of the run, on any node.
        const head = (await c.query<RunRow>(`SELECT ${RUN_HEAD} FROM runs WHERE id = $1 FOR UPDATE`, [input.runId])).rows[0];
        if (!head) throw notFound(input.runId);
        const existing = (await c.query<ArtifactRow>(`SELECT * FROM artifacts WHERE run_id = $1 AND name = $2`, [input.runId, input.name]))
          .rows[0];
        const stats = (
          await c.query<{ max_ordinal: number; bytes: string }>(
            `SELECT COALESCE(MAX(ordinal), 0) AS max_ordinal, COALESCE(SUM(size), 0)::text AS bytes FROM artifacts WHERE run_id = $1`,
            [input.runId],
          )
        ).rows[0]!;
        const record = planArtifact(input, head.status, existing, { maxOrdinal: stats.max_ordinal, bytes: Number(stats.bytes) });
        if (record === 'unchanged') return { artifact: toArtifact(existing!), outcome: 'unchanged' as const, append: null, displaced: null };
        await c.query(
          `INSERT INTO artifacts (run_id, ordinal, name, content_type, size, sha256, created_at, metadata)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (run_id, ordinal) DO UPDATE SET content_type = EXCLUDED.content_type, size = EXCLUDED.size,
             sha256 = EXCLUDED.sha256, created_at = EXCLUDED.created_at, metadata = EXCLUDED.metadata`,
          [record.run_id, record.ordinal, record.name, record.content_type, record.size, record.sha256, record.created_at, record.metadata],
        );
        const artifact = toArtifact(record);
        // The artifact event goes in through the same path as every append (fold, insert, notify), in this transaction.
        const [outcome] = await this.appendBatch(
          c,
          [
            {
              runId: input.runId,
              events: [{ type: 'artifact', data: artifactEventData(artifact) }],
              options: { now: input.now },
              resolve: () => undefined,
              reject: () => undefined,
            },
          ],
          [head],
          { lookupIds: false /* the event has no id */, beforeCommit },
        );
        if ('err' in outcome!) throw outcome.err;
        return {
          artifact,
          outcome: existing ? ('replaced' as const) : ('created' as const),
          append: outcome!.ok,
          displaced: existing?.sha256 ?? null,
        };
      });
    } catch (err) {
      // The rolled-back event may already be in this node's head.
      this.forgetRun(input.runId);
      throw err;
    }
  }

  async listArtifacts(runId: string): Promise<Artifact[]> {
    const { rows } = await this.query<ArtifactRow>(`SELECT * FROM artifacts WHERE run_id = $1 ORDER BY ordinal`, [runId]);
    if (rows.length === 0) {
      const exists = await this.query(`SELECT 1 FROM runs WHERE id = $1`, [runId]);
      if (exists.rowCount === 0) throw notFound(runId);
    }
    return rows.map(toArtifact);
  }

  async getArtifact(runId: string, name: string): Promise<Artifact | null> {
    const { rows } = await this.query<ArtifactRow>(`SELECT * FROM artifacts WHERE run_id = $1 AND name = $2`, [runId, name]);
    return rows[0] ? toArtifact(rows[0]) : null;
  }

  async blobsInUse(sha256s: string[]): Promise<Set<string>> {
    if (sha256s.length === 0) return new Set();
    const { rows } = await this.query<{ sha256: string }>(`SELECT DISTINCT sha256 FROM artifacts WHERE sha256 = ANY($1::text[])`, [sha256s]);
    return new Set(rows.map((r) => r.sha256));
  }

  async importRun(bundle: RunBundle): Promise<Run> {
    return (await this.importRuns([bundle]))[0]!;
  }

  async importRuns(bundles: RunBundle[]): Promise<Run[]> {
    const rows = await this.tx(async (c) => {
      const ids = bundles.map((b) => b.run.id);
      const existing = await c.query<{ id: string }>(`SELECT id FROM runs WHERE id = ANY($1::text[])`, [ids]);
      if (existing.rows.length > 0) {
        const taken = new Set(existing.rows.map((r) => r.id));
        throw runsAlreadyExist(ids.filter((id) => taken.has(id)));
      }
      const written: RunRow[] = [];
      for (const { run, events, artifacts } of bundles) {
        const { columns, checkpoint } = importedRun(run, events);
        const names = Object.keys(columns);
        if (run.parentId !== null) {
          // KEY SHARE, as a create under a parent takes it: a delete of the parent waits for this import and then finds it, or this waits for the delete.
          const parent = await c.query(`SELECT 1 FROM runs WHERE id = $1 FOR KEY SHARE`, [run.parentId]);
          if (parent.rowCount === 0) throw importParentMissing(run.id, run.parentId);
        }
        const inserted = await c.query<RunRow>(
          `INSERT INTO runs (${names.join(', ')}) VALUES (${names.map((n, i) => (n === 'labels' ? `$${i + 1}::jsonb` : `$${i + 1}`)).join(', ')})
           ON CONFLICT (id) DO NOTHING RETURNING *`,
          Object.values(columns),
        );
        // Taken since the check above (another import of it, on any node).
        if (!inserted.rows[0]) throw runsAlreadyExist([run.id]);
        if (checkpoint) {
          await c.query(`INSERT INTO run_checkpoints (run_id, seq, snapshot) VALUES ($1, $2, $3)`, [run.id, checkpoint.seq, checkpoint.snapshot]);
        }
        if (events.length > 0) {
          await c.query(
            `INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bool[])`,
            [
              run.id,
              events.map((e) => e.seq),
              events.map((e) => e.type),
              events.map((e) => e.ts),
              events.map((e) => eventBody(e.seq, e.type, e.ts, JSON.stringify(e.data ?? {}), e.id)),
              events.map((e) => e.id ?? null),
              events.map((e) => isTerminalType(e.type)),
            ],
          );
        }
        if (artifacts.length > 0) {
          const rows = artifacts.map((a) => artifactRow({ ...a, runId: run.id }));
          await c.query(
            `INSERT INTO artifacts (run_id, ordinal, name, content_type, size, sha256, created_at, metadata)
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[])`,
            [
              run.id,
              rows.map((a) => a.ordinal),
              rows.map((a) => a.name),
              rows.map((a) => a.content_type),
              rows.map((a) => a.size),
              rows.map((a) => a.sha256),
              rows.map((a) => a.created_at),
              rows.map((a) => a.metadata),
            ],
          );
        }
        // Other nodes' live run lists learn of it.
        await c.query(`SELECT pg_notify($1, $2)`, [this.channel, appendPayload(0, columns.seq, run.id)]);
        written.push(inserted.rows[0]);
      }
      return written;
    });
    const runs = await this.runsOf(rows);
    // Deleted between the commit and this read: said as toRun says it of one run.
    const read = new Set(runs.map((r) => r.id));
    const gone = rows.find((row) => !read.has(row.id));
    if (gone) throw notFound(gone.id);
    return runs;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** A query on any pool connection, with database failures told apart from bugs. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (err) {
      throw asUnavailable(err, this.statementTimeoutMs);
    }
  }

  /**
   * Run `fn` in one transaction on one connection; any error rolls it back.
   * `first`, a statement without parameters, is sent with BEGIN in one
   * message and its result handed to `fn`. `beginWithoutWaiting`: BEGIN is
   * sent ahead of what `fn` sends, without waiting for its answer.
   */
  async tx<T>(
    fn: (client: pg.PoolClient, first: pg.QueryResult | undefined, beforeCommit: Array<Promise<unknown>>) => Promise<T>,
    first?: string,
    { beginWithoutWaiting = false }: { beginWithoutWaiting?: boolean } = {},
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw asUnavailable(err, this.statementTimeoutMs);
    }
    let broken: Error | undefined;
    // Statements `fn` sent without waiting: COMMIT follows them at once (in the same round trip, pipelined).
    const beforeCommit: Array<Promise<unknown>> = [];
    try {
      let firstResult: pg.QueryResult | undefined;
      // Without waiting: BEGIN leaves with what `fn` sends and the COMMIT, in one round trip.
      if (beginWithoutWaiting) beforeCommit.push(client.query('BEGIN'));
      else if (first === undefined) await client.query('BEGIN');
      else firstResult = ((await client.query(`BEGIN; ${first}`)) as unknown as pg.QueryResult[])[1];
      const result = await fn(client, firstResult, beforeCommit);
      // After a failed statement PostgreSQL answers COMMIT with a rollback, and the failure rejects here.
      await Promise.all([...beforeCommit, client.query('COMMIT')]);
      return result;
    } catch (err) {
      // Their failure, if any, is `err` or came after it: the transaction is rolled back either way.
      for (const p of beforeCommit) p.catch(() => undefined);
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The connection itself failed: drop it from the pool rather than reuse it.
        broken = rollbackErr as Error;
      }
      throw asUnavailable(err, this.statementTimeoutMs);
    } finally {
      client.release(broken);
    }
  }

  private runOf(state: RunState): Run {
    return rowToRun(
      {
        ...state.row,
        seq: state.seq,
        status: state.status,
        started_at: state.startedAt,
        finished_at: state.finishedAt,
        error: state.error,
        output: state.output,
        cancel_requested_at: state.cancelRequestedAt,
        lease_expires_at: state.leaseExpiresAt,
        heartbeat_at: state.heartbeatAt,
        owner: state.owner,
      },
      state.snapshot,
      this.inputs.parse(state.row.id, state.row.input),
    );
  }

  private async toRun(row: RunRow, c?: pg.PoolClient): Promise<Run> {
    const [run] = await this.runsOf([row], c);
    if (!run) throw notFound(row.id);
    return run;
  }

  /** Rows as Runs with their snapshots at their seqs (a run deleted meanwhile is left out). */
  private async runsOf(rows: RunRow[], c?: pg.PoolClient): Promise<Run[]> {
    return (await this.resolve(rows, c)).map(({ row, snapshot }) => rowToRun(row, snapshot, this.inputs.parse(row.id, row.input)));
  }

  /**
   * Each row with its snapshot at its seq: this node's head, else its
   * checkpoint plus the events after it, every checkpoint and every tail of
   * the rows in one query each. The events up to a row's seq were committed
   * with it and never change. A row whose checkpoint moved on since it was
   * read (another node wrote one; never under the row lock, `c` in an
   * append) is read again, and answered as it is now.
   */
  private async resolve(rows: RunRow[], c?: pg.PoolClient): Promise<Array<{ row: RunRow; snapshot: Snapshot }>> {
    const query = <R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]) =>
      c ? c.query<R>({ name, text, values }) : this.query<R>(text, values);
    let current = rows;
    const checkpoints = new Map<string, string>();
    for (let attempt = 1; ; attempt++) {
      const need = current.filter((row) => this.heads.needsCheckpoint(row) && !checkpoints.has(row.id));
      if (need.length === 0) break;
      const found = await query<{ run_id: string; seq: number; snapshot: string }>(
        'runtrail.checkpoints',
        `SELECT run_id, seq, snapshot FROM run_checkpoints WHERE run_id = ANY($1::text[])`,
        [need.map((row) => row.id)],
      );
      const at = new Map(found.rows.map((r) => [r.run_id, r]));
      const moved = new Set<string>();
      for (const row of need) {
        const checkpoint = at.get(row.id);
        if (checkpoint?.seq === row.snapshot_seq) checkpoints.set(row.id, checkpoint.snapshot);
        else moved.add(row.id);
      }
      if (moved.size === 0) break;
      // Checkpoints are written at most every few hundred ms per run: more misses than this is a bug.
      if (c || attempt >= 10) throw new Error(`runs ${[...moved].join(', ')}: no checkpoint at their snapshot_seq after ${attempt} reads`);
      const fresh = await this.query<RunRow>(`SELECT * FROM runs WHERE id = ANY($1::text[])`, [[...moved]]);
      const byId = new Map(fresh.rows.map((r) => [r.id, r]));
      current = current.flatMap((row) => (moved.has(row.id) ? (byId.has(row.id) ? [byId.get(row.id)!] : []) : [row]));
    }
    const found = current.map((row) => this.heads.snapshotOrTail(row, () => checkpoints.get(row.id)!));
    const tails = found.flatMap((f) => ('tail' in f ? [f.tail] : []));
    const events = new Map<string, RunEvent[]>();
    if (tails.length > 0) {
      const read = await query<EventRow>(
        'runtrail.tails',
        `SELECT e.run_id, e.seq, e.type, e.body FROM events e
          JOIN unnest($1::text[], $2::int[], $3::int[]) AS t(run_id, after, upto)
            ON e.run_id = t.run_id AND e.seq > t.after AND e.seq <= t.upto
          ORDER BY e.run_id, e.seq`,
        [tails.map((t) => t.runId), tails.map((t) => t.after), tails.map((t) => t.upto)],
      );
      for (const row of read.rows) {
        const list = events.get(row.run_id);
        if (list) list.push(rowToEvent(row));
        else events.set(row.run_id, [rowToEvent(row)]);
      }
    }
    return current.map((row, i) => {
      const f = found[i]!;
      return { row, snapshot: 'snapshot' in f ? f.snapshot : this.heads.fold(f.tail, events.get(f.tail.runId) ?? []) };
    });
  }

}

/**
 * Fold one append onto a run's state in memory. Throws (changing nothing)
 * when any event of it is refused; returns the new state and the events to
 * insert otherwise. `known` maps `runId\0eventId` to stored seqs.
 */
function foldAppend(
  state: RunState,
  item: PendingAppend,
  known: Map<string, StoredEventRef>,
): { state: Partial<RunState>; seqs: number[]; appended: RunEvent[]; bodies: string[] } {
  const { runId, events, options } = item;
  const fenced = fence(runId, { status: state.status, owner: parse<Owner | null>(state.owner, null), leaseExpiresAt: state.leaseExpiresAt }, options.owner, options.now, 'append');
  if (fenced) throw fenced;
  const seqs: number[] = [];
  const appended: RunEvent[] = [];
  // Each appended event's body (see eventBody): serialized here, once, for the row, the known ids and the watchers.
  const bodies: string[] = [];
  const seenInBatch = new Map<string, StoredEventRef>();
  const at = new HeadFold(state);
  const head = at.head;
  for (const event of events) {
    if (event.id !== undefined) {
      // A retry gets its original seq back; the same id with another event is refused.
      const original = seenInBatch.get(event.id) ?? known.get(`${runId}\u0000${event.id}`);
      if (original !== undefined) {
        seqs.push(sameEventOrConflict(runId, event, original));
        continue;
      }
    }
    if (isTerminalStatus(head.status)) throw terminalConflict(runId, head.status, head.snapshot);
    const ts = event.ts ?? options.now;
    const data = event.data === undefined ? {} : event.data;
    const seq = head.seq + 1;
    const stored: RunEvent = { runId, seq, type: event.type, ts, data };
    const body = eventBody(seq, event.type, ts, JSON.stringify(data), event.id);
    if (event.id !== undefined) {
      stored.id = event.id;
      seenInBatch.set(event.id, { seq, type: event.type, ts, body });
    }
    appended.push(stored);
    bodies.push(body);
    seqs.push(seq);
    at.apply(stored);
  }
  if (appended.length === 0 && !options.owner) return { state: {}, seqs, appended, bodies };
  const lease = leaseAfterAppend(head.status, state, state.row.lease_ttl_ms, options.now, options.renewLease !== false);
  return {
    state: {
      ...head,
      ...lease,
      owner: options.owner ? JSON.stringify(options.owner) : state.owner,
      dirty: true,
    },
    seqs,
    appended,
    bodies,
  };
}


/** Thrown (and caught) inside an append batch: its event ids must be looked up before it can be judged. */
class IdLookupNeeded extends Error {}

/** Thrown (and caught) inside an append batch folded on rows as last written: an append of it would be refused. */
class UnreadRefused extends Error {}

type Outcome = { ok: AppendResult } | { err: unknown };

/** The runs of a batch folded without reading them: the append tokens their rows should carry. */
interface UnreadRuns {
  tokens: Map<string, string>;
  /** Filled by the fold: each run's head after the batch, for this node's heads once the commit took. */
  heads: Array<{ runId: string; seq: number; snapshot: Snapshot; checkpoint: WrittenCheckpoint | null }>;
}

/** A run as this node's last append wrote it (see PgRunStore.written). */
interface WrittenRow {
  token: string;
  row: RunRow;
  snapshot: Snapshot;
}

/**
 * A write folded on rows as last written found one changed: its append token
 * differed (runtrail_expect_runs), or another append took the seqs it was
 * about to take (the events' primary key).
 */
function isStaleUnreadWrite(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === 'RTA01' || (e?.code === '23505' && e.constraint === 'events_pkey');
}

/** A run's row as an append batch writes it (APPEND_SQL's update of runs). */
function rowAfter(s: RunState, checkpointed: boolean): RunRow {
  return {
    ...s.row,
    seq: s.seq,
    snapshot_seq: checkpointed ? s.seq : s.row.snapshot_seq,
    status: s.status,
    started_at: s.startedAt,
    finished_at: s.finishedAt,
    error: s.error,
    output: s.output,
    lease_expires_at: s.leaseExpiresAt,
    heartbeat_at: s.heartbeatAt,
    owner: s.owner,
    owner_node: ownerField(s.owner, 'node'),
    owner_kind: ownerField(s.owner, 'kind'),
    cancel_requested_at: s.cancelRequestedAt,
    last_progress_at: s.snapshot.lastProgressAt,
    stalled_at: s.snapshot.stalled?.at ?? null,
  };
}

/** A unique violation on the event id index: some event id of the batch is stored already. */
function isEventIdConflict(err: unknown): boolean {
  const e = err as { code?: string; constraint?: string };
  return e?.code === '23505' && e.constraint === 'events_event_id';
}

/**
 * SQLSTATE classes that mean "the database is not there right now", not "this request is wrong".
 * 28 (the user may not log in: NOLOGIN, a changed password, pg_hba) and 3D000 (the database
 * is gone) come only from connecting: on a running node every request got 500 `internal`
 * while /readyz rightly said 503.
 */
const UNAVAILABLE_STATES = /^(08|28|53|57P|58|3D000$)/;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH']);

/**
 * A database that is down, restarting or out of connections is `unavailable`
 * (503 + Retry-After): the caller retries. A cancelled statement (the
 * statement timeout) is too. Anything else is passed on unchanged.
 */
export function asUnavailable(err: unknown, statementTimeoutMs?: number): unknown {
  if (err instanceof RuntrailError) return err;
  const e = err as { code?: string; message?: string };
  const message = e?.message ?? String(err);
  // The database answered; a statement outlasted the limit the operator set (a lock held elsewhere, an overloaded server).
  if (e?.code === '57014' && /statement timeout/i.test(message)) {
    const limit = statementTimeoutMs === undefined ? 'the statement timeout' : `the statement timeout (${statementTimeoutMs} ms)`;
    return new RuntrailError(
      'unavailable',
      `PostgreSQL cancelled a statement that ran longer than ${limit} (57014): a lock held by another session, or an overloaded database; ` +
        'retry shortly, or raise databaseStatementTimeoutMs (--database-statement-timeout-ms) if such statements are expected',
      { cause: e.code },
    );
  }
  const network = typeof e?.code === 'string' && NETWORK_CODES.has(e.code);
  const sqlState = typeof e?.code === 'string' && UNAVAILABLE_STATES.test(e.code);
  const timeout = e?.code === '57014';
  const connection = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed/i.test(message);
  if (network || sqlState || timeout || connection) {
    // pg's own error kept as the cause: opening explains a refused login in pg's words (explainOpenFailure).
    return Object.assign(new RuntrailError('unavailable', `the database is unavailable (${message}); retry shortly`, { cause: e?.code ?? message }), { cause: err });
  }
  return err;
}

