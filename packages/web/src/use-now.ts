import { createContext, useContext, useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import type { ConnectionState } from '@runtrail/client/react';

/**
 * The clock for durations of live things, shared by the parts of a page
 * that show one. A page holds it without reading it: only the small parts
 * that show an elapsed or relative time subscribe (`useClock`), so a tick
 * re-renders them and not the page around them.
 */
export interface Clock {
  now(): number;
  /** How many times it has ticked: what a subscriber re-renders on (a number that holds still between ticks). */
  ticks(): number;
  /** Calls `onTick` at each tick while the clock runs; returns the unsubscribe. */
  subscribe(onTick: () => void): () => void;
}

const never = () => () => undefined;
const none = () => 0;

/** A clock stopped at `at`: what a page shows while it cannot hear its server, and what a test renders with. */
export function stoppedClock(at: number): Clock {
  return { now: () => at, ticks: none, subscribe: never };
}

let momentOfThisTask: number | null = null;

/**
 * Date.now(), read once per task: the parts a tick (or an event) renders
 * together render in one task, so they all show the same moment. Read
 * afresh by each, the header and the Progress card could say "11 s" and
 * "12 s" when a second turned between their renders (on a busy machine,
 * rendering what lies between them took tens of ms).
 */
function taskNow(): number {
  if (momentOfThisTask === null) {
    momentOfThisTask = Date.now();
    setTimeout(() => (momentOfThisTask = null), 0);
  }
  return momentOfThisTask;
}

/** Read afresh at each render but never ticking: for a page with nothing live on it. */
const wallClock: Clock = { now: taskNow, ticks: none, subscribe: never };

/** One interval for every subscriber, so the times on a page all move on in the same frame. */
function tickingClock(intervalMs: number): Clock {
  const listeners = new Set<() => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let ticks = 0;
  return {
    now: taskNow,
    ticks: () => ticks,
    subscribe(onTick) {
      listeners.add(onTick);
      timer ??= setInterval(() => {
        ticks++;
        listeners.forEach((tick) => tick());
      }, intervalMs);
      return () => {
        listeners.delete(onTick);
        if (listeners.size > 0) return;
        clearInterval(timer);
        timer = undefined;
      };
    },
  };
}

export const ClockContext = createContext<Clock>(wallClock);

/** The page's clock, for a small part that shows an elapsed time: it re-renders at every tick. */
export function useNow(): number {
  const clock = useContext(ClockContext);
  // The same on a server render (a test's renderToStaticMarkup): the clock is all it reads.
  useSyncExternalStore(clock.subscribe, clock.ticks, clock.ticks);
  // Read afresh at every render: a render caused by an event must not show a time from the last tick.
  return clock.now();
}

/**
 * What `select` makes of the page's clock, re-rendering only when that
 * changes: for a big part that depends on the time only coarsely (a time
 * axis's round span, an order by duration). `select` must return a value
 * that holds still for a while (a primitive, or a string key): React reads
 * it again after each commit, and one that changed every millisecond would
 * render again and again.
 */
export function useClock<T extends string | number | boolean | null>(select: (now: number) => T): T {
  const clock = useContext(ClockContext);
  const read = () => select(clock.now());
  return useSyncExternalStore(clock.subscribe, read, read);
}

/**
 * The clock for a live page's durations that stops while the page cannot
 * hear its server. Away (reconnecting, or a watcher that gave up on a run
 * that had not ended), the page knows nothing newer than the moment it last
 * heard the server (`lastHeardAt`, the watcher's): counting "running for"
 * and "no progress for" on from the browser's clock beside a "running"
 * badge would claim what nobody knows. `asOf` is that moment while away
 * (null otherwise), for the page to say its figures are from then; back
 * live, the clock runs again. Not the moment the page noticed the loss:
 * a connection that died silently is noticed an idle timeout later.
 */
export function useServerClock(running: boolean, connection: ConnectionState, lastHeardAt: number | null, intervalMs = 1000): { clock: Clock; asOf: number | null } {
  const away = running && (connection === 'reconnecting' || connection === 'ended');
  const [lostAt, setLostAt] = useState<number | null>(null);
  // Never heard at all (the page opened while the server was away): then it is as of when the page noticed.
  useEffect(() => setLostAt(away ? Date.now() : null), [away]);
  const asOf = away ? (lastHeardAt ?? lostAt ?? Date.now()) : null;
  const clock = useMemo(() => (asOf !== null ? stoppedClock(asOf) : running ? tickingClock(intervalMs) : wallClock), [asOf, running, intervalMs]);
  return { clock, asOf };
}

