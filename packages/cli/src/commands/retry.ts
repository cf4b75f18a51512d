import type { Command } from 'commander';
import { RuntrailClient } from '@runtrail/client';
import { clientOptions } from '../options.js';

export function registerRetry(program: Command): void {
  program
    .command('retry <id>')
    .description('run a handler run again: a new run with the same name and input, linked to this one (retryOf, attempt + 1); runs no handler executes are refused')
    .option('--json', 'print the new run as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      const run = await new RuntrailClient(clientOptions(cmd)).retryRun(id);
      if (flags.json) return void process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
      process.stdout.write(`${run.id}\n`);
      process.stderr.write(`run ${run.id} is attempt ${run.attempt} of ${run.name} (retry of ${id}), ${run.status}\n`);
    });
}
