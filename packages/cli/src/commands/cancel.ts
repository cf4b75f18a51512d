import type { Command } from 'commander';
import { RuntrailClient } from '@runtrail/client';
import { clientOptions } from '../options.js';

export function registerCancel(program: Command): void {
  program
    .command('cancel <id>')
    .description('ask a run to stop: a queued run ends cancelled at once; a running one is stopped by its owner (or ended by the reaper if the owner is gone)')
    .option('--reason <text>', 'why, recorded on the run')
    .option('--json', 'print the run as JSON')
    .action(async (id: string, flags: { reason?: string; json?: boolean }, cmd: Command) => {
      const run = await new RuntrailClient(clientOptions(cmd)).cancelRun(id, flags.reason);
      if (flags.json) return void process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
      process.stdout.write(
        run.status === 'cancelled'
          ? `run ${id} cancelled\n`
          : `cancel requested for run ${id} (${run.status}); its owner stops it and ends it cancelled\n`,
      );
    });
}
