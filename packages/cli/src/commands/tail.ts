import type { Command } from 'commander';
import { serverUrl } from '../options.js';
import { followRun } from '../watch-line.js';

export function registerTail(program: Command): void {
  program
    .command('tail <id>')
    .description('follow a run live until it ends (a progress line, or every event with --events)')
    .option('--events', 'print every event, one per line, from the first')
    .action(async (id: string, flags: { events?: boolean }, cmd: Command) => {
      const final = await followRun(serverUrl(cmd), id, flags.events ? { onEvent: (line) => process.stdout.write(`${line}\n`) } : {});
      const end = final.snapshot.terminal;
      if (end) {
        const why = end.error ? ` (${end.error.kind}: ${end.error.message})` : '';
        process.stdout.write(`run ${id} ended ${end.status}${why}\n`);
        process.exitCode = end.status === 'succeeded' ? 0 : 1;
      }
    });
}
