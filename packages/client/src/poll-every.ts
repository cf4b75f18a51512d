import { backoffDelay, delay, type BackoffOptions } from './backoff.js';
import { systemClock, type Clock } from './clock.js';

export interface PollEveryOptions {
  intervalMs: number;
  /** After failures the wait grows by the one backoff (from intervalMs, up to maxMs). Default max 10 s. */
  backoff?: Pick<BackoffOptions, 'maxMs'>;
  /** Stops polling. */
  signal: AbortSignal;
  clock?: Clock;
  random?: () => number;
}

/**
 * Read now and then every `intervalMs` until `signal` aborts, handing each
 * result or failure to the caller; after failures it waits longer, by the
 * same backoff the watchers reconnect with. For what has no stream (an
 * older page of the runs list, a run's observer count).
 */
export function pollEvery<T>(read: (signal: AbortSignal) => Promise<T>, handlers: { onValue(value: T): void; onError(err: unknown): void }, options: PollEveryOptions): void {
  const { intervalMs, signal } = options;
  const clock = options.clock ?? systemClock;
  void (async () => {
    for (let failures = 0; !signal.aborted; ) {
      try {
        const value = await read(signal);
        if (signal.aborted) return;
        failures = 0;
        handlers.onValue(value);
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        handlers.onError(err);
      }
      const wait = failures === 0 ? intervalMs : Math.max(intervalMs, backoffDelay(failures, { initialMs: intervalMs, maxMs: options.backoff?.maxMs ?? 10_000 }, options.random));
      try {
        await delay(wait, signal, clock);
      } catch (err) {
        // delay rejects only when the signal aborts: polling was stopped.
        if (!signal.aborted) throw err;
      }
    }
  })();
}
