import { RuntrailError, matchesStateFilter, type Run, type RunsFilter, type ServerMessage } from '@runtrail/protocol';
import { isRetryable } from '../http-api.js';
import { PollTransport } from './poll-transport.js';
import { toRuntrailError } from './reconnect.js';
import type { Connection, Transport } from './transport.js';
import type { WatchConnectionOptions } from './types.js';
import { Watcher, type WatcherConnection } from './watcher.js';

export interface WatchRunsOptions extends WatchConnectionOptions {
  filter?: RunsFilter;
  /** The newest this many runs are listed. Default 100 (at most 200, the API's page). */
  limit?: number;
}

export interface RunsWatchState extends WatcherConnection {
  /** Newest first. */
  runs: readonly Run[];
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
export class RunsWatch extends Watcher<RunsWatchState, RunsMessage> {
  private byId = new Map<string, Run>();
  /** Changes that arrive while the list is being (re)read on a connection; null when none is being read. */
  private pending: Change[] | null = null;

  constructor(private readonly options: WatchRunsOptions) {
    super({ runs: [], connection: 'connecting', reason: 'start', transport: null, error: null, lastHeardAt: null }, options);
  }

  close(): void {
    this.aborter.abort();
    this.update({ connection: 'ended', reason: 'closed_by_client' });
  }

  protected giveUp(error: RuntrailError): void {
    this.aborter.abort();
    this.update({ connection: 'ended', reason: 'error', error });
  }

  protected async run(): Promise<void> {
    try {
      await this.reconnect({
        transports: this.transports(),
        deliver: (conn, message) => this.onMessage(conn, message),
        // A list request the server refuses (a bad filter) will not get better by asking again.
        isFatal: (error) => error instanceof RuntrailError && !isRetryable(error),
      });
    } catch (err) {
      if (this.aborter.signal.aborted) return;
      this.update({ connection: 'ended', reason: 'error', error: toRuntrailError(err) });
    }
  }

  private transports(): Transport<RunsMessage>[] {
    const list: Transport<RunsMessage>[] = [];
    const ws = this.wsTransport(() => ({ op: 'subscribeRuns', filter: this.filter() }));
    if (ws) list.push(ws);
    // The runs list has no SSE route; polling is always there to fall back on.
    list.push(new PollTransport<RunsMessage>({ read: async (signal) => ({ messages: [{ type: 'list', runs: await this.fetchList(signal) }], more: false }), intervalMs: this.settings.pollIntervalMs }));
    return list;
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
        this.readList(conn);
        return;
      case 'run':
        if (this.pending) this.pending.push({ change: message.change, run: message.run });
        else {
          const full = this.isFull();
          this.applyChange(message);
          this.publish({});
          this.refillIfShort(conn, full);
        }
        return;
      case 'error':
        conn.finish({ reason: 'error', error: new RuntrailError(message.code, message.message) });
        return;
      default:
        return;
    }
  }

  /** Read the list now that changes are flowing; apply those that arrive meanwhile after it. */
  private readList(conn: Connection): void {
    this.pending = [];
    this.fetchList(conn.signal).then(
      (list) => {
        if (!conn.alive()) return;
        const buffered = this.pending ?? [];
        this.pending = null;
        this.byId = new Map(list.map((r) => [r.id, r]));
        const full = this.isFull();
        for (const c of buffered) this.applyChange(c);
        this.publish({ connection: 'live', error: null });
        this.refillIfShort(conn, full);
      },
      (error: unknown) => conn.finish({ reason: 'error', error }),
    );
  }

  private isFull(): boolean {
    return this.byId.size >= this.limit();
  }

  /**
   * A list cut at `limit` that lost a run (deleted, or no longer matching the filter) may have more
   * on the server, below the cut, that no change will ever bring: read it again, so a list of the
   * newest 50 keeps showing 50, not fewer after each deletion.
   */
  private refillIfShort(conn: Connection, wasFull: boolean): void {
    if (wasFull && !this.isFull() && conn.alive()) this.readList(conn);
  }

  private limit(): number {
    return Math.min(this.options.limit ?? 100, 200);
  }

  private filter(): RunsFilter {
    return { ...this.options.filter };
  }

  private async fetchList(signal: AbortSignal): Promise<Run[]> {
    const res = await this.api.request('listRuns', {
      query: { ...this.filter(), limit: this.limit() },
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
    // An update leaves out the input (it never changes after create): keep the one read before.
    const whole = run.input === undefined ? { ...run, input: known?.input ?? null } : run;
    if (matchesStateFilter(whole, this.filter())) this.byId.set(run.id, whole);
    else this.byId.delete(run.id);
  }

  private publish(patch: Partial<RunsWatchState>): void {
    const limit = this.limit();
    const runs = [...this.byId.values()].sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    if (runs.length > limit) {
      runs.length = limit;
      this.byId = new Map(runs.map((r) => [r.id, r]));
    }
    this.update({ ...patch, runs });
  }
}

/** Watch the runs list live (see RunsWatch). Starts connecting at once. */
export function watchRuns(options: WatchRunsOptions): RunsWatch {
  return new RunsWatch(options).start();
}
