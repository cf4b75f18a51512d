import type { Command } from 'commander';
import { runAction } from './run-action.js';

export function registerRetry(program: Command): void {
  program
    .command('retry <id>')
    .description('run a handler run again: a new run with the same name and input, linked to this one (retryOf, attempt + 1); runs no handler executes are refused')
    .option('--json', 'print the new run as JSON')
    .action(
      runAction(
        (client, id) => client.retryRun(id),
        (run, id) => {
          process.stdout.write(`${run.id}\n`);
          process.stderr.write(`run ${run.id} is attempt ${run.attempt} of ${run.name} (retry of ${id}), ${run.status}\n`);
        },
      ),
    );
}
