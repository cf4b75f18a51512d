import { useMemo } from 'react';
import { isTerminalStatus, type RunEvent, type RunStatus, type Snapshot } from '@runtrail/protocol';
import { ProgressBar } from '../../components/ProgressBar.js';
import { formatDuration, formatNumber } from '../../format.js';
import { estimateProgress, progressSamples, stalledForMs, type ProgressSample } from '../../progress-estimate.js';
import { useNow } from '../../use-now.js';
import { visibleText } from '../../visible-text.js';

export function ProgressPanel({
  snapshot,
  events,
  status,
  startedAt,
}: {
  snapshot: Snapshot;
  events: readonly RunEvent[];
  status: RunStatus;
  startedAt: number | null;
}) {
  const p = snapshot.progress;
  const samples = useMemo(() => progressSamples(events, snapshot, startedAt), [events, snapshot, startedAt]);
  return (
    <section className="panel" aria-labelledby="progress-title">
      <h2 id="progress-title">Progress</h2>
      {p ? (
        <>
          <ProgressLine progress={p} samples={samples} stalledAt={snapshot.stalled} ended={snapshot.terminal !== null} startedAt={startedAt} status={status} />
          {p.message && (
            // What the run is doing while it runs; once it has ended, only what it last said it was doing.
            <p className="muted" data-testid="progress-message">
              {snapshot.terminal || isTerminalStatus(status) ? `Last message: ${visibleText(p.message)}` : visibleText(p.message)}
            </p>
          )}
        </>
      ) : (
        <p className="muted">{snapshot.terminal || isTerminalStatus(status) ? 'No progress reported.' : 'No progress reported yet.'}</p>
      )}
      {snapshot.phase && (
        <p>
          Phase: <strong>{visibleText(snapshot.phase)}</strong>
        </p>
      )}
    </section>
  );
}

/** The bar, the count and the ETA: the part of the panel that reads the clock (the ETA and "no progress for" move on with it). */
function ProgressLine({
  progress: p,
  samples,
  stalledAt,
  ended,
  startedAt,
  status,
}: {
  progress: NonNullable<Snapshot['progress']>;
  samples: readonly ProgressSample[];
  stalledAt: Snapshot['stalled'];
  ended: boolean;
  startedAt: number | null;
  status: RunStatus;
}) {
  const now = useNow();
  const stalled = stalledAt ? stalledForMs(stalledAt, startedAt, now) : null;
  const estimate = ended ? null : estimateProgress({ samples, total: p.total, now, stalledForMs: stalled });
  return (
    <>
      <ProgressBar percent={p.percent} label="run progress" status={status} stalled={estimate?.kind === 'stalled'} />
      <p>
        <span data-testid="progress-done">{formatNumber(p.done)}</span>
        {p.total !== null && ` of ${formatNumber(p.total)}`}
        {p.percent !== null && ` (${p.percent.toFixed(1)}%)`}
        {estimate?.kind === 'eta' && <span data-testid="eta"> · about {formatDuration(estimate.remainingMs)} left</span>}
        {estimate?.kind === 'stalled' && (
          // "Stalled" is the server's finding (its badge and banner say it too); a quiet spell only this page
          // sees is "no progress for", as the runs list says, so the two never disagree on whether it stalled.
          <span data-testid="eta" className="warn-text">
            {' '}
            · {stalled !== null ? 'stalled: ' : ''}no progress for {formatDuration(estimate.sinceMs)}
          </span>
        )}
      </p>
    </>
  );
}
