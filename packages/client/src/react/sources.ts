import { initialSnapshot } from '@runtrail/protocol';
import { RunWatch, type RunWatchState, type WatchRunOptions } from '../watch/watch-run.js';
import { RunsWatch, type RunsWatchState, type WatchRunsOptions } from '../watch/watch-runs.js';

/** A `useSyncExternalStore` source: subscribe + getSnapshot (stable between changes). */
export interface ExternalStore<S> {
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
}

/** A run source before its watcher starts (and what a server render shows): about to connect. */
export const INITIAL_RUN_STATE: RunWatchState = Object.freeze({
  run: null,
  snapshot: initialSnapshot(),
  events: [],
  seq: 0,
  connection: 'connecting',
  reason: 'start',
  transport: null,
  error: null,
  observers: null,
  lastHeardAt: null,
}) as RunWatchState;

/** `useRun(null)`: no run to watch, so no watcher, and nothing that will ever connect. */
export const NO_RUN_STATE: RunWatchState = Object.freeze({ ...INITIAL_RUN_STATE, connection: 'idle', reason: 'no_run' }) as RunWatchState;

export const INITIAL_RUNS_STATE: RunsWatchState = Object.freeze({ runs: [], connection: 'connecting', reason: 'start', transport: null, error: null, lastHeardAt: null }) as RunsWatchState;

/**
 * How often a source may tell React to render. A run at a few hundred
 * events/s would otherwise render a whole page per WebSocket message; past
 * ~10 renders/s nobody sees the difference, but the browser spends a core.
 */
export interface RenderThrottle {
  /**
   * At most one render per this many ms: a change after a quiet spell renders
   * at once, changes inside the window render together at its end. Default 0
   * (every change renders).
   */
  throttleMs?: number;
}

/**
 * A source that connects while someone listens: the first subscriber opens
 * a watcher, the last one leaving closes it (so an unmounted component, or a
 * page that switched runs, leaves no socket behind). Rendering never opens
 * a connection; only subscribing (an effect) does.
 */
function lazySource<S, W extends { subscribe(l: () => void): () => void; getState(): S; close(): void; start(): W }>(
  make: () => W,
  idle: S,
  throttleMs = 0,
): ExternalStore<S> {
  let watch: W | null = null;
  let off: (() => void) | null = null;
  let last: S = idle;
  const listeners = new Set<() => void>();
  let lastShown = -Infinity;
  let pending: ReturnType<typeof setTimeout> | null = null;
  const show = () => {
    pending = null;
    // A timer is due by the event loop's cached clock, which lags the real one on a busy loop, so it can
    // fire before its window ends: wait out the rest, so no window is shorter than throttleMs.
    const early = lastShown + throttleMs - performance.now();
    if (early > 0) {
      pending = setTimeout(show, Math.ceil(early));
      return;
    }
    // The monotonic clock, to the fraction of a ms.
    lastShown = performance.now();
    if (watch === null) return;
    last = watch.getState();
    for (const listener of listeners) listener();
  };
  const changed = () => {
    if (pending !== null) return;
    const wait = lastShown + throttleMs - performance.now();
    if (wait <= 0) show();
    else pending = setTimeout(show, Math.ceil(wait));
  };
  return {
    subscribe(listener) {
      if (watch === null) {
        watch = make();
        off = watch.subscribe(changed);
        watch.start();
      }
      listeners.add(listener);
      // React compares getSnapshot() with what it rendered right after subscribing.
      last = watch.getState();
      return () => {
        if (!listeners.delete(listener) || listeners.size > 0 || watch === null) return;
        off!();
        watch.close();
        watch = null;
        if (pending !== null) clearTimeout(pending);
        pending = null;
      };
    },
    getSnapshot: () => last,
  };
}

/** A hook's user gives the token to the provider, not to a watcher it never sees. */
const PROVIDER_TOKEN_HINT = 'give the React hooks one as <RuntrailProvider url={…} token={…}>';

class HookRunWatch extends RunWatch {
  protected override tokenHint(): string {
    return PROVIDER_TOKEN_HINT;
  }
}

class HookRunsWatch extends RunsWatch {
  protected override tokenHint(): string {
    return PROVIDER_TOKEN_HINT;
  }
}

export function createRunSource(runId: string, options: WatchRunOptions & RenderThrottle): ExternalStore<RunWatchState> {
  const { throttleMs, ...watchOptions } = options;
  return lazySource(() => new HookRunWatch(runId, watchOptions), INITIAL_RUN_STATE, throttleMs);
}

export function createRunsSource(options: WatchRunsOptions & RenderThrottle): ExternalStore<RunsWatchState> {
  const { throttleMs, ...watchOptions } = options;
  return lazySource(() => new HookRunsWatch(watchOptions), INITIAL_RUNS_STATE, throttleMs);
}
