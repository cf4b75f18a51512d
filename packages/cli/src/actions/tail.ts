import type { Command } from 'commander';
import type { Snapshot, TerminalStatus } from '@runtrail/protocol';
import { clientFor, clientOptions } from '../client.js';
import { oneLineSafe, printJson, terminalSafe } from '../output.js';
import { followRun, LiveLine, type FollowOptions } from '../watch-line.js';

/** `runtrail tail ID`. */
export async function tailRun(id: string, flags: { events?: boolean; giveUpAfter: number; json?: boolean }, cmd: Command): Promise<void> {
  // A server that does not answer at all (not started, a typo in --server) is said at once, as by
  // every other command: the watcher would retry it for --give-up-after (30 s) under a "reconnecting"
  // line. Given --give-up-after, a script started before its server waits for it that long, as asked.
  if (cmd.getOptionValueSource('giveUpAfter') === 'default') await clientFor(cmd).getRun(id);
  await followToEnd(cmd, id, flags);
}

/** How `followToEnd` follows for a command other than `tail`. */
export interface FollowEnd {
  /** The end that exits 0 (default: succeeded; `cancel --wait`: cancelled). */
  wanted?: TerminalStatus;
  /** Instead of the progress line, this one on stderr (see FollowOptions.waitingLine). */
  waitingLine?: FollowOptions['waitingLine'];
}

/**
 * Follow a run to its end as `tail`, `start --follow` and `cancel --wait` do:
 * the status line (or every event), then how it ended on stdout, or with
 * --json the run as it ended on stdout and the status line on stderr; exit 0
 * only if it ended as wanted (succeeded, unless `end` says otherwise).
 */
export async function followToEnd(
  cmd: Command,
  id: string,
  flags: { events?: boolean; giveUpAfter: number; json?: boolean },
  end: FollowEnd = {},
): Promise<void> {
  const final = await followRun(clientOptions(cmd), id, {
    giveUpAfterMs: flags.giveUpAfter,
    ...(flags.events ? { onEvent: (line: string) => process.stdout.write(`${line}\n`) } : {}),
    ...(flags.json || end.waitingLine ? { out: process.stderr } : {}),
    // On a terminal, cut to its width as `exec`'s line is: a long line that wraps cannot be redrawn in place.
    ...(end.waitingLine ? { waitingLine: end.waitingLine, ...(process.stderr.isTTY ? { live: new LiveLine(process.stderr) } : {}) } : {}),
  });
  if (!flags.json) return sayHowItEnded(id, final.snapshot.terminal, end.wanted);
  const ended = await clientFor(cmd).getRun(id);
  printJson(ended);
  process.exitCode = exitStatusOf(ended.status, end.wanted);
}

/** After following a run to its end: how it ended, on stdout, and the exit status (0 only if it ended as wanted). */
export function sayHowItEnded(id: string, end: Snapshot['terminal'], wanted?: TerminalStatus): void {
  if (!end) return;
  // A command's failure is a headline, then a blank line and its last stderr lines: the headline ends
  // the line; the rest, escaped on one line, was unreadable. It follows for the person, on stderr,
  // indented so none of it reads as the CLI's own line.
  const [headline, ...rest] = end.error ? end.error.message.split('\n') : [];
  const why = end.error ? ` (${end.error.kind}: ${headline})` : '';
  // The reason is whoever ended the run's text (a cancel reason any producer may set): terminal-safe.
  process.stdout.write(`run ${id} ended ${end.status}${oneLineSafe(why)}\n`);
  const details = rest.join('\n').trim() ? rest.slice(rest[0] === '' ? 1 : 0) : [];
  if (details.length > 0) process.stderr.write(details.map((line) => `  ${terminalSafe(line)}\n`).join(''));
  process.exitCode = exitStatusOf(end.status, wanted);
}

/** A followed run's exit status: 0 only if it ended as wanted (by default, succeeded). */
export function exitStatusOf(status: string, wanted: TerminalStatus = 'succeeded'): number {
  return status === wanted ? 0 : 1;
}
