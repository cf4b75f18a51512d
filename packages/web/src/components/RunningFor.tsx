import { formatDuration } from '../format.js';
import { useNow } from '../use-now.js';

/** How long something still going has gone on: the small part of a panel that reads the page's clock, so a tick renders it alone. */
export function RunningFor({ since }: { since: number }) {
  return <>{formatDuration(useNow() - since)}</>;
}
