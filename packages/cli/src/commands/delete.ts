import type { Command } from 'commander';
import { clientFor } from '../options.js';
import { print, printJson } from '../output.js';

export function registerDelete(program: Command): void {
  program
    .command('delete <id>')
    .description('delete an ended run with its events, output log and every run under it (a running one must be cancelled first)')
    .option('--json', 'print {"id": ID, "deleted": true} as JSON')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => {
      await clientFor(cmd).deleteRun(id);
      if (flags.json) return printJson({ id, deleted: true });
      // The id on stdout, as retry and import print theirs; the sentence is for the person.
      print(id);
      process.stderr.write(`deleted run ${id}, with its events, output log and every run under it\n`);
    });
}
