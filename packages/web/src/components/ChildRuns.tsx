import { useMemo, useState } from 'react';
import { dashboardRunPath, type Run } from '@runtrail/protocol';
import { formatDuration, formatNumber } from '../format.js';
import { availableColumns, defaultResultColumns, FIXED_COLUMNS, sortRuns, type CellValue, type ChildColumn, type SortDirection } from '../pages/run/child-columns.js';
import { childLabel } from '../pages/run/metric-series.js';
import { Link } from '../router.js';
import { errorParts } from './error-headline.js';
import { ProgressBar } from './ProgressBar.js';
import { StatusBadge } from './StatusBadge.js';
import { visibleText } from '../visible-text.js';
import { terminalText } from '../pages/run/terminal-line.js';
import '../pages/run/run-insights.css';

/**
 * A run's children (a task's experiments) as a table, live: each with the
 * parameters it was given, its status and duration, and the results the
 * reader picks (metrics, meta such as a best score); every column sorts.
 * Hidden while there are none.
 */
export function ChildRuns({ children, total, now }: { children: readonly Run[]; total: number; now: number }) {
  const { inputs, results } = useMemo(() => availableColumns(children), [children]);
  const [picked, setPicked] = useState<string[] | null>(null);
  const [sort, setSort] = useState<{ id: string; direction: SortDirection } | null>(null);
  if (children.length === 0) return null;
  const shownResults = picked ?? defaultResultColumns(results);
  const columns: ChildColumn[] = [
    FIXED_COLUMNS[0]!,
    ...inputs,
    FIXED_COLUMNS[1]!,
    FIXED_COLUMNS[2]!,
    ...results.filter((c) => shownResults.includes(c.id)),
  ];
  const sortColumn = sort ? columns.find((c) => c.id === sort.id) : undefined;
  const rows = sort && sortColumn ? sortRuns(children, sortColumn, sort.direction, now) : children;
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
                    <Cell column={c} run={child} siblings={children} now={now} />
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Cell({ column, run, siblings, now }: { column: ChildColumn; run: Run; siblings: readonly Run[]; now: number }) {
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
      return <>{formatDuration(column.value(run, now) as number | null)}</>;
    default:
      return <>{show(column.value(run, now))}</>;
  }
}

function show(value: CellValue): string {
  if (value === null) return '–';
  return typeof value === 'number' ? formatNumber(value) : visibleText(value);
}
