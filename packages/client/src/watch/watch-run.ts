import {
  MAX_READ_LIMIT,
  RuntrailError,
  SSE_EVENTS,
  foldEvents,
  initialSnapshot,
  isTerminalType,
  type ReadEventsResponse,
  type Run,
  isTerminalStatus,
  type RunEvent,
  type RunStatus,
  type RunWithObservers,
  type ServerMessage,
  type Snapshot,
  type StreamEnd,
} from '@runtrail/protocol';
import { backoffDelay, delay } from '../backoff.js';
import { closeError, resolveWebSocket, streamHeaders, watcherApi } from './connection.js';
import { errorFromResponse, isAuthFailure, isRetryable, type HttpApi } from '../http-api.js';
import { idleWatchdog } from './idle-watchdog.js';
import { SseParser } from './sse-parser.js';
import { toWebSocketUrl } from './ws-url.js';
import type { ConnectionState, TransportName, WatchConnectionOptions, WebSocketConstructor, WebSocketLike } from './types.js';

export interface WatchRunOptions extends WatchConnectionOptions {
  /**
   * Start after this seq (the watcher then folds only later events onto an
   * empty snapshot). Default 0: the whole log, so `events` and the snapshot
   * are complete.
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
}

/** What a watcher shows; a new object on every change (a `useSyncExternalStore` snapshot). */
export interface RunWatchState {
  /** The run as last fetched, with seq, snapshot and status kept current by the stream. */
  run: Run | null;
  /** The live snapshot: the same reducer as the server over the events received. */
  snapshot: Snapshot;
  /** The latest events (at most maxEvents), in seq order. */
  events: readonly RunEvent[];
  /** seq of the last event applied. */
  seq: number;
  connection: ConnectionState;
  /** Transport of the current (or last) connection. */
  transport: TransportName | null;
  /** Why the watcher stopped (e.g. run_not_found), or the last connection problem while it retries. */
  error: RuntrailError | null;
}

interface SessionResult {
  /** The transport delivered (it is reachable); a later drop is a reconnect, not a fallback. */
  opened: boolean;
  /** Stop for good (the run does not exist). */
  fatal?: RuntrailError;
  error?: unknown;
}

const TERMINAL_STATUS: Record<string, RunStatus> = { 'run.succeeded': 'succeeded', 'run.failed': 'failed', 'run.cancelled': 'cancelled' };

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
export class RunWatch implements AsyncIterable<RunEvent> {
  readonly runId: string;
  /** Resolves with the final state when the run's end was received, or the watcher stopped. */
  readonly done: Promise<RunWatchState>;
  private state: RunWatchState;
  private readonly api: HttpApi;
  private readonly options: WatchRunOptions;
  private readonly WS: WebSocketConstructor | null;
  private readonly listeners = new Set<() => void>();
  private readonly iterators = new Set<EventQueue>();
  private readonly aborter = new AbortController();
  private readonly skipUntil = new Map<TransportName, number>();
  private readonly failures = new Map<TransportName, number>();
  private resolveDone!: (state: RunWatchState) => void;
  private started = false;
  private finished = false;
  /** Serializes applying: frames of one session and gap fills never interleave. */
  private ingestChain: Promise<void> = Promise.resolve();

  constructor(runId: string, options: WatchRunOptions) {
    this.runId = runId;
    this.options = options;
    this.api = watcherApi(options);
    this.WS = resolveWebSocket(options);
    const after = options.after ?? 0;
    this.state = {
      run: null,
      snapshot: { ...initialSnapshot(), seq: after },
      events: [],
      seq: after,
      connection: 'connecting',
      transport: null,
      error: null,
    };
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Begin connecting (watchRun calls it; lazy bindings call it on first subscriber). */
  start(): this {
    if (this.started || this.finished) return this;
    this.started = true;
    void this.loop();
    return this;
  }

  getState = (): RunWatchState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Stop: close the connection, end iterators. The state stays readable. */
  close(): void {
    if (this.finished) return;
    this.stop(null);
  }

  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    const queue = new EventQueue(this.options.maxIteratorBacklog ?? 100_000, () => this.iterators.delete(queue));
    // A late iterator starts with the events still held, then continues live.
    queue.push(this.state.events);
    if (this.finished) queue.end(null);
    else this.iterators.add(queue);
    return queue;
  }

