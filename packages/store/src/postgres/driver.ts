import type pg from 'pg';

let driver: typeof pg | undefined;

/**
 * The `pg` driver, imported when a PostgreSQL store is first opened rather
 * than when @runtrail/store is: every importer of the package (a SQLite
 * server, the CLI) loaded it before, about 80 ms of each start.
 */
export async function loadPg(): Promise<typeof pg> {
  driver ??= (await import('pg')).default;
  return driver;
}

/** The driver loadPg imported; PgRunStore.open loads it before anything here needs it. */
export function pgDriver(): typeof pg {
  if (driver === undefined) throw new Error('the pg driver is not loaded: a PostgreSQL store is opened with PgRunStore.open');
  return driver;
}
