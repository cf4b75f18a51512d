import type { RunEvent } from '@runtrail/protocol';

export interface CancelRequest {
  at: number;
  /** What the person who cancelled said, if anything. */
  reason: string | null;
}

/**
 * The latest cancel request in the events the page holds. The snapshot only
 * says that a cancel was asked for; the reason is in the request, and the
 * run's final error may carry the owner's words instead (e.g. "cancel
 * requested").
 */
export function lastCancelRequest(events: readonly RunEvent[]): CancelRequest | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.type !== 'run.cancel_requested') continue;
    const reason = (e.data as { reason?: unknown } | null)?.reason;
    return { at: e.ts, reason: typeof reason === 'string' && reason.trim() !== '' ? reason : null };
  }
  return null;
}
