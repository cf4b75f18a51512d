import { closeSync, existsSync, fstatSync, mkdirSync, openSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import type WebSocketClass from 'ws';
import { RunStopped, RuntrailClient, watchRun, type RunHandle, type ServerChange, type WebSocketConstructor } from '@runtrail/client';
import { FolderCollector, ProcessStartError, failureMessage, folderState, handleSink, runEnvironment, spawnProcess, startError, type ProcessResult } from '@runtrail/client/node';
import { OUTPUT_LOG_ARTIFACT, RuntrailError, dashboardRunPath, isTerminalStatus, type Run } from '@runtrail/protocol';
import type { RunningServer, ServerConfigInput } from '@runtrail/server';
import { resolveServer } from '../client.js';
import { CLI_TOKEN_HINT, parseLabels } from '../options.js';
import { EXIT_INTERRUPTED, EXIT_READER_GONE, oneLineSafe, terminalHungUp, whenStdoutReaderGoes } from '../output.js';
import { LiveLine, statusLine } from '../watch-line.js';
import type { EarlySignals } from '../commands/exec.js';

export interface ExecFlags {
  name?: string;
  /** Durations, in milliseconds (see durationOption). */
  timeout?: number;
  idleTimeout?: number;
  killGrace: number;
  leaseTtl: number;
  label?: string[];
  dataDir?: string;
  logFile?: string;
  quiet?: boolean;
  collect?: string;
  collectEvery: number;
}

/** Exit code of a command stopped by a time limit, as GNU timeout(1) uses. */
const EXIT_TIMEOUT = 124;
/** Exit codes of a command that could not be started, as a shell gives them: not found, found but not runnable. */
const EXIT_NOT_FOUND = 127;
const EXIT_NOT_EXECUTABLE = 126;
/** Malformed `::runtrail::` lines shown in the terminal; the rest are only in the run's log. */
const BAD_LINES_SHOWN = 5;

/** How long the end may take before exec says what it waits for. */
const END_NOTICE_AFTER_MS = 2_000;
/** How long exec retries a server that does not answer before it gives up, and before it says it waits. */
const START_TIMEOUT_MS = 5_000;
const START_NOTICE_AFTER_MS = 1_000;

/** The promise's outcome; `notice` is called once if it has not settled after `afterMs`. */
async function saidIfSlow<T>(promise: Promise<T>, afterMs: number, notice: () => void): Promise<T> {
  const timer = setTimeout(notice, afterMs);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
  }
}

