import type { Command } from 'commander';
import { CancelRunBody } from '@runtrail/protocol';
import type { CancelFlags } from '../actions/cancel.js';
import { DURATION_HELP, durationOption } from '../duration.js';
import { apiText } from '../options.js';

export function registerCancel(program: Command): void {
  program
    .command('cancel <id>')
    .description('ask a run to stop: a queued run ends cancelled at once; a running one is stopped by its owner (or ended by the reaper if the owner is gone)')
    .option('--reason <text>', 'why, recorded on the run', apiText('--reason', CancelRunBody.shape.reason))
    .option('--wait', 'then wait for the run to end: exit 0 if it ended cancelled, 1 if it ended otherwise (it finished before the cancel took effect)')
    .addOption(durationOption('--give-up-after', 'with --wait: fail (exit 2) when the server has not answered for this long', 30_000))
    .option('--json', 'print the run as JSON (with --wait, the run as it ended)')
    .addHelpText('after', DURATION_HELP)
    .action(async (id: string, flags: CancelFlags, cmd: Command) => (await import('../actions/cancel.js')).cancelRun(id, flags, cmd));
}
