import { RuntrailError } from '@runtrail/protocol';
import type { RunningServer, RuntrailServer, StartOptions } from '@runtrail/server';
import { describeConfig } from '@runtrail/server/config';
import { defineDemoHandler } from '../demo/handler.js';
import { loadHandlerModules } from '../handler-modules.js';
import { serveOptions, type ServeFlags } from '../options.js';

/** `runtrail serve`. */
export async function serve(flags: ServeFlags & { handlers?: string[]; demoHandler: boolean }): Promise<void> {
  // Loaded and checked first: a wrong module is said before anything listens.
  const modules = await loadHandlerModules(flags.handlers ?? []);
  // Handlers are defined before the server listens: a module that fails to define them is refused
  // before any "listening" line, and no run of theirs can come in before they are there.
  const server = await startServing(serveOptions(flags), async (node) => {
    if (flags.demoHandler) defineDemoHandler(node);
    // Where each name was defined: a name defined twice is then told with both places, not only as "already defined".
    const definedBy = new Map(node.executor.names().map((name) => [name, "the stock server's demo handler (serve --no-demo-handler leaves it out)"]));
    for (const { file, register } of modules) {
      const define: RuntrailServer['define'] = (name, handler, options) => {
        const first = definedBy.get(name);
        if (first !== undefined) {
          const where = first === `--handlers ${file}` ? 'earlier in this module' : `by ${first}`;
          throw new Error(`a handler named "${name}" is already defined ${where}; one node runs one handler of a name, so rename one of them`);
        }
        node.define(name, handler, options);
        definedBy.set(name, `--handlers ${file}`);
      };
      try {
        await register({ define });
      } catch (err) {
        throw new RuntrailError('invalid_request', `--handlers ${file}: defining its handlers failed: ${(err as Error).message}`);
      }
    }
  });
  stopOnSignals(server);
  // Which database, its password masked: nodes meant to share one can be seen to.
  const database = server.config.databaseUrl ? `PostgreSQL ${String(describeConfig(server.config).databaseUrl)}, schema ${server.config.databaseSchema}` : null;
  const handlers = modules.length > 0 ? `handlers: ${server.executor.names().join(', ')}\n` : '';
  process.stdout.write(`runtrail serving on ${server.url} (data in ${database ?? server.config.dataDir})\n${handlers}`);
}

/**
 * createServer, `prepare` (defining handlers), then listen; a port that is
 * taken is said in one line (exit 2) instead of a stack trace. A `prepare`
 * that throws closes the server, which never listened.
 */
export async function startServing(options: StartOptions, prepare?: (server: RuntrailServer) => Promise<void>): Promise<RunningServer> {
  // Loaded here, not at the top: client commands never pay for the server's modules.
  const { createServer } = await import('@runtrail/server');
  try {
    // The command handles SIGTERM/SIGINT itself (stopOnSignals below: a log line, exit 0), not the server's default.
    // A server that stopped by itself (auth off on a database whose other nodes came to require tokens) ends the
    // command as a start refusal does: its one line on stderr, exit 2; started again, it is refused with the same reasons.
    const server = await createServer({
      ...options,
      stopOnSignals: false,
      onStoppedItself: (why) => {
        process.stderr.write(`runtrail: ${why.message}\n`);
        process.exit(2);
      },
    });
    try {
      await prepare?.(server);
    } catch (err) {
      await server.close();
      throw err;
    }
    return await server.listen();
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
