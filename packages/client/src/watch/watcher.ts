import { RuntrailError, type ClientMessage, type ServerMessage } from '@runtrail/protocol';
import { unrefTimer, type TimerHandle } from '../clock.js';
import type { HttpApi } from '../http-api.js';
import { onAbort } from '../on-abort.js';
import { connectionSettings, withTokenHint, type ConnectionSettings } from './connection.js';
import { reconnectLoop, type ConnectionChange, type ReconnectOptions } from './reconnect.js';
import type { ConnectionReason, Transport } from './transport.js';
import type { ConnectionState, TransportName, WatchConnectionOptions } from './types.js';
import { WsTransport } from './ws-transport.js';

/** What every watcher's state says about its connection. */
export interface WatcherConnection {
  connection: ConnectionState;
  /** Why `connection` last changed. */
  reason: ConnectionReason;
  /** Transport of the current (or last) connection: 'ws', 'sse' or 'poll'; null before the first one. */
  transport: TransportName | null;
  error: RuntrailError | null;
  /**
   * When this watcher last received anything from the server (events, an
   * observers count, a keepalive, a poll's answer, the run it read first),
   * epoch ms by its clock; null before the first. While it reconnects, what
   * it shows is as of then.
   */
  lastHeardAt: number | null;
}

/**
 * What the run watcher and the runs-list watcher share: the settings, the
 * subscribable store (`getState` + `subscribe`, what React's
 * useSyncExternalStore wants), starting once, the WebSocket transport and
 * running the one reconnect loop with the connection's changes in the state.
 * A subclass says what it connects to and what it does with the messages.
 */
export abstract class Watcher<S extends WatcherConnection, M> {
  protected state: S;
  protected readonly settings: ConnectionSettings;
  protected readonly api: HttpApi;
  /** Aborted when the watcher stops for good (closed, ended): ends the reconnect loop. */
  protected readonly aborter = new AbortController();
  private readonly listeners = new Set<() => void>();
  private started = false;
  /** Runs out giveUpAfterMs after the server last answered (set while it does not). */
  private silence: TimerHandle | null = null;
  /** The caller's `signal`, which stops this watcher when it aborts. */
  private readonly stopSignal: AbortSignal | undefined;
  /** Stops listening to `stopSignal` (set while listening). */
  private unlisten: (() => void) | null = null;

  constructor(initial: S, options: WatchConnectionOptions) {
    this.state = initial;
    this.settings = connectionSettings(options);
    this.api = this.settings.api;
    this.stopSignal = options.signal;
  }

  /** Stop for good: close the connection; the state ends `closed_by_client`. */
  abstract close(): void;

  /** Begin connecting (the watch functions call it; lazy bindings call it on first subscriber). */
  start(): this {
    if (this.started || this.aborter.signal.aborted) return this;
    this.started = true;
    const outside = this.stopSignal;
    if (outside?.aborted) {
      this.close();
      return this;
    }
    // One listener on a signal however many watchers share it (on-abort.ts): no leak warning past ten.
    if (outside) this.unlisten = onAbort(outside, () => this.close());
    void this.run();
    return this;
  }

  getState = (): S => this.state;

  /** Whether anyone subscribed to the state (a UI binding) and has not unsubscribed. */
  protected hasSubscribers(): boolean {
    return this.listeners.size > 0;
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Connect, and keep connecting until stopped or a fatal error, which it throws. */
  protected abstract run(): Promise<void>;

  /** Stop for good with this error (giveUpAfterMs ran out): the state ends, iterators and `done` say why. */
  protected abstract giveUp(error: RuntrailError): void;

  /** The one reconnect loop, over this watcher's settings, ended by its aborter. */
  protected reconnect(options: Pick<ReconnectOptions<M>, 'transports' | 'deliver' | 'isFatal' | 'settle'>): Promise<void> {
    return reconnectLoop<M>({
      ...this.settings.reconnect,
      ...options,
      signal: this.aborter.signal,
      onChange: (change) => {
        if (!this.aborter.signal.aborted) this.onConnectionChange(change);
      },
      onHeard: () => {
        if (!this.aborter.signal.aborted) this.heard();
      },
    });
  }

  /** The state's connection fields follow the loop; a subclass may record more of the change. */
  protected onConnectionChange(change: ConnectionChange): void {
    this.setConnection({ connection: change.connection, reason: change.reason, transport: change.transport, ...(change.error !== undefined ? { error: change.error } : {}) });
  }

  protected setConnection(fields: Partial<WatcherConnection>): void {
    this.update(fields as Partial<S>);
  }

  /** Whether the watcher is done for good (a watcher may show `ended` and still listen: RunWatch's untilDeleted). */
  protected isOver(): boolean {
    return this.state.connection === 'ended';
  }

  /** The server answered: lastHeardAt is now. */
  protected heard(): void {
    this.update({ lastHeardAt: this.settings.reconnect.clock.now() } as Partial<S>);
  }

  /** Where this watcher's user gives a token, said when the server wants one and none was given. */
  protected tokenHint(): string {
    return this.settings.tokenHint ?? 'pass one as the `token` option of watchRun/watchRuns';
  }

  /** Every change of the state goes through here, so every error it shows says how to give a missing token. */
  protected update(patch: Partial<S>): void {
    this.state = { ...this.state, ...patch, ...(patch.error ? { error: withTokenHint(patch.error, this.settings.token, this.tokenHint()) } : {}) };
    // Ended: a signal shared by many watchers, or the app's own, keeps no listener of this one.
    if (this.isOver() && this.unlisten) {
      this.unlisten();
      this.unlisten = null;
    }
    this.watchSilence();
    this.notify();
  }

  /**
   * giveUpAfterMs: a timer runs from when the server stops answering (a
   * connection lost or refused, a failed read) and is cleared when it
   * answers again; if it runs out the watcher stops. A stream that is live
   * or a poll that read is an answer.
   */
  private watchSilence(): void {
    const ms = this.settings.giveUpAfterMs;
    if (ms === null) return;
    const { clock } = this.settings.reconnect;
    const { connection, error } = this.state;
    const answering = connection === 'idle' || connection === 'ended' || ((connection === 'live' || connection === 'polling') && error === null);
    if (answering || this.aborter.signal.aborted) {
      if (this.silence !== null) clock.clearTimeout(this.silence);
      this.silence = null;
      return;
    }
    if (this.silence !== null) return;
    this.silence = clock.setTimeout(() => {
      this.silence = null;
      if (this.aborter.signal.aborted) return;
      const problem = this.state.error?.message ?? this.state.connection;
      this.giveUp(
        new RuntrailError('unavailable', `no answer from ${this.api.baseUrl} for ${ms} ms (${problem}); gave up (giveUpAfterMs)`, {
          reason: 'gave_up',
          giveUpAfterMs: ms,
          problem,
        }),
      );
    }, ms);
    unrefTimer(this.silence);
  }

  /** The WebSocket transport when there is a WebSocket class and it is wanted; `hello` subscribes. */
  protected wsTransport(hello: () => ClientMessage): Transport<ServerMessage> | null {
    const { WebSocket, idleTimeoutMs, wanted, token } = this.settings;
    if (!WebSocket || !wanted.includes('ws')) return null;
    return new WsTransport({ WebSocket, url: this.api.url('stream', {}), token, idleTimeoutMs, hello });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}
