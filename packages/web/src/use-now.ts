import { useEffect, useState } from 'react';
import type { ConnectionState } from '@runtrail/client/react';

/**
 * The clock for durations of live things. Every render reads it afresh (a
 * render caused by an event must not show a time from the last tick); the
 * interval only makes sure the page re-renders while nothing else happens.
 */
export function useNow(running: boolean, intervalMs = 1000): number {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setTick((n) => n + 1), intervalMs);
    return () => clearInterval(timer);
  }, [running, intervalMs]);
  return Date.now();
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
export function useServerNow(running: boolean, connection: ConnectionState, lastHeardAt: number | null): { now: number; asOf: number | null } {
  const away = running && (connection === 'reconnecting' || connection === 'ended');
  const [lostAt, setLostAt] = useState<number | null>(null);
  // Never heard at all (the page opened while the server was away): then it is as of when the page noticed.
  useEffect(() => setLostAt(away ? Date.now() : null), [away]);
  const now = useNow(running && !away);
  const asOf = away ? (lastHeardAt ?? lostAt ?? now) : null;
  return { now: asOf ?? now, asOf };
}
