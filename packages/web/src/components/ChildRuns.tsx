import { useRuns } from '@runtrail/client/react';
import { dashboardRunPath } from '@runtrail/protocol';
import { Link } from '../router.js';
import { ProgressBar } from './ProgressBar.js';
import { StatusBadge } from './StatusBadge.js';

/** A run's children (a task's experiments), live; hidden while there are none. */
export function ChildRuns({ parentId }: { parentId: string }) {
  const { runs } = useRuns({ parentId });
  if (runs.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="children-title">
      <h2 id="children-title">Child runs ({runs.length})</h2>
      <ul className="children">
        {runs.map((child) => (
          <li key={child.id}>
            <Link href={dashboardRunPath(child.id)}>{child.name}</Link>
            <StatusBadge status={child.status} />
            {child.snapshot.progress && (
              <ProgressBar percent={child.snapshot.progress.percent} label={`progress of ${child.name}`} />
            )}
            <span className="muted">
              {child.snapshot.counters.ok} ok · {child.snapshot.counters.failed} failed
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
