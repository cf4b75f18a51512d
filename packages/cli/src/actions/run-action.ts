import type { Command } from 'commander';
import type { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { clientFor } from '../client.js';
import { printJson } from '../output.js';

/**
 * The action of a command that acts on one run (`cancel`, `retry`): ask
 * the server, then print the run it answers as JSON with `--json`, else as
 * `show` words it, so every such command treats `--json` the same way.
 */
export function runAction<F extends { json?: boolean }>(
  call: (client: RuntrailClient, id: string, flags: F) => Promise<Run>,
  show: (run: Run, id: string, flags: F) => void,
): (id: string, flags: F, cmd: Command) => Promise<void> {
  return async (id, flags, cmd) => {
    const run = await call(clientFor(cmd), id, flags);
    if (flags.json) return printJson(run);
    show(run, id, flags);
  };
}
