import { createReadStream, createWriteStream } from 'node:fs';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { HttpApi, toReadableStream } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { clientOptions } from '../options.js';

export function registerArchive(program: Command): void {
  program
    .command('export <run>')
    .description('write a run (record, events, artifacts) as one tar archive')
    .option('-o, --output <file>', 'where to write it (default runtrail-<run>.tar; - for stdout)')
    .action(async (runId: string, flags: { output?: string }, cmd: Command) => {
      const response = await new HttpApi(clientOptions(cmd)).send('exportRun', { params: { id: runId }, timeoutMs: null });
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
      const response = await new HttpApi(clientOptions(cmd)).send('importRun', {
        raw: toReadableStream(createReadStream(resolve(file))) as never,
        headers: { 'content-type': 'application/x-tar' },
        timeoutMs: null,
      });
      const run = (await response.json()) as Run;
      process.stdout.write(`imported run ${run.id} (${run.name}, ${run.status}, ${run.seq} events, ${run.snapshot.artifacts.length} artifacts)\n`);
    });
}