  // ---- the connection loop -------------------------------------------------

  private async loop(): Promise<void> {
    const signal = this.aborter.signal;
    let attempt = 0;
    try {
      await this.loadRun();
      while (!this.finished) {
        const transport = this.pickTransport();
        // 'connecting' the first time, 'reconnecting' after a drop (set below), 'polling' when polling.
        this.update(transport === 'poll' ? { transport, connection: 'polling' } : { transport });
        const result = await this.session(transport);
        await this.ingestChain;
        if (this.finished) break;
        if (result.fatal) {
          this.stop(result.fatal);
          break;
        }
        if (result.opened) {
          attempt = 0;
          this.failures.set(transport, 0);
        } else {
          const failures = (this.failures.get(transport) ?? 0) + 1;
          this.failures.set(transport, failures);
          if (failures >= 2 && transport !== 'poll') {
            this.failures.set(transport, 0);
            this.skipUntil.set(transport, Date.now() + (this.options.transportRetryMs ?? 30_000));
          }
        }
        if (result.error !== undefined) this.update({ error: toRuntrailError(result.error) });
        this.update({ connection: 'reconnecting' });
        await delay(backoffDelay(attempt++, this.options.backoff ?? { initialMs: 250, maxMs: 10_000 }, this.options.random), signal);
      }
    } catch (err) {
      if (signal.aborted) return;
      this.stop(toRuntrailError(err));
    }
  }

  /** The run's metadata (and its snapshot when starting from it); retried until the server answers. */
  private async loadRun(): Promise<void> {
    let attempt = 0;
    for (;;) {
      try {
        const run = await this.api.request<RunWithObservers>('getRun', { params: { id: this.runId }, signal: this.aborter.signal });
        if (this.options.fromSnapshot && run.seq > this.state.seq) {
          this.update({ run, snapshot: run.snapshot, seq: run.seq });
        } else this.update({ run: this.withLive(run) });
        // Starting at or past the end: nothing will ever arrive, so end now.
        if (isTerminalStatus(run.status) && this.state.seq >= run.seq) void this.onTerminal(run.status);
        return;
      } catch (err) {
        if (!isRetryable(err) || this.aborter.signal.aborted) throw err;
        this.update({ connection: 'reconnecting', error: toRuntrailError(err) });
        await delay(backoffDelay(attempt++, this.options.backoff ?? { initialMs: 250, maxMs: 10_000 }, this.options.random), this.aborter.signal);
      }
    }
  }

  private pickTransport(): TransportName {
    const wanted = this.options.transports ?? ['ws', 'sse', 'poll'];
    const now = Date.now();
    for (const t of wanted) {
      if (t === 'ws' && !this.WS) continue;
      if ((this.skipUntil.get(t) ?? 0) > now) continue;
      return t;
    }
    return wanted[wanted.length - 1] ?? 'poll';
  }

  private session(transport: TransportName): Promise<SessionResult> {
    if (transport === 'ws') return this.wsSession();
    if (transport === 'sse') return this.sseSession();
    return this.pollSession();
  }

