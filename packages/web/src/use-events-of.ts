import { useMemo, useState } from 'react';
import type { RunEvent } from '@runtrail/protocol';

const NONE: readonly RunEvent[] = Object.freeze([]);

/**
 * The page's events of these types, as the same array until one of them
 * arrives: a panel memoised on it (the failed calls, the metrics) renders
 * again for its own events, not for each batch of progress and logs. The
 * page's events grow at their end a batch at a time, so only the new ones
 * are looked at; held events that lose their oldest (past the watcher's
 * maxEvents) or are read again are filtered whole. `types` must be the
 * same set at every render (a module constant).
 */
export function useEventsOf(events: readonly RunEvent[], types: ReadonlySet<string>): readonly RunEvent[] {
  // What the memo below last saw and made: a box it updates, not state, since updating it must not render again.
  const [last] = useState(() => ({ from: NONE, slice: NONE }));
  return useMemo(() => {
    const { from, slice } = last;
    const keep = (e: RunEvent) => types.has(e.type);
    const grown = from.length > 0 && events.length >= from.length && events[0] === from[0] && events[from.length - 1] === from[from.length - 1];
    let next: readonly RunEvent[];
    if (grown) {
      const added = events.slice(from.length).filter(keep);
      next = added.length === 0 ? slice : [...slice, ...added];
    } else {
      const all = events.filter(keep);
      next = all.length === slice.length && all.every((e, i) => e === slice[i]) ? slice : all;
    }
    last.from = events;
    last.slice = next;
    return next;
  }, [events, types, last]);
}
