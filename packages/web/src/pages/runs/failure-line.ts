/**
 * One line that says why a run failed: the exception of a Python traceback
 * ("ValueError: lr too high"), else the first line. `exec` words a failed
 * script "python3 train.py exited with code 1: ValueError: …": in a row as
 * narrow as a phone's, that cut the exception off, and the exit code is
 * on the run's page and in the row's title.
 */
export function oneLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  if (lines.length === 0) return '';
  // The last one: a chained traceback ends with the exception that ended the run.
  const exception = [...lines].reverse().find((l) => EXCEPTION_LINE.test(l));
  if (exception !== undefined) return exception;
  // `exec` puts the exception on the first line after how the command ended.
  const inFirst = EXCEPTION_AFTER.exec(lines[0]!);
  return inFirst ? inFirst[1]! : lines[0]!;
}

const EXCEPTION_LINE = /^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(:|$)/;
const EXCEPTION_AFTER = / exited with code \d+: ([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)(?::.*|$))/;
