import { initialSnapshot } from '@runtrail/protocol';
import { RunWatch, type RunWatchState, type WatchRunOptions } from '../watch/watch-run.js';
import { RunsWatch, type RunsWatchState, type WatchRunsOptions } from '../watch/watch-runs.js';

/** A `useSyncExternalStore` source: subscribe + getSnapshot (stable between changes). */
export interface ExternalStore<S> {
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
}

export const IDLE_RUN_STATE: RunWatchState = Object.freeze({
  run: null,
  snapshot: initialSnapshot(),
  events: [],
  seq: 0,
  connection: 'connecting',
  reason: 'start',
  transport: null,
  error: null,
}) as RunWatchState;

export const IDLE_RUNS_STATE: RunsWatchState = Object.freeze({ runs: [], connection: 'connecting', reason: 'start', error: null }) as RunsWatchState;

/**
 * A source that connects while someone listens: the first subscriber opens
 * a watcher, the last one leaving closes it (so an unmounted component, or a
 * page that switched runs, leaves no socket behind). Rendering never opens
 * a connection; only subscribing (an effect) does.
 */
function lazySource<S, W extends { subscribe(l: () => void): () => void; getState(): S; close(): void; start(): W }>(
  make: () => W,
  idle: S,
): ExternalStore<S> {
  let watch: W | null = null;
  let last: S = idle;
  let count = 0;
  return {
    subscribe(listener) {
      if (watch === null) {
        watch = make();
        watch.start();
      }
      const w = watch;
      count++;
      const off = w.subscribe(() => {
        last = w.getState();
        listener();
      });
      // React compares getSnapshot() with what it rendered right after subscribing.
      last = w.getState();
      return () => {
        off();
        if (--count === 0 && watch === w) {
          w.close();
          watch = null;
        }
      };
    },
    getSnapshot: () => last,
  };
}

export function createRunSource(runId: string, options: WatchRunOptions): ExternalStore<RunWatchState> {
  return lazySource(() => new RunWatch(runId, options), IDLE_RUN_STATE);
}

export function createRunsSource(options: WatchRunsOptions): ExternalStore<RunsWatchState> {
  return lazySource(() => new RunsWatch(options), IDLE_RUNS_STATE);
}
