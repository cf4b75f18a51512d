import { useEffect, useMemo, useState } from 'react';
import { useRuns, type ConnectionState } from '@runtrail/client/react';
import type { ListRunsQuery, Run, RunCounts, RunsFilter } from '@runtrail/protocol';
import { isRetryable, pollEvery } from '@runtrail/client';
import { client, LIVE_RENDER_MS } from './client.js';
import { keepUnchanged } from './kept-runs.js';

export const PAGE_SIZE = 25;
const POLL_MS = 2000;
const MAX_POLL_BACKOFF_MS = 10_000;
/** Runs on other pages have no stream here: their share of the totals is re-read this often. */
const COUNTS_POLL_MS = 5000;

export interface RunsPage {
  runs: readonly Run[];
  connection: ConnectionState;
  error: Error | null;
  /** When the page last heard the server about this page (epoch ms; null before). */
  lastHeardAt: number | null;
  /** Whether older runs may exist past this page. */
  hasOlder: boolean;
  /** The cursor of the page after this one (asks the server when the page is the live one). */
  olderCursor(): Promise<string | null>;
}

/**
 * One page of the runs table. The newest page is the SDK's live list
 * (`useRuns`: pushed changes, with every filter); the live subscription has
 * no cursor, so an older page is the same list API re-read every POLL_MS,
 * and says so ('polling').
 */
export function useRunsPage(filter: RunsFilter, cursor: string | undefined): RunsPage {
  const paged = cursor !== undefined;
  const live = useRuns(filter, { limit: PAGE_SIZE, throttleMs: LIVE_RENDER_MS });
  const query: ListRunsQuery = { ...filter, ...(cursor ? { cursor } : {}), limit: PAGE_SIZE };
  const polled = usePolledList(paged ? query : null);
  const runs = useKeptRuns(paged ? polled.runs : live.runs);

  if (!paged) {
    return {
      runs,
      connection: live.connection,
      error: live.error,
      lastHeardAt: live.lastHeardAt,
      hasOlder: live.runs.length >= PAGE_SIZE,
      olderCursor: async () => (await client.listRuns(query)).nextCursor,
    };
  }
  return {
    runs,
    connection: polled.connection,
    error: polled.error,
    lastHeardAt: polled.lastHeardAt,
    hasOlder: polled.nextCursor !== null,
    olderCursor: async () => polled.nextCursor,
  };
}

interface PolledList {
  runs: readonly Run[];
  nextCursor: string | null;
  connection: ConnectionState;
  error: Error | null;
  lastHeardAt: number | null;
}

const IDLE: PolledList = { runs: [], nextCursor: null, connection: 'connecting', error: null, lastHeardAt: null };

function usePolledList(query: ListRunsQuery | null): PolledList {
  const [state, setState] = useState<PolledList>(IDLE);
  const key = query === null ? null : JSON.stringify(query);
  useEffect(() => {
    setState(IDLE);
    if (key === null) return;
    const q = JSON.parse(key) as ListRunsQuery;
    const stop = new AbortController();
    pollEvery(
      () => client.listRuns(q),
      {
        onValue: (res) => setState({ runs: res.runs, nextCursor: res.nextCursor, connection: 'polling', error: null, lastHeardAt: Date.now() }),
        onError: (err) => {
          const error = err instanceof Error ? err : new Error(String(err));
          // A page the server refuses (a hand-edited cursor) is refused again at every poll: say so once and stop.
          if (!isRetryable(err)) stop.abort();
          setState((s) => ({ ...s, connection: isRetryable(err) ? 'reconnecting' : 'ended', error }));
        },
      },
      { intervalMs: POLL_MS, backoff: { maxMs: MAX_POLL_BACKOFF_MS }, signal: stop.signal },
    );
    return () => stop.abort();
  }, [key]);
  return key === null ? IDLE : state;
}

/**
 * `runs` with the objects of the runs that did not change since the last
 * list kept (see keepUnchanged): each row of the list is memoised on its run.
 */
