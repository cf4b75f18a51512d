import type { Command } from 'commander';
import { RuntrailError } from '@runtrail/protocol';
import { clientOptions } from '../options.js';
import { followRun } from '../watch-line.js';

export function registerTail(program: Command): void {
  program
    .command('tail <id>')
    .description('follow a run live until it ends (a progress line, or every event with --events)')
    .option('--events', 'print every event, one per line, from the first')
    .option('--give-up-after <ms>', 'fail (exit 2) when the server has not answered for this long', '30000')
    .action(async (id: string, flags: { events?: boolean; giveUpAfter: string }, cmd: Command) => {
      const giveUpAfterMs = Number(flags.giveUpAfter);
      if (!Number.isInteger(giveUpAfterMs) || giveUpAfterMs <= 0) {
        throw new RuntrailError('invalid_request', `--give-up-after must be a positive number of milliseconds, not "${flags.giveUpAfter}"`);
      }
      const final = await followRun(clientOptions(cmd), id, {
        giveUpAfterMs,
        ...(flags.events ? { onEvent: (line: string) => process.stdout.write(`${line}\n`) } : {}),
      });
      const end = final.snapshot.terminal;
      if (end) {
        const why = end.error ? ` (${end.error.kind}: ${end.error.message})` : '';
        process.stdout.write(`run ${id} ended ${end.status}${why}\n`);
        process.exitCode = end.status === 'succeeded' ? 0 : 1;
      }
    });
}
