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

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Let a timer not keep a Node process alive on its own (no-op in browsers and fake clocks). */
export function unrefTimer(handle: TimerHandle): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}