/** `runtrail exec`: the command as a run; its exit code, and whether exec stopped waiting for a server. */
export async function execCommand(command: string, args: string[], flags: ExecFlags, cmd: Command, early: EarlySignals): Promise<{ code: number; stoppedWaiting: boolean }> {
  // In a terminal, a live progress line stays under the command's output (see LiveLine).
  const live = process.stderr.isTTY === true ? new LiveLine(process.stderr) : null;
  // Every notice may hold the server's words (a cancel reason anyone with a producer token sets, an
  // orphaned run's message, an outage's cause): written terminal-safe, so none can retitle the
  // window or redraw what the user reads.
  const say = (line: string) => {
    const text = `runtrail: ${oneLineSafe(line)}\n`;
    return live ? live.print(process.stderr, text) : process.stderr.write(text);
  };
  const sayStoppedEarly = () => say(`got ${early.got()} before ${command} started: it will not be started`);
  // This module is loaded after the early signals are caught (commands/exec.ts): one may have come while it loaded.
  if (early.signal.aborted) sayStoppedEarly();
  else early.signal.addEventListener('abort', sayStoppedEarly, { once: true });
  // The live line watches the run over a WebSocket: without a terminal (CI, a script) there is no line, and ws is not loaded.
  const WebSocket = live ? (await import('ws')).default : null;
  // The same server every client command uses. Only the default one may be
  // missing: then the run is kept in serve's data dir, so the dashboard of
  // a later `runtrail serve` shows it. A server that was named must answer.
  const target = resolveServer(cmd);
  // What the folder held before the command: read before the run is made,
  // so a --collect that cannot be read is refused with no run left behind.
  const collectDir = flags.collect ? resolve(flags.collect) : null;
  // Alone it did nothing, without a word: a user who meant --collect would find no artifacts after the run.
  if (!collectDir && cmd.getOptionValueSource('collectEvery') === 'cli') {
    throw new RuntrailError('invalid_request', '--collect-every is how often --collect looks at its folder; give it with --collect DIR');
  }
  if (collectDir) await readCollectFolder(collectDir);
  // Asked for by name: a --log-file that cannot be written is refused now, with no run left behind, where
  // it was only a warning in the run's log (the terminal said nothing) and the run linked a file never made.
  if (flags.logFile) checkLogFile(resolve(flags.logFile));
  const other = target.explicit ? null : await otherThanRuntrailAt(target.url);
  const embedded = other === null ? null : await startEmbedded(flags.dataDir);
  if (embedded) {
    const answered = other ? `something other than runtrail answers at ${target.url} (${other})` : `no server answers at ${target.url}`;
    say(`${answered}: running embedded, data in ${embedded.server.config.dataDir} ('runtrail serve' there shows this run)`);
  }
  const url = embedded?.server.url ?? target.url;
  try {
    // An embedded server is on loopback with auth off; any other may need RUNTRAIL_TOKEN.
    // A held heartbeat: a cancel from the dashboard stops the command as it is made, not up to lease/3 later.
    const client = new RuntrailClient({
      url,
      token: embedded ? undefined : process.env.RUNTRAIL_TOKEN || undefined,
      tokenHint: CLI_TOKEN_HINT,
      startTimeoutMs: START_TIMEOUT_MS,
      producer: { holdHeartbeat: true },
    });
    const creating = client.createRun(
      {
        name: flags.name ?? defaultRunName(command, args),
        input: { command, args, cwd: process.cwd() },
        labels: parseLabels(flags.label ?? []),
        leaseTtlMs: flags.leaseTtl,
      },
      { signal: early.signal },
    );
    // createRun retries a server that is down or restarting (one started just before exec is not
    // an error): said once, so the wait before "no server answers" is not silence.
    let run: RunHandle;
    try {
      run = await saidIfSlow(creating, START_NOTICE_AFTER_MS, () =>
        say(`waiting for the server at ${url} to answer, for up to ${START_TIMEOUT_MS / 1000} s (the run is made there before the command starts)`),
      );
    } catch (err) {
      const gotSignal = early.got();
      if (gotSignal === null) throw err;
      say(`no run was made at ${url}`);
      return { code: 128 + constants.signals[gotSignal], stoppedWaiting: false };
    }
    const stoppedEarly = early.got();
    if (stoppedEarly !== null) {
      // The attempt in flight when the signal came made the run: it ends now, saying why, not orphaned a lease later.
      try {
        const ended = await endQuietly(run, () => run.cancelled(`runtrail exec got ${stoppedEarly} before the command started`));
        say(ended ? `run ${run.id} ${describe(ended)}` : `run ${run.id} was already ended on the server`);
      } catch (err) {
        say(`could not record the end of run ${run.id}: ${(err as Error).message}`);
      } finally {
        run.close();
      }
      return { code: 128 + constants.signals[stoppedEarly], stoppedWaiting: false };
    }
    say(`run ${run.id} on ${url}`);
    // An embedded server's page lasts as long as this command; `runtrail serve` in its data dir shows the run after.
    say(`dashboard${embedded ? ' (while this runs)' : ''}: ${url}${dashboardRunPath(run.id)}`);
    const logFile = flags.logFile
      ? resolve(flags.logFile)
      : embedded
        ? join(embedded.server.config.dataDir, 'logs', `${run.id}.log`)
        : undefined;
    // A link, not stored content: the log is still being written.
    if (logFile) run.event('artifact', { name: OUTPUT_LOG_ARTIFACT, uri: pathToFileURL(logFile).href, contentType: 'text/plain' });
    // A server elsewhere cannot read a file here: the whole output goes to a
    // temporary file, stored on the server as the run's output.log when the
    // command ends (what GET /runs/:id/log and the page's download serve).
    const logToStore = logFile ? null : openOutputLog(run.id, say);

    // Ctrl-C reaches only our process group (the command has its own): pass
    // it on as the terminal would have, SIGINT first (interrupt() escalates).
    // SIGTERM stops it the way a timeout does, and so does SIGHUP: a closed
    // terminal (ssh dropped, tmux window killed) would otherwise kill exec by
    // default and leave its command running in its own group, and its run
    // to the reaper a lease later.
    const terminated = new AbortController();
    /** The signal that stopped exec while its command ran: exec then exits as a shell reports a process that signal ended. */
    let stoppedBy: 'SIGTERM' | 'SIGHUP' | null = null;
    let interruptedByUser = false;
    let child: ReturnType<typeof spawnProcess> | null = null;
    // Once the command has ended, Ctrl-C stops waiting for the server to record the run's end.
    let commandEnded = false;
    const stopWaiting = new AbortController();
    const onInterrupt = () => {
      if (commandEnded) return stopWaiting.abort();
      if (!interruptedByUser) say(`interrupting ${command} (SIGINT to its process group; Ctrl-C again to stop it harder)`);
      interruptedByUser = true;
      if (child) child.interrupt('was interrupted (Ctrl-C)');
      else terminated.abort(new Error('runtrail exec got SIGINT'));
    };
    const onStop = (signal: 'SIGTERM' | 'SIGHUP', why: string) => {
      if (!commandEnded) stoppedBy ??= signal;
      terminated.abort(new Error(`runtrail exec got ${signal}${why}`));
    };
    const onTerminate = () => onStop('SIGTERM', '');
    const onHangup = () => {
      terminalHungUp();
      onStop('SIGHUP', ' (its terminal closed)');
    };
    // The reader of our stdout went away (`runtrail exec -- job | head`): as the shell's SIGPIPE
    // would have, the command is stopped, and the run ends cancelled saying why, rather than exec
    // dying mid-run (the run then reaped orphaned) or the job running on with no reader.
    let stdoutGone = false;
    const readerGone = new AbortController();
    const forgetReader = whenStdoutReaderGoes(() => {
      stdoutGone = true;
      readerGone.abort(new Error("its output's reader went away (stdout closed, as by | head)"));
    });
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onTerminate);
    process.on('SIGHUP', onHangup);
    // Handed over with no gap: everything since the run was made ran without yielding, so no signal came in between.
    early.remove();
    run.onServerChange((change) => sayServerChange(change, run, url, flags.leaseTtl, say));
    // The run ended without us while the command runs (reaped orphaned after an outage, a timeout):
    // the handle's signal stops the command (below), and the user hears at once what happened.
    // A cancel keeps its own path: its reason is said when the run ends.
    let endedElsewhere: Promise<Run | null> | null = null;
    run.signal.addEventListener(
      'abort',
      () => {
        const why = run.signal.reason as unknown;
        if (commandEnded || (why instanceof RunStopped && why.kind === 'cancel_requested')) return;
        endedElsewhere = client.getRun(run.id).then(
          (ended) => {
            say(`${endedText(ended, command)}; stopping ${command} (SIGTERM to its process group, SIGKILL after ${flags.killGrace} ms): its output can no longer be recorded in the run`);
            return ended;
          },
          (err: unknown) => {
            say(`run ${run.id} ${why instanceof RunStopped ? why.why : 'ended on the server'} (${(err as Error).message} when asked for how); stopping ${command}: its output can no longer be recorded in the run`);
            return null;
          },
        );
      },
      { once: true },
    );
    const progress = live && WebSocket ? followLine(live, WebSocket, url, embedded ? undefined : process.env.RUNTRAIL_TOKEN || undefined, run.id) : null;
    // The last status line stays above the closing lines.
    const endLine = async () => {
      await progress?.stop();
      live?.end();
    };
    let badLines = 0;
    let collector: FolderCollector | null = null;
    try {
      if (collectDir) collector = await FolderCollector.start(collectDir, (name, path, replace) => run.artifact(name, { path }, { replace }), { intervalMs: flags.collectEvery });
      child = spawnProcess(command, args, {
        sink: handleSink(run),
        env: runEnvironment({ runId: run.id, url }),
        signal: AbortSignal.any([terminated.signal, run.signal, readerGone.signal]),
        echo: flags.quiet
          ? false
          : (stream, bytes) => {
              // Nothing more is echoed once a reader went away (with `2>&1 | head`, both streams' reader).
              if (stdoutGone) return;
              const to = stream === 'stdout' ? process.stdout : process.stderr;
              if (live) live.print(to, bytes);
              else to.write(bytes);
            },
        onBadLine: (reason, line) => {
          badLines++;
          if (badLines <= BAD_LINES_SHOWN) say(`ignored a malformed ::runtrail:: line (${reason}): ${clip(line, 200)}`);
          if (badLines === BAD_LINES_SHOWN + 1) say(`more malformed ::runtrail:: lines are only in the run's log`);
        },
        ...(logFile ? { logFile } : {}),
        ...(logToStore ? { logFile: logToStore.fd, logFileLabel: `the run's ${OUTPUT_LOG_ARTIFACT}, stored when the command ends` } : {}),
        // What is piped into exec is the command's, as a shell would give it. Not a terminal: the command's
        // group is not the terminal's foreground group, so reading it would stop the command (SIGTTIN).
        stdin: process.stdin.isTTY ? 'ignore' : 'inherit',
        killGraceMs: flags.killGrace,
        ...optional('timeoutMs', flags.timeout),
        ...optional('idleTimeoutMs', flags.idleTimeout),
      });
      const result = await child.result;
      commandEnded = true;
      if (result.sinkError) say(`some of the command's output was not recorded: ${result.sinkError.message}`);
      /** The command's last files, its whole output, then the run's end: all from the server. */
      const recordEnd = async (): Promise<Run | null> => {
        if (collector) {
          const collected = await collector.finish();
          // The command replaced or hid the folder: its run still ends as the command did.
          if (collected.unreadable) say(`cannot read ${collectDir} at the end (${collected.unreadable}): files written there since the last look were not stored`);
          if (collected.stored.length > 0) say(`stored ${collected.stored.length} artifact(s) from ${collectDir}: ${collected.stored.join(', ')}`);
          // Said, not silent: a mistyped --collect (or a command that wrote elsewhere) stored nothing, and looked like success.
          else if (!collected.unreadable && collected.skipped.length === 0) {
            say(`stored no artifact from ${collectDir}: ${statSync(collectDir!, { throwIfNoEntry: false }) ? 'the command wrote no new file there' : 'there is no such folder (did the command write its files elsewhere?)'}`);
          }
          // Quoted, so a name with a newline or escape in it cannot break or forge the lines around it.
          for (const { name, reason } of collected.skipped) say(`${JSON.stringify(name)} was not stored as an artifact: ${reason}`);
        }
        // After the command's own files, so theirs keep the first ordinals. A run ended without us
        // takes no more (said when it ended).
        if (logToStore && !endedElsewhere) await storeOutputLog(run, logToStore, say);
        return end(run, result);
      };
      const code = interruptedByUser
        ? EXIT_INTERRUPTED
        : stoppedBy
          ? 128 + constants.signals[stoppedBy]
          : stdoutGone && result.reason === 'aborted'
            ? EXIT_READER_GONE
            : exitCodeOf(result);
      // A server that went away is retried for minutes: say so rather than hang in silence.
      const notice = setTimeout(
        () => say(`waiting for the server at ${url} to record how run ${run.id} ended (it is retried for up to 5 min; Ctrl-C stops waiting)`),
        END_NOTICE_AFTER_MS,
      );
      const stopped = new Promise<'stopped'>((resolve) => stopWaiting.signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
      try {
        const ended = await Promise.race([recordEnd(), stopped]);
        await endLine();
        if (ended === 'stopped') {
          say(`stopped waiting: the server has not recorded how run ${run.id} ended; it ends it orphaned once its lease lapses`);
          return { code, stoppedWaiting: true };
        }
        // How it ended, when the server says: the line is still true without it (the server just refused our end).
        const already = ended ? null : await (endedElsewhere ?? client.getRun(run.id).catch(() => null));
        say(ended ? `run ${run.id} ${describe(ended)}` : `run ${run.id} was already ended on the server${already ? `: ${describe(already)}` : ''}`);
      } catch (err) {
        // The command ran; its exit code is what scripts calling us depend
        // on, whether or not the server could be told how it ended.
        say(`could not record the end of run ${run.id}: ${(err as Error).message}`);
      } finally {
        clearTimeout(notice);
      }
      return { code, stoppedWaiting: false };
    } catch (err) {
      if (err instanceof ProcessStartError) {
        // ENOENT names neither the folder looked in nor what was missing (the program, or its #! interpreter),
        // EACCES not why it may not run: said as ctx.exec says it.
        const { message } = startError(err, command, process.cwd(), 'the folder runtrail exec was run in') as Error;
        await endQuietly(run, () => run.fail(message, 'error'));
        say(message);
        return { code: err.code === 'EACCES' ? EXIT_NOT_EXECUTABLE : EXIT_NOT_FOUND, stoppedWaiting: false };
      }
      // Whatever stopped us, the run gets its one end and the reason now,
      // rather than staying "running" until its lease lapses.
      await endQuietly(run, () => run.fail(`runtrail exec stopped: ${(err as Error).message}`, 'error')).catch((endErr: unknown) =>
        say(`could not record the end of run ${run.id}: ${(endErr as Error).message}`),
      );
      throw err;
    } finally {
      collector?.stop();
      // After Ctrl-C stopped the wait, the upload may still be retried until the process exits.
      logToStore?.close({ stillRead: stopWaiting.signal.aborted });
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onTerminate);
      process.off('SIGHUP', onHangup);
      forgetReader();
      await endLine();
      run.close();
    }
  } finally {
    await embedded?.close();
  }
}