  private wsSession(): Promise<SessionResult> {
    return new Promise((resolve) => {
      const url = toWebSocketUrl(this.api.url('stream', {}), this.options.token);
      let ws: WebSocketLike;
      try {
        ws = new this.WS!(url);
      } catch (error) {
        resolve({ opened: false, error });
        return;
      }
      let opened = false;
      let settled = false;
      const idleMs = this.options.idleTimeoutMs ?? 45_000;
      const watchdog = idleWatchdog(
        idleMs,
        () => {
          if (ws.readyState === 1) ws.send('{"op":"ping"}');
        },
        () => finish({ opened, error: new RuntrailError('unavailable', `nothing received for ${idleMs} ms; reconnecting`) }),
      );
      const finish = (result: SessionResult): void => {
        if (settled) return;
        settled = true;
        watchdog.stop();
        this.aborter.signal.removeEventListener('abort', onAbort);
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        if (ws.readyState <= 1) ws.close();
        resolve(result);
      };
      const onAbort = (): void => finish({ opened });
      this.aborter.signal.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', runId: this.runId, after: this.state.seq }));
      ws.onerror = () => {
        // The close event that follows carries the outcome.
      };
      ws.onclose = (event: { code?: number; reason?: string }) => {
        const denied = closeError(event);
        finish(denied ? { opened, fatal: denied } : { opened });
      };
      ws.onmessage = (event: { data: unknown }) => {
        watchdog.touch();
        let msg: ServerMessage;
        try {
          msg = JSON.parse(String(event.data)) as ServerMessage;
        } catch (error) {
          finish({ opened, error });
          return;
        }
        switch (msg.type) {
          case 'subscribed':
            opened = true;
            this.update({ connection: 'live', error: null, run: this.state.run ? { ...this.state.run, status: msg.status } : null });
            return;
          case 'events':
            this.enqueue(msg.events, (error) => finish({ opened, error }));
            return;
          case 'end':
            this.enqueueEnd(msg, (error) => finish({ opened, error }));
            return;
          case 'error':
            if (msg.code === 'run_not_found' || isAuthFailure(new RuntrailError(msg.code, msg.message))) {
              finish({ opened, fatal: new RuntrailError(msg.code, msg.message) });
            }
            else finish({ opened, error: new RuntrailError(msg.code, msg.message) });
            return;
          default:
            return;
        }
      };
    });
  }

