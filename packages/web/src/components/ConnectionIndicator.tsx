import type { ConnectionState } from '@runtrail/client/react';
import { formatClock } from '../format.js';

const TEXT: Record<ConnectionState, string> = {
  // A hook given no run (the dashboard always has one); the plain muted dot, as for ended.
  idle: 'no run selected',
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  polling: 'polling',
  ended: 'ended',
};

/**
 * What the indicator says. A run that has ended while its stream is still
 * live is being read from its start (a long log on a slow connection takes
 * a while): "live" there would claim a finished run is still running.
 */
export function connectionShown(state: ConnectionState, runEnded = false): { dot: ConnectionState; text: string } {
  if (runEnded && state === 'live') return { dot: 'connecting', text: 'loading its log…' };
  return { dot: state, text: TEXT[state] };
}

/**
 * How fresh what the page shows is; a status region, so changes are
 * announced. The watcher count beside it is not in the region: pages come
 * and go, and each would be announced.
 */
export function ConnectionIndicator({
  state,
  observers,
  runEnded = false,
  asOf = null,
}: {
  state: ConnectionState;
  observers?: number | null;
  runEnded?: boolean;
  /** When the page last heard the server, while it is away: what it shows is as of then, not now. */
  asOf?: number | null;
}) {
  const shown = connectionShown(state, runEnded);
  const dot = shown.dot;
  const text = asOf === null ? shown.text : `${shown.text} (shown as of ${formatClock(asOf)})`;
  return (
    <span className="connection" data-state={dot}>
      <span className="connection-state" role="status" aria-label={`connection: ${text}`}>
        <span className={`dot dot-${dot}`} aria-hidden="true" />
        <span data-testid="connection">{text}</span>
      </span>
      {observers !== undefined && observers !== null && (
        <span className="observers" data-testid="observers" title="pages and clients watching this run now, this one included">
          · {observers} watching
        </span>
      )}
    </span>
  );
}
