/**
 * PostgreSQL schema migrations, applied in order at start under an advisory
 * lock; `runtrail_migrations` records each applied version. Never edit a
 * shipped migration: append the next one (later features add their tables
 * here and in ../sqlite/migrations.ts).
 *
 * ids are compared with COLLATE "C" so that ORDER BY id is byte order (UUIDv7
 * byte order is creation order) whatever the database's locale.
 */
export const migrations: string[] = [
  `
  CREATE TABLE runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id TEXT COLLATE "C",
    status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    input TEXT,
    labels JSONB NOT NULL DEFAULT '{}',
    error TEXT,
    output TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT NOT NULL,
    execute BOOLEAN NOT NULL DEFAULT false,
    owner TEXT,
    owner_node TEXT,
    owner_kind TEXT,
    lease_ttl_ms BIGINT NOT NULL,
    lease_expires_at BIGINT,
    heartbeat_at BIGINT,
    cancel_requested_at BIGINT,
    timeout_ms BIGINT,
    stall_timeout_ms BIGINT,
    fail_on_stall BOOLEAN NOT NULL DEFAULT false,
    last_progress_at BIGINT,
    stalled_at BIGINT,
    retry_of TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    idempotency_key TEXT UNIQUE
  );
  CREATE INDEX runs_status_id ON runs (status, id);
  CREATE INDEX runs_parent ON runs (parent_id, id);
  CREATE INDEX runs_name ON runs (name, id);
  CREATE INDEX runs_owner ON runs (owner_node, owner_kind) WHERE status IN ('queued','running');
  CREATE INDEX runs_queued ON runs (name, id) WHERE status = 'queued' AND execute;
  CREATE INDEX runs_labels ON runs USING gin (labels jsonb_path_ops);

  CREATE TABLE events (
    run_id TEXT COLLATE "C" NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts BIGINT NOT NULL,
    data TEXT,
    event_id TEXT,
    terminal BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, seq)
  );
  CREATE UNIQUE INDEX events_event_id ON events (run_id, event_id) WHERE event_id IS NOT NULL;
  -- Exactly one terminal event per run, whatever the code above it does.
  CREATE UNIQUE INDEX events_one_terminal ON events (run_id) WHERE terminal;
  `,
  `
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('admin','producer','viewer')),
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
  );
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  `
  -- Artifact records; the content is in the blob store, addressed by sha256.
  CREATE TABLE artifacts (
    run_id TEXT COLLATE "C" NOT NULL,
    ordinal INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (run_id, ordinal),
    UNIQUE (run_id, name)
  );
  CREATE INDEX artifacts_sha256 ON artifacts (sha256);
  `,
];
