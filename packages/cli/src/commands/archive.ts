import { createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { clientFor } from '../options.js';

export function registerArchive(program: Command): void {
  program
    .command('export <run>')
    .description('write a run (record, events, artifacts) as one tar archive')
    .option('-o, --output <file>', 'where to write it (default runtrail-<run>.tar; - for stdout)')
    .action(async (runId: string, flags: { output?: string }, cmd: Command) => {
      const response = await clientFor(cmd).exportRun(runId);
      const body = Readable.fromWeb(response.body! as import('node:stream/web').ReadableStream<Uint8Array>);
      if (flags.output === '-') return pipeline(body, process.stdout);
      const target = resolve(flags.output ?? `runtrail-${runId}.tar`);
      await pipeline(body, createWriteStream(target));
      process.stderr.write(`runtrail: wrote ${target}\n`);
    });

  program
    .command('import <file>')
    .description('load a run exported with `runtrail export` into a server; it keeps its id')
    .action(async (file: string, _flags: unknown, cmd: Command) => {
      const run = await clientFor(cmd).importRun({ path: resolve(file) });
      process.stdout.write(`imported run ${run.id} (${run.name}, ${run.status}, ${run.seq} events, ${run.snapshot.artifacts.length} artifacts)\n`);
    });
}
