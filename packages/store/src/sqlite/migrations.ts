/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many
 * have run. Never edit a shipped migration: add the next one.
 */
export const migrations: string[] = [
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    input TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    output TEXT,
    seq INTEGER NOT NULL DEFAULT 0,
    snapshot TEXT NOT NULL,
    execute INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    owner_node TEXT,
    owner_kind TEXT,
    lease_ttl_ms INTEGER NOT NULL,
    lease_expires_at INTEGER,
    heartbeat_at INTEGER,
    cancel_requested_at INTEGER,
    timeout_ms INTEGER,
    stall_timeout_ms INTEGER,
    fail_on_stall INTEGER NOT NULL DEFAULT 0,
    last_progress_at INTEGER,
    stalled_at INTEGER,
    retry_of TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    idempotency_key TEXT UNIQUE
  );
  CREATE INDEX runs_status_id ON runs (status, id);
  CREATE INDEX runs_parent ON runs (parent_id, id);
  CREATE INDEX runs_name ON runs (name, id);
  CREATE INDEX runs_owner ON runs (owner_node, owner_kind) WHERE status IN ('queued','running');

  CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    ts INTEGER NOT NULL,
    data TEXT,
    event_id TEXT,
    terminal INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX events_event_id ON events (run_id, event_id) WHERE event_id IS NOT NULL;
  -- Exactly one terminal event per run, whatever the code above it does.
  CREATE UNIQUE INDEX events_one_terminal ON events (run_id) WHERE terminal = 1;
  `,
  `
  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('admin','producer','viewer')),
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
  );
  CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  `
  -- Artifact records; the content is in the blob store, addressed by sha256.
  CREATE TABLE artifacts (
    run_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    metadata TEXT,
    PRIMARY KEY (run_id, ordinal),
    UNIQUE (run_id, name)
  ) WITHOUT ROWID;
  CREATE INDEX artifacts_sha256 ON artifacts (sha256);
  `,
];
