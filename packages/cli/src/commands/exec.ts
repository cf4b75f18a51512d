import type { Command } from 'commander';
import { CreateRunBody, DEFAULT_LEASE_TTL_MS } from '@runtrail/protocol';
import type { ExecFlags } from '../actions/exec.js';
import { DURATION_HELP, durationOption } from '../duration.js';
import { apiText, collect } from '../options.js';
import { terminalHungUp } from '../output.js';

/**
 * The defaults of @runtrail/client/node's DEFAULT_KILL_GRACE_MS and DEFAULT_COLLECT_INTERVAL_MS,
 * for the help: importing that module would load the SDK for every command, --help and --version
 * too (test/startup.test.ts checks they agree).
 */
export const KILL_GRACE_DEFAULT_MS = 5_000;
export const COLLECT_EVERY_DEFAULT_MS = 2_000;

export function registerExec(program: Command): void {
  program
    .command('exec')
    .description(
      'run a command as a run: its output becomes log events, its "::runtrail:: {json}" lines become events, and runtrail exits with its exit code',
    )
    .usage('[options] -- <command> [args...]')
    .argument('<command>', 'the command to run')
    .argument('[args...]', 'its arguments (put -- before the command so its options are not read as ours)')
    .option('--name <name>', 'run name (default: the command name, with the script it runs: "python3 train.py")', apiText('--name', CreateRunBody.shape.name))
    .addOption(durationOption('--timeout', 'stop the command (SIGTERM to its process group, then SIGKILL) after this long'))
    .addOption(durationOption('--idle-timeout', 'stop it after this long without any output'))
    .addOption(durationOption('--kill-grace', 'time between SIGTERM and SIGKILL', KILL_GRACE_DEFAULT_MS))
    .addOption(
      durationOption('--lease-ttl', "the run's lease: if this process dies, the run ends orphaned this long after", DEFAULT_LEASE_TTL_MS, CreateRunBody.shape.leaseTtlMs.unwrap()),
    )
    .option('--label <k=v>', 'a label of the run (repeatable)', collect)
    .option('--data-dir <dir>', "when no server answers and exec runs embedded: its data dir (env RUNTRAIL_DATA_DIR; default ./.runtrail, serve's)")
    .option('--log-file <path>', "also write the command's whole output here, unthrottled (default with an embedded server and a data dir: <data-dir>/logs/<run id>.log)")
    .option('--quiet', "do not copy the command's output to this terminal")
    .option('--collect <dir>', 'store the files the command writes into this folder as artifacts of the run, as they are written and when it ends')
    .addOption(durationOption('--collect-every', 'how often --collect looks at its folder while the command runs; a file is stored once it stayed the same that long', COLLECT_EVERY_DEFAULT_MS))
    .addHelpText('after', DURATION_HELP)
    .action(async (command: string, args: string[], flags: ExecFlags, cmd: Command) => {
      const early = catchEarlySignals();
      try {
        const { execCommand } = await import('../actions/exec.js');
        const { code, stoppedWaiting } = await execCommand(command, args, flags, cmd, early);
        // The user stopped waiting for a server that does not answer: the retries still pending must not keep us.
        if (stoppedWaiting) process.exit(code);
        process.exitCode = code;
      } finally {
        early.remove();
      }
    });
}

type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';
const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface EarlySignals {
  /** Aborts at the first stopping signal. */
  signal: AbortSignal;
  /** That signal, or null while none came. */
  got(): StopSignal | null;
  remove(): void;
}

/**
 * The stopping signals that come before exec's own handlers are on: while
 * the run is made, which waits up to START_TIMEOUT_MS (actions/exec.ts) for a server still
 * starting. By default one killed exec there, and a run the server made
 * meanwhile was left with no command, to end orphaned a lease later. Caught,
 * a signal stops the wait; a run made all the same ends cancelled naming
 * it, and exec exits as it does for a signal.
 */
function catchEarlySignals(): EarlySignals {
  const stop = new AbortController();
  let got: StopSignal | null = null;
  const onSignal = (signal: StopSignal) => {
    if (signal === 'SIGHUP') terminalHungUp();
    got ??= signal;
    stop.abort(new Error(`runtrail exec got ${signal}`));
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return {
    signal: stop.signal,
    got: () => got,
    remove: () => {
      for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    },
  };
}
