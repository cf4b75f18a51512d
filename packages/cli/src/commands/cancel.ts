import type { Command } from 'commander';
import { runAction } from './run-action.js';

export function registerCancel(program: Command): void {
  program
    .command('cancel <id>')
    .description('ask a run to stop: a queued run ends cancelled at once; a running one is stopped by its owner (or ended by the reaper if the owner is gone)')
    .option('--reason <text>', 'why, recorded on the run')
    .option('--json', 'print the run as JSON')
    .action(
      runAction<{ reason?: string; json?: boolean }>(
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
      ),
    );
}
