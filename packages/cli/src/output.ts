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
export function stdoutReaderGone(): void {
  if (readerGone) readerGone();
  else process.exit(EXIT_READER_GONE);
}
