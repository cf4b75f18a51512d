import type { Command } from 'commander';
import { RuntrailError } from '@runtrail/protocol';
import type { RunningServer, StartOptions } from '@runtrail/server';
import { describeConfig } from '@runtrail/server/config';
import { defineDemoHandler } from '../demo/handler.js';
import { loadHandlerModules } from '../handler-modules.js';
import { addServeOptions, serveOptions, type ServeFlags } from '../options.js';

export function registerServe(program: Command): void {
  addServeOptions(program.command('serve').description('serve the API, the live streams and the dashboard'))
    .option(
      '--handlers <file>',
      "a module of your handlers, loaded before serving (export default (rt) => { rt.define('name', async (ctx) => …) }, or an object of handlers by name); repeatable",
      (file: string, files: string[] | undefined) => [...(files ?? []), file],
    )
    .option('--no-demo-handler', "do not define demo-pipeline (a production node's dashboard then offers only your handlers to start)")
    .action(async (flags: ServeFlags & { handlers?: string[]; demoHandler: boolean }) => {
      // Loaded and checked first: a wrong module is said before anything listens.
      const modules = await loadHandlerModules(flags.handlers ?? []);
      const server = await startServing(serveOptions(flags));
      if (flags.demoHandler) defineDemoHandler(server);
      // Where each name was defined: a name defined twice is then told with both places, not only as "already defined".
      const definedBy = new Map(server.executor.names().map((name) => [name, "the stock server's demo handler (serve --no-demo-handler leaves it out)"]));
      for (const { file, register } of modules) {
        const define: RunningServer['define'] = (name, handler, options) => {
          const first = definedBy.get(name);
          if (first !== undefined) {
            const where = first === `--handlers ${file}` ? 'earlier in this module' : `by ${first}`;
            throw new Error(`a handler named "${name}" is already defined ${where}; one node runs one handler of a name, so rename one of them`);
          }
          server.define(name, handler, options);
          definedBy.set(name, `--handlers ${file}`);
        };
        try {
          // The server as it is (a plain object), with define telling where a name was taken.
          await register({ ...server, define });
        } catch (err) {
          await server.close();
          throw new RuntrailError('invalid_request', `--handlers ${file}: defining its handlers failed: ${(err as Error).message}`);
        }
      }
      stopOnSignals(server);
      // Which database, its password masked: nodes meant to share one can be seen to.
      const database = server.config.databaseUrl ? `PostgreSQL ${String(describeConfig(server.config).databaseUrl)}, schema ${server.config.databaseSchema}` : null;
      const handlers = modules.length > 0 ? `handlers: ${server.executor.names().join(', ')}\n` : '';
      process.stdout.write(`runtrail serving on ${server.url} (data in ${database ?? server.config.dataDir})\n${handlers}`);
    });
}

/** startServer, with a port that is taken said in one line (exit 2) instead of a stack trace. */
export async function startServing(options: StartOptions): Promise<RunningServer> {
  // Loaded here, not at the top: client commands never pay for the server's modules.
  const { startServer } = await import('@runtrail/server');
  try {
    // The command handles SIGTERM/SIGINT itself (stopOnSignals below: a log line, exit 0), not the server's default.
    return await startServer({ ...options, stopOnSignals: false });
  } catch (err) {
    const { code, port, address } = err as NodeJS.ErrnoException & { port?: number; address?: string };
    if (code !== 'EADDRINUSE') throw err;
    throw new RuntrailError('unavailable', `port ${port} on ${address} is in use (another runtrail serve?): pass --port 0 for a free port, or another --port`);
  }
}

/**
 * SIGTERM/SIGINT close the server gracefully, once; a second signal exits at once.
 * Returns whether a signal has come, for a command that would otherwise say it is still serving.
 */
export function stopOnSignals(server: RunningServer): () => boolean {
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
  return () => stopping;
}
