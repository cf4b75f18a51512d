import { useMemo, useSyncExternalStore } from 'react';
import type { Run, RunEvent, RunsFilter, Snapshot } from '@runtrail/protocol';
import type { RuntrailError } from '@runtrail/protocol';
import type { ConnectionReason } from '../watch/transport.js';
import type { ConnectionState, TransportName } from '../watch/types.js';
import { useRuntrailConfig } from './context.js';
import { INITIAL_RUNS_STATE, INITIAL_RUN_STATE, NO_RUN_STATE, createRunSource, createRunsSource, type ExternalStore } from './sources.js';

export interface UseRunResult {
  run: Run | null;
  snapshot: Snapshot;
  /** The latest events (bounded by `maxEvents`), in seq order. */
  events: readonly RunEvent[];
  /** seq of `snapshot` (0 before anything arrived). */
  seq: number;
  /** `idle` when `id` is null/undefined (nothing to watch); otherwise the watcher's connection. */
  connection: ConnectionState;
  /** Why `connection` last changed (`error`, `closed`, `idle_timeout`, `fallback`, …; `no_run` when idle). */
  reason: ConnectionReason;
  /** Transport of the current (or last) connection: 'ws', 'sse' or 'poll'; null before the first one. */
  transport: TransportName | null;
  /** Why the watcher stopped (e.g. run_not_found), or the last connection problem while it retries. */
  error: RuntrailError | null;
  /** How many watch the run now, on every node of a cluster, this page included (with `observers: true`; null while not known). */
  observers: number | null;
  /** When the watcher last heard the server (epoch ms; null before): what is shown is as of then while it reconnects. */
  lastHeardAt: number | null;
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
  /** After the run's end, keep listening until it is deleted (then reason `deleted`; see WatchRunOptions.untilDeleted). */
  untilDeleted?: boolean;
}

const idleStore = <S>(state: S): ExternalStore<S> => ({ subscribe: () => () => undefined, getSnapshot: () => state });

/**
 * The live state of one run. A thin useSyncExternalStore binding over
 * watchRun: same reducer as the server, resumes after drops, ends at the
 * run's terminal event. `id` null/undefined (no run selected) opens
 * nothing and renders `connection: 'idle'`, reason `no_run`.
 */
export function useRun(id: string | null | undefined, options: UseRunOptions = {}): UseRunResult {
  const config = useRuntrailConfig();
  const { maxEvents, fromSnapshot, throttleMs, observers, untilDeleted } = options;
  const store = useMemo(
    () =>
      id
        ? createRunSource(id, {
            ...config,
            ...(maxEvents !== undefined ? { maxEvents } : {}),
            ...(fromSnapshot !== undefined ? { fromSnapshot } : {}),
            ...(throttleMs !== undefined ? { throttleMs } : {}),
            ...(observers !== undefined ? { observers } : {}),
            ...(untilDeleted !== undefined ? { untilDeleted } : {}),
          })
        : idleStore(NO_RUN_STATE),
    [id, config, maxEvents, fromSnapshot, throttleMs, observers, untilDeleted],
  );
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, () => (id ? INITIAL_RUN_STATE : NO_RUN_STATE));
  return {
    run: state.run,
    snapshot: state.snapshot,
    events: state.events,
    seq: state.seq,
    connection: state.connection,
    reason: state.reason,
    transport: state.transport,
    error: state.error,
    observers: state.observers,
    lastHeardAt: state.lastHeardAt,
  };
}

export interface UseRunsResult {
  runs: readonly Run[];
  connection: ConnectionState;
  /** Why `connection` last changed (`error`, `closed`, `idle_timeout`, `fallback`, …). */
  reason: ConnectionReason;
  /** Transport of the current (or last) connection: 'ws' or 'poll' (a runs list has no SSE route); null before the first one. */
  transport: TransportName | null;
  /** Why the watcher stopped (a refused filter or token), or the last connection problem while it retries. */
  error: RuntrailError | null;
  /** When the watcher last heard the server (epoch ms; null before): what is shown is as of then while it reconnects. */
  lastHeardAt: number | null;
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
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot, () => INITIAL_RUNS_STATE);
  return { runs: state.runs, connection: state.connection, reason: state.reason, transport: state.transport, error: state.error, lastHeardAt: state.lastHeardAt };
}
