import { longTimeout } from './clock.js';
import { onAbort } from './on-abort.js';

export interface WaitForOptions {
  /** Time between the end of one check and the start of the next (default 1 s). */
  intervalMs?: number;
  /** Give up after this long, counting the checks themselves (default 5 min). */
  timeoutMs?: number;
  /** Stop waiting at once when aborted (a cancelled run). */
  signal?: AbortSignal;
  /** What is awaited, for messages ("comfyui job 42"). */
  label?: string;
  /** Called after each check that was not ready yet: make the wait visible. */
  onPoll?: (poll: { attempt: number; elapsedMs: number }) => void;
}

/** The awaited thing was not ready in time. `kind` matches the run error kind it maps to. */
export class WaitForTimeoutError extends Error {
  readonly kind = 'timeout' as const;
  constructor(label: string, timeoutMs: number, attempts: number) {
    super(`${label} was not ready after ${timeoutMs} ms (${attempts} checks)`);
    this.name = 'WaitForTimeoutError';
  }
}

/** A check says "not yet" with undefined, null or false; anything else is the result. */
export type Ready<T> = Exclude<T, undefined | null | false>;

/**
 * Poll an external asynchronous job until it is ready (field note 10: asking
 * ComfyUI for the output right after submitting got nothing). Every bound is
 * explicit: the interval, the overall deadline (which also cuts a check that
 * hangs), and cancellation through `signal`.
 */
export async function waitFor<T>(
  check: (attempt: number) => T | Promise<T>,
  options: WaitForOptions = {},
): Promise<Ready<T>> {
  const intervalMs = options.intervalMs ?? 1_000;
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const label = options.label ?? 'the awaited condition';
  const started = Date.now();
  const deadline = started + timeoutMs;
  const timedOut = (attempts: number) => new WaitForTimeoutError(label, timeoutMs, attempts);

  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    const value = await bounded(Promise.resolve().then(() => check(attempt)), deadline - Date.now(), options.signal, () => timedOut(attempt));
    if (value !== undefined && value !== null && value !== false) return value as Ready<T>;
    options.onPoll?.({ attempt, elapsedMs: Date.now() - started });
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw timedOut(attempt);
    await bounded(pause(Math.min(intervalMs, remaining)), remaining + 1, options.signal, () => timedOut(attempt));
    if (Date.now() >= deadline) throw timedOut(attempt);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Settle with `work`, or reject when `ms` elapse or `signal` aborts, whichever is first. */
function bounded<T>(work: Promise<T>, ms: number, signal: AbortSignal | undefined, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let off = () => {};
    const timer = longTimeout(() => finish(() => reject(onTimeout())), ms);
    const finish = (settle: () => void) => {
      timer.clear();
      off();
      settle();
    };
    // Many waits may share one signal (a run's, for checks in parallel): one listener for all; an aborted one rejects at once.
    if (signal) off = onAbort(signal, () => finish(() => reject(signal.reason)));
    if (signal?.aborted) return;
    work.then(
      (value) => finish(() => resolve(value)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}
