export type { RunStore, NewRunRecord, AppendOptions, AppendResult, DueRuns, StoreReadiness, AppendFeed, SharedRunStore, TokenRecord } from './store.js';
export { isSharedStore } from './store.js';
export { SqliteRunStore, type SqliteStoreOptions } from './sqlite/sqlite-store.js';
export { PgRunStore, type PgStoreOptions } from './postgres/pg-store.js';
export { copySqliteToPostgres, type CopyReport } from './postgres/import-sqlite.js';
export { openStore, connectStore, type StoreConfig, type ConnectConfig } from './open.js';