/** The temporary copy of the command's whole output, to be stored on a server elsewhere. */
interface OutputLog {
  /** Where the command's output is written. */
  fd: number;
  /** A path that reads it from its start (a path, so an upload cut by an outage is retried). */
  path: string;
  /**
   * Remove it. `stillRead`: an upload may still open it; its descriptor is then
   * left to the process's exit, as closed its number could name another file by then.
   */
  close(options: { stillRead: boolean }): void;
}

/**
 * The output log is made under its name (`runtrail-exec-<run id>.log` in
 * the OS temp dir; exclusive, owner-only) and unlinked at once: only this
 * process's descriptor holds it, so the kernel frees it however exec ends.
 * A killed exec runs no cleanup (SIGKILL and the OOM killer end it past
 * its `finally`), and a CI machine running thousands of execs filled its /tmp.
 * The other ways cover less: the group watchdog exits when the command
 * does, while exec may then spend minutes storing the log on a server
 * that went away; a later exec sweeping the files of dead ones needs a
 * later exec on that machine. The upload reads it through /proc/self/fd,
 * a fresh open of the same file from its start. Where there is no /proc,
 * the file keeps its name and is removed when exec ends (a kill leaves it).
 * Null, said, if it cannot be made: the run's log events still have the output.
 */
function openOutputLog(runId: string, say: (line: string) => void): OutputLog | null {
  const name = join(tmpdir(), `runtrail-exec-${runId}.log`);
  let fd: number;
  try {
    fd = openSync(name, 'wx', 0o600);
  } catch (err) {
    say(`the command's whole output is not kept (cannot make ${name}: ${(err as Error).message}); what it prints is in the run's log events, up to 100 lines a second`);
    return null;
  }
  const unnamed = existsSync(`/proc/self/fd/${fd}`);
  if (unnamed) unlinkSync(name);
  return {
    fd,
    path: unnamed ? `/proc/self/fd/${fd}` : name,
    close({ stillRead }) {
      if (unnamed && stillRead) return;
      closeSync(fd);
      if (!unnamed) rmSync(name, { force: true });
    },
  };
}

