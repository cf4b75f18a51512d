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
 * that had not ended), the page knows nothing newer than the moment it lost
 * the server: counting "running for" and "no progress for" on from the
 * browser's clock beside a "running" badge would claim what nobody knows.
 * `asOf` is that moment while away (null otherwise), for the page to say
 * its figures are from then; back live, the clock runs again.
 */
export function useServerNow(running: boolean, connection: ConnectionState): { now: number; asOf: number | null } {
  const away = running && (connection === 'reconnecting' || connection === 'ended');
  const [lostAt, setLostAt] = useState<number | null>(null);
  // When the page noticed: the stream closes at once when a server stops, so this is when it was last heard.
  useEffect(() => setLostAt(away ? Date.now() : null), [away]);
  const now = useNow(running && !away);
  const asOf = away ? (lostAt ?? now) : null;
  return { now: asOf ?? now, asOf };
}
