import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, statSync, type WriteStream } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LogLevel } from '@runtrail/protocol';
import { longTimeout, type LongTimer } from '../clock.js';
import { onAbort } from '../on-abort.js';
import { groupAlive, processStartTime, signalGroup } from './process-group.js';
import { EchoFilter } from './echo-filter.js';
import { LINE_PREFIX, LineSplitter, parseLine } from './protocol-line.js';
import { durationText, endHeadline, endingText, type SentSignal } from './process-end.js';

/** Where a subprocess's output goes: a RunHandle fits (ctx in a handler, or `runtrail exec`). */
export interface ProcessSink {
  event(type: string, data?: unknown): void;
  /** `output` says which stream of the command printed the line (absent for runtrail's own notes). */
  log(message: string, level?: LogLevel, output?: OutputStream): void;
}

export type OutputStream = 'stdout' | 'stderr';

/** How long a stopped process group has between SIGTERM and SIGKILL, unless told otherwise. */
export const DEFAULT_KILL_GRACE_MS = 5_000;

export interface RunProcessOptions {
  sink?: ProcessSink;
  cwd?: string;
  /** Added to this process's environment (a key set to undefined is removed). */
  env?: Record<string, string | undefined>;
  /** Total time allowed, from spawn. */
  timeoutMs?: number;
  /** Longest time allowed without a byte of output on stdout or stderr. */
  idleTimeoutMs?: number;
  /** After SIGTERM, how long the group has to exit before SIGKILL (default DEFAULT_KILL_GRACE_MS). */
  killGraceMs?: number;
  /** Aborting stops the process the same way a timeout does. */
  signal?: AbortSignal;
  /**
   * Output lines sent as `log` events per second, on stdout and on stderr
   * each (a chatty stdout must not crowd out the errors on stderr); the rest
   * are counted and reported (default 100).
   */
  maxLogLinesPerSecond?: number;
  /** The clock of that per-second window (default the wall clock; a test holds it still to see the bound exactly). */
  now?: () => number;
  /** Longer lines are cut into pieces of this many characters (default 8192). */
  maxLineLength?: number;
  /**
   * Also write every output line here, unthrottled (the per-run log): a
   * path, or a descriptor its owner opened for writing (written from where
   * it stands, never closed here: its owner may read it back, as
   * `runtrail exec` does with a file it has already unlinked).
   */
  logFile?: string | number;
  /** Where the log file's lines end up, as the run's log says it (default the file's path, or `file descriptor N`). */
  logFileLabel?: string;
  /** Cap of the log file (default 64 MiB); output beyond it is only counted. */
  maxLogFileBytes?: number;
  /**
   * Copy the output to this process's stdout/stderr as well, without its
   * `::runtrail::` lines (they are events), byte for byte; a function gets
   * those bytes instead (a terminal UI that draws around it).
   */
  echo?: boolean | ((stream: 'stdout' | 'stderr', bytes: Buffer) => void);
  /**
   * The command's stdin: 'ignore' (the default: /dev/null, as a handler's
   * command has no one to read from) or 'inherit', this process's own (what
   * was piped into `runtrail exec`).
   */
  stdin?: 'ignore' | 'inherit';
  /** Told of each malformed `::runtrail::` line (it is also logged to the run). */
  onBadLine?: (reason: string, line: string) => void;
  /** Record `meta.exec` (command, pid, then exit code/signal/reason) on the sink (default true). */
  recordMeta?: boolean;
}

export type ProcessEndReason = 'exit' | 'timeout' | 'idle_timeout' | 'aborted';

export interface ProcessResult {
  command: string;
  /** The command's pid. */
  pid: number;
  /** Its process group (led by the group watchdog). */
  pgid: number;
  /** null when a signal ended it. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** 'exit': it ended on its own; otherwise the limit or abort that stopped it. */
  reason: ProcessEndReason;
  /**
   * One line saying how it ended and why, for the run's log (and a
   * cancelled run's error): the command by its first line, then `ending`.
   */
  message: string;
  /**
   * How it ended, as said after its command line: `exited with code 1`,
   * `timed out after 5 s: sent SIGTERM, which ended it`, `printed nothing
   * for 400 ms (idle timeout): sent SIGTERM, then SIGKILL after a 2 s grace`.
   */
  ending: string;
  /** The strongest signal runtrail had to send the group, if any (SIGINT: an interrupt was enough). */
  killedWith: 'SIGINT' | 'SIGTERM' | 'SIGKILL' | null;
  durationMs: number;
  lines: number;
  droppedLines: number;
  badLines: number;
  events: number;
  /** The first error the sink threw (e.g. the run ended); output after it was not forwarded. */
  sinkError: Error | null;
  /** The last lines the command printed on stderr (at most STDERR_TAIL_LINES / STDERR_TAIL_BYTES). */
  stderrTail: string[];
  /** The exception line of the last Python traceback or Node stack trace on stderr (`ValueError: bad input`), if any. */
  exception: string | null;
}

