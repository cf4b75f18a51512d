import type { Snapshot } from '@runtrail/protocol';
import { formatDuration } from '../format.js';
import { stalledForMs } from '../progress-estimate.js';
import { useNow } from '../use-now.js';

/** How long something still going has gone on: the small part of a panel that reads the page's clock, so a tick renders it alone. */
export function RunningFor({ since }: { since: number }) {
  return <>{formatDuration(useNow() - since)}</>;
}

/** How long a stalled run has made no progress (as the server's finding counts it), read from the page's clock. */
export function StalledFor({ stalled, startedAt }: { stalled: NonNullable<Snapshot['stalled']>; startedAt: number | null }) {
  return <>{formatDuration(stalledForMs(stalled, startedAt, useNow()))}</>;
}
