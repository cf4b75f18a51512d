import { useEffect, useState } from 'react';
import type { ConnectionState } from '@runtrail/client/react';
import { pollEvery } from '@runtrail/client';
import { client } from '../../client.js';

/** Short enough that a second page opening shows within a breath; one small GET per page. */
export const OBSERVERS_REFRESH_MS = 2000;

/**
 * How many watch the run now, this page included. The count is the server's
 * (its stream subscriptions), not part of the event log, so the page polls
 * GET /runs/:id while the run is live, starting once its own stream is
 * subscribed (a read before that would leave this page out), every 2 s: a
 * page opening or closing shows within a breath. While this page is not
 * subscribed (reconnecting, or polling instead of streaming) it is not among
 * the watchers and the last count may be stale, so none is shown (null); an
 * ended run's streams end with it, so it has none either.
 */
export function useObservers(id: string, live: boolean, connection: ConnectionState): number | null {
  const [observers, setObservers] = useState<number | null>(null);
  const subscribed = live && connection === 'live';
  useEffect(() => {
    if (!subscribed) return;
    const stop = new AbortController();
    pollEvery(
      () => client.getRun(id),
      {
        onValue: (run) => setObservers(run.observers),
        // The connection indicator already tells the reader that the server is
        // unreachable; a stale count is harmless until the next read.
        onError: () => undefined,
      },
      { intervalMs: OBSERVERS_REFRESH_MS, signal: stop.signal },
    );
    return () => stop.abort();
  }, [id, subscribed]);
  return subscribed ? observers : null;
}
