import {
  MAX_READ_LIMIT,
  RuntrailError,
  eventsOf,
  foldEvents,
  initialSnapshot,
  invalidRequest,
  isTerminalStatus,
  isTerminalType,
  runDeleted,
  terminalStatusOf,
  type ReadEventsResponse,
  type Run,
  type RunEvent,
  type RunStatus,
  type RunWithObservers,
  type ServerMessage,
  type Snapshot,
  type StreamEnd,
} from '@runtrail/protocol';
import { backoffDelay, delay } from '../backoff.js';
import { describeValue } from '../describe-value.js';
import { isAuthFailure, isRetryable } from '../http-api.js';
import { EventQueue } from './event-queue.js';
import { PollTransport } from './poll-transport.js';
import { toRuntrailError, type ConnectionChange } from './reconnect.js';
import { SseTransport } from './sse-transport.js';
import type { Connection, ConnectionReason, Transport } from './transport.js';
import type { TransportName, WatchConnectionOptions } from './types.js';
import { Watcher, type WatcherConnection } from './watcher.js';

export interface WatchRunOptions extends WatchConnectionOptions {
  /**
   * Start after this seq (the watcher then folds only later events onto an
   * empty snapshot); 0 replays the whole log. Default: the whole log's
   * snapshot, and every event to an async iterator made before the watcher
   * connects; a watcher without one, of a log longer than `maxEvents`,
   * starts from the server's snapshot and reads only the latest `maxEvents`
   * events, which is all it keeps.
   */
  after?: number;
  /**
   * Start from the run's persisted snapshot and seq instead of replaying the
   * log: cheapest for a long run when only the live numbers matter
   * (`events` then holds only what arrives from now on).
   */
  fromSnapshot?: boolean;
  /** How many of the latest events `state.events` keeps. Default 5,000. */
  maxEvents?: number;
  /** Events an async iterator may hold unread before it fails (it never drops silently). Default 100,000. */
  maxIteratorBacklog?: number;
  /**
   * Keep `state.observers` current: the server pushes how many watch the run,
   * on every node of a cluster, when that changes (over
   * WebSocket or SSE; nothing is polled). Default false.
   */
  observers?: boolean;
  /**
   * After the run's end, stay connected until the run is deleted, and then
   * stop with reason `deleted` (a page that shows the ended run can say it
   * is gone). The state says `ended` / `run_ended` meanwhile and iterators
   * end at the terminal event as usual; `done` resolves at the deletion or
   * at `close()`. Default false: the watcher stops at the end.
   */
  untilDeleted?: boolean;
}

/** What a watcher shows; a new object on every change (a `useSyncExternalStore` snapshot). */
export interface RunWatchState extends WatcherConnection {
  /** The run as last fetched, with seq, snapshot and status kept current by the stream. */
  run: Run | null;
  /**
   * The live snapshot: the same reducer as the server over the events
   * received. It never moves back in seq: while a full replay is still
   * behind the snapshot the server had persisted when the watcher started,
   * that persisted snapshot is shown (field note 4, a reload never shows
   * lower numbers).
   */
  snapshot: Snapshot;
  /** The latest events (at most maxEvents), in seq order; during a replay they may still be behind `seq`. */
  events: readonly RunEvent[];
  /** seq of `snapshot`. */
  seq: number;
  /** Why the watcher stopped (e.g. run_not_found), or the last connection problem while it retries. */
  error: RuntrailError | null;
  /**
   * How many watch the run now, on every node of a cluster, this watcher included
   * (with `observers: true`). null while it is not known: not asked for, not
   * live over a stream (connecting, reconnecting, polling), or ended.
   */
  observers: number | null;
}

/** What the watcher has folded so far (the exposed state may show a later persisted snapshot). */
interface Fold {
  snapshot: Snapshot;
  seq: number;
}

/**
 * A live, resumable view of one run. It reads the log by seq over the best
 * transport that works (WebSocket, then SSE, then polling), folds it with
 * the shared reducer, and after any drop resumes from the last seq it
 * applied: duplicates are dropped, gaps are refetched over HTTP, so it ends
 * with exactly the server's events and snapshot.
 *
 * It is both an async iterable of events and a subscribable store
 * (`subscribe` + `getState`) for UI bindings.
 */
