import { errorParts } from './error-headline.js';
import { visibleText } from '../visible-text.js';
import { terminalText } from '../pages/run/terminal-line.js';

/**
 * An error message as its author printed it: a headline, then the rest (a
 * traceback, the last stderr lines) below it, collapsible, with newlines
 * and indentation kept. A message that is a bare Python traceback is
 * headed by its exception line, the line a reader looks for first.
 */
export function ErrorText({ message, label, open = true }: { message: string; label: string; open?: boolean }) {
  // A failed command's message carries its last stderr lines: colours and redraws as a terminal showed them.
  const { head, detail, traceback } = errorParts(visibleText(terminalText(message)));
  if (detail === null) return <div className="error-head mono">{head}</div>;
  return (
    <>
      <div className="error-head mono">{head}</div>
      <details className="error-detail" open={open}>
        <summary>{traceback ? 'traceback' : moreLines(detail.split('\n').length)}</summary>
        <pre className="traceback" aria-label={label}>
          {detail}
        </pre>
      </details>
    </>
  );
}

function moreLines(n: number): string {
  return n === 1 ? '1 more line' : `${n} more lines`;
}