function useKeptRuns(runs: readonly Run[]): readonly Run[] {
  // The list last returned: a box the memo below updates, not state, since setting it must not render again.
  const [last] = useState<{ runs: readonly Run[] }>(() => ({ runs: [] }));
  return useMemo(() => (last.runs = keepUnchanged(runs, last.runs)), [runs, last]);
}

/**
 * The list's totals: how many runs match `filter`, by status, over every
 * page (GET /run-counts). Read again at once when `changed` changes (a run
 * the page shows started, ended or stalled) and every COUNTS_POLL_MS for the
 * runs no page shows; null until the first answer for this filter, and
 * while the server does not answer (the list says so; stale totals would
 * not).
 */
export function useRunCounts(filter: RunsFilter, changed: string): RunCounts | null {
  const key = JSON.stringify(filter);
  const [counts, setCounts] = useState<{ key: string; counts: RunCounts | null }>({ key, counts: null });
  useEffect(() => {
    const stop = new AbortController();
    pollEvery(
      () => client.countRuns(JSON.parse(key) as RunsFilter),
      {
        onValue: (value) => setCounts({ key, counts: value }),
        onError: () => setCounts({ key, counts: null }),
      },
      { intervalMs: COUNTS_POLL_MS, backoff: { maxMs: MAX_POLL_BACKOFF_MS }, signal: stop.signal },
    );
    return () => stop.abort();
  }, [key, changed]);
  return counts.key === key ? counts.counts : null;
}

export interface ChildRuns {
  byParent: Map<string, Run[]>;
  /**
   * Null when every child of these parents is here. Otherwise the
   * subscription is full (MAX_CHILDREN, the newest, for all the parents
   * together) and children created before this time may be missing: a
   * parent created at or before it may have more than it shows.
   */
  cutBefore: number | null;
  error: Error | null;
}

/** Children of these runs, live (newest first), by parent; one subscription for the whole page. */
export function useChildRuns(parentIds: readonly string[]): ChildRuns {
  // No parent on the page: a filter nothing matches rather than a second hook path (hooks cannot be conditional).
  const live = useRuns(parentIds.length > 0 ? { parentIds: parentIds.join(',') } : { parentId: NO_PARENT }, { limit: MAX_CHILDREN, throttleMs: LIVE_RENDER_MS });
  const runs = useKeptRuns(live.runs);
  const byParent = new Map<string, Run[]>();
  for (const run of runs) {
    if (run.parentId === null) continue;
    const list = byParent.get(run.parentId) ?? [];
    list.push(run);
    byParent.set(run.parentId, list);
  }
  const cutBefore = runs.length >= MAX_CHILDREN ? Math.min(...runs.map((r) => r.createdAt)) : null;
  return { byParent, cutBefore, error: live.error };
}
/** The most children one page shows under its parents (the API's largest page). */
export const MAX_CHILDREN = 200;
const NO_PARENT = '-no-parent-';

/**
 * How many children each of these runs has in all (GET /run-counts per
 * parent), read again every COUNTS_POLL_MS; for the few parents whose
 * children a full subscription may have cut off (ChildRuns.cutBefore), so
 * the list can say "200 of 534" at every depth. A parent not yet counted is
 * missing from the map.
 */
export function useChildTotals(parentIds: readonly string[]): ReadonlyMap<string, number> {
  const key = [...parentIds].sort().join(',');
  // Kept across changes of the parents asked about, so a count already read does not blink back to "+".
  const [totals, setTotals] = useState<ReadonlyMap<string, number>>(EMPTY_TOTALS);
  useEffect(() => {
    if (key === '') return;
    const ids = key.split(',');
    const stop = new AbortController();
    pollEvery(
      async () => new Map(await Promise.all(ids.map(async (id) => [id, (await client.countRuns({ parentId: id })).total] as const))),
      {
        onValue: (byParent) => setTotals((known) => new Map([...known, ...byParent])),
        // The list still says "+" (some not shown) without the number; the poll asks again.
        onError: () => undefined,
      },
      { intervalMs: COUNTS_POLL_MS, backoff: { maxMs: MAX_POLL_BACKOFF_MS }, signal: stop.signal },
    );
    return () => stop.abort();
  }, [key]);
  return totals;
}
const EMPTY_TOTALS: ReadonlyMap<string, number> = new Map();
