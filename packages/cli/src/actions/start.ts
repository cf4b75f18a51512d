import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { RuntrailError, dashboardRunPath } from '@runtrail/protocol';
import { clientFor, serverUrl } from '../client.js';
import { parseLabels } from '../options.js';
import { printJson } from '../output.js';
import { followToEnd } from './tail.js';

export interface StartFlags {
  input?: string;
  label?: string[];
  parent?: string;
  timeout?: number;
  idempotencyKey?: string;
  follow?: boolean;
  giveUpAfter: number;
  json?: boolean;
}

/** `runtrail start HANDLER`. */
export async function startRun(handler: string, flags: StartFlags, cmd: Command): Promise<void> {
  // Taken for a run's time limit, it was ignored and the run started with none: refused, as cancel refuses it without --wait.
  if (!flags.follow && cmd.getOptionValueSource('giveUpAfter') === 'cli') {
    throw new RuntrailError('invalid_request', '--give-up-after is how long --follow waits for a silent server; give it with --follow (--timeout limits the run)');
  }
  const input = flags.input === undefined ? undefined : await readInput(flags.input);
  const client = clientFor(cmd);
  const run = await client
    .startRun(
      {
        name: handler,
        ...(input !== undefined ? { input } : {}),
        ...(flags.label ? { labels: parseLabels(flags.label) } : {}),
        ...(flags.parent !== undefined ? { parentId: flags.parent } : {}),
        ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}),
      },
      flags.idempotencyKey === undefined ? {} : { idempotencyKey: flags.idempotencyKey },
    )
    .catch((err: unknown) => {
      throw inputRefused(err) ? new RuntrailError(err.code, `${err.message}; \`runtrail handlers ${handler}\` shows the input it takes`, err.details) : err;
    });
  if (!flags.follow) {
    if (flags.json) return printJson(run);
    process.stdout.write(`${run.id}\n`);
    process.stderr.write(`run ${run.id} of ${run.name} is ${run.status}: ${serverUrl(cmd)}${dashboardRunPath(run.id)}\n`);
    return;
  }
  process.stderr.write(`run ${run.id} of ${run.name} is ${run.status}; following it (Ctrl-C stops following, not the run)\n`);
  await followToEnd(cmd, run.id, { giveUpAfter: flags.giveUpAfter, json: flags.json });
}

/** An input the handler's schema refused: every issue the server names is in the input (not a label, not the name). */
function inputRefused(err: unknown): err is RuntrailError {
  if (!RuntrailError.isCode(err, 'invalid_request')) return false;
  const issues = (err.details as { issues?: unknown } | undefined)?.issues;
  return (
    Array.isArray(issues) &&
    issues.length > 0 &&
    issues.every((issue: unknown) => {
      const path = (issue as { path?: unknown } | null)?.path;
      return typeof path === 'string' && (path === 'input' || path.startsWith('input.'));
    })
  );
}

/** --input as JSON: the text itself, or the file (or stdin) that @ names; an error names which and why. */
async function readInput(given: string): Promise<unknown> {
  let text = given;
  let from = '--input';
  if (given.startsWith('@')) {
    const path = given.slice(1);
    from = path === '-' ? '--input @- (stdin)' : `--input ${given}`;
    try {
      text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a folder' : `it cannot be read (${code ?? (err as Error).message})`;
      throw new RuntrailError('invalid_request', `${from}: ${why}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const hint = given.startsWith('@') ? '' : ` (quote it for the shell: --input '{"key": "value"}'; a plain string is --input '"text"')`;
    throw new RuntrailError('invalid_request', `${from} is not JSON: ${(err as Error).message}${hint}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
