import { dirname, join, resolve } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { RuntrailError } from '@runtrail/protocol';
import { settings } from '@runtrail/server/config';
import { EXIT_INTERRUPTED, printJson } from '../output.js';
import { CountProgress } from '../progress.js';

export interface MigrateFlags {
  dataDir: string;
  database?: string;
  databaseSchema: string;
  progress?: boolean;
  json?: boolean;
}

/** `runtrail migrate`. */
export async function migrate(flags: MigrateFlags): Promise<void> {
  const filename = join(flags.dataDir, 'runtrail.db');
  if (statSync(flags.dataDir, { throwIfNoEntry: false })?.isFile()) {
    throw new RuntrailError('invalid_request', `${flags.dataDir} is a file; --data-dir is the folder that holds runtrail.db (--data-dir ${dirname(flags.dataDir)})`);
  }
  if (!existsSync(filename)) throw new RuntrailError('invalid_request', `no runtrail.db in ${flags.dataDir}; pass the data dir with --data-dir`);
  if (!flags.database) throw new RuntrailError('invalid_request', 'say where to copy to with --database postgres://… (or RUNTRAIL_DATABASE_URL)');
  // As serve checks it: pg ignores the scheme and reads a bare path as a socket on localhost.
  // The URL is not echoed: it may carry a password.
  const checked = settings.databaseUrl.schema.safeParse(flags.database);
  if (!checked.success) {
    // A postgres:// URL refused all the same (a trailing newline): the schema's own words say why.
    const why = /^postgres(ql)?:\/\//.test(flags.database) ? checked.error.issues[0]!.message : 'must be a postgres:// or postgresql:// URL (postgres://user@host:5432/database)';
    throw new RuntrailError('invalid_request', `--database ${why}`);
  }
  // Loaded here, not at the top: other commands never pay for the store and its drivers.
  const { PgRunStore, copySqliteToPostgres, openSqliteSource } = await import('@runtrail/store');
  // The source first: a wrong file must not leave a schema behind in PostgreSQL.
  const source = openSqliteSource(filename);
  const target = await PgRunStore.open({
    connectionString: flags.database,
    schema: flags.databaseSchema,
    poolSize: 2,
    applicationName: 'runtrail migrate',
    // Nodes of a newer runtrail migrated it, in a way this one may still write (a rolling upgrade): it copies, and says so.
    onNewerSchema: ({ message }) => process.stderr.write(`runtrail: warning: ${message}\n`),
  }).catch((err: unknown) => {
    source.close();
    throw err;
  });
  const progress = new CountProgress('migrating', 'run(s)', flags.progress);
  // Exiting drops the connection, so PostgreSQL rolls back the commit in flight: what was copied is whole runs.
  const onInterrupt = () => {
    progress.end();
    const sofar = progress.total === null ? 'before copying any run' : `${progress.done} of ${progress.total} run(s) copied`;
    process.stderr.write(
      `runtrail: interrupted: ${sofar} (each run goes in whole with its events, so none is half-copied); run runtrail migrate again to finish the copy\n`,
    );
    process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onInterrupt);
  try {
    const report = await copySqliteToPostgres(source, target, {
      onProgress: (done, total, events) => progress.update(done, total, events > 0 ? `${events} event(s)` : undefined),
    });
    progress.end();
    if (flags.json) {
      const artifactsDir = report.artifacts ? resolve(flags.dataDir, 'artifacts') : null;
      return printJson({ from: resolve(filename), schema: flags.databaseSchema, ...report, artifactsDir });
    }
    const lines = [
      `copied ${report.runs} run(s) and ${report.events} event(s) from ${filename} into schema ${flags.databaseSchema}, and ${report.tokens} token(s)`,
    ];
    if (report.updated) lines.push(`brought ${report.updated} run(s) copied before up to date (the events they got since, their state and artifacts)`);
    if (report.artifacts) {
      // The records point at content-addressed files only the data dir has: nodes answer 503 for an artifact whose file they lack.
      lines.push(
        `copied ${report.artifacts} artifact record(s); their content is not copied: it stays in ${resolve(flags.dataDir, 'artifacts')} ` +
          "(or the --artifacts-dir that server used): give every node --artifacts-dir pointing at it, or at a copy of it",
      );
    }
    if (report.skipped) lines.push(`${report.skipped} run(s) were already there and were left as they are`);
    if (report.notEnded) {
      // A server still writing the data dir gives them events this copy does not have.
      lines.push(
        `${report.notEnded} copied run(s) had not ended: if a server still uses ${flags.dataDir}, stop the server and run runtrail migrate again to copy what they got since; ` +
          'a node on PostgreSQL ends any whose owner does not carry on there (orphaned) once its lease lapses',
      );
    }
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    process.off('SIGINT', onInterrupt);
    await target.close();
  }
}
