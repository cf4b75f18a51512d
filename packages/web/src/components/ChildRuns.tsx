import { memo, useMemo, useState } from 'react';
import { dashboardRunPath, type Run } from '@runtrail/protocol';
import { formatDuration, formatNumber } from '../format.js';
import { availableColumns, defaultResultColumns, FIXED_COLUMNS, sortRuns, type CellValue, type ChildColumn, type SortDirection } from '../pages/run/child-columns.js';
import { childLabel } from '../pages/run/metric-series.js';
import { Link } from '../router.js';
import { errorParts } from './error-headline.js';
import { ProgressBar } from './ProgressBar.js';
import { RunningFor } from './RunningFor.js';
import { StatusBadge } from './StatusBadge.js';
import { useClock } from '../use-now.js';
import { visibleText } from '../visible-text.js';
import { terminalText } from '../pages/run/terminal-line.js';
import '../pages/run/run-insights.css';

/**
 * A run's children (a task's experiments) as a table, live: each with the
 * parameters it was given, its status and duration, and the results the
 * reader picks (metrics, meta such as a best score); every column sorts.
 * Hidden while there are none. Memoised: it depends on the children alone,
 * not on the parent's events.
 */
export const ChildRuns = memo(function ChildRuns({ children, total }: { children: readonly Run[]; total: number }) {
  const { inputs, results } = useMemo(() => availableColumns(children), [children]);
  const [picked, setPicked] = useState<string[] | null>(null);
  const [sort, setSort] = useState<{ id: string; direction: SortDirection } | null>(null);
  // Only an order by duration moves on with the clock (a running child's grows); as a key of ids, so a
  // tick renders the table again only when the order changed.
  const byDuration = sort?.id === DURATION.id ? sort.direction : null;
  const durationOrder = useClock((now) => (byDuration ? sortRuns(children, DURATION, byDuration, now).map((r) => r.id).join('\n') : ''));
  if (children.length === 0) return null;
  const shownResults = picked ?? defaultResultColumns(results);
  const columns: ChildColumn[] = [
    FIXED_COLUMNS[0]!,
    ...inputs,
    FIXED_COLUMNS[1]!,
    DURATION,
    ...results.filter((c) => shownResults.includes(c.id)),
  ];
  const sortColumn = sort ? columns.find((c) => c.id === sort.id) : undefined;
  const rows = byDuration ? inOrder(children, durationOrder) : sort && sortColumn ? sortRuns(children, sortColumn, sort.direction, Date.now()) : children;
  const toggle = (id: string) =>
    setSort((prev) => ({ id, direction: prev?.id === id && prev.direction === 'ascending' ? 'descending' : 'ascending' }));

  return (
    <section className="panel" aria-labelledby="children-title">
      <div className="panel-head">
        <h2 id="children-title">Child runs ({total > children.length ? `the latest ${formatNumber(children.length)} of ${formatNumber(total)}` : children.length})</h2>
        {results.length > 0 && (
          <details className="column-picker">
            <summary>Columns</summary>
            <fieldset>
              <legend>Results to show</legend>
              {results.map((c) => (
                <label key={c.id}>
                  <input
                    type="checkbox"
                    checked={shownResults.includes(c.id)}
                    onChange={(e) => setPicked(e.target.checked ? [...shownResults, c.id] : shownResults.filter((id) => id !== c.id))}
                  />{' '}
                  {visibleText(c.kind === 'meta' ? `meta ${c.title}` : c.title)}
                </label>
              ))}
            </fieldset>
          </details>
        )}
      </div>
      <div className="children-wrap">
        <table className="children-table" aria-labelledby="children-title">
          <thead>
            <tr>
              {columns.map((c) => (
                <th
                  key={c.id}
                  scope="col"
                  className={`col-${c.kind}`}
                  aria-sort={sort?.id === c.id ? sort.direction : undefined}
                  data-column={c.id}
                >
                  <button type="button" className="sort" onClick={() => toggle(c.id)} title={`sort by ${visibleText(c.title)}`}>
                    {visibleText(c.title)}
                    <span aria-hidden="true">{sort?.id === c.id ? (sort.direction === 'ascending' ? ' ▲' : ' ▼') : ''}</span>
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((child) => (
              <tr key={child.id} data-run-id={child.id}>
                {columns.map((c) => (
                  <td key={c.id} className={`col-${c.kind}`} data-column={c.id}>
                    <Cell column={c} run={child} siblings={children} />
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
});

const DURATION = FIXED_COLUMNS[2]!;

function inOrder(children: readonly Run[], ids: string): Run[] {
  const byId = new Map(children.map((c) => [c.id, c]));
  return ids.split('\n').flatMap((id) => byId.get(id) ?? []);
}

function Cell({ column, run, siblings }: { column: ChildColumn; run: Run; siblings: readonly Run[] }) {
  switch (column.id) {
    case 'name':
      // Experiments often share a name: numbered as in the comparison chart's legend.
      return <Link href={dashboardRunPath(run.id)}>{visibleText(childLabel(run, siblings))}</Link>;
    case 'status':
      return (
        <span className="child-status">
          <StatusBadge status={run.status} />
          {run.snapshot.progress && run.status === 'running' && (
            <ProgressBar percent={run.snapshot.progress.percent} done={run.snapshot.progress.done} label={`progress of ${visibleText(run.name)}`} status={run.status} />
          )}
          {run.error && (
            <span className="child-reason" data-testid="child-reason" title={visibleText(terminalText(`${run.error.kind}: ${run.error.message}`))}>
              {visibleText(errorParts(terminalText(run.error.message)).head)}
            </span>
          )}
        </span>
      );
    case 'duration':
      // A running child's is the one cell that moves on with the clock.
      if (run.startedAt !== null && run.finishedAt === null) return <RunningFor since={run.startedAt} />;
      return <>{formatDuration(column.value(run, Date.now()) as number | null)}</>;
    default:
      return <>{show(column.value(run, Date.now()))}</>;
  }
}

function show(value: CellValue): string {
  if (value === null) return '–';
  return typeof value === 'number' ? formatNumber(value) : visibleText(value);
}
