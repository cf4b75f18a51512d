import { Option, type Command } from 'commander';
import { ListRunsQuery, TERMINAL_STATUSES } from '@runtrail/protocol';
import type { PruneFlags } from '../actions/prune.js';
import { durationOption } from '../duration.js';
import { apiText, collect } from '../options.js';

/**
 * `runtrail prune`: delete the ended runs created before a cutoff, each with
 * its family (the server's delete), so a server that keeps every run does
 * not grow for ever. Top-level runs only: a child goes with its parent, and
 * a family with a run still going is left whole (the server refuses it).
 */
export function registerPrune(program: Command): void {
  program
    .command('prune')
    .description('delete ended runs created more than a while ago, each with every run under it (running and queued runs are left)')
    .addOption(durationOption('--older-than', 'runs created more than this long ago (30d, 12h, 90m)').makeOptionMandatory())
    .addOption(new Option('--status <status>', 'only runs that ended this way').choices(TERMINAL_STATUSES))
    .option('--name <name>', 'only runs with this name', apiText('--name', ListRunsQuery.shape.name))
    // Repeatable, as start's and exec's --label are: a second --label used to replace the first, silently widening the match.
    .option('--label <k=v>', 'only runs with this label (repeatable; or k=v,k=v)', collect)
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('-y, --yes', 'delete without asking (needed when stdin is not a terminal)')
    .option('--json', 'print what was (or would be) deleted as JSON')
    .option('--progress', 'show a progress line on stderr (default: when it is a terminal)')
    .option('--no-progress', 'never show one')
    .action(async (flags: PruneFlags, cmd: Command) => (await import('../actions/prune.js')).pruneRuns(flags, cmd));
}
