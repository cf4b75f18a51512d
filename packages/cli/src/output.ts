/** What a command prints for its user (stdout: what a script may read; progress and notes go to stderr). */

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** The `--json` answer: the value, indented, one document. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}
