import type { Command } from 'commander';
import type { MigrateFlags } from '../actions/migrate.js';

/**
 * `runtrail migrate`: copy an embedded SQLite data dir into PostgreSQL, so a
 * team that started on one machine moves to several nodes with its history.
 */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('copy the runs, events and snapshots of a SQLite data dir into a PostgreSQL database (safe to run again: copied runs are brought up to date)')
    .option('--data-dir <dir>', 'the SQLite data dir to copy from (env RUNTRAIL_DATA_DIR)', process.env.RUNTRAIL_DATA_DIR ?? './.runtrail')
    .option('--database <url>', 'the PostgreSQL to copy into (env RUNTRAIL_DATABASE_URL)', process.env.RUNTRAIL_DATABASE_URL)
    .option('--database-schema <schema>', "schema of runtrail's tables (env RUNTRAIL_DATABASE_SCHEMA)", process.env.RUNTRAIL_DATABASE_SCHEMA ?? 'public')
    .option('--progress', 'show a progress line on stderr (default: when it is a terminal)')
    .option('--no-progress', 'never show one')
    .option('--json', 'print what was copied as JSON (the counts of the sentences it prints otherwise)')
    .action(async (flags: MigrateFlags) => (await import('../actions/migrate.js')).migrate(flags));
}