/** Store the command's whole output as the run's output.log; an empty one is not stored. */
async function storeOutputLog(run: RunHandle, log: OutputLog, say: (line: string) => void): Promise<void> {
  if (fstatSync(log.fd).size === 0) return;
  try {
    await run.artifact(OUTPUT_LOG_ARTIFACT, { path: log.path }, { contentType: 'text/plain; charset=utf-8' });
  } catch (err) {
    say(`the command's whole output was not stored on the server (${(err as Error).message}); what it printed is in the run's log events, up to 100 lines a second`);
  }
}

/** HH:MM:SSZ: the wall-clock times of an outage, in UTC as the server's own times are. */
function clockTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)}Z`;
}

/** Why a request found no server, in a few words: ECONNREFUSED, a timeout, the server's 503. */
function outageReason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause) {
    const { code, message } = cause;
    return code && message && !message.includes(code) ? `${code}: ${message}` : (message ?? code ?? err.message);
  }
  if (err instanceof RuntrailError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * An outage said once as it starts (the handle retries all along) and once
 * as it ends, with whether the events of the command's output it held back
 * are now stored: the user must not learn of it only when the run was
 * reaped, a lease after the server went.
 */
function sayServerChange(change: ServerChange, run: RunHandle, url: string, leaseTtlMs: number, say: (line: string) => void): void {
  if (change.state === 'not_answering') {
    const lapses = change.leaseExpiresAt === null ? '' : `; the run ends orphaned if no heartbeat reaches it by ${clockTime(change.leaseExpiresAt)} (lease ${leaseTtlMs / 1000} s)`;
    say(`server ${url} not answering since ${clockTime(change.since)} (${outageReason(change.error)}); retrying${lapses}`);
    return;
  }
  const back = `server ${url} answering again after ${Math.round((change.at - change.since) / 100) / 10} s`;
  // Everything queued during the outage, sent with the ids it had then: stored once, however often it was retried.
  // The run ended meanwhile (reaped): the line about its end says what became of the command's output.
  const endedMeanwhile = () => run.signal.aborted && !(run.signal.reason instanceof RunStopped && run.signal.reason.kind === 'cancel_requested');
  run.flush().then(
    () => say(endedMeanwhile() ? back : `${back}; nothing lost`),
    (err: unknown) => say(endedMeanwhile() ? back : `${back}; not all of the command's output was recorded: ${(err as Error).message}`),
  );
}

