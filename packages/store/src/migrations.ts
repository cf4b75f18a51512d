import { RuntrailError } from '@runtrail/protocol';

/**
 * Schema migrations of both adapters, written once: each is SQL with the few
 * words the two dialects spell differently taken from a `Dialect`. Applied
 * in order; each adapter records how many ran (SQLite: `PRAGMA user_version`,
 * PostgreSQL: `runtrail_migrations`) and applies the rest through
 * `pendingMigrations`, holding a lock that keeps two processes from both
 * migrating. Never edit a shipped migration: add the next one.
 *
 * Each migration says whether it is additive: whether code that predates it
 * still works on the schema after it, next to code that knows it (a new
 * table, index, or nullable or defaulted column that older code need not
 * write). With the migrations, the adapter records in schema_compatibility
 * the oldest schema version whose code may use the schema (`compatibleFrom`),
 * so that during a rolling upgrade a node of an older version keeps opening
 * a database a newer node migrated, as long as only additive migrations came
 * after its version (`acceptNewerSchema`).
 */
export interface Dialect {
  /** How the refusal names what holds the schema: "data file", "database". */
  readonly holder: string;
  /** A run id column. PostgreSQL compares in byte order (COLLATE "C"), so ORDER BY id is UUIDv7 creation order whatever the locale. */
  readonly id: string;
  /** Epoch milliseconds, durations, byte sizes. */
  readonly int64: string;
  /** A boolean column and its literals. */
  readonly bool: string;
  readonly false: string;
  readonly true: string;
  /** The labels column (`{}` when none). */
  readonly labels: string;
  /** After CREATE TABLE of a table keyed by its primary key only. */
  readonly clustered: string;
  /** A text column as a JSON string, escaped as JSON.stringify escapes it. */
  jsonQuote(column: string): string;
  /** Statements only this dialect has (PostgreSQL's jsonb and partial queue indexes). */
  only(dialect: 'sqlite' | 'postgres', sql: string): string;
}

export const sqliteDialect: Dialect = {
  holder: 'data file',
  id: 'TEXT',
  int64: 'INTEGER',
  bool: 'INTEGER',
  false: '0',
  true: '1',
  labels: 'TEXT',
  clustered: ' WITHOUT ROWID',
  jsonQuote: (column) => `json_quote(${column})`,
  only: (dialect, sql) => (dialect === 'sqlite' ? sql : ''),
};

export const postgresDialect: Dialect = {
  holder: 'database',
  id: 'TEXT COLLATE "C"',
  int64: 'BIGINT',
  bool: 'BOOLEAN',
  false: 'false',
  true: 'true',
  labels: 'JSONB',
  clustered: '',
  jsonQuote: (column) => `to_json(${column})::text`,
  only: (dialect, sql) => (dialect === 'postgres' ? sql : ''),
};

export interface Migration {
  /**
   * Whether code of the version before it still works on the schema after it,
   * beside code of this version: false for a dropped or renamed column, one
   * whose meaning changed, a NOT NULL column older code does not write, a
   * CHECK older code could fail, or data older code must honour but never
   * reads. When unsure, false: a node that refuses to start says so, a node
   * that runs on a schema it misreads corrupts data.
   */
  readonly additive: boolean;
  sql(d: Dialect): string;
}

