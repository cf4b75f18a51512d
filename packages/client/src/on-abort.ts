/**
 * One 'abort' listener per signal, however many parts of the SDK wait on it.
 *
 * A caller may hand one AbortSignal to many watchers, delays, waits and
 * processes at once (`for (const id of ids) watchRun(id, { signal })`). A
 * listener each would make Node print "MaxListenersExceededWarning:
 * Possible EventTarget memory leak detected" past ten, though each is
 * removed when its user ends, and raising the limit would change a signal
 * the caller owns. So the SDK keeps one listener on the signal and its own
 * set of callbacks behind it, dropped with the last callback: a signal that
 * outlives thousands of watchers keeps none of theirs. Plain EventTarget
 * and WeakMap, so the dashboard's browser bundle uses it too.
 */

interface Waiting {
  callbacks: Set<() => void>;
  dispatch: () => void;
}

/** Keyed weakly: a signal no one references any more takes its entry with it. */
const waiting = new WeakMap<AbortSignal, Waiting>();

/**
 * Call `callback` once when `signal` aborts; the returned function stops
 * that (idempotent). If the signal has already aborted, `callback` runs at
 * once, as no 'abort' event will come. Callbacks run in the order they were
 * added; one that throws does not keep the others from running (its error
 * is thrown again outside, as a listener's would be).
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  if (signal.aborted) {
    callback();
    return () => {};
  }
  const entry = waiting.get(signal) ?? listen(signal);
  const { callbacks, dispatch } = entry;
  // A wrapper of its own: the same function added twice is two callbacks, each stopped by its own off().
  const own = () => callback();
  callbacks.add(own);
  return () => {
    if (!callbacks.delete(own) || callbacks.size > 0) return;
    // The last one gone: the signal keeps no listener of the SDK's.
    signal.removeEventListener('abort', dispatch);
    if (waiting.get(signal) === entry) waiting.delete(signal);
  };
}

/** The one listener on `signal`, which runs its callbacks. */
function listen(signal: AbortSignal): Waiting {
  const callbacks = new Set<() => void>();
  const dispatch = () => {
    waiting.delete(signal);
    // Iterated live: a callback that stops another one before it ran keeps it from running, as removeEventListener would.
    for (const fn of callbacks) {
      callbacks.delete(fn);
      try {
        fn();
      } catch (err) {
        // Thrown again where nothing catches it (an uncaught exception, as from a throwing 'abort' listener), after the other callbacks ran.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
  const entry = { callbacks, dispatch };
  waiting.set(signal, entry);
  signal.addEventListener('abort', dispatch, { once: true });
  return entry;
}

/** How many callbacks wait on `signal` (tests: watchers that ended leave none). */
export function abortCallbackCount(signal: AbortSignal): number {
  return waiting.get(signal)?.callbacks.size ?? 0;
}
