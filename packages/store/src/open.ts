import { join } from 'node:path';
import { RuntrailError } from '@runtrail/protocol';
import { makeDirectory } from './make-directory.js';
import type { RunStore } from './store.js';
import type { OnMigrating, OnNewerSchema } from './migrations.js';
import { SqliteRunStore } from './sqlite/sqlite-store.js';
import { PgRunStore, type PgStoreOptions } from './postgres/pg-store.js';
import { FsBlobStore, type BlobStore } from './blobs/index.js';

export interface StoreConfig {
  /** Folder of the embedded SQLite file (`runtrail.db`). */
  dataDir: string;
  /** Told before the schema is migrated (see OnMigrating). */
  onMigrating?: OnMigrating | undefined;
  /** Told when the store is used as a newer runtrail left it, without migrating (see NewerSchema). */
  onNewerSchema?: OnNewerSchema | undefined;
}

/** Open the embedded SQLite store of a data dir. */
export function openStore(config: StoreConfig): RunStore {
  try {
    makeDirectory(config.dataDir);
  } catch (err) {
    // The data dir is configuration: say which setting to change, in one line (the CLI prints no stack for these).
    throw new RuntrailError('unavailable', `cannot use the data dir ${config.dataDir}: ${(err as Error).message}; pass another --data-dir (or RUNTRAIL_DATA_DIR)`);
  }
  return new SqliteRunStore({ filename: join(config.dataDir, 'runtrail.db'), onMigrating: config.onMigrating, onNewerSchema: config.onNewerSchema });
}

export interface ConnectConfig extends StoreConfig {
  /** `postgres://…`: use PostgreSQL (shared by several nodes) instead of SQLite in dataDir. */
  databaseUrl?: string | undefined;
  /** PostgreSQL schema of runtrail's tables (default public). */
  databaseSchema?: string | undefined;
  poolSize?: number | undefined;
  statementTimeoutMs?: number | undefined;
  onError?: PgStoreOptions['onError'];
  onConnect?: PgStoreOptions['onConnect'];
  applicationName?: string | undefined;
}

/** Open the store a server is configured for: PostgreSQL when a database URL is given, else SQLite. */
export async function connectStore(config: ConnectConfig): Promise<RunStore> {
  if (config.databaseUrl === undefined || config.databaseUrl === '') return openStore(config);
  return PgRunStore.open({
    connectionString: config.databaseUrl,
    schema: config.databaseSchema,
    poolSize: config.poolSize,
    statementTimeoutMs: config.statementTimeoutMs,
    onError: config.onError,
    onConnect: config.onConnect,
    onMigrating: config.onMigrating,
    onNewerSchema: config.onNewerSchema,
    applicationName: config.applicationName,
  });
}

export interface BlobStoreConfig {
  /** Folder of artifact content (content-addressed files). */
  dir: string;
}

/** Open the artifact content store a server is configured for. */
export function openBlobStore(config: BlobStoreConfig): BlobStore {
  return new FsBlobStore({ dir: config.dir });
}
