import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { RuntrailError, TERMINAL_STATUSES, isTerminalStatus, type Run, type RunsFilter, type TerminalStatus } from '@runtrail/protocol';
import type { RuntrailClient } from '@runtrail/client';
import { formatDuration } from '../duration.js';
import { clientFor } from '../client.js';
import { labelFilter } from '../options.js';
import { EXIT_INTERRUPTED, print, printJson } from '../output.js';
import { CountProgress } from '../progress.js';

export interface PruneFlags {
  olderThan: number;
  status?: TerminalStatus;
  name?: string;
  label?: string[];
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  progress?: boolean;
}

/** Runs listed per request while pruning (the API's largest page). */
const PAGE = 200;

/** `runtrail prune`. */
export async function pruneRuns(flags: PruneFlags, cmd: Command): Promise<void> {
  const before = Date.now() - flags.olderThan;
  // The API takes no cutoff before 1970 and would refuse it naming its own query field (createdBefore), which the user never typed.
  if (before < 0) {
    throw new RuntrailError('invalid_request', `--older-than ${formatDuration(flags.olderThan)} reaches back before 1970, before any run was made; give a shorter time (30d, 12h)`);
  }
  const client = clientFor(cmd);
  const filter: RunsFilter = { topLevel: 'true', createdBefore: before, status: flags.status, name: flags.name, label: labelFilter(flags.label) };
  const counts = await client.countRuns(filter);
  const ended = (flags.status ? [flags.status] : TERMINAL_STATUSES).reduce((sum, s) => sum + (counts.byStatus[s] ?? 0), 0);
  const going = counts.total - ended;
  const cutoff = new Date(before).toISOString();
  const leftNote = going > 0 ? `; ${going} running or queued run(s) created before then are left` : '';

  if (flags.dryRun) {
    const runs: Run[] = [];
    for await (const run of endedRuns(client, filter)) runs.push(run);
    if (flags.json) return printJson({ dryRun: true, createdBefore: cutoff, runs: runs.map(summary), left: going });
    for (const run of runs) print(`${run.id}  ${run.status.padEnd(9)}  ${new Date(run.createdAt).toISOString()}  ${run.name}`);
    process.stderr.write(`runtrail: would delete ${runs.length} run(s) created before ${cutoff}, each with the runs under it${leftNote} (--dry-run: nothing deleted)\n`);
    return;
  }
  if (ended === 0) {
    if (flags.json) return printJson({ createdBefore: cutoff, deleted: [], skipped: [], left: going });
    process.stderr.write(`runtrail: no ended run created before ${cutoff} matches; nothing to delete${leftNote}\n`);
    return;
  }
  if (!flags.yes) await confirm(`delete ${ended} ended run(s) created before ${cutoff}, each with every run under it?`);

  const progress = new CountProgress('pruning', 'run(s)', flags.progress);
  const deleted: string[] = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  // Ctrl-C stops after the delete in flight (each is whole), and says how far it got.
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  try {
    for await (const run of endedRuns(client, filter)) {
      if (interrupted) break;
      try {
        await client.deleteRun(run.id);
        deleted.push(run.id);
      } catch (err) {
        // A family with a run still going (or gone meanwhile): left, and said; anything else stops the prune.
        if (!RuntrailError.isCode(err, 'run_not_terminal') && !RuntrailError.isCode(err, 'run_not_found')) throw err;
        skipped.push({ id: run.id, reason: err.message });
      }
      progress.update(deleted.length + skipped.length, Math.max(ended, deleted.length + skipped.length));
    }
  } finally {
    process.off('SIGINT', onSigint);
    progress.end();
  }
  if (flags.json) printJson({ createdBefore: cutoff, deleted, skipped, left: going, ...(interrupted ? { interrupted: true } : {}) });
  else for (const id of deleted) print(id);
  for (const s of skipped) process.stderr.write(`runtrail: left run ${s.id}: ${s.reason}\n`);
  process.stderr.write(
    `runtrail: deleted ${deleted.length} run(s) created before ${cutoff}, each with the runs under it${skipped.length > 0 ? `; ${skipped.length} left (above)` : ''}${leftNote}${interrupted ? '; stopped by Ctrl-C, run it again to go on' : ''}\n`,
  );
  if (interrupted) process.exit(EXIT_INTERRUPTED);
}

/** Every ended run the filter matches, oldest pages last, read a page at a time (a cursor is an id: deleting does not move it). */
async function* endedRuns(client: RuntrailClient, filter: RunsFilter): AsyncGenerator<Run> {
  let cursor: string | undefined;
  do {
    const page = await client.listRuns({ ...filter, limit: PAGE, ...(cursor ? { cursor } : {}) });
    for (const run of page.runs) if (isTerminalStatus(run.status)) yield run;
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
}

function summary(run: Run) {
  return { id: run.id, name: run.name, status: run.status, createdAt: run.createdAt };
}

/** Asks on the terminal; without one, refuses rather than delete unasked. */
async function confirm(question: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new RuntrailError('invalid_request', `${question} Not asked: stdin is not a terminal; pass --yes to delete, or --dry-run to list them`);
  }
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  // Ctrl-C at the prompt is an interrupt, said as one: unheard, readline rejected the question with an AbortError stack.
  prompt.on('SIGINT', () => {
    process.stderr.write('\nruntrail: nothing deleted (Ctrl-C)\n');
    process.exit(EXIT_INTERRUPTED);
  });
  try {
    const answer = await prompt.question(`runtrail: ${question} [y/N] `);
    if (!/^y(es)?$/i.test(answer.trim())) throw new RuntrailError('invalid_request', 'nothing deleted (not confirmed)');
  } catch (err) {
    // Ctrl-D (the input ended) rejects the question with an AbortError: no answer, so no yes.
    if ((err as NodeJS.ErrnoException).code !== 'ABORT_ERR') throw err;
    process.stderr.write('\n');
    throw new RuntrailError('invalid_request', 'nothing deleted (not confirmed)');
  } finally {
    prompt.close();
  }
}
