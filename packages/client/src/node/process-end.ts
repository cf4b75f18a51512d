/**
 * What is said of how a command ended: its result's message, and the run
 * error of a command that failed. One implementation for every runner
 * (`runtrail exec` and a server's ctx.exec), so a run says the same thing
 * whichever ran its command.
 *
 * A run's error is a one-line headline, then the last stderr lines as its
 * detail: the headline is what a runs list, a notification, a terminal's
 * closing line and the dashboard's error heading show, so it names the
 * command by its first line only (a `python3 -c '…'` script spans many),
 * and the signals a stopped command was sent are said in the order they
 * were sent, and which of them ended it.
 */

/** A signal sent to a command's process group while it was being stopped, in order. */
export interface SentSignal {
  signal: 'SIGINT' | 'SIGTERM' | 'SIGKILL';
  /** Sent after the previous one: when the grace period ran out, or early (a second Ctrl-C) this many ms after it. */
  after: { grace: true } | { grace: false; ms: number } | null;
}

/** Characters of a command line a headline shows; the whole line is in `meta.exec.command`. */
const MAX_COMMAND_CHARS = 200;
/** Characters of a stop's reason (a cancel's, which anyone with a producer token writes) a headline shows. */
const MAX_REASON_CHARS = 300;
/** Characters of the exception line a headline shows. */
const MAX_EXCEPTION_CHARS = 500;
/** A run error's message is at most this long (RunError in protocol). */
const MAX_ERROR_MESSAGE = 8192;

/** Line and paragraph separators: none may break a headline (a `\r` in a stderr line, a reason typed with newlines). */
const LINE_BREAKS = /[\r\n\u2028\u2029]+/g;

/** A duration as a person reads it: `400 ms`, `5 s`, `1.5 s`, `10 min`. */
export function durationText(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms >= 120_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${Number((ms / 1_000).toFixed(3))} s`;
}

/** Text on one line, at most `max` characters (`…` where it was cut; never half a surrogate pair). */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(LINE_BREAKS, ' ');
  if (flat.length <= max) return flat;
  return `${flat.slice(0, max - 1).replace(/[\uD800-\uDBFF]$/, '')}…`;
}

/**
 * A command line as a headline shows it: its first line (then ` …`), at
 * most MAX_COMMAND_CHARS; `cut` says whether that is not all of it.
 */
export function commandHeadline(command: string): { text: string; cut: boolean } {
  const [first = ''] = command.split(/[\r\n\u2028\u2029]/);
  const multiLine = first.length < command.length;
  const text = first.length > MAX_COMMAND_CHARS ? `${first.slice(0, MAX_COMMAND_CHARS - 1).replace(/[\uD800-\uDBFF]$/, '')}…` : first;
  return { text: multiLine && !text.endsWith('…') ? `${text} …` : text, cut: multiLine || text.length < first.length };
}

/** How the command itself ended: "exited with code 1", "was killed by SIGTERM". */
function exitText(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

/** Signals in the order sent: "SIGTERM, then SIGKILL after a 2 s grace"; `first` is the index of `list[0]` in all that were sent. */
function signalList(list: SentSignal[], first: number, killGraceMs: number): string {
  return list
    .map(({ signal, after }, i) => {
      if (first + i === 0 || after === null) return signal;
      return after.grace ? `then ${signal} after a ${durationText(killGraceMs)} grace` : `then ${signal} ${durationText(after.ms)} later, when interrupted again`;
    })
    .join(', ');
}

export interface EndingFacts {
  /** How the command (not what it left in its group) ended. */
  exit: { code: number | null; signal: NodeJS.Signals | null };
  /**
   * Why runtrail stopped it, as a phrase after its command line ("timed out
   * after 5 s", "was interrupted (Ctrl-C)"); null when it ended on its own.
   */
  stoppedBecause: string | null;
  /** Every signal sent to its group, in order. */
  sent: SentSignal[];
  /** How many of `sent` had been sent when the command ended; the rest went to what it left running. */
  sentBeforeEnd: number;
  killGraceMs: number;
}

/**
 * How a command ended, as said after its command line: "exited with code
 * 1", "timed out after 5 s: sent SIGTERM, which ended it", "timed out
 * after 1.5 s: sent SIGTERM, then SIGKILL after a 2 s grace", "exited with
 * code 0; what it left running was sent SIGTERM". Each signal is named
 * once, in the order sent, and only the one that ended the command is
 * said to have.
 */
export function endingText(facts: EndingFacts): string {
  const { exit, sent, killGraceMs } = facts;
  const before = sent.slice(0, facts.sentBeforeEnd);
  const after = sent.slice(facts.sentBeforeEnd);
  const ended = exitText(exit);
  const leftRunning =
    after.length === 0 ? '' : before.length === 0 ? `; what it left running was sent ${signalList(after, 0, killGraceMs)}` : `; ${signalList(after, before.length, killGraceMs)} to what it left running`;
  if (facts.stoppedBecause === null) return `${ended}${leftRunning}`;
  let signals: string;
  if (before.length === 0) signals = `it ${ended} before a signal was sent`;
  else if (exit.signal === before.at(-1)!.signal) signals = `sent ${signalList(before, 0, killGraceMs)}${exit.signal === 'SIGKILL' ? '' : ', which ended it'}`;
  else signals = `sent ${signalList(before, 0, killGraceMs)}, and it ${ended}`;
  return `${oneLine(facts.stoppedBecause, MAX_REASON_CHARS)}: ${signals}${leftRunning}`;
}

/** Where the whole command line is, when a headline shows only its start: "meta.exec.command and the output log". */
function cutNote(command: string, wholeCommandIn: string | null): string {
  return commandHeadline(command).cut && wholeCommandIn ? ` (the whole command line is in ${wholeCommandIn})` : '';
}

/**
 * One line: the command (its first line), how it ended, the exception line
 * when there is one, and, if the command was cut, where the whole of it is.
 */
export function endHeadline(result: { command: string; ending: string; exception?: string | null }, wholeCommandIn: string | null): string {
  const exception = result.exception ? `: ${oneLine(result.exception, MAX_EXCEPTION_CHARS)}` : '';
  return oneLine(`${commandHeadline(result.command).text} ${result.ending}${exception}${cutNote(result.command, wholeCommandIn)}`, MAX_ERROR_MESSAGE - 1);
}

export interface FailureMessageOptions {
  /** Where the whole command line is kept, named when the headline shows only its start (default `meta.exec.command`). */
  wholeCommandIn?: string;
}

/**
 * The error a run ends with when its command did not end well: the
 * headline (endHeadline), then a blank line and the last stderr lines,
 * indentation kept, so the reason is on the run, not only in its log.
 */
export function failureMessage(
  result: { command: string; ending: string; stderrTail: string[]; exception: string | null },
  options: FailureMessageOptions = {},
): string {
  const head = endHeadline(result, options.wholeCommandIn ?? 'meta.exec.command');
  if (result.stderrTail.length === 0) return head;
  const tail = result.stderrTail.join('\n');
  const message = `${head}\n\nlast ${result.stderrTail.length === 1 ? 'line' : `${result.stderrTail.length} lines`} of stderr:\n${tail}`;
  return message.length <= MAX_ERROR_MESSAGE - 1 ? message : `${message.slice(0, MAX_ERROR_MESSAGE - 2)}…`;
}
