import { useEffect, useState } from 'react';

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
