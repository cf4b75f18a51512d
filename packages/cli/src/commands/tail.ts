import type { Command } from 'commander';
import { DURATION_HELP, durationOption } from '../duration.js';
import { clientOptions } from '../options.js';
import { followRun } from '../watch-line.js';

export function registerTail(program: Command): void {
  program
    .command('tail <id>')
    .description('follow a run live until it ends (a progress line, or every event with --events)')
    .option('--events', 'print every event, one per line, from the first')
    .addOption(durationOption('--give-up-after', 'fail (exit 2) when the server has not answered for this long', 30_000))
    .addHelpText('after', DURATION_HELP)
    .action(async (id: string, flags: { events?: boolean; giveUpAfter: number }, cmd: Command) => {
      const final = await followRun(clientOptions(cmd), id, {
        giveUpAfterMs: flags.giveUpAfter,
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
