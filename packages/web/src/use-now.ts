import { useEffect, useState } from 'react';

/** The clock, re-read every `intervalMs` while `running`, so durations of live runs move. */
export function useNow(running: boolean, intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [running, intervalMs]);
  return running ? now : Date.now();
}
