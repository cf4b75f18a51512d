import { memo, useEffect, useRef, useState } from 'react';
import type { LastError, RunError, RunEvent } from '@runtrail/protocol';
import { ErrorText } from '../../components/ErrorText.js';
import { formatTime } from '../../format.js';
import { FailedCalls } from './FailedCalls.js';
import { visibleText } from '../../visible-text.js';

/**
 * The last error, and, once a later success cleared it, that it did: a
 * reader who saw it a moment ago should not wonder where it went (field
 * note 8: a cleared error must not stay on screen as if it were current).
 * Below it, every failed call with its error, so "Failed 1" never sits next
 * to a bare "None". Memoised on what it is given (the calls' events, not
 * all of them), so progress and logs leave it be.
 */
export const LastErrorPanel = memo(function LastErrorPanel({
  lastError,
  runError,
  callEvents,
  failedCount,
  retriesCount,
  reading,
  cancelledAt,
}: {
  lastError: LastError | null;
  /** When a cancel was asked of a run that then ended cancelled (null otherwise): what failed after it, the cancel stopped. */
  cancelledAt: number | null;
  /** The run's own error, shown in the header: when it is the last error, it is not printed twice. */
  runError: RunError | null;
  /** The calls' events the page holds (call.started and call.failed among them). */
  callEvents: readonly RunEvent[];
  failedCount: number;
  retriesCount: number;
  /** Whether the page still reads the log up to the snapshot it shows. */
  reading: boolean;
}) {
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
      {lastError && lastError.callId === null && lastError.message === runError?.message ? (
        <p className="muted" data-testid="last-error-is-run-error">
          The run's own error, shown at the top.
        </p>
      ) : lastError && cancelledAt !== null && lastError.ts >= cancelledAt ? (
        // A phase or call the cancel aborted: not a failure of the run's own, so not shown as one.
        <p className="muted" data-testid="last-error-after-cancel">
          {visibleText(lastError.message)}, as the cancel stopped the run (its reason is at the top).
        </p>
      ) : lastError ? (
        <div className="invalid" data-testid="last-error">
          <ErrorText message={lastError.message} label="last error" open={false} />
          <span className="muted"> · {formatTime(lastError.ts)}</span>
        </div>
      ) : cleared ? (
        <p className="cleared" data-testid="last-error-cleared">
          Cleared by a later success: <s>{visibleText(cleared.message)}</s>
        </p>
      ) : failedCount > 0 ? (
        <p className="muted" data-testid="last-error-none">
          None now: a later success cleared it. The failed calls are below.
        </p>
      ) : (
        <p className="muted">None.</p>
      )}
      <FailedCalls events={callEvents} failedCount={failedCount} retriesCount={retriesCount} reading={reading} />
    </section>
  );
});
