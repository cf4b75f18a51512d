import { useState } from 'react';
import { isTerminalStatus, type RunStatus } from '@runtrail/protocol';

/** Which tenth of the way a percentage is in (null: no total to measure against). */
const tenthOf = (percent: number | null) => (percent === null ? null : Math.min(10, Math.floor(percent / 10)));

/**
 * The percentage to say: the one the run had when it last crossed into
 * another tenth. A screen reader told every step of a fast run would say
 * nothing else; told only the tenths, it hears "25% done" (where the page
 * opened) and then "31% done", "40% done", … The page derives it, so the
 * header it is said in is given a number that changes once a tenth, not
 * at every progress event.
 */
export function useSaidPercent(percent: number | null): number | null {
  const [said, setSaid] = useState(percent);
  // Derived from the props as they change: React renders again at once with it.
  if (tenthOf(percent) !== tenthOf(said)) setSaid(percent);
  return said === null ? null : Math.floor(said);
}

/**
 * What a screen reader is told, politely, as the run goes on: its status,
 * whether it stalled and each tenth of its progress. It is the page's one
 * live region for the run: the console and the event log, which change
 * with every event, and the stall banner, which counts up every second,
 * are not live, so they are read when the reader goes to them.
 */
export function RunAnnouncement({ status, stalled, said }: { status: RunStatus; stalled: boolean; said: number | null }) {
  const ended = isTerminalStatus(status);
  const text = `Run ${status}${!ended && said !== null ? `, ${said}% done` : ''}${!ended && stalled ? ', stalled' : ''}.`;
  return (
    <p className="visually-hidden" role="status" data-testid="run-announcement">
      {text}
    </p>
  );
}
