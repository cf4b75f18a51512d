export type {
  RunStore,
  NewRunRecord,
  AppendOptions,
  AppendResult,
  ClaimOptions,
  DueRuns,
  StoreReadiness,
  AppendFeed,
  SharedRunStore,
  DatabaseStats,
  WatchersAnnouncement,
  TokenRecord,
  RunTokenRecord,
  PutArtifactInput,
  PutArtifactResult,
  RunBundle,
  HandlersAnnouncement,
  NodeHandlers,
  NodeSlots,
  ReadPageOptions,
  RunStoreOperation,
  ClusterStoreOperation,
  StoreOperation,
} from './store.js';
export { CLUSTER_STORE_OPERATIONS, RUN_STORE_OPERATIONS, isSharedStore } from './store.js';
export { compactEventJson, eventJson, eventTextOf, type EventText, type EventTextPage, type JoinedEventTexts } from './event-text.js';
export { FsBlobStore, isSha256Hex, type BlobStore, type StagedBlob } from './blobs/index.js';
export { SqliteRunStore, type SqliteStoreOptions } from './sqlite/sqlite-store.js';
export { PgRunStore, type PgStoreOptions } from './postgres/pg-store.js';
export { copySqliteToPostgres, openSqliteSource, type CopyReport, type CopyOptions } from './postgres/import-sqlite.js';
export type { OnMigrating, OnNewerSchema, NewerSchema } from './migrations.js';
export { openStore, connectStore, openBlobStore, type StoreConfig, type ConnectConfig, type BlobStoreConfig } from './open.js';
