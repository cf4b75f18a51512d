import type { Command } from 'commander';
import { startServer, type RunningServer } from '@runtrail/server';
import { defineDemoHandler } from '../demo/handler.js';
import { addServeOptions, serveOptions, type ServeFlags } from '../options.js';

export function registerServe(program: Command): void {
  addServeOptions(program.command('serve').description('serve the API, the live streams and the dashboard'))
    .action(async (flags: ServeFlags) => {
      const server = await startServer(serveOptions(flags));
      defineDemoHandler(server);
      stopOnSignals(server);
      process.stdout.write(`runtrail serving on ${server.url} (data in ${server.config.databaseUrl ? `PostgreSQL, schema ${server.config.databaseSchema}` : server.config.dataDir})\n`);
    });
}

/** SIGTERM/SIGINT close the server gracefully, once; a second signal exits at once. */
export function stopOnSignals(server: RunningServer): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    server.http.log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.http.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
