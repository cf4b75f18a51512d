import { useMemo, useSyncExternalStore } from 'react';
import type { Run, RunEvent, RunsFilter, Snapshot } from '@runtrail/protocol';
import type { RuntrailError } from '@runtrail/protocol';
import type { ConnectionState } from '../watch/types.js';
import { useRuntrailConfig } from './context.js';
import { IDLE_RUNS_STATE, IDLE_RUN_STATE, createRunSource, createRunsSource, type ExternalStore } from './sources.js';

export interface UseRunResult {
  run: Run | null;
  snapshot: Snapshot;
  /** The latest events (bounded by `maxEvents`), in seq order. */
  events: readonly RunEvent[];
  connection: ConnectionState;
  error: RuntrailError | null;
  /** How many watch the run now, on every node of a cluster, this page included (with `observers: true`; null while not known). */
  observers: number | null;
}

export interface UseRunOptions {
  /** Events kept for display. Default 5,000. */
  maxEvents?: number;
  /** Skip the history: start from the run's persisted snapshot (events then start empty). */
  fromSnapshot?: boolean;
  /** At most one render per this many ms (changes in between render together). Default 0: every change. */
  throttleMs?: number;
  /** Keep `observers` current (pushed by the server on the stream; see WatchRunOptions.observers). */
  observers?: boolean;
}

const idleStore = <S>(state: S): ExternalStore<S> => ({ subscribe: () => () => undefined, getSnapshot: () => state });

/**
 * The live state of one run. A thin useSyncExternalStore binding over
 * watchRun: same reducer as the server, resumes after drops, ends at the
 * run's terminal event. `id` null/undefined renders the idle state.
 */
export function useRun(id: string | null | undefined, options: UseRunOptions = {}): UseRunResult {
  const config = useRuntrailConfig();
  const { maxEvents, fromSnapshot, throttleMs, observers } = options;
  const store = useMemo(
    () =>
      id
        ? createRunSource(id, {
            ...config,
            ...(maxEvents !== undefined ? { maxEvents } : {}),
            ...(fromSnapshot !== undefined ? { fromSnapshot } : {}),
            ...(throttleMs !== undefined ? { throttleMs } : {}),
            ...(observers !== undefined ? { observers } : {}),
          })
        : idleStore(IDLE_RUN_STATE),
    [id, config, maxEvents, fromSnapshot, throttleMs, observers],
  );
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, () => IDLE_RUN_STATE);
  return { run: state.run, snapshot: state.snapshot, events: state.events, connection: state.connection, error: state.error, observers: state.observers };
}

export interface UseRunsResult {
  runs: readonly Run[];
  connection: ConnectionState;
  error: RuntrailError | null;
}

export interface UseRunsOptions {
  /** The newest this many runs are listed. Default 100 (at most 200, the API's page). */
  limit?: number;
  /** At most one render per this many ms (changes in between render together). Default 0: every change. */
  throttleMs?: number;
}

/** A live runs list (newest first), filtered by status/name/parentId/label (`k=v[,k=v]`). */
export function useRuns(filter: RunsFilter = {}, options: UseRunsOptions = {}): UseRunsResult {
  const config = useRuntrailConfig();
  const { limit, throttleMs } = options;
  // Re-subscribe only when a filter value changes (not on every new object literal).
  const key = JSON.stringify(Object.entries(filter).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)));
  const store = useMemo(
    () =>
      createRunsSource({
        ...config,
        filter: Object.fromEntries(JSON.parse(key) as Array<[string, string]>) as RunsFilter,
        ...(limit !== undefined ? { limit } : {}),
        ...(throttleMs !== undefined ? { throttleMs } : {}),
      }),
    [config, key, limit, throttleMs],
  );
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, () => IDLE_RUNS_STATE);
  return { runs: state.runs, connection: state.connection, error: state.error };
}
