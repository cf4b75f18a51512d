import { systemClock, type Clock } from './clock.js';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
}

/**
 * Exponential backoff with full jitter: a random delay in [0, min(max, initial·2^attempt)].
 * The one backoff of the SDK: producers' retries, both watchers' reconnect
 * loop and the dashboard's pollers all use it.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialMs ?? 100;
  const max = options.maxMs ?? 5_000;
  return Math.floor(random() * Math.min(max, initial * 2 ** attempt));
}

/** Resolve after `ms` on `clock`, or reject at once when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