export class RunWatch extends Watcher<RunWatchState, ServerMessage> implements AsyncIterable<RunEvent> {
  readonly runId: string;
  /** Resolves with the final state when the run's end was received, or the watcher stopped. */
  readonly done: Promise<RunWatchState>;
  private fold: Fold;
  /** The persisted snapshot shown until the replay has passed it. */
  private held: Fold | null = null;
  private readonly options: WatchRunOptions;
  private readonly iterators = new Set<EventQueue>();
  private resolveDone!: (state: RunWatchState) => void;
  /** Nothing more will be applied (the run ended, or the watcher stopped). */
  private finished = false;
  /** The watcher is over: connection closed, `done` resolved. */
  private stopped = false;
  /** The run as first read had already ended: its finishedAt, output and error were final then. */
  private endedWhenRead = false;
  /** Serializes applying: frames of one connection and gap fills never interleave. */
  private ingestChain: Promise<void> = Promise.resolve();

  constructor(runId: string, options: WatchRunOptions) {
    // An id from an unset variable: refused where the mistake is, not met later as the watcher's error about a path.
    if (typeof runId !== 'string' || runId === '') {
      throw invalidRequest('watchRun arguments', [{ path: 'runId', message: `must be a run's id, not ${runId === '' ? 'an empty string' : String(runId)}` }]);
    }
    if (typeof options !== 'object' || options === null) {
      throw invalidRequest('watchRun arguments', [{ path: 'options', message: `must be an object with the server's url ({ url: 'http://127.0.0.1:4310' }), not ${String(options)}` }]);
    }
    // A seq from argv or a query string is text: the server would refuse it as "not a client message
    // of the stream protocol" over WebSocket, SSE would take it, and the state's seq would be a string.
    if (options.after !== undefined && !(Number.isSafeInteger(options.after) && options.after >= 0)) {
      throw invalidRequest('watchRun arguments', [{ path: 'after', message: `must be a seq, a whole number >= 0 (0 replays the whole log), not ${describeValue(options.after)}` }]);
    }
    const after = options.after ?? 0;
    const fold: Fold = { snapshot: { ...initialSnapshot(), seq: after }, seq: after };
    super(
      { run: null, snapshot: fold.snapshot, events: [], seq: after, connection: 'connecting', reason: 'start', transport: null, error: null, observers: null, lastHeardAt: null },
      options,
    );
    this.fold = fold;
    this.runId = runId;
    this.options = options;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Stop: close the connection, end iterators. The state stays readable. */
  close(): void {
    if (this.stopped) return;
    this.stop(null, 'closed_by_client');
  }

  /**
   * Every event once, in order, ending after the terminal one. A loop that
   * stops early (`break`, a throw, an iterator that fell too far behind)
   * closes the watcher when no other iterator or subscriber still reads
   * it: nothing would read what it receives, and its open connection
   * would keep the process alive until the run ended.
   */
  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    const queue = new EventQueue(this.options.maxIteratorBacklog ?? 100_000, () => {
      this.iterators.delete(queue);
      if (this.iterators.size === 0 && !this.hasSubscribers()) this.close();
    });
    // A late iterator starts with the events still held, then continues live.
    queue.push(this.state.events);
    if (this.finished) queue.end(null);
    else this.iterators.add(queue);
    return queue;
  }

  // ---- connecting ------------------------------------------------------------

  protected async run(): Promise<void> {
    try {
      await this.loadRun();
      await this.reconnect({
        transports: this.transports(),
        deliver: (conn, message) => this.onMessage(conn, message),
        // No reconnect makes a missing run exist, a refused token good or a bad request right.
        isFatal: (error) => RuntrailError.isCode(error, 'run_not_found') || RuntrailError.isCode(error, 'invalid_request') || isAuthFailure(error),
        settle: () => this.ingestChain,
      });
    } catch (err) {
      if (this.aborter.signal.aborted) return;
      // A run this watcher read, and then missing: it was deleted (the server's message says so too).
      const missing = RuntrailError.isCode(err, 'run_not_found') ? (this.state.run !== null ? 'deleted' : 'not_found') : 'error';
      // Polling learns of it from a read's 404 ("does not exist"): said as the streams say it.
      this.stop(missing === 'deleted' ? runDeleted(this.runId) : toRuntrailError(err), missing);
    }
  }

