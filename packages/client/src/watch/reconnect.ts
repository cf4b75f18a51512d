import { RuntrailError } from '@runtrail/protocol';
import { backoffDelay, delay, type BackoffOptions } from '../backoff.js';
import type { Clock } from '../clock.js';
import { Connection, type ConnectionReason, type Transport } from './transport.js';
import type { ConnectionState, TransportName } from './types.js';

/** One connection-state change, with why it happened. */
export interface ConnectionChange {
  connection: ConnectionState;
  reason: ConnectionReason;
  transport: TransportName;
  /** The error that caused it; `null` clears a previous one (the connection is fine again). */
  error?: RuntrailError | null;
}

export interface ReconnectOptions<M> {
  /** Usable transports, best first. */
  transports: Transport<M>[];
  /** What arrives on a connection; `conn.alive()` tells whether it is still the current one. */
  deliver(conn: Connection, message: M): void | Promise<void>;
  /** An error no reconnect can fix (the run does not exist): the loop ends by throwing it. */
  isFatal(error: unknown): boolean;
  /** Awaited after each connection ends, before the next (a watcher finishes applying what arrived). */
  settle?(): Promise<void>;
  onChange(change: ConnectionChange): void;
  /** The current connection received something from the server. */
  onHeard(): void;
  backoff: BackoffOptions;
  random?: () => number;
  /** A transport that failed to connect twice in a row is skipped this long. */
  transportRetryMs: number;
  clock: Clock;
  /** Aborting it ends the loop (the watcher closed or the run ended). */
  signal: AbortSignal;
}

/**
 * The one reconnect loop of both watchers: connect over the best transport
 * that is not paused, wait for the connection to end, back off (the one
 * backoff function), connect again. A transport that fails to open twice in
 * a row is paused for `transportRetryMs` and the next one is used
 * (WebSocket -> SSE -> polling); polling gives way again once the pause is
 * over. A pause is for a transport that does not work here (a proxy that
 * refuses WebSockets): when plain HTTP failed too (polling could not
 * connect, or SSE's request never reached the server), it was the server
 * that was away, and the transports paused meanwhile are tried again as
 * soon as any connection opens, not after `transportRetryMs` of polling.
 * So is a transport that had opened before it failed (the server answered
 * 503 while it restarted, and polling found it back at once).
 * Each connection gets a new id; only the current one may change the
 * watcher's state.
 */
export async function reconnectLoop<M>(options: ReconnectOptions<M>): Promise<void> {
  const { transports, clock, signal } = options;
  const skipUntil = new Map<TransportName, number>();
  const failures = new Map<TransportName, number>();
  /** Transports paused while the server itself was unreachable: not their fault. */
  const pausedInOutage = new Set<TransportName>();
  /** Transports that opened since they were last paused: they work here, so failing now is the server's doing. */
  const workedHere = new Set<TransportName>();
  let current = 0;
  let attempt = 0;
  let reason: ConnectionReason = 'start';

  const pick = (): Transport<M> => transports.find((t) => (skipUntil.get(t.name) ?? 0) <= clock.now()) ?? transports[transports.length - 1]!;
  const upgradeDue = (than: TransportName): boolean => {
    const now = clock.now();
    for (const t of transports) {
      if (t.name === than) return false;
      if ((skipUntil.get(t.name) ?? Infinity) <= now) return true;
    }
    return false;
  };

  while (!signal.aborted) {
    const transport = pick();
    const name = transport.name;
    const polling = name === 'poll';
    // 'polling' says data arrives by polling, as 'live' does for a stream: only once a read answered
    // (onOpen). Said before each try, a page whose server was away flickered reconnecting/polling.
    options.onChange({ connection: reason === 'start' ? 'connecting' : 'reconnecting', reason, transport: name });
    const conn = new Connection(++current, name, clock, signal, {
      onOpen: () => {
        // The server answers again: what was paused because it did not is due now (polling then upgrades).
        for (const paused of pausedInOutage) skipUntil.set(paused, clock.now());
        pausedInOutage.clear();
        options.onChange({ connection: polling ? 'polling' : 'live', reason: 'subscribed', transport: name, error: null });
      },
      onHeard: () => options.onHeard(),
      isCurrent: (id) => id === current,
      upgradeDue: () => upgradeDue(name),
    });
    try {
      transport.connect(conn, (message) => options.deliver(conn, message));
    } catch (error) {
      conn.finish({ reason: 'error', error });
    }
    const outcome = await conn.outcome;
    await options.settle?.();
    if (signal.aborted) return;
    if (outcome.error !== undefined && options.isFatal(outcome.error)) throw outcome.error;

    reason = outcome.reason === 'upgrade' ? 'upgrade' : 'retry';
    if (outcome.opened) {
      attempt = 0;
      failures.set(name, 0);
      workedHere.add(name);
    } else {
      const failed = (failures.get(name) ?? 0) + 1;
      failures.set(name, failed);
      if (failed >= 2 && !polling) {
        failures.set(name, 0);
        skipUntil.set(name, clock.now() + options.transportRetryMs);
        reason = 'fallback';
        // A server stopping or starting answers 503 to every transport, and polling may find it back at
        // its first try: a transport that worked until now is tried again then. Once: if it fails again
        // without opening, it is paused for transportRetryMs like any other.
        if (workedHere.delete(name)) pausedInOutage.add(name);
      }
      if (polling || (name === 'sse' && isNetworkFailure(outcome.error))) {
        const now = clock.now();
        for (const [paused, until] of skipUntil) if (until > now) pausedInOutage.add(paused);
      }
    }
    options.onChange({
      connection: 'reconnecting',
      reason: outcome.reason,
      transport: name,
      ...(outcome.error !== undefined ? { error: toRuntrailError(outcome.error) } : {}),
    });
    try {
      await delay(backoffDelay(attempt++, options.backoff, options.random), signal, clock);
    } catch (err) {
      // delay rejects only when the signal aborts: the watcher closed while backing off.
      if (signal.aborted) return;
      throw err;
    }
  }
}

/** A request that never got an answer (fetch's TypeError: refused, reset, no route), as opposed to an HTTP error. */
function isNetworkFailure(err: unknown): boolean {
  return err instanceof TypeError;
}

/** Any failure as the RuntrailError a watcher's state shows. */
export function toRuntrailError(err: unknown): RuntrailError {
  if (err instanceof RuntrailError) return err;
  return new RuntrailError('unavailable', err instanceof Error ? err.message : String(err));
}
