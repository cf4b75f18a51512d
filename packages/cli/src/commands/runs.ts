import { InvalidArgumentError, Option, type Command } from 'commander';
import { ListRunsQuery, RunErrorKind, RunStatus } from '@runtrail/protocol';
import type { LsFlags } from '../actions/runs.js';
import { apiText, collect } from '../options.js';

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('list and inspect runs on a server');

  runs
    .command('ls')
    .alias('list')
    .description('list runs, newest first')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(RunStatus.options))
    .option('--name <name>', 'only runs with this name', apiText('--name', ListRunsQuery.shape.name))
    .option('--search <text>', 'only runs whose name contains this (A-Z in either case, other letters as typed)', apiText('--search', ListRunsQuery.shape.nameContains))
    .addOption(new Option('--failed-with <kind>', 'only runs that failed this way').choices(RunErrorKind.options))
    .option('--parent <id>', 'only child runs of this run')
    // Repeatable, as start's and exec's --label are: a second --label used to replace the first, silently widening the match.
    .option('--label <k=v>', 'only runs with this label (repeatable; or k=v,k=v)', collect)
    .addOption(
      new Option('--limit <n>', 'how many (1-200)').default(20).argParser((value: string) => {
        // Digits only, as the API takes a query's integers: Number() also reads 1e1 and 0x10.
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1 || n > 200) throw new InvalidArgumentError('give a whole number from 1 to 200.');
        return n;
      }),
    )
    // The API pages by cursor; without the flag a user told "20 of 45 shown" had no way to see the rest past 200.
    .option('--cursor <id>', 'the next page: the run id the note under a cut table names (nextCursor in --json)')
    .option('--json', 'print {runs, nextCursor} as JSON')
    .action(async (flags: LsFlags, cmd: Command) => (await import('../actions/runs.js')).listRuns(flags, cmd));

  runs
    .command('show <id>')
    .description("a run's state: status and error, input and output, labels, children, counters, progress, phases")
    .option('--json', 'print the run as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => (await import('../actions/runs.js')).showRun(id, flags, cmd));
}
