import type { RunEvent, Snapshot } from '@runtrail/protocol';

export interface CancelRequest {
  /** When it was asked, when the page holds the request's event. */
  at: number | null;
  /** What the person who cancelled said, if anything. */
  reason: string | null;
}

/**
 * The run's cancel request: the latest in the events the page holds (with
 * its time), else the reason the snapshot keeps (a long run's page holds only
 * its latest events, and the request may be older than all of them).
 */
export function cancelRequestOf(events: readonly RunEvent[], snapshot: Pick<Snapshot, 'cancelRequested' | 'cancelReason'>): CancelRequest | null {
  const held = lastCancelRequest(events);
  if (held) return held;
  if (!snapshot.cancelRequested) return null;
  const reason = snapshot.cancelReason ?? null;
  return { at: null, reason: reason !== null && reason.trim() !== '' ? reason : null };
}

/** The latest cancel request in the events the page holds. */
function lastCancelRequest(events: readonly RunEvent[]): CancelRequest | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type !== 'run.cancel_requested') continue;
    const reason = (e.data as { reason?: unknown } | null)?.reason;
    return { at: e.ts, reason: typeof reason === 'string' && reason.trim() !== '' ? reason : null };
  }
  return null;
}
