import type { Command } from 'commander';
import { clientFor } from '../client.js';
import { print, printJson } from '../output.js';

/** `runtrail delete ID`. */
export async function deleteRun(id: string, flags: { json?: boolean }, cmd: Command): Promise<void> {
  await clientFor(cmd).deleteRun(id);
  if (flags.json) return printJson({ id, deleted: true });
  // The id on stdout, as retry and import print theirs; the sentence is for the person.
  print(id);
  process.stderr.write(`deleted run ${id}, with its events, output log and every run under it\n`);
}
