import { SNAPSHOT_LIMITS, callsInFlight, hasCalls } from '@runtrail/protocol';
import type { Snapshot } from '@runtrail/protocol';
import { formatDuration, formatNumber } from '../../format.js';
import { visibleText } from '../../visible-text.js';

export function InFlight({ snapshot, now }: { snapshot: Snapshot; now: number }) {
  if (!hasCalls(snapshot)) return null;
  const calls = Object.values(snapshot.current).sort((a, b) => a.startedAt - b.startedAt);
  // The snapshot lists at most SNAPSHOT_LIMITS.inFlight calls and counts the
  // rest: the title says so rather than pass the listed part off as all.
  const all = callsInFlight(snapshot);
  const unlisted = all - calls.length;
  return (
    <section className="panel" aria-labelledby="inflight-title">
      <h2 id="inflight-title">In flight ({formatNumber(all)}{unlisted > 0 && `; ${formatNumber(calls.length)} listed`})</h2>
      {unlisted > 0 && (
        <p className="muted small" data-testid="in-flight-unlisted">
          The {formatNumber(unlisted)} not listed here started while {formatNumber(SNAPSHOT_LIMITS.inFlight)} others were: a run's snapshot lists at most {formatNumber(SNAPSHOT_LIMITS.inFlight)} calls in flight and counts the rest.
        </p>
      )}
      {all === 0 ? (
        <p className="muted">No calls running.</p>
      ) : calls.length === 0 ? null : (
        <ul className="inflight" data-testid="in-flight">
          {calls.map((c) => (
            <li key={c.callId}>
              <span className="spinner" aria-hidden="true" />
              <span className="call-label">{visibleText(c.label)}</span>
              {c.attempt > 1 && <span className="attempt">attempt {c.attempt}</span>}
              <span className="muted">{formatDuration(Math.max(0, now - c.startedAt))}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