/** How the run ended without exec, in the server's words (who ended it and why). */
function endedText(run: Run, command: string): string {
  const how = run.error ? `${run.status} (${run.error.kind}: ${run.error.message})` : run.status;
  return isTerminalStatus(run.status)
    ? `run ${run.id} was ended on the server while ${command} ran: ${how}`
    : `run ${run.id} was taken over by ${run.owner ? `${run.owner.kind} ${run.owner.id} on ${run.owner.node}` : 'another owner'} while ${command} ran`;
}

/** Write the run's one end from how the command ended; null if the server already ended it. */
async function end(run: RunHandle, result: ProcessResult): Promise<Run | null> {
  if (result.reason === 'timeout' || result.reason === 'idle_timeout') return endQuietly(run, () => run.fail(failureMessage(result), 'timeout'));
  if (result.reason === 'aborted') return endQuietly(run, () => run.cancelled(result.message));
  if (result.exitCode === 0) return endQuietly(run, () => run.succeed({ exitCode: 0 }));
  return endQuietly(run, () => run.fail(failureMessage(result), 'error'));
}

async function endQuietly(run: RunHandle, finish: () => Promise<Run>): Promise<Run | null> {
  try {
    return await finish();
  } catch (err) {
    // The run already has its one end (cancelled while queued, reaped): that end stands.
    if (RuntrailError.isCode(err, 'run_already_terminal')) return null;
    throw err;
  }
}

