import { Option, type Command } from 'commander';
import type { RunWatchState } from '@runtrail/client';
import { DURATION_HELP, durationOption } from '../duration.js';
import { clientFor, clientOptions } from '../options.js';
import { printJson } from '../output.js';
import { followRun } from '../watch-line.js';

export function registerTail(program: Command): void {
  program
    .command('tail <id>')
    .description('follow a run live until it ends (a progress line, or every event with --events)')
    .option('--events', 'print every event, one per line, from the first')
    .addOption(durationOption('--give-up-after', 'fail (exit 2) when the server has not answered for this long', 30_000))
    .addOption(new Option('--json', 'print the run as it ended as JSON (the progress line goes to stderr)').conflicts('events'))
    .addHelpText('after', DURATION_HELP)
    .action(async (id: string, flags: { events?: boolean; giveUpAfter: number; json?: boolean }, cmd: Command) => {
      await followToEnd(cmd, id, flags);
    });
}

/**
 * Follow a run to its end as `tail` and `start --follow` do: the status line
 * (or every event), then how it ended on stdout, or with --json the run as it
 * ended on stdout and the status line on stderr; exit 0 only if it succeeded.
 */
export async function followToEnd(cmd: Command, id: string, flags: { events?: boolean; giveUpAfter: number; json?: boolean }): Promise<void> {
  const final = await followRun(clientOptions(cmd), id, {
    giveUpAfterMs: flags.giveUpAfter,
    ...(flags.events ? { onEvent: (line: string) => process.stdout.write(`${line}\n`) } : {}),
    ...(flags.json ? { out: process.stderr } : {}),
  });
  if (!flags.json) return sayHowItEnded(id, final);
  const ended = await clientFor(cmd).getRun(id);
  printJson(ended);
  process.exitCode = exitStatusOf(ended.status);
}

/** After following a run to its end: how it ended, on stdout, and the exit status (0 only if it succeeded). */
export function sayHowItEnded(id: string, final: RunWatchState): void {
  const end = final.snapshot.terminal;
  if (!end) return;
  const why = end.error ? ` (${end.error.kind}: ${end.error.message})` : '';
  process.stdout.write(`run ${id} ended ${end.status}${why}\n`);
  process.exitCode = exitStatusOf(end.status);
}

/** A followed run's exit status: 0 only if it succeeded. */
export function exitStatusOf(status: string): number {
  return status === 'succeeded' ? 0 : 1;
}
