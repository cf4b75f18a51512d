import { createContext, useEffect, useMemo, useState } from 'react';
import type { HandlerAvailability } from '@runtrail/client';
import { MAX_LIST_LIMIT, slotWaitText, type Run } from '@runtrail/protocol';
import { client } from './client.js';

/**
 * The places in line of the queued runs a concurrency limit holds, for the
 * runs list: how many queued runs of its handler are older than a run
 * (claims take the oldest first), as the run page's useQueuedAhead counts
 * them; null when not known (then the place is left out).
 */
export interface QueuedPlaces {
  aheadOf(run: Pick<Run, 'id' | 'name' | 'createdAt'>): number | null;
}

/** The runs list's QueuedPlaces, read by the queued rows' notes alone (as LiveHandlers is). */
export const QueuedPlacesContext = createContext<QueuedPlaces | null>(null);

interface HandlerLine {
  /** The run ids of the queued runs of the handler the list read, newest first, with their creation times. */
  listed: Map<string, number>;
  /** Queued runs of the handler older than every listed one (the listing stops at MAX_LIST_LIMIT). */
  olderUnlisted: number;
}

/**
 * The places of every queued run held by a limit, asked again whenever the
 * live handlers are (once per refresh of GET /handlers): one read of the
 * newest MAX_LIST_LIMIT queued runs, for every row at once, rather than a
 * count per queued row. Only past MAX_LIST_LIMIT queued runs is each held
 * handler counted too, to know how many are older than those read. A run
 * older than the runs read, or queued since, has no place until the next
 * refresh. Nothing is asked while no limit holds any handler.
 */
export function useQueuedPlaces(handlers: HandlerAvailability | null): QueuedPlaces | null {
  const [lines, setLines] = useState<ReadonlyMap<string, HandlerLine> | null>(null);
  const anyHeld = handlers !== null && handlers.startable.some((name) => slotWaitText(name, handlers.nodes) !== null);
  useEffect(() => {
    if (handlers === null || !anyHeld) return;
    let stopped = false;
    const read = async () => {
      const { runs, nextCursor } = await client.listRuns({ status: 'queued', limit: MAX_LIST_LIMIT });
      const byHandler = new Map<string, HandlerLine>();
      for (const run of runs) {
        if (!handlers.startable.includes(run.name) || slotWaitText(run.name, handlers.nodes) === null) continue;
        const line = byHandler.get(run.name) ?? { listed: new Map<string, number>(), olderUnlisted: 0 };
        line.listed.set(run.id, run.createdAt);
        byHandler.set(run.name, line);
      }
      if (nextCursor !== null) {
        await Promise.all(
          [...byHandler].map(async ([name, line]) => {
            const counted = await client.countRuns({ status: 'queued', name });
            line.olderUnlisted = Math.max(0, counted.byStatus.queued - line.listed.size);
          }),
        );
      }
      return byHandler;
    };
    read().then(
      (byHandler) => !stopped && setLines(byHandler),
      // A place not known is left out: the note is true without it.
      () => !stopped && setLines(null),
    );
    return () => {
      stopped = true;
    };
  }, [handlers, anyHeld]);
  const known = handlers !== null && anyHeld ? lines : null;
  // One object per read: the rows' notes read it from a context, and a new one at every render of the list would render them all.
  return useMemo<QueuedPlaces | null>(
    () =>
      known === null
        ? null
        : {
            aheadOf(run) {
              const line = known.get(run.name);
              if (line === undefined || !line.listed.has(run.id)) return null;
              // Same-millisecond runs are not counted ahead, as on the run page.
              let ahead = line.olderUnlisted;
              for (const createdAt of line.listed.values()) if (createdAt < run.createdAt) ahead++;
              return ahead;
            },
          },
    [known],
  );
}
