import type { ConnectionState } from '@runtrail/client/react';

const TEXT: Record<ConnectionState, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  polling: 'polling',
  ended: 'ended',
};

/** How fresh what the page shows is; a status region, so changes are announced. */
export function ConnectionIndicator({ state, observers }: { state: ConnectionState; observers?: number | null }) {
  return (
    <span className="connection" role="status" aria-label={`connection: ${TEXT[state]}`} data-state={state}>
      <span className={`dot dot-${state}`} aria-hidden="true" />
      <span data-testid="connection">{TEXT[state]}</span>
      {observers !== undefined && observers !== null && (
        <span className="observers" data-testid="observers" title="pages and clients watching this run now, this one included">
          · {observers} watching
        </span>
      )}
    </span>
  );
}
