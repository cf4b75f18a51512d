import { useMemo, type CSSProperties } from 'react';
import type { RunEvent } from '@runtrail/protocol';
import { ErrorText } from '../../components/ErrorText.js';
import { callLabels } from '../../components/event-summary.js';
import { formatTime } from '../../format.js';
import { visibleText } from '../../visible-text.js';

interface FailedCall {
  seq: number;
  ts: number;
  callId: string;
  label: string | null;
  error: string;
  willRetry: boolean;
}

/** Every call.failed in the events the page holds, with the label its call.started gave. */
export function failedCallsOf(events: readonly RunEvent[]): FailedCall[] {
  const labels = callLabels(events);
  const failed: FailedCall[] = [];
  for (const e of events) {
    const data = e.data as { callId?: unknown; error?: unknown; willRetry?: unknown } | null;
    if (!data || typeof data.callId !== 'string') continue;
    if (e.type === 'call.failed') {
      failed.push({
        seq: e.seq,
        ts: e.ts,
        callId: data.callId,
        label: labels.get(data.callId) ?? null,
        error: typeof data.error === 'string' ? data.error : JSON.stringify(data.error),
        willRetry: data.willRetry === true,
      });
    }
  }
  return failed;
}

/**
 * The calls that failed for good, each with its error: the counter says how
 * many, this says which and why, even after a later success cleared "last
 * error". Failed attempts that were retried (the Retries counter) follow,
 * folded away, so "Failed calls (1)" never heads a list of 26. Newest first,
 * so on a live run the latest failure is at the top of the box, not below
 * its fold; each keeps its number in the order they failed.
 */
export function FailedCalls({
  events,
  failedCount,
  retriesCount,
  reading,
}: {
  /** The calls' events the page holds (call.started and call.failed among them). */
  events: readonly RunEvent[];
  failedCount: number;
  /** The Retries counter: the failed attempts that were retried, including those before the events held. */
  retriesCount: number;
  /** Whether the page still reads the log up to the snapshot it shows. */
  reading: boolean;
}) {
  const all = useMemo(() => failedCallsOf(events), [events]);
  const gaveUp = all.filter((f) => !f.willRetry);
  const retried = all.filter((f) => f.willRetry);
  if (all.length === 0 && failedCount === 0) return null;
  // The counters come from the persisted snapshot at once; the events that
  // name the failed calls follow from the stream. Until the page holds the
  // log up to the snapshot's seq (`reading`), say so instead of "0 of 1".
  const retriedInAll = Math.max(retried.length, retriesCount);
  return (
    <div className="failed-calls">
      <h3>
        Failed calls <span className="muted">({failedCount})</span> <span className="muted order-note">newest first</span>
      </h3>
      {reading && gaveUp.length < failedCount && (
        <p className="muted" role="status" data-testid="failed-calls-reading">
          Reading the failed calls from the run's log…
        </p>
      )}
      {!reading && gaveUp.length < failedCount && (
        <p className="muted">Only the failures among the latest events this page holds are listed ({gaveUp.length} of {failedCount}).</p>
      )}
      {/* When the page holds only the latest events, the ones listed are the latest failures: numbered as such. */}
      {gaveUp.length > 0 && <FailedList calls={gaveUp} last={Math.max(gaveUp.length, failedCount)} label="failed calls" testId="failed-call" />}
      {retried.length > 0 && (
        <details className="retried-calls">
          <summary>
            Failed attempts that were retried{' '}
            <span className="muted">({retried.length < retriedInAll && !reading ? `${retried.length} of ${retriedInAll}` : retried.length})</span>
          </summary>
          {/* Still reading the log from its start, the attempts held are the first ones, not the latest. */}
          <FailedList calls={retried} last={reading ? retried.length : retriedInAll} label="failed attempts that were retried" testId="retried-attempt" />
        </details>
      )}
    </div>
  );
}

/** Newest first, numbered down from `last` (the number of the newest), so each keeps its place in the order they failed. */
function FailedList({ calls, last, label, testId }: { calls: FailedCall[]; last: number; label: string; testId: string }) {
  return (
    // Each number sits in the list's left padding, outside its box: padded for the digits of the highest
    // (the first): a fixed padding cut "295." to "95." once the failures passed 99.
    <ol
      className="failed-list"
      aria-label={`${label}, newest first`}
      reversed
      start={last}
      style={{ '--number-digits': String(last).length } as CSSProperties}
    >
      {calls.toReversed().map((f) => (
        <li key={f.seq} data-testid={testId}>
          <div className="failed-call-head">
            <span className="call-label-full">{visibleText(f.label ?? f.callId)}</span>
            <span className={`badge ${f.willRetry ? 'badge-retry' : 'badge-failed'}`}>{f.willRetry ? 'retried' : 'gave up'}</span>
            <span className="muted">{formatTime(f.ts)}</span>
          </div>
          <ErrorText message={f.error} label={`error of call ${visibleText(f.label ?? f.callId)}`} open={false} />
        </li>
      ))}
    </ol>
  );
}
