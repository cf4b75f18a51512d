import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import type { RunStore } from './store.js';
import { SqliteRunStore } from './sqlite/sqlite-store.js';

export interface StoreConfig {
  /** Folder of the embedded SQLite file (`runtrail.db`). */
  dataDir: string;
}

/** Open the store a server is configured for. */
export function openStore(config: StoreConfig): RunStore {
  mkdirSync(config.dataDir, { recursive: true });
  return new SqliteRunStore({ filename: join(config.dataDir, 'runtrail.db') });
}