export class ProcessStartError extends Error {
  readonly code: string | undefined;
  constructor(command: string, cause: NodeJS.ErrnoException) {
    super(`could not start ${command}: ${cause.message}`);
    this.name = 'ProcessStartError';
    this.code = cause.code;
  }
}

export interface RunningProcess {
  /** The process group id (its leader is the group watchdog, not the command). */
  readonly pgid: number | undefined;
  readonly result: Promise<ProcessResult>;
  /**
   * Stop it as if aborted: SIGTERM to the group, SIGKILL after the grace
   * period. `message` says why, after the command line (default "was stopped").
   */
  stop(message?: string): void;
  /**
   * Stop it as a terminal's Ctrl-C would: SIGINT to the group (Python's
   * KeyboardInterrupt cleanup runs), then SIGTERM after the grace period,
   * then SIGKILL after another. Calling it again takes the next step at once.
   */
  interrupt(message?: string): void;
}

const POLL_MS = 25;
/** The group leader that stops the group when its runner dies; same relative path from src/ and dist/. */
const WATCHDOG = fileURLToPath(new URL('../../bin/group-watchdog.mjs', import.meta.url));

/** What the group watchdog tells its runner over IPC. */
interface WatchdogMessage {
  spawned?: number;
  startError?: { code?: string; message: string };
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}
/** After the group is dead, how long a pipe may stay open (held by a process that left the group). */
const STREAM_CLOSE_GRACE_MS = 1_000;

/** Run a command to its end; see spawnProcess. */
export function runProcess(command: string, args: string[], options: RunProcessOptions = {}): Promise<ProcessResult> {
  return spawnProcess(command, args, options).result;
}

/**
 * Spawn a command in its own process group and follow it: output lines
 * become `log` events (rate-bounded, so a chatty child cannot flood the
 * run) and `::runtrail::` lines become events; a total timeout, an idle
 * timeout or an abort sends SIGTERM to the WHOLE group, then SIGKILL after
 * a grace period. The result resolves only once no live process of the
 * group is left, so nothing the command started outlives it.
 *
 * The group's leader is a small watchdog (bin/group-watchdog.mjs) that runs
 * the command and holds an IPC channel to this process: if this process
 * dies without stopping the group (kill -9, a crash), the channel closes
 * and the watchdog stops the group itself. `meta.exec` records the group
 * and its leader's start time, so a restarted server can stop a group that
 * is still there without ever hitting a reused pid.
 */
