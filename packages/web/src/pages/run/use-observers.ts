import { useEffect, useState } from 'react';
import { pollEvery } from '@runtrail/client';
import { client } from '../../client.js';

const OBSERVERS_REFRESH_MS = 5000;

/**
 * The observer count is a property of the server's view, not of the event
 * log, so the page re-reads it from GET /runs/:id while the run is live.
 */
export function useObservers(id: string, live: boolean): number | null {
  const [observers, setObservers] = useState<number | null>(null);
  useEffect(() => {
    const stop = new AbortController();
    pollEvery(
      () => client.getRun(id),
      {
        onValue: (run) => {
          setObservers(run.observers);
          // An ended run's count is read once.
          if (!live) stop.abort();
        },
        // The connection indicator already tells the reader that the server is
        // unreachable; a stale count is harmless until the next read.
        onError: () => undefined,
      },
      { intervalMs: OBSERVERS_REFRESH_MS, signal: stop.signal },
    );
    return () => stop.abort();
  }, [id, live]);
  return observers;
}
