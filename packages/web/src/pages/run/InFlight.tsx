import { memo, useMemo } from 'react';
import { SNAPSHOT_LIMITS, callsInFlight, hasCalls } from '@runtrail/protocol';
import type { Snapshot } from '@runtrail/protocol';
import { formatDuration, formatNumber } from '../../format.js';
import { useNow } from '../../use-now.js';
import { visibleText } from '../../visible-text.js';

/** The one part of each row that changes with the page's clock (frozen while the server is away). */
function Elapsed({ since }: { since: number }) {
  return <span className="muted">{formatDuration(Math.max(0, useNow() - since))}</span>;
}

/**
 * One call in flight. Memoised on what the call is, not the clock: the page
 * ticks every second, and with a thousand calls listed, re-rendering every
 * row each tick kept the page busy; only its Elapsed reads the clock.
 */
const Call = memo(function Call({ label, attempt, startedAt }: { label: string; attempt: number; startedAt: number }) {
  return (
    <li>
      <span className="spinner" aria-hidden="true" />
      <span className="call-label">{visibleText(label)}</span>
      {attempt > 1 && <span className="attempt">attempt {attempt}</span>}
      <Elapsed since={startedAt} />
    </li>
  );
});

export function InFlight({ snapshot }: { snapshot: Snapshot }) {
  const current = snapshot.current;
  // The rows change with the calls, not with the clock: only the Elapsed in each subscribes to it.
  const rows = useMemo(
    () =>
      Object.values(current)
        .sort((a, b) => a.startedAt - b.startedAt)
        .map((c) => <Call key={c.callId} label={c.label} attempt={c.attempt} startedAt={c.startedAt} />),
    [current],
  );
  if (!hasCalls(snapshot)) return null;
  // The snapshot lists at most SNAPSHOT_LIMITS.inFlight calls and counts the
  // rest: the title says so rather than pass the listed part off as all.
  const all = callsInFlight(snapshot);
  const unlisted = all - rows.length;
  return (
    <section className="panel" aria-labelledby="inflight-title">
      <h2 id="inflight-title">In flight ({formatNumber(all)}{unlisted > 0 && `; ${formatNumber(rows.length)} listed`})</h2>
      {unlisted > 0 && (
        <p className="muted small" data-testid="in-flight-unlisted">
          The {formatNumber(unlisted)} not listed here started while {formatNumber(SNAPSHOT_LIMITS.inFlight)} others were: a run's snapshot lists at most {formatNumber(SNAPSHOT_LIMITS.inFlight)} calls in flight and counts the rest.
        </p>
      )}
      {all === 0 ? (
        <p className="muted">No calls running.</p>
      ) : rows.length === 0 ? null : (
        <ul className="inflight" data-testid="in-flight">
          {rows}
        </ul>
      )}
    </section>
  );
}
