import { hasCalls } from '@runtrail/protocol';
import type { Snapshot } from '@runtrail/protocol';
import { formatDuration } from '../../format.js';
import { visibleText } from '../../visible-text.js';

export function InFlight({ snapshot, now }: { snapshot: Snapshot; now: number }) {
  if (!hasCalls(snapshot)) return null;
  const calls = Object.values(snapshot.current).sort((a, b) => a.startedAt - b.startedAt);
  return (
    <section className="panel" aria-labelledby="inflight-title">
      <h2 id="inflight-title">In flight ({calls.length})</h2>
      {calls.length === 0 ? (
        <p className="muted">No calls running.</p>
      ) : (
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
