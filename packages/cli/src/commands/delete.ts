import type { Command } from 'commander';
import { clientFor } from '../options.js';

export function registerDelete(program: Command): void {
  program
    .command('delete <id>')
    .description('delete an ended run with its events, output log and every run under it (a running one must be cancelled first)')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      await clientFor(cmd).deleteRun(id);
      process.stdout.write(`deleted run ${id}\n`);
    });
}