function exitCodeOf(result: ProcessResult): number {
  if (result.reason === 'timeout' || result.reason === 'idle_timeout') return EXIT_TIMEOUT;
  if (result.signal) return 128 + (constants.signals[result.signal] ?? 0);
  return result.exitCode ?? 1;
}

function describe(run: Run): string {
  const s = run.snapshot;
  const counters = Object.entries(s.counters.named).map(([k, v]) => `${k}=${v}`);
  const calls = s.counters.ok + s.counters.failed > 0 ? [`calls ok=${s.counters.ok} failed=${s.counters.failed}`] : [];
  const extra = [...calls, ...counters].join(', ');
  // The error's first line: the stderr lines after it were just printed above.
  return `${run.status}${run.error ? ` (${run.error.kind}: ${run.error.message.split('\n')[0]})` : ''}${extra ? `; ${extra}` : ''}`;
}

/**
 * Whether a runtrail server answers at `url` (its health route, within a
 * second): null if one does, else what answered instead (another web server
 * on the port), or "" when nothing did.
 */
async function otherThanRuntrailAt(url: string): Promise<string | null> {
  let res: Response;
  try {
    res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
  } catch (err) {
    // Refused, timed out, not HTTP: nothing usable answers there, which is what we ask.
    void err;
    return '';
  }
  if (!res.ok) {
    await res.body?.cancel();
    return `HTTP ${res.status} for /healthz`;
  }
  // A runtrail names its node; another server's 200 (a catch-all page, not JSON) is not one.
  const body = (await res.json().catch((err: unknown) => ({ notJson: err }))) as { node?: unknown } | null;
  return typeof body?.node === 'string' ? null : `its /healthz is not runtrail's`;
}

