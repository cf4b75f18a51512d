/** What a command prints for its user (stdout: what a script may read; progress and notes go to stderr). */

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
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
