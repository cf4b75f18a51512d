import type { Command } from 'commander';

export function registerRetry(program: Command): void {
  program
    .command('retry <id>')
    .description('run a handler run again: a new run with the same name and input, linked to this one (retryOf, attempt + 1); runs no handler executes are refused')
    .option('--json', 'print the new run as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => (await import('../actions/retry.js')).retryRun(id, flags, cmd));
}
