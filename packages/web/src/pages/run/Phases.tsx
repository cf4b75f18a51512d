import type { Snapshot } from '@runtrail/protocol';
import { formatDuration, formatTime } from '../../format.js';

export function Phases({ snapshot, now }: { snapshot: Snapshot; now: number }) {
  if (snapshot.phases.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="phases-title">
      <h2 id="phases-title">Phases</h2>
      <ol className="phases">
        {snapshot.phases.map((p, i) => {
          const duration = p.durationMs ?? now - p.startedAt;
          const over = p.timeoutMs !== null && duration > p.timeoutMs;
          return (
            <li key={`${p.name}-${i}`} className={`phase phase-${p.status}`}>
              <span className="phase-name">{p.name}</span>
              <span className={`badge badge-phase-${p.status}`}>{p.status === 'started' ? 'running' : p.status}</span>
              <span className="muted">from {formatTime(p.startedAt)}</span>
              <span>{formatDuration(duration)}</span>
              {p.timeoutMs !== null && (
                <span className={over ? 'invalid' : 'muted'}>timeout {formatDuration(p.timeoutMs)}</span>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}
