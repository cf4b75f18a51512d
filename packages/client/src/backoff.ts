import { RuntrailError } from '@runtrail/protocol';
import { systemClock, type Clock } from './clock.js';
import { isRetryable } from './http-api.js';
import { onAbort } from './on-abort.js';

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
    let off = () => {};
    const timer = clock.setTimeout(() => {
      off();
      resolve();
    }, ms);
    // A caller's signal may be shared by many delays at once (concurrent createRun retries, watchers' pollers): one listener for all.
    if (signal)
      off = onAbort(signal, () => {
        clock.clearTimeout(timer);
        reject(signal.reason);
      });
  });
}

/**
 * `send` again while it fails with something worth retrying (the server
 * unreachable, restarting, overloaded), with backoff, for up to `forMs`;
 * a 503's Retry-After is waited out. Safe only for idempotent requests
 * (event ids, a finish id, an Idempotency-Key on create). Once `signal`
 * aborts no attempt starts (its reason is thrown), and the one in flight is
 * still answered: what it did on the server (a run it made) is not lost.
 * No wait runs past `forMs`: the last attempt is made at its end, so the
 * whole takes `forMs` and one attempt at most, not a backoff (up to 2 s) more.
 */
export async function retrying<T>(send: () => Promise<T>, forMs: number, clock: Clock = systemClock, signal?: AbortSignal): Promise<T> {
  const deadline = clock.now() + forMs;
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await send();
    } catch (err) {
      if (!isRetryable(err) || clock.now() >= deadline) throw err;
      // A 503 says how long to wait (Retry-After); sooner would only be refused again.
      const asked = err instanceof RuntrailError ? (err.retryAfterMs ?? 0) : 0;
      const wait = Math.max(asked, backoffDelay(attempt, { initialMs: 50, maxMs: 2_000 }));
      await delay(Math.min(wait, deadline - clock.now()), signal, clock);
    }
  }
}
