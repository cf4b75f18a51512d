import type { RunStatus } from '@runtrail/protocol';

/**
 * A native <progress> keeps the role and value readable by assistive tech.
 * Its colour follows the run's status (`progress-failed`, …): a failed or
 * cancelled run must not draw a bar in the colour of one under way, and a
 * stalled one is drawn in the warning colour (`progress-stalled`).
 */
export function ProgressBar({ percent, label, status = 'running', stalled = false }: { percent: number | null; label: string; status?: RunStatus; stalled?: boolean }) {
  const className = `progress progress-${status}${stalled ? ' progress-stalled' : ''}`;
  if (percent === null) {
    return <progress className={className} aria-label={label} />;
  }
  const value = Math.round(percent * 10) / 10;
  return (
    <span className="progress-wrap">
      <progress className={className} aria-label={label} max={100} value={value} />
      <span className="progress-text">{Math.floor(value)}%</span>
    </span>
  );
}
