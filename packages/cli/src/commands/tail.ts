import { Option, type Command } from 'commander';
import { DURATION_HELP, durationOption } from '../duration.js';

export function registerTail(program: Command): void {
  program
    .command('tail <id>')
    .description('follow a run live until it ends (a progress line, or every event with --events)')
    .option('--events', 'print every event, one per line, from the first')
    .addOption(durationOption('--give-up-after', 'fail (exit 2) when the server has not answered for this long', 30_000))
    .addOption(new Option('--json', 'print the run as it ended as JSON (the progress line goes to stderr)').conflicts('events'))
    .addHelpText('after', DURATION_HELP)
    .action(async (id: string, flags: { events?: boolean; giveUpAfter: number; json?: boolean }, cmd: Command) => (await import('../actions/tail.js')).tailRun(id, flags, cmd));
}
