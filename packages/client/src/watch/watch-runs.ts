import { RuntrailError, matchesStateFilter, type Run, type RunsFilter, type ServerMessage } from '@runtrail/protocol';
import type { HttpApi } from '../http-api.js';
import { isRetryable } from '../http-api.js';
import { connectionSettings, type ConnectionSettings } from './connection.js';
import { PollTransport } from './poll-transport.js';
import { reconnectLoop, toRuntrailError, type ConnectionChange } from './reconnect.js';
import type { Connection, ConnectionReason, Transport } from './transport.js';
import type { ConnectionState, WatchConnectionOptions } from './types.js';
import { WsTransport } from './ws-transport.js';

export interface WatchRunsOptions extends WatchConnectionOptions {
  filter?: RunsFilter;
  /** The newest this many runs are listed. Default 100 (at most 200, the API's page). */
  limit?: number;
}

export interface RunsWatchState {
  /** Newest first. */
  runs: readonly Run[];
  connection: ConnectionState;
  /** Why `connection` last changed. */
  reason: ConnectionReason;
  error: RuntrailError | null;
}

type Change = { change: 'created' | 'updated' | 'deleted'; run: Run };
/** What the runs list hears: the stream's messages, or a whole list read by polling. */
type RunsMessage = ServerMessage | { type: 'list'; runs: Run[] };

/**
 * A live list of runs: the list from `GET /runs`, kept current by the
 * WebSocket runs subscription (or by polling the list when WebSocket is
 * not available). The subscription is opened BEFORE the list is read, and
 * changes that arrive while it is read are applied after it, newest seq
 * winning, so no change slips between the two.
 */
export class RunsWatch {
  private state: RunsWatchState = { runs: [], connection: 'connecting', reason: 'start', error: null };
  private readonly api: HttpApi;
  private readonly settings: ConnectionSettings;
  private readonly listeners = new Set<() => void>();
  private readonly aborter = new AbortController();
  private byId = new Map<string, Run>();
  /** Changes that arrive while the list is being (re)read on a connection; null when none is being read. */
  private pending: Change[] | null = null;
  private started = false;

  constructor(private readonly options: WatchRunsOptions) {
    this.settings = connectionSettings(options);
    this.api = this.settings.api;
  }

  start(): this {
    if (this.started) return this;
    this.started = true;
    void this.loop();
    return this;
  }

  getState = (): RunsWatchState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  close(): void {
    this.aborter.abort();
    this.update({ connection: 'ended', reason: 'closed_by_client' });
  }

  private async loop(): Promise<void> {
    try {
      await reconnectLoop<RunsMessage>({
        ...this.settings.reconnect,
        transports: this.transports(),
        signal: this.aborter.signal,
        deliver: (conn, message) => this.onMessage(conn, message),
        // A list request the server refuses (a bad filter) will not get better by asking again.
        isFatal: (error) => error instanceof RuntrailError && !isRetryable(error),
        onChange: (change) => this.onConnectionChange(change),
      });
    } catch (err) {
      if (this.aborter.signal.aborted) return;
      this.update({ connection: 'ended', reason: 'error', error: toRuntrailError(err) });
    }
  }

  private transports(): Transport<RunsMessage>[] {
    const { WebSocket, idleTimeoutMs, wanted, pollIntervalMs } = this.settings;
    const list: Transport<RunsMessage>[] = [];
    if (WebSocket && wanted.includes('ws')) {
      list.push(
        new WsTransport({
          WebSocket,
          url: this.api.url('stream', {}),
          token: this.settings.token,
          idleTimeoutMs,
          hello: () => ({ op: 'subscribeRuns', filter: this.filter() }),
        }),
      );
    }
    // The runs list has no SSE route; polling is always there to fall back on.
    list.push(new PollTransport<RunsMessage>({ read: async (signal) => ({ messages: [{ type: 'list', runs: await this.fetchList(signal) }], more: false }), intervalMs: pollIntervalMs }));
    return list;
  }

  private onConnectionChange(change: ConnectionChange): void {
    if (this.aborter.signal.aborted) return;
    const patch: Partial<RunsWatchState> = { connection: change.connection, reason: change.reason };
    if (change.error !== undefined) patch.error = change.error;
    this.update(patch);
  }

  private onMessage(conn: Connection, message: RunsMessage): void {
    if (!conn.alive()) return;
    switch (message.type) {
      case 'list':
        this.byId = new Map(message.runs.map((r) => [r.id, r]));
        this.publish({});
        return;
      case 'subscribedRuns':
        conn.open();
        // Read the list now that changes are flowing; apply those that arrive meanwhile after it.
        this.pending = [];
        this.fetchList(conn.signal).then(
          (list) => {
            if (!conn.alive()) return;
            const buffered = this.pending ?? [];
            this.pending = null;
            this.byId = new Map(list.map((r) => [r.id, r]));
            for (const c of buffered) this.applyChange(c);
            this.publish({ connection: 'live', error: null });
          },
          (error: unknown) => conn.finish({ reason: 'error', error }),
        );
        return;
      case 'run':
        if (this.pending) this.pending.push({ change: message.change, run: message.run });
        else {
          this.applyChange(message);
          this.publish({});
        }
        return;
      case 'error':
        conn.finish({ reason: 'error', error: new RuntrailError(message.code, message.message) });
        return;
      default:
        return;
    }
  }

  private filter(): RunsFilter {
    return { ...this.options.filter };
  }

  private async fetchList(signal: AbortSignal): Promise<Run[]> {
    const res = await this.api.request('listRuns', {
      query: { ...this.filter(), limit: Math.min(this.options.limit ?? 100, 200) },
      signal,
    });
    return res.runs;
  }

  private applyChange({ change, run }: Change): void {
    if (change === 'deleted') {
      this.byId.delete(run.id);
      return;
    }
    const known = this.byId.get(run.id);
    if (known && known.seq > run.seq) return;
    if (matchesStateFilter(run, this.filter())) this.byId.set(run.id, run);
    else this.byId.delete(run.id);
  }

  private publish(patch: Partial<RunsWatchState>): void {
    const limit = this.options.limit ?? 100;
    const runs = [...this.byId.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    if (runs.length > limit) {
      runs.length = limit;
      this.byId = new Map(runs.map((r) => [r.id, r]));
    }
    this.update({ ...patch, runs });
  }

  private update(patch: Partial<RunsWatchState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}

/** Watch the runs list live (see RunsWatch). Starts connecting at once. */
export function watchRuns(options: WatchRunsOptions): RunsWatch {
  return new RunsWatch(options).start();
}
