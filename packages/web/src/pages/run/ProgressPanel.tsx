import type { Snapshot } from '@runtrail/protocol';
import { ProgressBar } from '../../components/ProgressBar.js';
import { estimateEta, formatDuration, formatNumber } from '../../format.js';

export function ProgressPanel({ snapshot, startedAt }: { snapshot: Snapshot; startedAt: number | null }) {
  const p = snapshot.progress;
  const eta = snapshot.terminal ? null : estimateEta(p, startedAt);
  return (
    <section className="panel" aria-labelledby="progress-title">
      <h2 id="progress-title">Progress</h2>
      {p ? (
        <>
          <ProgressBar percent={p.percent} label="run progress" />
          <p>
            <span data-testid="progress-done">{formatNumber(p.done)}</span>
            {p.total !== null && ` of ${formatNumber(p.total)}`}
            {p.percent !== null && ` (${p.percent.toFixed(1)}%)`}
            {eta !== null && <span data-testid="eta"> · about {formatDuration(eta)} left</span>}
          </p>
          {p.message && <p className="muted">{p.message}</p>}
        </>
      ) : (
        <p className="muted">No progress reported yet.</p>
      )}
      {snapshot.phase && (
        <p>
          Phase: <strong>{snapshot.phase}</strong>
        </p>
      )}
    </section>
  );
}
