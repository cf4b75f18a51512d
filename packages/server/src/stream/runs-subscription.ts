import { matchesFixedFilter, parseLabelFilter, type Run, type RunsFilter, type ServerMessage } from '@runtrail/protocol';
import type { Hub, RunChange } from '../hub.js';
import { wsTextFrame } from './frames.js';
import type { Outlet } from './outlet.js';

/** Distinct runs held while a connection is blocked; past it the client is told to refetch. */
export const MAX_PENDING_RUN_CHANGES = 10_000;

/**
 * The `run` message of a change as a whole WebSocket frame, built once for
 * every live list that sends it (the hub hands them all the same run
 * object): a thousand open lists cost one serialization of a change, not a
 * thousand. A run's input never changes after it is created, so only
 * `created` carries it; `updated` and `deleted` leave it out (clients keep
 * the one they have), so a run with a megabyte of input does not send that
 * megabyte to every list on each of its events.
 */
const runFrames = new WeakMap<Run, Map<RunChange, Buffer>>();
export function runChangeFrame(change: RunChange, run: Run): Buffer {
  let byChange = runFrames.get(run);
  if (!byChange) runFrames.set(run, (byChange = new Map()));
  let frame = byChange.get(change);
  if (!frame) {
    const sent = change === 'created' ? run : { ...run, input: undefined };
    const message: ServerMessage = { type: 'run', change, run: sent };
    byChange.set(change, (frame = wsTextFrame(Buffer.from(JSON.stringify(message)))));
  }
  return frame;
}

/**
 * The pairs of a live list's label filter (throws on a malformed one), each
 * once. Every change of every run is matched against every live list's
 * filter, so a filter of 250 copies of a pair that matched, on 1,000 lists
 * of one client, cut a producer's appends from 1,400/s to 100-300/s; a
 * repeated pair asks nothing more, and a run has at most 50 labels.
 */
export function liveListLabels(label: string | undefined): Array<[string, string]> {
  const seen = new Set<string>();
  return parseLabelFilter(label).filter((pair) => {
    const key = JSON.stringify(pair);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * A live runs list on one connection. Changes of the same run are coalesced
 * to the latest (a list shows only the latest state, so nothing is lost);
 * they are flushed once per turn of the event loop and only while the
 * connection is under its bound. If too many distinct runs change while the
 * client is not reading, the pending changes are dropped and the client gets
 * `subscribedRuns` again, which means "refetch the list" (bounded memory,
 * no silent loss).
 */
export class RunsSubscription {
  private pending = new Map<string, { change: RunChange; run: Run }>();
  private overflowed = false;
  private scheduled = false;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly hub: Hub,
    private readonly filter: RunsFilter,
    /** The filter's `label`, parsed (labels never change, so they filter here). */
    private readonly labels: Array<[string, string]>,
    private readonly outlet: Outlet,
    private readonly sendJson: (message: ServerMessage) => void,
  ) {
    // Changes missed from other nodes: like a connection too far behind, the client refetches.
    this.unsubscribe = hub.subscribeRuns(this.onChange, { remote: true, onRemoteGap: this.startOver });
    sendJson({ type: 'subscribedRuns' });
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    this.pending.clear();
  }

  private readonly onChange = (change: RunChange, run: Run): void => {
    if (this.closed) return;
    // Only fields that never change are filtered here; status and failure
    // kind are the client's to apply (matchesStateFilter), so a run that
    // leaves such a filter can leave the list.
    if (!matchesFixedFilter(run, this.filter, this.labels)) return;
    if (this.overflowed) return;
    const previous = this.pending.get(run.id);
    const merged: RunChange = change === 'deleted' ? 'deleted' : previous?.change === 'created' ? 'created' : change;
    this.pending.set(run.id, { change: merged, run });
    if (this.pending.size > MAX_PENDING_RUN_CHANGES) {
      this.pending.clear();
      this.overflowed = true;
    }
    this.schedule();
  };

  private readonly startOver = (): void => {
    if (this.closed) return;
    this.pending.clear();
    this.overflowed = true;
    this.schedule();
  };

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    if (this.outlet.blocked) {
      this.scheduled = true;
      this.outlet.whenDrained(this.flush);
      return;
    }
    if (this.overflowed) {
      this.overflowed = false;
      this.sendJson({ type: 'subscribedRuns' });
    }
    for (const [id, { change, run }] of this.pending) {
      this.pending.delete(id);
      this.outlet.send(runChangeFrame(change, run), true);
      if (this.outlet.blocked) break;
    }
    if (this.pending.size > 0) this.schedule();
  };
}