  private async sseSession(): Promise<SessionResult> {
    const fetchImpl = this.options.fetch ?? globalThis.fetch.bind(globalThis);
    const url = this.api.url('streamRun', { id: this.runId }, { after: this.state.seq });
    const local = new AbortController();
    const signal = AbortSignal.any([this.aborter.signal, local.signal]);
    let opened = false;
    let failure: unknown;
    const fail = (error: unknown): void => {
      failure = error;
      local.abort();
    };
    const idleMs = this.options.idleTimeoutMs ?? 45_000;
    // From the request on: a pooled connection that died silently would
    // otherwise hang before the headers. Once streaming, SSE has no
    // client->server channel; the server's keepalive comments are what we wait for.
    const watchdog = idleWatchdog(idleMs, () => undefined, () => fail(new RuntrailError('unavailable', `nothing received for ${idleMs} ms; reconnecting`)));
    try {
      const response = await fetchImpl(url, {
        headers: { ...streamHeaders(this.options), accept: 'text/event-stream' },
        signal,
      });
      if (!response.ok) {
        const text = await response.text();
        const err = errorFromResponse(response.status, safeJson(text), `GET ${url}`);
        if (err.code === 'run_not_found' || isAuthFailure(err)) return { opened, fatal: err };
        return { opened, error: err };
      }
      if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
        return { opened, error: new RuntrailError('unavailable', `GET ${url} did not answer with an event stream`) };
      }
      opened = true;
      this.update({ connection: 'live', error: null });
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        watchdog.touch();
        if (done || failure !== undefined) break;
        let events: RunEvent[] = [];
        for (const record of parser.push(decoder.decode(value, { stream: true }))) {
          if (record.event === SSE_EVENTS.event) {
            events.push(JSON.parse(record.data) as RunEvent);
            continue;
          }
          // Keep order: what came before this record is applied first.
          if (events.length > 0) this.enqueue(events, fail);
          events = [];
          if (record.event === SSE_EVENTS.end) this.enqueueEnd(JSON.parse(record.data) as StreamEnd, fail);
          else if (record.event === SSE_EVENTS.error) {
            const body = JSON.parse(record.data) as { code: RuntrailError['code']; message: string };
            const err = new RuntrailError(body.code, body.message);
            return isAuthFailure(err) ? { opened, fatal: err } : { opened, error: err };
          }
        }
        if (events.length > 0) this.enqueue(events, fail);
      }
      return failure === undefined ? { opened } : { opened, error: failure };
    } catch (error) {
      return { opened, error: failure ?? error };
    } finally {
      watchdog.stop();
      local.abort();
    }
  }

  private async pollSession(): Promise<SessionResult> {
    const interval = this.options.pollIntervalMs ?? 1000;
    let opened = false;
    try {
      while (!this.finished) {
        const page = await this.readEvents(this.state.seq);
        if (!opened) {
          opened = true;
          this.update({ connection: 'polling', error: null });
        }
        await this.ingest(page.events);
        if (!this.finished && isTerminalStatus(page.status) && this.state.seq >= page.seq) void this.onTerminal(page.status);
        if (this.finished) break;
        if (page.events.length === MAX_READ_LIMIT) continue;
        // Give a better transport another chance once its pause is over.
        if (this.betterTransportDue()) return { opened };
        await delay(interval, this.aborter.signal);
      }
      return { opened };
    } catch (error) {
      if (RuntrailError.isCode(error, 'run_not_found') || isAuthFailure(error)) return { opened, fatal: error };
      return { opened, error };
    }
  }

  /** A streaming transport we fell back from has served its pause. */
  private betterTransportDue(): boolean {
    const now = Date.now();
    return (this.options.transports ?? ['ws', 'sse', 'poll']).some(
      (t) => t !== 'poll' && (t !== 'ws' || this.WS !== null) && (this.skipUntil.get(t) ?? Infinity) <= now,
    );
  }

  // ---- applying events -----------------------------------------------------

  private enqueue(events: RunEvent[], onError: (err: unknown) => void): void {
    this.ingestChain = this.ingestChain.then(() => this.ingest(events)).catch((err: unknown) => {
      if (!this.aborter.signal.aborted) onError(err);
    });
  }

  /** The server says the log ended at `end.seq`: make sure we hold everything up to it. */
  private enqueueEnd(end: StreamEnd, onError: (err: unknown) => void): void {
    this.ingestChain = this.ingestChain
      .then(async () => {
        if (this.finished) return;
        if (this.state.seq < end.seq) await this.fillGap(end.seq);
        void this.onTerminal(end.status);
      })
      .catch((err: unknown) => {
        if (!this.aborter.signal.aborted) onError(err);
      });
  }

  /** Apply events in seq order: drop what we have, refetch what is missing before them. */
  private async ingest(events: RunEvent[]): Promise<void> {
    let batch: RunEvent[] = [];
    for (const event of events) {
      if (this.finished) return;
      const next = this.state.seq + batch.length + 1;
      if (event.seq < next) continue;
      if (event.seq > next) {
        this.apply(batch);
        batch = [];
        await this.fillGap(event.seq - 1);
        if (event.seq !== this.state.seq + 1) continue;
      }
      batch.push(event);
    }
    this.apply(batch);
  }

  private async fillGap(through: number): Promise<void> {
    while (!this.finished && this.state.seq < through) {
      const page = await this.readEvents(this.state.seq);
      const wanted = page.events.filter((e) => e.seq <= through);
      if (wanted.length === 0) throw new RuntrailError('internal', `events ${this.state.seq + 1}..${through} of run ${this.runId} are missing on the server`);
      this.apply(wanted.filter((e) => e.seq > this.state.seq));
    }
  }

  private readEvents(after: number): Promise<ReadEventsResponse> {
    return this.api.request<ReadEventsResponse>('readEvents', {
      params: { id: this.runId },
      query: { after, limit: MAX_READ_LIMIT },
      signal: this.aborter.signal,
    });
  }

  private apply(events: RunEvent[]): void {
    if (events.length === 0 || this.finished) return;
    const terminalAt = events.findIndex((e) => isTerminalType(e.type));
    const taken = terminalAt >= 0 ? events.slice(0, terminalAt + 1) : events;
    const snapshot = foldEvents(taken, this.state.snapshot);
    const max = this.options.maxEvents ?? 5000;
    const merged = this.state.events.length + taken.length <= max ? [...this.state.events, ...taken] : [...this.state.events, ...taken].slice(-max);
    const seq = taken[taken.length - 1]!.seq;
    this.update({ snapshot, events: merged, seq, run: this.state.run ? this.withLive({ ...this.state.run, seq, snapshot }) : null });
    for (const it of this.iterators) it.push(taken);
    if (terminalAt >= 0) void this.onTerminal(TERMINAL_STATUS[taken[taken.length - 1]!.type]!);
  }

  private withLive(run: Run): Run {
    const merged = run.seq >= this.state.seq ? run : { ...run, seq: this.state.seq, snapshot: this.state.snapshot };
    const terminal = merged.snapshot.terminal;
    return terminal ? { ...merged, status: terminal.status } : merged;
  }

  /**
   * The end: refresh the run's final fields (finishedAt, output, error) once,
   * then stop. Reached by applying the terminal event, or, for a watcher that
   * started at or after it (after=N, fromSnapshot), by the server saying so.
   */
  private async onTerminal(status: RunStatus): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    let run = this.state.run;
    try {
      const fresh = await this.api.request<RunWithObservers>('getRun', { params: { id: this.runId } });
      run = { ...fresh, status };
    } catch (err) {
      // The snapshot already holds the terminal state; only the run's
      // metadata stays as it was. Say so rather than hide it.
      this.update({ error: toRuntrailError(err) });
    }
    this.update({ run, connection: 'ended' });
    this.aborter.abort();
    for (const it of this.iterators) it.end(null);
    this.iterators.clear();
    this.resolveDone(this.state);
  }

  private stop(error: RuntrailError | null): void {
    this.finished = true;
    this.aborter.abort();
    this.update({ connection: 'ended', ...(error ? { error } : {}) });
    for (const it of this.iterators) it.end(error);
    this.iterators.clear();
    this.resolveDone(this.state);
  }

  private update(patch: Partial<RunWatchState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of [...this.listeners]) listener();
  }
}

