import type { Run } from '@runtrail/protocol';

/** A value a child-runs column shows and sorts by. */
export type CellValue = number | string | null;

export interface ChildColumn {
  /** Stable id: `input:<key>`, `metric:<name>:<last|min|max>`, `meta:<key>`, or a fixed one. */
  id: string;
  title: string;
  kind: 'fixed' | 'input' | 'metric' | 'meta';
  value(run: Run, now: number): CellValue;
}

const STATUS_ORDER: Record<Run['status'], number> = { running: 0, queued: 1, failed: 2, cancelled: 3, succeeded: 4 };

export const FIXED_COLUMNS: ChildColumn[] = [
  { id: 'name', title: 'Name', kind: 'fixed', value: (r) => r.name },
  { id: 'status', title: 'Status', kind: 'fixed', value: (r) => STATUS_ORDER[r.status] },
  {
    id: 'duration',
    title: 'Duration',
    kind: 'fixed',
    value: (r, now) => (r.startedAt === null ? null : (r.finishedAt ?? now) - r.startedAt),
  },
];

/** A JSON value as a cell: numbers and strings as they are, anything else as compact JSON. */
export function cellOf(value: unknown): CellValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' || typeof value === 'string') return value;
  return JSON.stringify(value);
}

function objectOf(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/**
 * The columns the children offer: each key of their inputs (the parameters
 * an experiment was given), each metric's last, min and max, and each meta
 * key (e.g. best_score), in first-seen order.
 */
export function availableColumns(children: readonly Run[]): { inputs: ChildColumn[]; results: ChildColumn[] } {
  const inputKeys = new Set<string>();
  const metricNames = new Set<string>();
  const metaKeys = new Set<string>();
  for (const child of children) {
    for (const key of Object.keys(objectOf(child.input) ?? {})) inputKeys.add(key);
    for (const name of Object.keys(child.snapshot.metrics)) metricNames.add(name);
    for (const key of Object.keys(child.snapshot.meta)) metaKeys.add(key);
  }
  const inputs: ChildColumn[] = [...inputKeys].map((key) => ({
    id: `input:${key}`,
    title: key,
    kind: 'input',
    value: (r) => {
      const input = objectOf(r.input);
      return input && Object.hasOwn(input, key) ? cellOf(input[key]) : null;
    },
  }));
  const results: ChildColumn[] = [];
  for (const name of metricNames) {
    for (const stat of ['last', 'min', 'max'] as const) {
      results.push({
        id: `metric:${name}:${stat}`,
        title: stat === 'last' ? name : `${name} (${stat})`,
        kind: 'metric',
        value: (r) => (Object.hasOwn(r.snapshot.metrics, name) ? r.snapshot.metrics[name]![stat] : null),
      });
    }
  }
  for (const key of metaKeys) {
    results.push({
      id: `meta:${key}`,
      title: key,
      kind: 'meta',
      value: (r) => (Object.hasOwn(r.snapshot.meta, key) ? cellOf(r.snapshot.meta[key]) : null),
    });
  }
  return { inputs, results };
}

/** Shown until the reader picks: each metric's last value and every meta key. */
export function defaultResultColumns(results: readonly ChildColumn[]): string[] {
  return results.filter((c) => c.kind === 'meta' || c.id.endsWith(':last')).map((c) => c.id);
}

export type SortDirection = 'ascending' | 'descending';

/** Rows ordered by a column; empty cells last whichever the direction, ties in their given order. */
export function sortRuns(children: readonly Run[], column: ChildColumn, direction: SortDirection, now: number): Run[] {
  const sign = direction === 'ascending' ? 1 : -1;
  return children
    .map((run, index) => ({ run, index, value: column.value(run, now) }))
    .sort((a, b) => {
      if (a.value === null || b.value === null) return a.value === b.value ? a.index - b.index : a.value === null ? 1 : -1;
      const order =
        typeof a.value === 'number' && typeof b.value === 'number'
          ? a.value - b.value
          : String(a.value).localeCompare(String(b.value), undefined, { numeric: true });
      return order * sign || a.index - b.index;
    })
    .map((r) => r.run);
}
