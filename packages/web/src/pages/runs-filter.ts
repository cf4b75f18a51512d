import { RunErrorKind, RunStatus, type RunsFilter } from '@runtrail/protocol';

/**
 * The runs list's filter as the URL keeps it (`?q=eval&failed=timeout&since=24h`),
 * so a filtered list can be shared and survives a reload. Unknown or
 * malformed values are dropped, never sent to the server.
 */
export interface ListFilter {
  /** A part of the name. */
  q: string;
  status: RunStatus | '';
  failed: RunErrorKind | '';
  since: SinceKey | '';
  /** `key=value,key2=value2` as typed; applied once it is well-formed. */
  label: string;
}

export const NO_FILTER: ListFilter = { q: '', status: '', failed: '', since: '', label: '' };

export const SINCE = {
  '15m': { text: 'last 15 minutes', ms: 15 * 60_000 },
  '1h': { text: 'last hour', ms: 3600_000 },
  '24h': { text: 'last 24 hours', ms: 24 * 3600_000 },
  '7d': { text: 'last 7 days', ms: 7 * 24 * 3600_000 },
  '30d': { text: 'last 30 days', ms: 30 * 24 * 3600_000 },
} as const;
export type SinceKey = keyof typeof SINCE;

const LABELS_RE = /^\s*[^=,\s][^=,]*=[^,]*(,\s*[^=,\s][^=,]*=[^,]*)*$/;

export function labelFilterValid(label: string): boolean {
  return label.trim() === '' || LABELS_RE.test(label);
}

/** ` team = ml , env=prod ` -> `team=ml,env=prod`. */
function normalizeLabels(label: string): string {
  return label
    .split(',')
    .filter((pair) => pair.trim() !== '')
    .map((pair) => pair.split('=').map((part) => part.trim()).join('='))
    .join(',');
}

export function filterFromQuery(query: URLSearchParams): ListFilter {
  const pick = <T extends string>(value: string | null, allowed: readonly T[]): T | '' =>
    value !== null && (allowed as readonly string[]).includes(value) ? (value as T) : '';
  return {
    q: query.get('q') ?? '',
    status: pick(query.get('status'), RunStatus.options),
    failed: pick(query.get('failed'), RunErrorKind.options),
    since: pick(query.get('since'), Object.keys(SINCE) as SinceKey[]),
    label: query.get('label') ?? '',
  };
}

export function queryFromFilter(filter: ListFilter): URLSearchParams {
  const query = new URLSearchParams();
  for (const key of ['q', 'status', 'failed', 'since', 'label'] as const) {
    if (filter[key] !== '') query.set(key, filter[key]);
  }
  return query;
}

/** Whether the filter narrows the list to some runs (a time range alone does not: it still lists runs by parent). */
export function narrows(filter: ListFilter): boolean {
  const label = labelFilterValid(filter.label) && normalizeLabels(filter.label) !== '';
  return filter.q.trim() !== '' || filter.status !== '' || filter.failed !== '' || label;
}

export function isFiltered(filter: ListFilter): boolean {
  return narrows(filter) || filter.since !== '';
}

/**
 * What the server is asked. Without a narrowing filter the list shows top
 * level runs with their children nested under them; with one it lists every
 * matching run, children too (a search for an experiment must find it).
 * `now` anchors a relative time range.
 */
export function serverFilter(filter: ListFilter, now: number): RunsFilter {
  const q = filter.q.trim();
  const label = labelFilterValid(filter.label) ? normalizeLabels(filter.label) : '';
  return {
    ...(q ? { nameContains: q } : {}),
    ...(filter.status ? { status: filter.status } : {}),
    ...(filter.failed ? { errorKind: filter.failed } : {}),
    ...(label ? { label } : {}),
    ...(filter.since ? { createdAfter: now - SINCE[filter.since].ms } : {}),
    ...(narrows(filter) ? {} : { topLevel: 'true' as const }),
  };
}
