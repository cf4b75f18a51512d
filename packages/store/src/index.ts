export type { RunStore, NewRunRecord, AppendOptions, AppendResult, DueRuns, StoreReadiness } from './store.js';
export { SqliteRunStore, type SqliteStoreOptions } from './sqlite/sqlite-store.js';
export { openStore, type StoreConfig } from './open.js';
