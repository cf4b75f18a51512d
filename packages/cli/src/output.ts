/** What a command prints for its user (stdout: what a script may read; progress and notes go to stderr). */

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * Run data as a terminal is to show it: control characters (ESC, BEL, a
 * lone CR, C1) and bidirectional overrides written as `\u001b` and the
 * like, newlines and tabs kept. A progress message or an error is the
 * producer's text: carrying an escape sequence it could retitle the
 * window, write the clipboard (OSC 52) or redraw what the user reads.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this finds
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * terminalSafe, and on one line: a line break inside someone else's text (a cancel reason, an error
 * message) is shown as \n, so it cannot start a line that reads as the CLI's own.
 */
export function oneLineSafe(text: string): string {
  return terminalSafe(text).replace(/\n/g, '\\n');
}

/**
 * A human notice on stderr ("no runs", "wrote FILE"): stdout is for data only,
 * so `runtrail runs ls | wc -l` counts runs and a script never reads a
 * sentence as a row.
 */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/**
 * Rows under a header, each column as wide as its widest cell. Every cell is
 * run data or made from it, so each is written terminal-safe.
 */
export function table(header: string[], rows: string[][]): string {
  const safe = rows.map((row) => row.map(terminalSafe));
  const widths = header.map((h, i) => Math.max(h.length, ...safe.map((row) => row[i]!.length)));
  return [header, ...safe].map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/**
 * A time as tables print it: UTC to the second ("2026-11-28 14:56:19"),
 * always UTC whatever the machine's zone, so two people comparing output
 * see the same times; the column headers say "(UTC)".
 */
export function utcTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

/** "1 run", "3 runs". */
export function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

/** The `--json` answer: the value, indented, one document. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Exit status after Ctrl-C, as a shell reports a command ended by SIGINT. */
export const EXIT_INTERRUPTED = 130;

/** Exit status when stdout's reader went away: what a shell reports for a process SIGPIPE ended. */
export const EXIT_READER_GONE = 141;

let readerGone: (() => void) | null = null;

/**
 * What to do when stdout's reader goes away (EPIPE: `runtrail … | head`)
 * instead of exiting at once: `exec` first stops its command and ends the
 * run. Returns the function that removes the handler.
 */
export function whenStdoutReaderGoes(handler: () => void): () => void {
  readerGone = handler;
  return () => {
    if (readerGone === handler) readerGone = null;
  };
}

/** stdout's reader went away: the command's handler, else exit quietly with EXIT_READER_GONE. */
function stdoutReaderGone(): void {
  if (readerGone) readerGone();
  else process.exit(EXIT_READER_GONE);
}

let hungUp = false;

/**
 * The terminal hung up (SIGHUP): what is written to it now fails (EIO on a
 * tty whose other end closed, EPIPE on a pipe), and there is no one left to
 * read it. `exec` still has to stop its command and record the run's end:
 * from now on such write errors are ignored rather than crash it, and an
 * EPIPE no longer means a reader that stopped reading (`| head`).
 */
export function terminalHungUp(): void {
  hungUp = true;
}

/** An error writing stdout or stderr: ignored after a hangup or on EIO, a reader gone on EPIPE, else thrown. */
export function outputFailed(err: NodeJS.ErrnoException): void {
  // The terminal is gone (see terminalHungUp): nothing more can be shown, and saying so cannot be either.
  if (hungUp) return;
  // EIO is a terminal whose other end closed. It can come before the SIGHUP that says so (a write
  // in flight as the window closes), or with no SIGHUP at all for a process outside the terminal's
  // session (`setsid`, a daemonised parent): crashing then would leave `exec`'s command unstopped
  // and its run unended. It is a hangup: the SIGHUP, when it comes, stops what has to stop.
  if (err.code === 'EIO') return terminalHungUp();
  if (err.code !== 'EPIPE') throw err;
  stdoutReaderGone();
}
