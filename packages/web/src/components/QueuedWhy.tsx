import { createContext } from 'react';
import type { HandlerAvailability } from '@runtrail/client';
import { slotWaitShort, slotWaitText, type Run } from '@runtrail/protocol';
import { formatDuration, formatTime, formatZone } from '../format.js';
import { visibleText } from '../visible-text.js';

/** The runs list's live handlers (useLiveHandlers), for the queued rows' notes however deep they are nested: read there, not by whole rows, so a refresh renders the notes alone. */
export const LiveHandlers = createContext<HandlerAvailability | null>(null);

/**
 * Why a queued run waits, when the page knows: its handler is defined by
 * a live node (it waits for a free slot there), or by none (it waits for a
 * node that defines it, and the server's reaper ends it failed / orphaned
 * at the moment GET /handlers names, if none comes by then). `short` is
 * the runs list's one line; the full sentence is its title. `ahead`: the
 * queued runs of its handler older than it (the run page's useQueuedAhead,
 * the list's useQueuedPlaces: one read for every row), said as its place
 * when a limit holds it.
 */
export function QueuedWhy({ run, handlers, short = false, ahead = null }: { run: Pick<Run, 'status' | 'execute' | 'name'>; handlers: HandlerAvailability | null; short?: boolean; ahead?: number | null }) {
  if (run.status !== 'queued' || !run.execute || handlers === null) return null;
  const name = visibleText(run.name);
  const defined = handlers.startable.includes(run.name);
  const full = queuedWhyText(run.name, handlers, ahead);
  if (short) {
    // Which limits hold it, in a few words, and its place: the whole sentence is too long for a row.
    const limits = defined ? slotWaitShort(run.name, handlers.nodes) : null;
    const place = ahead === null ? '' : `; ${ordinal(ahead + 1)} in line`;
    return (
      <span className={defined ? undefined : 'stalled-text'} data-testid="queued-why" title={full}>
        {!defined ? `no live node defines ${name}` : limits !== null ? `waiting: ${visibleText(limits)}${place}` : 'waiting for a free slot'}
      </span>
    );
  }
  return (
    <p className={defined ? 'note' : 'note warn'} data-testid="queued-why">
      {full}
    </p>
  );
}

/** The whole sentence: why a queued run of `handler` waits, and when it ends if nothing can start it. */
export function queuedWhyText(handler: string, handlers: HandlerAvailability, ahead: number | null = null): string {
  const name = visibleText(handler);
  const atLimit = handlers.startable.includes(handler) ? slotWaitText(handler, handlers.nodes, ahead) : null;
  if (atLimit !== null) return visibleText(atLimit);
  return handlers.startable.includes(handler)
    ? `Queued: a live node defines handler ${name}; the run waits for a free slot on one.`
    : `Queued: no live node defines handler ${name}. It starts if a node that defines it comes up; ${whenItEnds(handlers, handler)}`;
}

/** What becomes of a run whose handler no live node defines, by the server's queuedOrphanTimeoutMs and its reaper's count. */
function whenItEnds({ queuedOrphanTimeoutMs, endsAt }: HandlerAvailability, handler: string): string {
  if (queuedOrphanTimeoutMs === 0) return 'the server lets it wait for one for ever (its queuedOrphanTimeoutMs is 0).';
  const at = endsAt.get(handler);
  const timeout = formatDuration(queuedOrphanTimeoutMs);
  // Not counted yet: the reaper's next sweep (every few seconds) starts the count, and the next ask of the page names the moment.
  if (at === undefined) return `if none does within ${timeout} (the server's queuedOrphanTimeoutMs) of the server finding none, it ends failed / orphaned.`;
  return `if none does by ${formatTime(at)} ${formatZone(at)}, it ends failed / orphaned (the server's queuedOrphanTimeoutMs, ${timeout}, from when it found none).`;
}

/** 1st, 2nd, 3rd, 11th, 22nd: a place in line, as slotWaitText says it. */
function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
