import { useEffect, useState } from 'react';
import type { HandlerAvailability } from '@runtrail/client';
import { client } from './client.js';

/**
 * How often the handlers of the live nodes are asked again while a queued
 * handler run is shown: nodes come and go over minutes (a redeploy), and a
 * page left open must not add load to the server for a line of text.
 */
export const HANDLERS_REFRESH_MS = 15_000;

/**
 * The handlers some live node defines (`GET /api/v1/handlers`, every live
 * node's), with when queued runs of the others end, while `active`; null
 * while not known (not asked yet, or the server did not answer: then the
 * page says nothing rather than guess). Asked once when a queued run
 * appears, then every HANDLERS_REFRESH_MS.
 */
export function useLiveHandlers(active: boolean): HandlerAvailability | null {
  const [handlers, setHandlers] = useState<HandlerAvailability | null>(null);
  useEffect(() => {
    if (!active) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ask = () => {
      client.handlerAvailability().then(
        (availability) => !stopped && setHandlers(availability),
        // Unknown is said as nothing: "no live node defines it" from a failed request would be a false alarm.
        () => !stopped && setHandlers(null),
      ).finally(() => {
        if (!stopped) timer = setTimeout(ask, HANDLERS_REFRESH_MS);
      });
    };
    ask();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [active]);
  return active ? handlers : null;
}