async function startEmbedded(dataDir: string | undefined): Promise<{ server: RunningServer; close(): Promise<void> }> {
  const options: ServerConfigInput = {
    // Unset: RUNTRAIL_DATA_DIR, else serve's default, as the server's config decides.
    ...(dataDir ? { dataDir } : {}),
    port: 0,
    host: '127.0.0.1',
    // A node name of its own: at start-up a server ends the runs its node's
    // executor held before, which must never hit a `runtrail serve` sharing
    // this data dir. It executes no handlers, so it claims nothing.
    node: `exec-${process.pid}`,
    concurrency: 0,
    // The command's output goes to this terminal; server logs would be mixed into it.
    ...(process.env.RUNTRAIL_LOG_LEVEL ? {} : { logLevel: 'silent' as const }),
  };
  // Loaded only when needed: with a server, exec is a pure client and starts faster.
  const { startServer } = await import('@runtrail/server');
  // exec's own SIGINT/SIGTERM steps stop the command and then record its end through this server: a signal must not close it first.
  const server = await startServer({ ...options, stopOnSignals: false });
  return { server, close: () => server.close() };
}

/**
 * Draw the run's status line (the one `tail` and `demo` draw) from the
 * server's view of the run, until stopped.
 */
function followLine(live: LiveLine, WebSocket: typeof WebSocketClass, url: string, token: string | undefined, runId: string): { stop(): Promise<void> } {
  const watch = watchRun(runId, { url, token, tokenHint: CLI_TOKEN_HINT, WebSocket: WebSocket as unknown as WebSocketConstructor });
  const unsubscribe = watch.subscribe(() => live.draw(statusLine(watch.getState(), url)));
  let stopped = false;
  return {
    async stop() {
      if (stopped) return;
      stopped = true;
      // The end the command's runner just wrote, if the stream brings it promptly.
      // (A watch that failed has nothing more to draw; the run's end is said below either way.)
      await Promise.race([watch.done.catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
      live.draw(statusLine(watch.getState(), url));
      unsubscribe();
      watch.close();
    },
  };
}

/**
 * `python3 -u train.py --lr 3` is named "python3 train.py": a script run by
 * an interpreter is known by its script, and a list of runs all named
 * "python3" says nothing. Without a script (`make`, `sh -c '…'`), the
 * command's name.
 */
function defaultRunName(command: string, args: readonly string[]): string {
  const program = basename(command);
  const script = args.find((arg) => !arg.startsWith('-'));
  return script !== undefined && isFile(script) ? `${program} ${basename(script)}` : program;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch (err) {
    // Not there or not readable (ENOENT, ENOTDIR, EACCES …): not a script to name the run after.
    void err;
    return false;
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function optional<K extends string>(key: K, value: number | undefined): { [P in K]?: number } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: number };
}

/** Opens `path` for appending as the run's output log will (its folder made if missing, one level, as there). */
function checkLogFile(path: string): void {
  const folder = dirname(path);
  try {
    if (!existsSync(folder)) mkdirSync(folder);
    closeSync(openSync(path, 'a'));
  } catch (err) {
    throw new RuntrailError('invalid_request', `--log-file ${path}: cannot write there (${(err as Error).message})`);
  }
}

/** folderState of a --collect folder, or an error naming the flag: a file in its place, or one it cannot read. */
async function readCollectFolder(dir: string): Promise<void> {
  try {
    await folderState(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOTDIR' ? 'it is not a folder' : `it cannot be read (${code ?? (err as Error).message})`;
    throw new RuntrailError('invalid_request', `--collect ${dir}: ${why}`);
  }
}
