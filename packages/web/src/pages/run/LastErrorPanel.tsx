import { useEffect, useRef, useState } from 'react';
import type { LastError } from '@runtrail/protocol';
import { formatTime } from '../../format.js';

/**
 * The last error, and, once a later success cleared it, that it did: a
 * reader who saw it a moment ago should not wonder where it went (field
 * note 8: a cleared error must not stay on screen as if it were current).
 */
export function LastErrorPanel({ lastError }: { lastError: LastError | null }) {
  const seen = useRef<LastError | null>(null);
  const [cleared, setCleared] = useState<LastError | null>(null);
  useEffect(() => {
    if (lastError) {
      seen.current = lastError;
      setCleared(null);
    } else if (seen.current) {
      setCleared(seen.current);
      seen.current = null;
    }
  }, [lastError]);
  return (
    <section className="panel" aria-labelledby="lasterror-title">
      <h2 id="lasterror-title">Last error</h2>
      {lastError ? (
        <p className="invalid" data-testid="last-error">
          {lastError.message}
          <span className="muted"> · {formatTime(lastError.ts)}</span>
        </p>
      ) : cleared ? (
        <p className="cleared" data-testid="last-error-cleared">
          Cleared by a later success: <s>{cleared.message}</s>
        </p>
      ) : (
        <p className="muted">None.</p>
      )}
    </section>
  );
}