export const migrations: readonly Migration[] = [
  {
    // The first schema: nothing older exists to run on it.
    additive: false,
    sql: (d) => `
  CREATE TABLE runs (
    id ${d.id} PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id ${d.id},
    status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),
    created_at ${d.int64} NOT NULL,
    started_at ${d.int64},
    finished_at ${d.int64},
    input TEXT,
    labels ${d.labels} NOT NULL DEFAULT '{}',
    error TEXT,
    output TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT NOT NULL,
    execute ${d.bool} NOT NULL DEFAULT ${d.false},
    owner TEXT,
    owner_node TEXT,
    owner_kind TEXT,
    lease_ttl_ms ${d.int64} NOT NULL,
    lease_expires_at ${d.int64},
    heartbeat_at ${d.int64},
    cancel_requested_at ${d.int64},
    timeout_ms ${d.int64},
    stall_timeout_ms ${d.int64},
    fail_on_stall ${d.bool} NOT NULL DEFAULT ${d.false},
    last_progress_at ${d.int64},
    stalled_at ${d.int64},
    retry_of TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    idempotency_key TEXT UNIQUE
  );
  CREATE INDEX runs_status_id ON runs (status, id);
  CREATE INDEX runs_parent ON runs (parent_id, id);
  CREATE INDEX runs_name ON runs (name, id);
  CREATE INDEX runs_owner ON runs (owner_node, owner_kind) WHERE status IN ('queued','running');
  ${d.only('postgres', `CREATE INDEX runs_queued ON runs (name, id) WHERE status = 'queued' AND execute;
  CREATE INDEX runs_labels ON runs USING gin (labels jsonb_path_ops);`)}

  CREATE TABLE events (
    run_id ${d.id} NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts ${d.int64} NOT NULL,
    data TEXT,
    event_id TEXT,
    terminal ${d.bool} NOT NULL DEFAULT ${d.false},
    PRIMARY KEY (run_id, seq)
  )${d.clustered};
  CREATE UNIQUE INDEX events_event_id ON events (run_id, event_id) WHERE event_id IS NOT NULL;
  -- Exactly one terminal event per run, whatever the code above it does.
  CREATE UNIQUE INDEX events_one_terminal ON events (run_id) WHERE terminal = ${d.true};
  `,
  },
  {
    // New tables older code never reads.
    additive: true,
    sql: (d) => `
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('admin','producer','viewer')),
    hash TEXT NOT NULL UNIQUE,
    created_at ${d.int64} NOT NULL,
    expires_at ${d.int64},
    revoked_at ${d.int64}
  );
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  },
  {
    // A new table and index older code never reads.
    additive: true,
    sql: (d) => `
  -- Artifact records; the content is in the blob store, addressed by sha256.
  CREATE TABLE artifacts (
    run_id ${d.id} NOT NULL,
    ordinal INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size ${d.int64} NOT NULL,
    sha256 TEXT NOT NULL,
    created_at ${d.int64} NOT NULL,
    metadata TEXT,
    PRIMARY KEY (run_id, ordinal),
    UNIQUE (run_id, name)
  )${d.clustered};
  CREATE INDEX artifacts_sha256 ON artifacts (sha256);
  `,
  },
  {
    // Changes what runs.snapshot means (the snapshot at snapshot_seq, not at seq): older code writes it at seq
    // and leaves snapshot_seq behind, so newer code would fold the events after it twice.
    additive: false,
    sql: () => `
  -- The snapshot column becomes a checkpoint: the snapshot at snapshot_seq, written every so
  -- often (../checkpoints.ts); the snapshot at seq folds the events after it. Until now it was
  -- written with every append, so it is at seq.
  ALTER TABLE runs ADD COLUMN snapshot_seq INTEGER NOT NULL DEFAULT 0;
  UPDATE runs SET snapshot_seq = seq;
  `,
  },
  {
    // Drops runs.snapshot, which older code reads and writes.
    additive: false,
    sql: (d) => `
  -- The checkpoint moves out of the run row into a table of its own: a 100 KB snapshot in the
  -- row (1,000 calls in flight) made every append's update of seq and lease rewrite it. One row
  -- per run, at the run's snapshot_seq; none while snapshot_seq is 0 (the initial snapshot).
  CREATE TABLE run_checkpoints (
    run_id ${d.id} PRIMARY KEY,
    seq INTEGER NOT NULL,
    snapshot TEXT NOT NULL
  );
  INSERT INTO run_checkpoints (run_id, seq, snapshot) SELECT id, snapshot_seq, snapshot FROM runs WHERE snapshot_seq > 0;
  ALTER TABLE runs DROP COLUMN snapshot;
  `,
  },
  {
    // PostgreSQL: a new nullable column that the trigger clears on every update older code makes, which is
    // what it is for; SQLite: nothing.
    additive: true,
    sql: (d) =>
      d.only(
        'postgres',
        `
  -- A node appends to a run it wrote last without reading the row first (../postgres/pg-store.ts,
  -- "append token"): each append's update stamps the row with a token of its own, any other
  -- update clears it, and an append names the token it expects. The trigger makes forgetting
  -- to clear it impossible, whatever statement changes the row.
  ALTER TABLE runs ADD COLUMN append_token TEXT;
  CREATE FUNCTION runs_clear_append_token() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.append_token IS NOT DISTINCT FROM OLD.append_token THEN NEW.append_token := NULL; END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER runs_append_token BEFORE UPDATE ON runs FOR EACH ROW EXECUTE FUNCTION runs_clear_append_token();
  -- Fails an append whose runs were not all as it expected: the whole statement and its
  -- transaction roll back, and the node appends again after reading the rows under a lock.
  CREATE FUNCTION runtrail_expect_runs(expected integer, updated bigint) RETURNS bigint LANGUAGE plpgsql AS $$
  BEGIN
    IF updated <> expected THEN
      RAISE EXCEPTION 'runtrail: % of % runs changed since this node last wrote them', expected - updated, expected
        USING ERRCODE = 'RTA01';
    END IF;
    RETURN updated;
  END $$;
  `,
      ),
  },
  {
    // Drops events.data, which older code reads and writes (and body is NOT NULL on PostgreSQL).
    additive: false,
    sql: (d) => `
  -- Each event is stored as the JSON text readers are sent, less the run id (the row's):
  -- ../event-text.ts, eventBody. A catch-up read joins stored texts instead of putting each
  -- together from five columns, which was most of its time (100,000 events: about 85 ms against 65).
  -- The columns stay for what queries need of an event (its seq, type, id, whether it ends
  -- the run); data lives only in the body.
  ALTER TABLE events ADD COLUMN body TEXT;
  UPDATE events SET body = '{"seq":' || seq || ',"type":' || ${d.jsonQuote('type')} || ',"ts":' || ts || ',"data":' ||
    COALESCE(data, '{}') || CASE WHEN event_id IS NULL THEN '}' ELSE ',"id":' || ${d.jsonQuote('event_id')} || '}' END;
  ${d.only('postgres', 'ALTER TABLE events ALTER COLUMN body SET NOT NULL;')}
  ALTER TABLE events DROP COLUMN data;
  `,
  },
  {
    // Older code announces no handlers here, so newer code reads its handlers as defined by no live node and
    // its reaper ends their queued runs (orphaned).
    additive: false,
    sql: (d) => `
  -- The executor registry: which handlers each node executes, re-announced with its heartbeat,
  -- so that a node asked for a run of a handler it lacks can tell whether a live node has it.
  CREATE TABLE node_handlers (
    node TEXT PRIMARY KEY,
    handlers TEXT NOT NULL,
    heard_at ${d.int64} NOT NULL,
    live_until ${d.int64} NOT NULL,
    -- The announcing process (its executor's owner id) and where it answers: a process starting
    -- under the same name asks it whether it is alive before taking its runs for a dead one's.
    incarnation TEXT,
    url TEXT
  )${d.clustered};
  `,
  },
  {
    // Older code neither records run tokens nor reads revoked_at: a run token revoked here would still be
    // taken by an older node until it expired.
    additive: false,
    sql: (d) => `
  -- Run tokens are signed (run id, expiry) and were checked by their signature alone, so one
  -- could not be revoked before it expired. Each is recorded here by the id it carries, and
  -- every check reads revoked_at (cached like scoped tokens). Rows of expired tokens are dropped.
  CREATE TABLE run_tokens (
    id TEXT PRIMARY KEY,
    run_id ${d.id} NOT NULL,
    write ${d.bool} NOT NULL,
    created_at ${d.int64} NOT NULL,
    expires_at ${d.int64} NOT NULL,
    revoked_at ${d.int64}
  )${d.clustered};
  CREATE INDEX run_tokens_expiry ON run_tokens (expires_at);
  `,
  },
  {
    // A new index.
    additive: true,
    sql: () => `
  -- Deleting a run drops its run tokens' records (a run imported again under the same id
  -- must not bring back the links shared before it was deleted): found by run id.
  CREATE INDEX run_tokens_run ON run_tokens (run_id);
  `,
  },
  {
    // A new nullable column: older code records run tokens without it, as this code reads tokens recorded before it.
    additive: true,
    sql: () => `
  -- Who minted each run token (the scoped token's id; NULL for the admin token, the executor,
  -- an open server, and tokens recorded before this): that token may revoke it by id as the
  -- admin can, and no one else's.
  ALTER TABLE run_tokens ADD COLUMN minted_by TEXT;
  `,
  },
  {
    // A new nullable column, NULL from a node of an older version, which announces none.
    additive: true,
    sql: () => `
  -- Each node's executor slots (its concurrency limits and how many runs use them), announced with
  -- its handlers: a queued run can say it waits for a limit, not only for a node. JSON; NULL from
  -- a node that announces none (one of an older version).
  ALTER TABLE node_handlers ADD COLUMN slots TEXT;
  `,
  },
  {
    // A new table older code never reads.
    additive: true,
    sql: () => `
  -- The oldest schema version whose code may use this schema (see compatibleFrom): one row,
  -- rewritten in the transaction of every migration after this one. A node whose code knows
  -- fewer migrations opens the schema when its version is at least this.
  CREATE TABLE schema_compatibility (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    compatible_from INTEGER NOT NULL
  );
  `,
  },
];

/** The version of the migration that made schema_compatibility: a schema before it has no marker. */
const COMPATIBILITY_VERSION = 13;

/**
 * The oldest schema version whose code may use a schema migrated to
 * `version` by `list`: the highest V such that every migration after V (up
 * to `version`) is additive.
 */
export function compatibleFrom(version: number, list: readonly Migration[] = migrations): number {
  let from = version;
  while (from > 0 && list[from - 1]!.additive) from--;
  return from;
}

/**
 * The statement that records compatibleFrom after migrating to the end of
 * `list`, run in the migrations' transaction; null while `list` ends before
 * the table exists.
 */
export function recordCompatibilitySql(list: readonly Migration[]): string | null {
  if (list.length < COMPATIBILITY_VERSION) return null;
  return `INSERT INTO schema_compatibility (id, compatible_from) VALUES (1, ${compatibleFrom(list.length, list)})
    ON CONFLICT (id) DO UPDATE SET compatible_from = excluded.compatible_from`;
}

/** Reads the marker; a schema without the table (or its row) answers no rows. */
export const READ_COMPATIBILITY_SQL = `SELECT compatible_from FROM schema_compatibility WHERE id = 1`;

/**
 * Told, under the migration lock, that a schema at version `from` is about
 * to be migrated to `to` (0: a new one). A migration of a big event log
 * rewrites it (migration 7: 3.4 s per million events on SQLite, 11 s on
 * PostgreSQL), so a server says so before it starts instead of seeming to
 * hang.
 */
export type OnMigrating = (from: number, to: number) => void;

/** A schema migrated further than this code knows, that this code may use (see acceptNewerSchema). */
export interface NewerSchema {
  /** The schema's version. */
  version: number;
  /** The last version this code knows. */
  known: number;
  /** The oldest version whose code may use the schema. */
  compatibleFrom: number;
  /** What to log, once, at start: why this node runs on it, and that it should be upgraded. */
  message: string;
}

/** Told when the store opened a schema a newer runtrail migrated, without migrating it (see acceptNewerSchema). */
export type OnNewerSchema = (newer: NewerSchema) => void;

/**
 * The migrations a schema at `version` still needs, as (SQL, version after
 * it); none for a schema at or past the end of `list` (acceptNewerSchema
 * decides whether one past it may be used).
 */
export function pendingMigrations(
  version: number,
  dialect: Dialect,
  list: readonly Migration[] = migrations,
): Array<{ sql: string; version: number }> {
  return list.slice(version).map((migration, i) => ({ sql: migration.sql(dialect), version: version + i + 1 }));
}

/**
 * Whether code that knows `known` migrations may use a schema migrated to
 * `version` (> known) whose marker says `compatible` (null: no marker, as a
 * runtrail before the marker left it): yes when every migration after
 * `known` is additive, else it refuses, naming the version this node must
 * be upgraded to. Nothing is migrated either way.
 */
export function acceptNewerSchema(version: number, compatible: number | null, known: number, dialect: Dialect): NewerSchema {
  const older = `this runtrail is older than its ${dialect.holder} (schema version ${version}, known ${known})`;
  // A RuntrailError: a server's start prints its message in one line, not a stack.
  if (compatible === null) throw new RuntrailError('unavailable', `${older}; upgrade runtrail`, { version, known });
  if (known < compatible) {
    throw new RuntrailError(
      'unavailable',
      `${older}, and migration ${compatible} changed the schema in a way code before it cannot use: ` +
        `upgrade runtrail on this node to a version that knows schema version ${compatible} or later`,
      { version, known, compatibleFrom: compatible },
    );
  }
  const after = version === known + 1 ? `migration ${version} keeps` : `migrations ${known + 1}..${version} keep`;
  return {
    version,
    known,
    compatibleFrom: compatible,
    message:
      `the ${dialect.holder}'s schema is at version ${version}, newer than this runtrail's ${known}; ` +
      `running on it without migrating, because ${after} older code working (code of version ${compatible} or later may use it); ` +
      'upgrade this node to use what they add',
  };
}
