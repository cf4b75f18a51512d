import type { Clock } from '../clock.js';
import type { TransportName } from './types.js';

/**
 * Why the connection state changed (each change carries one):
 * - `start`: the first attempt; `retry`: an attempt after a drop;
 * - `subscribed`: the server accepted the subscription (live / polling);
 * - `closed`: the connection closed (server, proxy or network);
 * - `idle_timeout`: nothing arrived for idleTimeoutMs, the connection is taken for dead;
 * - `error`: the transport or the server reported an error (see `error`);
 * - `fallback`: a better transport failed twice and is paused; a worse one is used;
 * - `upgrade`: a paused better transport is due again, so polling stops for it;
 * - `run_ended`: the run's terminal event was applied, nothing more will come;
 * - `not_found`: the run does not exist (or the request can never succeed);
 * - `deleted`: the run existed when the watcher read it and was deleted since (its `error` says so);
 * - `closed_by_client`: `close()` was called;
 * - `no_run`: a React hook was given no run id (`connection: 'idle'`): nothing to watch.
 */
export type ConnectionReason =
  | 'start'
  | 'retry'
  | 'subscribed'
  | 'closed'
  | 'idle_timeout'
  | 'error'
  | 'fallback'
  | 'upgrade'
  | 'run_ended'
  | 'not_found'
  | 'deleted'
  | 'closed_by_client'
  | 'no_run';

/** How one connection attempt ended. */
export interface SessionOutcome {
  /** The transport delivered (it is reachable): a later drop is a reconnect, not a fallback. */
  opened: boolean;
  reason: ConnectionReason;
  error?: unknown;
}

/**
 * One connection attempt, with its own id. A transport finishes it when the
 * socket closes or fails; a watcher finishes it when the server says
 * something it cannot use. Callbacks of a connection that is no longer the
 * current one (a late frame, a list read that resolves after a reconnect)
 * check `alive()` and do nothing: they cannot touch the watcher's state.
 */
export class Connection {
  readonly id: number;
  readonly transport: TransportName;
  readonly clock: Clock;
  /** Aborted when this connection is finished: transports close their socket on it. */
  readonly signal: AbortSignal;
  readonly outcome: Promise<SessionOutcome>;
  private readonly aborter = new AbortController();
  private resolve!: (outcome: SessionOutcome) => void;
  private isOpen = false;
  private readonly hooks: ConnectionHooks;

  constructor(id: number, transport: TransportName, clock: Clock, parent: AbortSignal, hooks: ConnectionHooks) {
    this.id = id;
    this.transport = transport;
    this.clock = clock;
    this.hooks = hooks;
    this.signal = AbortSignal.any([parent, this.aborter.signal]);
    this.outcome = new Promise((resolve) => (this.resolve = resolve));
    this.parent = parent;
    parent.addEventListener('abort', this.onParentAbort, { once: true });
  }

  private readonly parent: AbortSignal;
  private readonly onParentAbort = (): void => this.finish({ reason: 'closed_by_client' });

  /** Still the watcher's current connection, and not finished. */
  alive(): boolean {
    return !this.aborter.signal.aborted && this.hooks.isCurrent(this.id);
  }

  get opened(): boolean {
    return this.isOpen;
  }

  /** The server accepted the subscription: the connection is live. */
  open(): void {
    if (this.isOpen || !this.alive()) return;
    this.isOpen = true;
    this.hooks.onOpen();
  }

  /** Something arrived from the server (a frame, a chunk, a keepalive, a poll's answer): the watcher's lastHeardAt. */
  heard(): void {
    if (this.alive()) this.hooks.onHeard();
  }

  /** A better transport paused after failures may be tried again (polling then ends for it). */
  upgradeDue(): boolean {
    return this.hooks.upgradeDue();
  }

  /** End this connection (idempotent: the first outcome wins). */
  finish(outcome: { reason: ConnectionReason; error?: unknown }): void {
    if (this.aborter.signal.aborted) return;
    // A long-lived watcher makes many connections: leave no listener behind on its signal.
    this.parent.removeEventListener('abort', this.onParentAbort);
    this.aborter.abort();
    this.resolve({ opened: this.isOpen, ...outcome });
  }
}

export interface ConnectionHooks {
  onOpen(): void;
  onHeard(): void;
  isCurrent(id: number): boolean;
  upgradeDue(): boolean;
}

/**
 * A way to reach the server (WebSocket, SSE, polling), each in its own file.
 * `connect` starts one connection and hands what arrives, as messages of the
 * watcher's feed, to `deliver`; it finishes `conn` when the connection ends.
 * A delivery may return a promise: polling waits for it before reading on.
 */
export interface Transport<M> {
  readonly name: TransportName;
  connect(conn: Connection, deliver: (message: M) => void | Promise<void>): void;
}
