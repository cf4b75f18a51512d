import { isTerminalStatus, type RunStatus } from '@runtrail/protocol';
import { formatNumber } from '../format.js';

/**
 * A native <progress> keeps the role and value readable by assistive tech.
 * Its colour follows the run's status (`progress-failed`, …): a failed or
 * cancelled run must not draw a bar in the colour of one under way, and a
 * stalled one is drawn in the warning colour (`progress-stalled`).
 */
export function ProgressBar({
  percent,
  label,
  status = 'running',
  stalled = false,
  done,
}: {
  percent: number | null;
  label: string;
  status?: RunStatus;
  stalled?: boolean;
  /** Items done, said beside a bar of unknown total (where a percentage would be), so a row shows how far it got. */
  done?: number;
}) {
  const className = `progress progress-${status}${stalled ? ' progress-stalled' : ''}`;
  if (percent === null) {
    // A bar of unknown total moves to show work under way: an ended run's would claim work that stopped.
    const bar = isTerminalStatus(status) ? null : <progress className={className} aria-label={label} />;
    if (done === undefined) return bar;
    return (
      <span className="progress-wrap">
        {bar}
        <span className="progress-text" data-testid="progress-count" title={`${formatNumber(done)} done; total not known`}>
          {formatNumber(done)}
        </span>
      </span>
    );
  }
  const value = Math.round(percent * 10) / 10;
  return (
    <span className="progress-wrap">
      <progress className={className} aria-label={label} max={100} value={value} />
      <span className="progress-text">{Math.floor(value)}%</span>
    </span>
  );
}