/** Watch a run live (see RunWatch). Starts connecting at once. */
export function watchRun(runId: string, options: WatchRunOptions): RunWatch {
  return new RunWatch(runId, options).start();
}

/** An async iterator over a bounded queue that fails loudly instead of dropping. */
class EventQueue implements AsyncIterator<RunEvent> {
  private items: RunEvent[] = [];
  private head = 0;
  private waiting: ((r: IteratorResult<RunEvent>) => void) | null = null;
  private rejectWaiting: ((err: unknown) => void) | null = null;
  private ended = false;
  private error: unknown = null;

  constructor(
    private readonly max: number,
    private readonly onReturn: () => void,
  ) {}

  push(events: readonly RunEvent[]): void {
    if (this.ended) return;
    for (const e of events) this.items.push(e);
    if (this.items.length - this.head > this.max) {
      this.items = [];
      this.head = 0;
      this.end(new RuntrailError('internal', `the iterator fell more than ${this.max} events behind; read faster or resume with watchRun(id, {after})`));
      this.onReturn();
      return;
    }
    this.wake();
  }

  end(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.wake();
  }

  next(): Promise<IteratorResult<RunEvent>> {
    if (this.head < this.items.length) return Promise.resolve({ value: this.take(), done: false });
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.rejectWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<RunEvent>> {
    this.ended = true;
    this.items = [];
    this.onReturn();
    return Promise.resolve({ value: undefined, done: true });
  }

  private take(): RunEvent {
    const e = this.items[this.head++]!;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  private wake(): void {
    const resolve = this.waiting;
    const reject = this.rejectWaiting;
    if (!resolve || !reject) return;
    this.waiting = this.rejectWaiting = null;
    if (this.head < this.items.length) resolve({ value: this.take(), done: false });
    else if (this.ended) {
      if (this.error) reject(this.error);
      else resolve({ value: undefined, done: true });
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // Not JSON (a proxy's HTML page): errorFromResponse falls back to the status.
    return { parseError: String(err) };
  }
}

function toRuntrailError(err: unknown): RuntrailError {
  if (err instanceof RuntrailError) return err;
  return new RuntrailError('unavailable', err instanceof Error ? err.message : String(err));
}