export function spawnProcess(command: string, args: string[], options: RunProcessOptions = {}): RunningProcess {
  const commandLine = [command, ...args].map(quote).join(' ');
  const sink = options.sink;
  const killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const maxPerSecond = options.maxLogLinesPerSecond ?? 100;
  const now = options.now ?? Date.now;
  const recordMeta = options.recordMeta !== false;
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  // Python holds stdout written to a pipe until it ends: a script's prints (its progress, its
  // `::runtrail::` lines) would arrive at its end, and an idle timeout would kill a script printing
  // all along. Unbuffered, unless the caller or this process's environment says otherwise.
  if (!Object.hasOwn(options.env ?? {}, 'PYTHONUNBUFFERED') && env.PYTHONUNBUFFERED === undefined) env.PYTHONUNBUFFERED = '1';

  const child: ChildProcess = spawn(process.execPath, [WATCHDOG, String(killGraceMs), command, ...args], {
    cwd: options.cwd,
    env,
    detached: true,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe', 'ipc'],
  });
  let commandPid: number | undefined;

  let stopped: { reason: Exclude<ProcessEndReason, 'exit'>; message: string } | null = null;
  let killedWith: ProcessResult['killedWith'] = null;
  /** The signals sent to the group so far, in order, for the result's message. */
  const sent: SentSignal[] = [];
  /** How many of them had been sent when the command itself ended (the rest went to what it left running). */
  let sentBeforeEnd: number | null = null;
  let killTimer: ReturnType<typeof setTimeout> | null = null;
  let idleTimer: LongTimer | null = null;
  let totalTimer: LongTimer | null = null;
  let sinkError: Error | null = null;
  let lines = 0;
  let droppedLines = 0;
  let badLines = 0;
  let events = 0;
  let windowStart = now();
  const windowCounts: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
  let droppedInWindow = 0;

  const forward = (send: (s: ProcessSink) => void) => {
    if (!sink || sinkError) return;
    try {
      send(sink);
    } catch (err) {
      // The run refused an event (it ended, or its queue is full): stop
      // forwarding rather than fail once per line; the result reports it.
      sinkError = err instanceof Error ? err : new Error(String(err));
    }
  };

  const logFileName =
    options.logFile === undefined || options.logFile === '' ? null : (options.logFileLabel ?? (typeof options.logFile === 'number' ? `file descriptor ${options.logFile}` : options.logFile));

  const reportDropped = () => {
    if (droppedInWindow === 0) return;
    const n = droppedInWindow;
    droppedInWindow = 0;
    forward((s) =>
      s.log(`${n} output line(s) not sent as events (limit ${maxPerSecond}/s on stdout and on stderr)${logFileName ? `; all are in ${logFileName}` : ''}`, 'warn'),
    );
  };

  const logBounded = (message: string, level: LogLevel, output?: OutputStream) => {
    const at = now();
    if (at - windowStart >= 1_000) {
      reportDropped();
      windowStart = at;
      windowCounts.stdout = windowCounts.stderr = 0;
    }
    // runtrail's own notes about the output share stdout's budget.
    const budget = output ?? 'stdout';
    if (windowCounts[budget] >= maxPerSecond) {
      droppedLines++;
      droppedInWindow++;
      return;
    }
    windowCounts[budget]++;
    forward((s) => s.log(message, level, output));
  };

  const logFile = openLogFile(options.logFile, options.maxLogFileBytes ?? 64 * 1024 * 1024, (err) =>
    forward((s) => s.log(`could not write the output log ${typeof options.logFile === 'string' ? options.logFile : `(${logFileName})`}: ${err.message}`, 'warn')),
  );

  const stderr = new StderrWatch();
  const onLine = (stream: OutputStream) => (line: string) => {
    lines++;
    logFile?.write(stream === 'stderr' ? `[stderr] ${line}\n` : `${line}\n`);
    const parsed = parseLine(line);
    if (parsed.kind === 'event') {
      events++;
      forward((s) => s.event(parsed.type, parsed.data));
    } else if (parsed.kind === 'invalid') {
      badLines++;
      options.onBadLine?.(parsed.reason, line);
      logBounded(`ignored a ${LINE_PREFIX} line (${parsed.reason}): ${clip(line, 300)}`, 'warn');
    } else {
      if (stream === 'stderr') stderr.push(line);
      if (line.trim().length > 0) logBounded(line, stream === 'stderr' ? 'warn' : 'info', stream);
    }
  };

  const send = (signal: SentSignal['signal'], after: SentSignal['after']): boolean => {
    if (child.pid === undefined || !signalGroup(child.pid, signal)) return false;
    killedWith = signal;
    sent.push({ signal, after });
    return true;
  };

  let lastSentAt = 0;
  /** The steps of the stop under way, the one sent last first. */
  let pendingSteps: Array<'SIGINT' | 'SIGTERM' | 'SIGKILL'> = [];
  /**
   * Send the first step now; each later one only if the group is still
   * alive a grace period on. `graceRanOut`: sent because the grace period
   * of the step before ran out (else early, or the first).
   */
  const escalate = (steps: Array<'SIGINT' | 'SIGTERM' | 'SIGKILL'>, graceRanOut = false) => {
    if (killTimer) clearTimeout(killTimer);
    killTimer = null;
    const [first, ...rest] = steps;
    pendingSteps = steps;
    if (!first) return;
    send(first, sent.length === 0 ? null : graceRanOut ? { grace: true } : { grace: false, ms: Date.now() - lastSentAt });
    lastSentAt = Date.now();
    if (rest.length === 0) return;
    killTimer = setTimeout(() => {
      if (child.pid !== undefined && groupAlive(child.pid)) escalate(rest, true);
    }, killGraceMs);
  };

  const stop = (reason: Exclude<ProcessEndReason, 'exit'>, message: string, steps: Array<'SIGINT' | 'SIGTERM' | 'SIGKILL'> = ['SIGTERM', 'SIGKILL']) => {
    if (child.pid === undefined) return;
    if (stopped) {
      // Interrupted again (a second Ctrl-C): the next step now rather than after the grace period.
      if (steps[0] === 'SIGINT' && pendingSteps.length > 1 && groupAlive(child.pid)) escalate(pendingSteps.slice(1));
      return;
    }
    stopped = { reason, message };
    clearTimers();
    pendingSteps = steps;
    escalate(steps);
  };

  const armIdle = () => {
    if (!options.idleTimeoutMs || stopped) return;
    idleTimer?.clear();
    const ms = options.idleTimeoutMs;
    idleTimer = longTimeout(() => stop('idle_timeout', `printed nothing for ${durationText(ms)} (idle timeout)`), ms);
  };

  const clearTimers = () => {
    idleTimer?.clear();
    totalTimer?.clear();
    idleTimer = totalTimer = null;
  };

  const result = new Promise<ProcessResult>((resolve, reject) => {
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let openStreams = 2;
    let streamsClosed: () => void = () => undefined;
    const allClosed = new Promise<void>((r) => (streamsClosed = r));

    const { echo } = options;
    for (const [name, stream] of [['stdout', child.stdout!], ['stderr', child.stderr!]] as const) {
      const splitter = new LineSplitter(onLine(name), options.maxLineLength ?? 8192);
      const echoed = echo
        ? new EchoFilter(typeof echo === 'function' ? (bytes) => echo(name, bytes) : (bytes) => (name === 'stdout' ? process.stdout : process.stderr).write(bytes))
        : null;
      stream.on('data', (chunk: Buffer) => {
        armIdle();
        if (!echoed) return splitter.push(chunk);
        // A line at a time, so what is said about a line (a malformed ::runtrail:: line's warning) shows
        // where that line was, not after the rest of a chunk that holds several (a busy machine's pipe).
        for (let start = 0; start < chunk.length; ) {
          const newline = chunk.indexOf(10, start);
          const end = newline < 0 ? chunk.length : newline + 1;
          const piece = chunk.subarray(start, end);
          echoed.push(piece);
          splitter.push(piece);
          start = end;
        }
      });
      stream.on('close', () => {
        echoed?.end();
        splitter.end();
        if (--openStreams === 0) streamsClosed();
      });
    }

    const failedToStart = (err: NodeJS.ErrnoException) => {
      clearTimers();
      void logFile?.close();
      // A working directory that is not there fails the spawn as ENOENT naming the program
      // spawned, the watchdog (node), which would send the reader looking for the wrong thing.
      const cwd = options.cwd;
      const why = err.code === 'ENOENT' && cwd !== undefined && !isFolder(cwd) ? Object.assign(new Error(`its working directory ${cwd} is not a folder that exists`), { code: err.code }) : err;
      reject(new ProcessStartError(command, why));
    };
    let reported: WatchdogMessage['exit'] | undefined;
    let startError: NodeJS.ErrnoException | undefined;

    child.on('error', (err: NodeJS.ErrnoException) => {
      // 'error' without a pid: the watchdog could not be started at all.
      if (child.pid === undefined) failedToStart(err);
      else forward((s) => s.log(`${commandLine}: ${err.message}`, 'warn'));
    });

    child.on('message', (message: WatchdogMessage) => {
      if (message.spawned !== undefined) onSpawn(message.spawned);
      if (message.startError) startError = Object.assign(new Error(message.startError.message), { code: message.startError.code });
      if (message.exit) {
        reported = message.exit;
        sentBeforeEnd = sent.length;
      }
    });

    const onSpawn = (pid: number) => {
      commandPid = pid;
      const pgid = child.pid!;
      // With start times, a later reader (a restarted server) can tell
      // these processes from unrelated ones that reuse their pids.
      const identity = { pid, pidStartTime: processStartTime(pid), pgid, pgidStartTime: processStartTime(pgid) };
      if (recordMeta) forward((s) => s.event('meta', { exec: { command: commandLine, host: hostname(), ...identity } }));
      armIdle();
      if (options.timeoutMs) {
        const ms = options.timeoutMs;
        totalTimer = longTimeout(() => stop('timeout', `timed out after ${durationText(ms)}`), ms);
      }
      if (options.signal) {
        const signal = options.signal;
        // At once if it already aborted; one listener however many processes share the signal.
        void allClosed.then(onAbort(signal, () => stop('aborted', `was stopped (${reasonText(signal.reason)})`)));
      }
    };

    child.once('exit', (code, signal) => {
      if (child.pid === undefined) return;
      if (startError) return failedToStart(startError);
      // The command's own end, as the watchdog saw it; the watchdog's
      // status only if it could not say (it was killed with its group).
      exit = reported ?? { code, signal };
      sentBeforeEnd ??= sent.length;
      void settle();
    });

    const settle = async () => {
      const pid = child.pid!;
      // The leader is gone; anything it left in its group is part of this
      // command too and must not outlive it.
      if (groupAlive(pid)) {
        if (!stopped) escalate(['SIGTERM', 'SIGKILL']);
        // An interrupt may still have two grace periods to go.
        await until(() => !groupAlive(pid), killGraceMs * Math.max(1, pendingSteps.length - 1) + 2_000);
      }
      clearTimers();
      if (killTimer) clearTimeout(killTimer);
      let graceTimer: ReturnType<typeof setTimeout> | undefined;
      const closedInTime = await Promise.race([
        allClosed.then(() => true),
        new Promise<false>((r) => (graceTimer = setTimeout(() => r(false), STREAM_CLOSE_GRACE_MS))),
      ]);
      clearTimeout(graceTimer);
      if (!closedInTime) {
        // A process that left the group still holds the pipes; its output is not ours to wait for.
        child.stdout?.destroy();
        child.stderr?.destroy();
      }
      reportDropped();
      const { code, signal } = exit!;
      const ending = endingText({ exit: exit!, stoppedBecause: stopped?.message ?? null, sent, sentBeforeEnd: sentBeforeEnd ?? sent.length, killGraceMs });
      // The whole command line is in meta.exec.command, when that is recorded.
      const message = endHeadline({ command: commandLine, ending }, recordMeta ? 'meta.exec.command' : null);
      const outcome: ProcessResult = {
        command: commandLine,
        pid: commandPid ?? pid,
        pgid: pid,
        exitCode: code,
        signal,
        reason: stopped?.reason ?? 'exit',
        message,
        ending,
        killedWith,
        durationMs: Date.now() - started,
        lines,
        droppedLines,
        badLines,
        events,
        sinkError,
        stderrTail: stderr.tail(),
        exception: stderr.exception,
      };
      if (recordMeta) {
        forward((s) =>
          s.event('meta', {
            exec: { command: commandLine, host: hostname(), pid: outcome.pid, pgid: pid, exitCode: code, signal, reason: outcome.reason, killedWith, durationMs: outcome.durationMs },
          }),
        );
      }
      forward((s) => s.log(message, outcome.reason === 'exit' && code === 0 ? 'info' : 'warn'));
      if (sinkError && sink) {
        try {
          // A full queue may have drained by now: say once that output is missing.
          sink.log(`some output of ${commandLine} was not recorded: ${(sinkError as Error).message}`, 'warn');
        } catch (err) {
          // Still refused (the run ended): the result's sinkError tells the caller.
          void err;
        }
      }
      await logFile?.close();
      resolve(outcome);
    };
  });

  return {
    get pgid() {
      return child.pid;
    },
    result,
    stop: (message = 'was stopped') => stop('aborted', message),
    interrupt: (message = 'interrupted') => stop('aborted', message, ['SIGINT', 'SIGTERM', 'SIGKILL']),
  };
}

