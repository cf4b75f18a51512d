import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { RuntrailError, dashboardRunPath } from '@runtrail/protocol';
import { DURATION_HELP, durationOption } from '../duration.js';
import { clientFor, collect, parseLabels, serverUrl } from '../options.js';
import { printJson } from '../output.js';
import { followToEnd } from './tail.js';

interface StartFlags {
  input?: string;
  label?: string[];
  parent?: string;
  timeout?: number;
  idempotencyKey?: string;
  follow?: boolean;
  giveUpAfter: number;
  json?: boolean;
}

/** `runtrail start NAME`: what a dashboard's "Start run" does, from a shell or a scheduler. */
export function registerStart(program: Command): void {
  program
    .command('start <handler>')
    .description("queue a run for a handler the server defines (serve --handlers, define()); prints the run's id")
    .option('--input <json>', "the run's input: JSON text, or @FILE for a file that holds it (@- reads stdin)")
    .option('--label <k=v>', 'a label of the run (repeatable)', collect)
    .option('--parent <id>', 'start it as a child of this run')
    .addOption(durationOption('--timeout', 'end the run failed (kind timeout) if it runs longer than this'))
    .option('--idempotency-key <key>', 'the same key again answers the run it started instead of starting another (a retried script)')
    .option('--follow', 'then follow it live until it ends, as `runtrail tail` does, and exit 0 only if it succeeded')
    .addOption(durationOption('--give-up-after', 'with --follow: fail (exit 2) when the server has not answered for this long', 30_000))
    .option('--json', 'print the run as JSON (with --follow, the run as it ended; the status line goes to stderr)')
    .addHelpText(
      'after',
      `\nExamples:\n  runtrail start eval-pipeline --input '{"dataset": "docs-v2"}' --label team=search\n  runtrail start render --input @job.json --follow\n  id=$(runtrail start nightly --idempotency-key "nightly-$(date +%F)")\n${DURATION_HELP}`,
    )
    .action(async (handler: string, flags: StartFlags, cmd: Command) => {
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
    });
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
