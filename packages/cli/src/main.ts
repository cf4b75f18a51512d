import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { RuntrailError } from '@runtrail/protocol';
import { StartupError } from '@runtrail/server/config';
import { registerDemo } from './commands/demo.js';
import { registerRuns } from './commands/runs.js';
import { registerServe } from './commands/serve.js';
import { registerTail } from './commands/tail.js';
import { registerExec } from './commands/exec.js';
import { registerCancel } from './commands/cancel.js';
import { registerRetry } from './commands/retry.js';
import { registerDelete } from './commands/delete.js';
import { registerMigrate } from './commands/migrate.js';
import { registerArtifacts } from './commands/artifacts.js';
import { registerArchive } from './commands/archive.js';
import { registerConfig } from './commands/config.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
import { registerTokens } from './commands/tokens.js';

const program = new Command('runtrail')
  .description('live progress of long-running runs, from a durable event log')
  .version(version, '-V, --version', 'print the runtrail version')
  .option('--server <url>', 'runtrail server for client commands (env RUNTRAIL_URL, default http://127.0.0.1:$RUNTRAIL_PORT or 4310)')
  .showHelpAfterError()
  // A usage error (unknown option, missing argument) exits 2 like every
  // other error; --help and --version exit 0. Set before the commands are
  // added, so that they inherit it.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

registerServe(program);
registerConfig(program);
registerDemo(program);
registerRuns(program);
registerTail(program);
registerExec(program);
registerCancel(program);
registerRetry(program);
registerDelete(program);
registerMigrate(program);
registerTokens(program);
registerArtifacts(program);
registerArchive(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof StartupError) {
    process.stderr.write(`runtrail: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof RuntrailError) {
    // The server's words are for any HTTP client; a command line user sets no header, only the variable.
    const hint = err.code === 'unauthorized' && !process.env.RUNTRAIL_TOKEN ? ' (the CLI sends the token in RUNTRAIL_TOKEN, which is not set)' : '';
    process.stderr.write(`runtrail: ${err.code}: ${err.message}${hint}\n`);
    process.exit(2);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause) {
    // fetch reports an unreachable server as TypeError("fetch failed") with the reason in `cause`.
    const reason = cause.code ?? cause.message ?? 'unreachable';
    process.stderr.write(`runtrail: no server answers there (${reason}); start one with 'runtrail serve' or pass --server\n`);
    process.exit(2);
  }
  process.stderr.write(`runtrail: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