/** How much of the end of stderr a failure's message carries. */
export const STDERR_TAIL_LINES = 20;
export const STDERR_TAIL_BYTES = 4 * 1024;

/** The line a Node stack trace starts with: `TypeError: x is undefined`, `Error [ERR_X]: …`, `AbortError`. */
const NODE_ERROR_LINE = /^[A-Za-z_$][\w$.]*(?: \[[A-Z0-9_]+\])?(?::|$)/;

/**
 * Follows a command's stderr with bounded memory: its last lines, and the
 * exception line of the last Python traceback or Node stack trace. A
 * traceback can be longer than the tail, so its exception line is found
 * while it streams by: for Python the first unindented line after
 * "Traceback (most recent call last):", for Node the error's line just
 * before its first `    at …` frame (as an uncaught exception prints it).
 */
class StderrWatch {
  private lines: string[] = [];
  private bytes = 0;
  private inTraceback = false;
  private previous: string | null = null;
  exception: string | null = null;

  push(line: string): void {
    if (line.startsWith('Traceback (most recent call last):')) {
      this.inTraceback = true;
    } else if (this.inTraceback && line.length > 0 && !/^\s/.test(line)) {
      this.inTraceback = false;
      this.exception = clip(line, 500);
    } else if (/^\s+at \S/.test(line) && this.previous !== null && NODE_ERROR_LINE.test(this.previous)) {
      this.exception = clip(this.previous, 500);
    }
    this.previous = line;
    const kept = clip(line, STDERR_TAIL_BYTES);
    this.lines.push(kept);
    this.bytes += Buffer.byteLength(kept) + 1;
    while (this.lines.length > STDERR_TAIL_LINES || (this.bytes > STDERR_TAIL_BYTES && this.lines.length > 1)) {
      this.bytes -= Buffer.byteLength(this.lines.shift()!) + 1;
    }
  }

