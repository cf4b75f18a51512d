import type { Command } from 'commander';
import { isTerminalStatus, RuntrailError, type Run } from '@runtrail/protocol';
import { formatDuration } from '../duration.js';
import { clientFor, clientOptions } from '../client.js';
import { printJson } from '../output.js';
import { connectionText } from '../watch-line.js';
import { runAction } from './run-action.js';
import { exitStatusOf, followToEnd, sayHowItEnded } from './tail.js';

export interface CancelFlags {
  reason?: string;
  json?: boolean;
  wait?: boolean;
  giveUpAfter: number;
}

/** `runtrail cancel ID`. */
export async function cancelRun(id: string, flags: CancelFlags, cmd: Command): Promise<void> {
  if (!flags.wait) {
    if (cmd.getOptionValueSource('giveUpAfter') === 'cli') {
      throw new RuntrailError('invalid_request', '--give-up-after is how long --wait waits for a silent server; give it with --wait');
    }
    return requestOnly(id, flags, cmd);
  }
  const client = clientFor(cmd);
  // Already ended (a second cancel --wait after Ctrl-C, a run that just finished): what --wait waits for is there.
  const run = await client.cancelRun(id, flags.reason).catch((err: unknown) => {
    if (RuntrailError.isCode(err, 'run_already_terminal')) return client.getRun(id);
    throw err;
  });
  // A queued run (or one nothing owned) ended at the request: nothing to wait for.
  if (isTerminalStatus(run.status)) {
    if (!flags.json) return sayHowItEnded(id, run.snapshot.terminal, 'cancelled');
    printJson(run);
    process.exitCode = exitStatusOf(run.status, 'cancelled');
    return;
  }
  const { url } = clientOptions(cmd);
  const waitingFor = `runtrail: cancel requested; waiting for run ${id} to end`;
  await followToEnd(cmd, id, flags, {
    wanted: 'cancelled',
    // On a terminal the line also says how the watch stands (a lost server is named as it is
    // retried), first, as the line is cut to the terminal's width.
    waitingLine: (state, tty) => `${waitingFor}${tty ? ` (${connectionText(state, url)})` : ''}: ${whoEndsIt(run)}`,
  });
}

const requestOnly = runAction<CancelFlags>(
  (client, id, flags) => client.cancelRun(id, flags.reason),
  (run, id) => {
    // The id for a script, the sentence for a person (as retry, delete and import do).
    process.stdout.write(`${id}\n`);
    process.stderr.write(
      run.status === 'cancelled'
        ? `run ${id} cancelled\n`
        : `cancel requested for run ${id} (${run.status}); its owner stops it and ends it cancelled\n`,
    );
  },
);

/** Who ends a running run once a cancel is requested: its owner, or the reaper when the owner's lease lapses. */
function whoEndsIt(run: Run): string {
  const owner = run.owner ? `its owner (${run.owner.kind} ${run.owner.id} on ${run.owner.node})` : 'its producer';
  return `${owner} stops it, or, if that is gone, the reaper ends it cancelled once its lease of ${formatDuration(run.leaseTtlMs)} lapses unrenewed`;
}