  private transports(): Transport<ServerMessage>[] {
    const { idleTimeoutMs, fetch, headers, wanted } = this.settings;
    const all: Record<TransportName, Transport<ServerMessage> | null> = {
      // Compact frames: the events without the runId each would repeat (put back by eventsOf).
      ws: this.wsTransport(() => ({
        op: 'subscribe',
        runId: this.runId,
        after: this.fold.seq,
        compact: true,
        observers: this.options.observers === true,
        // Only when asked: a server before untilDeleted refuses a field it does not know.
        ...(this.options.untilDeleted ? { untilDeleted: true } : {}),
      })),
      sse: new SseTransport({
        runId: this.runId,
        // Compact too: runIds are put back by eventsOf, as for the WebSocket's frames.
        url: () =>
          this.api.url('streamRun', { id: this.runId }, {
            after: this.fold.seq,
            compact: 'true',
            ...(this.options.observers ? { observers: 'true' as const } : {}),
            ...(this.options.untilDeleted ? { untilDeleted: 'true' as const } : {}),
          }),
        fetch,
        headers,
        idleTimeoutMs,
      }),
      poll: new PollTransport<ServerMessage>({ read: (signal) => this.poll(signal), intervalMs: this.settings.pollIntervalMs }),
    };
    return wanted.map((name) => all[name]).filter((t): t is Transport<ServerMessage> => t !== null);
  }

  /** The run's metadata (and its snapshot when starting from it); retried until the server answers. */
  private async loadRun(): Promise<void> {
    const { clock, backoff, random } = this.settings.reconnect;
    for (let attempt = 0; ; attempt++) {
      try {
        const run = await this.getRun(this.aborter.signal);
        this.heard();
        // A position past the end (a seq of another run, a typo) would wait for events numbered from
        // there, for ever on a running run: say so, as the server does, whether or not the run ended.
        if (!this.options.fromSnapshot && this.fold.seq > run.seq) {
          throw new RuntrailError(
            'invalid_request',
            `after=${this.fold.seq} is past the end of run ${this.runId}: its last event is seq ${run.seq}; watch from at most ${run.seq} (0 for the whole log)`,
            { runId: this.runId, after: this.fold.seq, seq: run.seq },
          );
        }
        const keep = this.options.maxEvents ?? 5000;
        let keptFrom: number | null = null;
        if (this.options.fromSnapshot && run.seq > this.fold.seq) this.fold = { snapshot: run.snapshot, seq: run.seq };
        else if (this.options.after === undefined && run.seq > keep && this.iterators.size === 0) {
          // A log longer than the watcher keeps, and no iterator that wants every event: start
          // from the server's snapshot and read only the events kept. Replaying it all (a million
          // events of a long eval) cost every page that opened the run the whole log over the
          // wire and through the reducer, only to reach the snapshot the server already had.
          this.fold = { snapshot: run.snapshot, seq: run.seq };
          keptFrom = run.seq - keep;
        }
        // A full replay starts below what the server persisted: show that until the replay passes it.
        else if ((this.options.after ?? 0) === 0 && run.seq > this.fold.seq) this.held = { snapshot: run.snapshot, seq: run.seq };
        this.endedWhenRead = isTerminalStatus(run.status);
        this.publish({ run });
        // The run's numbers are shown; then the events kept, which arrive behind seq as a replay's do.
        if (keptFrom !== null) this.publish({ events: await this.readThrough(keptFrom, run.seq) });
        // Starting at or past the end: nothing will ever arrive, so end now.
        if (isTerminalStatus(run.status) && this.fold.seq >= run.seq) void this.onTerminal(run.status);
        return;
      } catch (err) {
        if (!isRetryable(err) || this.aborter.signal.aborted) throw err;
        this.update({ connection: 'reconnecting', reason: 'error', error: toRuntrailError(err) });
        await delay(backoffDelay(attempt, backoff, random), this.aborter.signal, clock);
      }
    }
  }

  protected override onConnectionChange(change: ConnectionChange): void {
    // Ended, and only listening for the deletion (untilDeleted): the state stays `ended`, whatever the connection does.
    if (this.finished) return;
    // A count is only known while a stream that reports it is live; the next one reports it afresh.
    if (change.connection !== 'live') this.state = { ...this.state, observers: null };
    super.onConnectionChange(change);
  }

