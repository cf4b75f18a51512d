import { countOf } from '../format.js';
import { visibleText } from '../visible-text.js';

/** Longer JSON starts folded: the panel is a glance, the reader opens what they need. */
const OPEN_UP_TO_LINES = 24;

/** Pretty-printed JSON, collapsible; `undefined` (nothing given) is said in words. */
export function JsonBlock({ title, value, empty }: { title: string; value: unknown; empty: string }) {
  if (value === undefined || value === null) {
    return (
      <div className="json-block">
        <h3 className="json-title">{title}</h3>
        <p className="muted">{empty}</p>
      </div>
    );
  }
  // JSON keeps direction controls as they are (it escapes none): shown, like every text a run chose.
  const text = visibleText(JSON.stringify(value, null, 2));
  const lines = text.split('\n').length;
  return (
    <details className="json-block" open={lines <= OPEN_UP_TO_LINES}>
      <summary>
        <h3 className="json-title">{title}</h3>
        {lines > 1 && <span className="muted"> {countOf(lines, 'line')}</span>}
      </summary>
      <pre className="json-text" aria-label={`${title} as JSON`}>
        {text}
      </pre>
    </details>
  );
}
