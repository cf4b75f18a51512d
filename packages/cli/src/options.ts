import type { Command } from 'commander';

/** The server a client command talks to: --server, else RUNTRAIL_URL, else the local default. */
export function serverUrl(cmd: Command): string {
  const opts = cmd.optsWithGlobals<{ server?: string }>();
  return opts.server ?? process.env.RUNTRAIL_URL ?? 'http://127.0.0.1:4310';
}

/** Options shared by the commands that start a server. */
export function addServeOptions(cmd: Command): Command {
  return cmd
    .option('--host <host>', 'address to listen on (env RUNTRAIL_HOST)')
    .option('--port <port>', 'port to listen on; 0 picks a free one (env RUNTRAIL_PORT)')
    .option('--data-dir <dir>', 'folder of the embedded SQLite store (env RUNTRAIL_DATA_DIR)')
    .option('--node <name>', 'name of this node in run owners (env RUNTRAIL_NODE)')
    .option('--concurrency <n>', 'runs the executor works on at once (env RUNTRAIL_CONCURRENCY)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env RUNTRAIL_LOG_LEVEL)');
}

export interface ServeFlags {
  host?: string;
  port?: string;
  dataDir?: string;
  node?: string;
  concurrency?: string;
  logLevel?: string;
}

export function serveOptions(flags: ServeFlags): Record<string, string | undefined> {
  return {
    host: flags.host,
    port: flags.port,
    dataDir: flags.dataDir,
    node: flags.node,
    concurrency: flags.concurrency,
    logLevel: flags.logLevel,
  };
}
