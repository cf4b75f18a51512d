/**
 * Time as the SDK sees it. Watchers, their idle watchdog and run handles
 * take one, so a test can drive reconnect backoff, transport pauses and
 * heartbeats without waiting for wall-clock seconds.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque: whatever the clock's setTimeout returned (a Node Timeout has `unref`). */
export type TimerHandle = unknown;

/**
 * The longest delay setTimeout keeps: past it (24.8 days) Node fires the
 * timer after 1 ms with a TimeoutOverflowWarning, and browsers at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer from longTimeout: `clear()` stops it, `unref()` lets it not keep a Node process alive. */
export interface LongTimer {
  clear(): void;
  unref(): void;
}

/**
 * setTimeout for any delay a user can give: a timeout of 25 days (a run's,
 * a command's, a watcher's give-up) fired at once instead, ending what it
 * guarded as timed out. Past MAX_TIMER_MS the wait is re-armed in steps.
 */
export function longTimeout(fn: () => void, ms: number): LongTimer {
  let timer: ReturnType<typeof setTimeout>;
  let unref = false;
  const arm = (left: number): void => {
    timer = left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
    if (unref) timer.unref?.();
  };
  arm(Math.max(0, ms));
  return {
    clear: () => clearTimeout(timer),
    unref: () => {
      unref = true;
      timer.unref?.();
    },
  };
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => longTimeout(fn, ms),
  // Like clearTimeout, a handle that is not a timer (undefined, null) is nothing to clear.
  clearTimeout: (handle) => (handle as LongTimer | null | undefined)?.clear(),
};

/** Let a timer not keep a Node process alive on its own (no-op in browsers and fake clocks). */
export function unrefTimer(handle: TimerHandle): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}
