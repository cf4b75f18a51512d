import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ProcessStartError, type ProcessResult } from '@runtrail/client/node';

/**
 * What a failed ctx.exec says, as the run's error: one line. A run's error
 * is read in a list, a notification, a terminal's `runs ls`; a command line
 * that spans lines (`python3 -c '…'`) or a traceback made it a wall of
 * text there. The whole text stays where it belongs: the command's stderr
 * in the output log, its whole command line in `meta.exec.command` and in
 * the line ctx.exec appends to the output log when it ends.
 */

/** What ctx.exec knew of how a command was run, which its result does not hold. */
export interface ExecLimits {
  timeoutMs?: number | undefined;
  idleTimeoutMs?: number | undefined;
  /** The SIGTERM-to-SIGKILL grace it was run with. */
  killGraceMs?: number | undefined;
  /** Whether its output went to an output log file (else only to the run's log events). */
  outputLog?: boolean;
}

/** Characters of a command line a run's error shows; the whole line is in `meta.exec.command`. */
const MAX_COMMAND_CHARS = 200;
/** Characters of the stderr line a run's error quotes. */
const MAX_STDERR_LINE_CHARS = 500;

/** A duration as a person reads it: `400 ms`, `5 s`, `1.5 s`, `10 min`. */
export function durationText(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms >= 120_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Number((ms / 1_000).toFixed(3))} s`;
}

/** Line and paragraph separators a line of text may still hold (a `\r` of a Windows line end, U+2028). */
const LINE_BREAKS = /[\r\n\u2028\u2029]/;

function clipLine(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max - 1).replace(/[\uD800-\uDBFF]$/, '')}…`;
}

/** A command line on one line: its first line (then `…`), at most MAX_COMMAND_CHARS. */
function commandText(command: string): { text: string; cut: boolean } {
  const [first = ''] = command.split(LINE_BREAKS);
  const multiLine = first.length < command.length;
  const text = clipLine(first, MAX_COMMAND_CHARS);
  return { text: multiLine && !text.endsWith('…') ? `${text} …` : text, cut: multiLine || text.length < first.length };
}

/** How the command itself ended: "exited with code 1", "was killed by SIGTERM". */
function endText(result: Pick<ProcessResult, 'exitCode' | 'signal'>): string {
  return result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
}

/** The signals ctx.exec sends a process group it stops, up to the one it had to: "SIGTERM, then SIGKILL after a 2 s grace". */
function sentText(killedWith: NonNullable<ProcessResult['killedWith']>, killGraceMs: number | undefined): string {
  // ctx.exec stops a group with SIGTERM, and sends SIGKILL only when the group outlived the grace.
  return killedWith === 'SIGKILL' ? `SIGTERM, then SIGKILL after ${graceText(killGraceMs)}` : killedWith;
}

function graceText(killGraceMs: number | undefined): string {
  return killGraceMs === undefined ? 'a grace period' : `a ${durationText(killGraceMs)} grace`;
}

/**
 * The signals its process group was sent, in the order they were sent,
 * and what ended the command: "sent SIGTERM, which ended it", "sent
 * SIGTERM, then SIGKILL after a 2 s grace".
 */
function signalsText(result: Pick<ProcessResult, 'exitCode' | 'signal' | 'killedWith'>, killGraceMs: number | undefined): string {
  const { killedWith, signal } = result;
  if (killedWith === null) return `it ${endText(result)} before a signal was sent`;
  const sent = sentText(killedWith, killGraceMs);
  if (signal === killedWith) return killedWith === 'SIGKILL' ? `sent ${sent}` : `sent ${sent}, which ended it`;
  // The command ended before the last signal (on SIGTERM, or by itself), and something it started held on past the grace.
  if (killedWith === 'SIGKILL') return `sent SIGTERM (it ${endText(result)}), then SIGKILL after ${graceText(killGraceMs)} to what it left running`;
  return `sent ${sent}, and it ${endText(result)}`;
}

/** Why it ended, after its command line. */
function reasonText(result: ProcessResult, limits: ExecLimits): string {
  switch (result.reason) {
    case 'timeout':
      return `timed out${limits.timeoutMs === undefined ? '' : ` after ${durationText(limits.timeoutMs)}`}: ${signalsText(result, limits.killGraceMs)}`;
    case 'idle_timeout':
      return `printed nothing for ${limits.idleTimeoutMs === undefined ? 'too long' : durationText(limits.idleTimeoutMs)} (its idle timeout): ${signalsText(result, limits.killGraceMs)}`;
    case 'aborted':
      return `was stopped: ${signalsText(result, limits.killGraceMs)}`;
    default:
      // Its group outlived it (a background child), and was stopped as a timeout would be.
      return result.killedWith ? `${endText(result)}; what it left running was sent ${sentText(result.killedWith, limits.killGraceMs)}` : endText(result);
  }
}

/**
 * The run's error for a command that did not end well, on one line: the
 * command (its first line), how it ended, the line of stderr that says
 * most (a traceback's exception, else its last line), and where the rest is.
 */
export function execErrorMessage(result: ProcessResult, limits: ExecLimits = {}): string {
  const command = commandText(result.command);
  const where = limits.outputLog ? 'the output log' : "the run's log";
  const tail = result.stderrTail.filter((line) => line.trim() !== '');
  const telling = result.exception ?? tail.at(-1) ?? null;
  const rest = telling === null ? tail.length : tail.length - (tail.includes(telling) ? 1 : 0);
  const more: string[] = [];
  if (command.cut) more.push('the whole command line');
  if (rest > 0) more.push(`${rest} more line${rest === 1 ? '' : 's'} of stderr`);
  const head = `${command.text} ${reasonText(result, limits)}`;
  const said = telling === null ? head : `${head}: ${clipLine(telling.trim(), MAX_STDERR_LINE_CHARS)}`;
  const message = more.length === 0 ? said : `${said} (${more.join(' and ')} in ${where})`;
  // Every part is one line already; a stray separator (a `\r` in a stderr line) must not break it either.
  return message.replace(/[\r\n\u2028\u2029]+/g, ' ');
}

/** How it ended, with its whole command line, for the output log (which holds its stderr already). */
export function execEndNote(result: ProcessResult, limits: ExecLimits = {}): string {
  return `${result.command} ${reasonText(result, limits)}`;
}

/**
 * A clearer error for a command that could not be started because
 * something was not found (ENOENT, which names neither the folder looked
 * in nor which thing was missing); any other error as it was.
 * `dir` is the command's working directory: a relative program is looked
 * up there, a bare name (`python3`) on PATH.
 */
export function startError(err: unknown, command: string, dir: string): unknown {
  if (!(err instanceof ProcessStartError) || err.code !== 'ENOENT') return err;
  // The working directory itself missing: runProcess already says so, naming it.
  if (!existsSync(dir)) return err;
  const why = (text: string) => new ProcessStartError(command, Object.assign(new Error(text), { code: err.code }));
  if (!command.includes('/')) return why(`no program named ${command} in any folder of its PATH (give a path to run one that is not on it: ./${command})`);
  const path = resolve(dir, command);
  if (existsSync(path)) return why(`${path} exists, but the interpreter its first line (#!) names does not`);
  if (isAbsolute(command)) return why(`there is no ${path}`);
  return why(`there is no ${path}: a relative program is looked up in the command's working directory, ${dir} (its cwd option, else the server's own working directory)`);
}
