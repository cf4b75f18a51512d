const TRACEBACK = 'Traceback (most recent call last):';

/** An error message split for reading: the line a reader looks for first, and the rest. */
export interface ErrorParts {
  /** The first line; for a bare Python traceback, its exception line. */
  head: string;
  /** The lines below the head (for a traceback, the whole traceback), or null for a one-line message. */
  detail: string | null;
  traceback: boolean;
}

export function errorParts(message: string): ErrorParts {
  const newline = message.indexOf('\n');
  if (newline < 0) return { head: message, detail: null, traceback: false };
  const first = message.slice(0, newline);
  const traceback = first.trim() === TRACEBACK;
  const head = traceback ? (message.trimEnd().split('\n').at(-1) ?? first) : first;
  const detail = traceback ? message.trimEnd() : message.slice(newline + 1).replace(/^\n+/, '');
  return { head, detail, traceback };
}
