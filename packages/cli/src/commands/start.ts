import type { Command } from 'commander';
import type { StartFlags } from '../actions/start.js';
import { DURATION_HELP, durationOption } from '../duration.js';
import { collect } from '../options.js';

/** `runtrail start NAME`: what a dashboard's "Start run" does, from a shell or a scheduler. */
export function registerStart(program: Command): void {
  program
    .command('start <handler>')
    .description("queue a run for a handler the server defines (serve --handlers, define()); prints the run's id")
    .option('--input <json>', "the run's input: JSON text, or @FILE for a file that holds it (@- reads stdin)")
    .option('--label <k=v>', 'a label of the run (repeatable)', collect)
    .option('--parent <id>', 'start it as a child of this run')
    .addOption(durationOption('--timeout', 'end the run failed (kind timeout) if it runs longer than this'))
    .option('--idempotency-key <key>', 'the same key again answers the run it started instead of starting another (a retried script)')
    .option('--follow', 'then follow it live until it ends, as `runtrail tail` does, and exit 0 only if it succeeded')
    .addOption(durationOption('--give-up-after', 'with --follow: fail (exit 2) when the server has not answered for this long', 30_000))
    .option('--json', 'print the run as JSON (with --follow, the run as it ended; the status line goes to stderr)')
    .addHelpText(
      'after',
      `\nExamples:\n  runtrail start eval-pipeline --input '{"dataset": "docs-v2"}' --label team=search\n  runtrail start render --input @job.json --follow\n  id=$(runtrail start nightly --idempotency-key "nightly-$(date +%F)")\n${DURATION_HELP}`,
    )
    .action(async (handler: string, flags: StartFlags, cmd: Command) => (await import('../actions/start.js')).startRun(handler, flags, cmd));
}