  private onMessage(conn: Connection, message: ServerMessage): void | Promise<void> {
    if (!conn.alive()) return;
    const fail = (error: unknown): void => conn.finish({ reason: 'error', error });
    switch (message.type) {
      case 'subscribed':
        conn.open();
        if (this.state.run) this.publish({ run: { ...this.state.run, status: message.status } });
        return;
      case 'events':
        return this.enqueue(() => this.ingest(eventsOf(message)), fail);
      case 'end':
        return this.enqueue(() => this.onEnd(message), fail);
      case 'observers':
        if (!this.finished) this.update({ observers: message.count });
        return;
      case 'error':
        fail(new RuntrailError(message.code, message.message));
        return;
      default:
        return;
    }
  }

  /** One polling read: the next page, and the end once it is all here. */
  private async poll(signal: AbortSignal): Promise<{ messages: ServerMessage[]; more: boolean }> {
    const page = await this.readEvents(this.fold.seq, signal);
    // More is stored than came (a page is cut at MAX_READ_LIMIT events or at the server's readPageBytes):
    // read again at once, rather than a poll interval later per page, and do not end short of the last seq.
    const last = page.events.at(-1)?.seq ?? this.fold.seq;
    const more = page.events.length > 0 && last < page.seq;
    const messages: ServerMessage[] = [{ type: 'events', runId: this.runId, events: page.events }];
    if (!more && isTerminalStatus(page.status)) messages.push({ type: 'end', runId: this.runId, status: page.status, seq: page.seq });
    return { messages, more };
  }

  // ---- applying events -----------------------------------------------------

  /**
   * Apply in arrival order. What a connection delivered while it was current
   * is applied even if it dropped since (duplicates are skipped by seq).
   */
  private enqueue(step: () => Promise<void>, onError: (err: unknown) => void): Promise<void> {
    this.ingestChain = this.ingestChain
      .then(step)
      .catch((err: unknown) => {
        if (!this.aborter.signal.aborted) onError(err);
      });
    return this.ingestChain;
  }

  /** The server says the log ended at `end.seq`: make sure we hold everything up to it. */
  private async onEnd(end: StreamEnd): Promise<void> {
    if (this.finished) return;
    if (this.fold.seq < end.seq) await this.fillGap(end.seq);
    void this.onTerminal(end.status);
  }

  /** Apply events in seq order: drop what we have, refetch what is missing before them. */
  private async ingest(events: RunEvent[]): Promise<void> {
    let batch: RunEvent[] = [];
    for (const event of events) {
      if (this.finished) return;
      const next = this.fold.seq + batch.length + 1;
      if (event.seq < next) continue;
      if (event.seq > next) {
        this.apply(batch);
        batch = [];
        await this.fillGap(event.seq - 1);
        if (event.seq !== this.fold.seq + 1) continue;
      }
      batch.push(event);
    }
    this.apply(batch);
  }

  private async fillGap(through: number): Promise<void> {
    while (!this.finished && this.fold.seq < through) {
      const page = await this.readEvents(this.fold.seq, this.aborter.signal);
      const wanted = page.events.filter((e) => e.seq <= through);
      if (wanted.length === 0) throw new RuntrailError('internal', `events ${this.fold.seq + 1}..${through} of run ${this.runId} are missing on the server`);
      this.apply(wanted.filter((e) => e.seq > this.fold.seq));
    }
  }

  /** The events after..through, read page by page (the log up to a seq the server reported never changes). */
  private async readThrough(after: number, through: number): Promise<RunEvent[]> {
    const events: RunEvent[] = [];
    while (after < through) {
      const page = await this.readEvents(after, this.aborter.signal);
      const wanted = page.events.filter((e) => e.seq > after && e.seq <= through);
      if (wanted.length === 0) throw new RuntrailError('internal', `events ${after + 1}..${through} of run ${this.runId} are missing on the server`);
      events.push(...wanted);
      after = wanted[wanted.length - 1]!.seq;
    }
    return events;
  }

  private readEvents(after: number, signal: AbortSignal): Promise<ReadEventsResponse> {
    return this.api.request('readEvents', { params: { id: this.runId }, query: { after, limit: MAX_READ_LIMIT }, signal });
  }

