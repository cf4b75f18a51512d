const TRACEBACK = 'Traceback (most recent call last):';

/**
 * An error message as its author printed it: a headline, then the rest (a
 * traceback, the last stderr lines) below it, collapsible, with newlines
 * and indentation kept. A message that is a bare Python traceback is
 * headed by its exception line, the line a reader looks for first.
 */
export function ErrorText({ message, label, open = true }: { message: string; label: string; open?: boolean }) {
  const newline = message.indexOf('\n');
  if (newline < 0) return <div className="error-head mono">{message}</div>;
  const first = message.slice(0, newline);
  const traceback = first.trim() === TRACEBACK;
  const head = traceback ? (message.trimEnd().split('\n').at(-1) ?? first) : first;
  const detail = traceback ? message.trimEnd() : message.slice(newline + 1).replace(/^\n+/, '');
  return (
    <>
      <div className="error-head mono">{head}</div>
      <details className="error-detail" open={open}>
        <summary>{traceback ? 'traceback' : `${detail.split('\n').length} more lines`}</summary>
        <pre className="traceback" aria-label={label}>
          {detail}
        </pre>
      </details>
    </>
  );
}
