import { resolve } from 'node:path';
import type { Command } from 'commander';
import { EXPORT_RUNS_HEADER, EXPORT_STATUS_HEADER, RuntrailError, isTerminalStatus, type RunStatus } from '@runtrail/protocol';
import { clientFor } from '../client.js';
import { plural, print, printJson, terminalSafe } from '../output.js';
import { downloadTarget, fileToUpload, saveDownload, stdinUpload } from '../transfer.js';

/** `runtrail export RUN`. */
export async function exportRun(runId: string, flags: { output?: string; family?: boolean; progress?: boolean }, cmd: Command): Promise<void> {
  const family = flags.family === true;
  const target = await downloadTarget(flags.output, `runtrail-${runId}${family ? '-family' : ''}.tar`);
  // A tar in a terminal is garbage on the screen (and may leave it in a strange state), as
  // import refuses a terminal for its stdin: said before anything is asked of the server.
  if (target === '-' && process.stdout.isTTY) {
    throw new RuntrailError('invalid_request', 'stdout is a terminal: -o - writes a binary archive; pipe it (runtrail export ID -o - | runtrail import -) or name a file with -o');
  }
  const response = await clientFor(cmd).exportRun(runId, { family });
  const runs = Number(response.headers.get(EXPORT_RUNS_HEADER) ?? 1);
  await saveDownload(response, target, family ? `exporting run ${runId} with ${plural(runs - 1, 'run')} under it` : `exporting run ${runId}`, flags.progress);
  if (target !== '-') process.stderr.write(`runtrail: wrote ${target}${family ? ` (${plural(runs, 'run')})` : ''}\n`);
  // The archive is whole, but of a run that had not ended: an import refuses it, which a backup taken now would only show when it is needed.
  const status = response.headers.get(EXPORT_STATUS_HEADER);
  if (status !== null && !isTerminalStatus(status as RunStatus)) {
    process.stderr.write(`runtrail: run ${runId} is ${status}: the archive holds its events so far, and an import takes only ended runs; export it again once it ends\n`);
  }
}

/** `runtrail import FILE`. */
export async function importRun(file: string, flags: { progress?: boolean; json?: boolean }, cmd: Command): Promise<void> {
  // `-`: stdin, so `runtrail export ID -o - | runtrail import - --server OTHER` copies a run without a file between.
  const upload = file === '-' ? stdinUpload(flags.progress) : await fileToUpload(resolve(file), 'importing', flags.progress);
  const { run, runs, imported } = await upload.progress.until(
    clientFor(cmd).importArchive(upload.content, upload.size === null ? {} : { size: upload.size }),
    'nothing was imported; try again',
    (sentWhole) =>
      sentWhole
        ? 'the archive was sent whole, so the server may still import it (`runtrail runs ls` shows whether it did; importing it again is safe)'
        : 'nothing was imported',
  );
  if (flags.json) return printJson(run);
  // The id on stdout (`id=$(runtrail import run.tar)`), as retry prints the new run's; the summary is for the person.
  print(run.id);
  const under = runs > 1 ? `, with ${plural(runs - 1, 'run')} under it` : '';
  // The name is the archive's (the server checks only its length): terminal-safe, as every run name shown.
  const summary = `run ${run.id} (${terminalSafe(run.name)}, ${run.status}, ${plural(run.seq, 'event')}, ${plural(run.snapshot.artifacts.length, 'artifact')})${under}`;
  // A repeat (say, after a lost answer) is not a failure: the server holds what the archive does.
  process.stderr.write(imported ? `imported ${summary}\n` : `${summary} was here already as the archive holds it; nothing changed\n`);
}
