import { createContext } from 'react';
import type { Run } from '@runtrail/protocol';
import { visibleText } from '../visible-text.js';

/** The runs list's live handlers (useLiveHandlers), for every row however deep it is nested. */
export const LiveHandlers = createContext<ReadonlySet<string> | null>(null);

/**
 * Why a queued run waits, when the page knows: its handler is defined by
 * a live node (it waits for a free slot there), or by none (it waits for a
 * node that defines it, and the server's reaper ends it failed / orphaned
 * after queuedOrphanTimeoutMs, 10 min by default, if none comes). `short`
 * is the runs list's one line; the full sentence is its title.
 */
export function QueuedWhy({ run, handlers, short = false }: { run: Run; handlers: ReadonlySet<string> | null; short?: boolean }) {
  if (run.status !== 'queued' || !run.execute || handlers === null) return null;
  const name = visibleText(run.name);
  const defined = handlers.has(run.name);
  const full = defined
    ? `Queued: a live node defines handler ${name}; the run waits for a free slot on one.`
    : `Queued: no live node defines handler ${name}. It starts if a node that defines it comes up; if none does within the server's queuedOrphanTimeoutMs (10 min by default), it ends failed / orphaned.`;
  if (short) {
    return (
      <span className={defined ? undefined : 'stalled-text'} data-testid="queued-why" title={full}>
        {defined ? 'waiting for a free slot' : `no live node defines ${name}`}
      </span>
    );
  }
  return (
    <p className={defined ? 'note' : 'note warn'} data-testid="queued-why">
      {full}
    </p>
  );
}