  private getRun(signal?: AbortSignal): Promise<RunWithObservers> {
    return this.api.request('getRun', { params: { id: this.runId }, ...(signal ? { signal } : {}) });
  }

  private apply(events: RunEvent[]): void {
    if (events.length === 0 || this.finished) return;
    const terminalAt = events.findIndex((e) => isTerminalType(e.type));
    const taken = terminalAt >= 0 ? events.slice(0, terminalAt + 1) : events;
    const last = taken[taken.length - 1]!;
    this.fold = { snapshot: foldEvents(taken, this.fold.snapshot), seq: last.seq };
    const max = this.options.maxEvents ?? 5000;
    const merged = [...this.state.events, ...taken];
    this.publish({ events: merged.length <= max ? merged : merged.slice(-max) });
    for (const it of this.iterators) it.push(taken);
    if (isTerminalType(last.type)) void this.onTerminal(terminalStatusOf(last.type));
  }

  /**
   * Show the fold, or the held persisted snapshot while the replay is behind
   * it, and keep the run's seq, snapshot and status in step: nothing a
   * watcher exposes ever moves back in seq.
   */
  private publish(patch: Partial<RunWatchState>): void {
    if (this.held && this.fold.seq >= this.held.seq) this.held = null;
    const shown = this.held ?? this.fold;
    const run = patch.run ?? this.state.run;
    this.update({ ...patch, snapshot: shown.snapshot, seq: shown.seq, run: run ? withShown(run, shown) : null });
  }

  /**
   * The end: refresh the run's final fields (finishedAt, output, error) once,
   * then stop. Reached by applying the terminal event, or, for a watcher that
   * started at or after it (after=N, fromSnapshot), by the server saying so.
   */
  private async onTerminal(status: RunStatus): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    // Nothing more will come: close the connection now, not after the read below (kept to hear a deletion).
    if (!this.options.untilDeleted) this.aborter.abort();
    let run = this.state.run;
    // Read again only a run that was still going when read: a large input
    // (up to 1 MiB) came twice with every page opened on an ended run.
    if (!this.endedWhenRead || run === null) {
      try {
        run = { ...(await this.getRun()), status };
      } catch (err) {
        // The snapshot already holds the terminal state; only the run's
        // metadata stays as it was. Say so rather than hide it.
        this.update({ error: toRuntrailError(err) });
      }
    }
    if (this.stopped) return;
    // Set before the update, which lets go of a caller's signal once the watcher is over.
    if (!this.options.untilDeleted) this.stopped = true;
    this.update({ run: run ? withShown(run, this.held ?? this.fold) : null, connection: 'ended', reason: 'run_ended', observers: null });
    for (const it of this.iterators) it.end(null);
    this.iterators.clear();
    if (this.stopped) this.resolveDone(this.state);
  }

  protected override isOver(): boolean {
    return this.stopped;
  }

  protected giveUp(error: RuntrailError): void {
    this.stop(error, 'error');
  }

  private stop(error: RuntrailError | null, reason: ConnectionReason): void {
    if (this.stopped) return;
    this.stopped = true;
    this.finished = true;
    this.aborter.abort();
    this.update({ connection: 'ended', reason, observers: null, ...(error ? { error } : {}) });
    // The error as the state shows it (with the token hint), so iterators and `done` say the same.
    for (const it of this.iterators) it.end(error ? this.state.error : null);
    this.iterators.clear();
    this.resolveDone(this.state);
  }
}

/** The run with the snapshot the watcher shows when that is further along than the run as fetched. */
function withShown(run: Run, shown: Fold): Run {
  const merged = run.seq >= shown.seq ? run : { ...run, seq: shown.seq, snapshot: shown.snapshot };
  const terminal = merged.snapshot.terminal;
  if (terminal) return { ...merged, status: terminal.status };
  // A run read while queued that has started since (its run.started is in
  // the fold): running, from then. It stayed "queued", with no start time,
  // until its end, while its calls and progress went by below.
  const started = merged.snapshot.startedAt;
  if (merged.status === 'queued' && started !== null) return { ...merged, status: 'running', startedAt: merged.startedAt ?? started };
  return merged;
}

/** Watch a run live (see RunWatch). Starts connecting at once. */
export function watchRun(runId: string, options: WatchRunOptions): RunWatch {
  return new RunWatch(runId, options).start();
}
