import { RuntrailError } from '@runtrail/protocol';
import { StartupError } from '@runtrail/server/config';
import { CLI_TOKEN_HINT, serverInUse } from './options.js';
import { outputFailed, terminalSafe } from './output.js';
import { createProgram } from './program.js';

const program = createProgram();

// A reader that stopped reading (`runtrail tail ID --events | head`, `export -o - | head -c`) is
// not an error to report: exit at once and quietly, with the status a shell gives a process
// SIGPIPE ended (`yes | head` under pipefail), instead of a stack or "connection lost"
// (`exec` stops its command first).
// Likewise stderr's (`2>&1 | head`), where nothing more can be said anyway.
// After a hangup (`exec` on SIGHUP, or EIO: a closed terminal), write errors are expected and ignored (see terminalHungUp).
for (const stream of [process.stdout, process.stderr]) stream.on('error', outputFailed);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof StartupError) {
    process.stderr.write(`runtrail: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof RuntrailError) {
    // The server's words are for any HTTP client; a command line user sets no header, only the variable.
    // (A watcher's error says it already.)
    // A refused token is named by where it came from: a user with several servers may have set the other's.
    const hint =
      err.code !== 'unauthorized' || err.message.includes('RUNTRAIL_TOKEN')
        ? ''
        : process.env.RUNTRAIL_TOKEN
          ? ` (the token sent is the one in RUNTRAIL_TOKEN)`
          : ` (${CLI_TOKEN_HINT})`;
    // The message is the server's, and may quote what a caller sent (an id, a name): terminal-safe.
    process.stderr.write(`runtrail: ${err.code}: ${terminalSafe(err.message)}${hint}\n`);
    process.exit(2);
  }
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause) {
    // fetch reports an unreachable server as TypeError("fetch failed") with the reason in `cause`.
    const reason = cause.code ?? cause.message ?? 'unreachable';
    // Named, since the user may not know which of --server, RUNTRAIL_URL and the default was used.
    const where = serverInUse();
    process.stderr.write(`runtrail: no server answers${where ? ` at ${where}` : ''} (${reason}); start one with 'runtrail serve' or pass --server\n`);
    process.exit(2);
  }
  process.stderr.write(`runtrail: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