  tail(): string[] {
    // Trailing blank lines say nothing about why it failed.
    const lines = [...this.lines];
    while (lines.length > 0 && lines.at(-1)!.trim() === '') lines.pop();
    return lines;
  }
}

interface BoundedLogFile {
  write(text: string): void;
  close(): Promise<void>;
}

/**
 * Make the file's folder if it is missing, one level only (the default log,
 * `<data-dir>/logs/<run id>.log`, needs no more). Not `recursive: true`:
 * Node's recursive mkdir spins for ever when a parent exists but cannot
 * hold children (under /proc, below a dangling symlink), and an exec would
 * hang before its command starts (the store's makeDirectory says more).
 */
function makeParentFolder(path: string): void {
  try {
    mkdirSync(dirname(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function openLogFile(path: string | number | undefined, maxBytes: number, onError: (err: Error) => void): BoundedLogFile | null {
  if (path === undefined || path === '') return null;
  let stream: WriteStream | null = null;
  let written = 0;
  let full = false;
  try {
    if (typeof path === 'number') {
      stream = createWriteStream('', { fd: path, autoClose: false });
    } else {
      makeParentFolder(path);
      stream = createWriteStream(path, { flags: 'a' });
    }
  } catch (err) {
    onError(err as Error);
    return null;
  }
  stream.on('error', (err) => {
    onError(err);
    stream = null;
  });
  return {
    write(text) {
      if (!stream || full) return;
      written += Buffer.byteLength(text);
      if (written > maxBytes) {
        full = true;
        stream.write(`[runtrail: output log truncated at ${maxBytes} bytes]\n`);
        return;
      }
      stream.write(text);
    },
    close() {
      const s = stream;
      stream = null;
      return s ? new Promise<void>((r) => s.end(r)) : Promise.resolve();
    },
  };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function reasonText(reason: unknown): string {
  // A RunStopped (a producer handle's signal) says why without the run's id: the run's own error is where this goes.
  if (reason instanceof Error) return 'why' in reason && typeof reason.why === 'string' ? reason.why : reason.message;
  return typeof reason === 'string' ? reason : 'aborted';
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A RunHandle (or anything with its `event`/`log`) as the sink of a subprocess. */
export function handleSink(handle: { event(type: never, data: never): void; log(message: string, level?: LogLevel): void }): ProcessSink {
  const send = handle.event.bind(handle) as unknown as (type: string, data?: unknown) => void;
  return {
    event: (type, data) => send(type, data),
    // A command's own lines say which stream they came from, so a console can tell stderr apart.
    log: (message, level = 'info', output) => (output ? send('log', { level, message, stream: output }) : handle.log(message, level)),
  };
}

function isFolder(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
