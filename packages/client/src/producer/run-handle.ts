import {
  RuntrailError,
  isKnownEventType,
  invalidRequest,
  isTerminalStatus,
  MAX_ERROR_MESSAGE_CHARS,
  MAX_EVENT_DATA_BYTES,
  MAX_LABEL_CHARS,
  MAX_LOG_MESSAGE_CHARS,
  MAX_HEARTBEAT_WAIT_MS,
  MAX_META_BYTES,
  utf8Length,
  validateEventData,
  type EventInput,
  type FinishRunBody,
  type KnownEventType,
  type EventData,
  type Artifact,
  requireArtifactName,
  type LogLevel,
  type Owner,
  type Run,
  type RunError,
  type RunErrorKind,
  type RunStatus,
} from '@runtrail/protocol';
import { backoffDelay, delay, retrying } from '../backoff.js';
import { systemClock, unrefTimer, type Clock, type TimerHandle } from '../clock.js';
import { isRetryable } from '../http-api.js';
import { describeValue, typeName } from '../describe-value.js';
import { jsonText } from '../json-text.js';
import { onAbort } from '../on-abort.js';
import { appendBodyOf, type ProducerTransport, type RecordedEvent } from './transport.js';
import { watchServer, type ServerChangeListener } from './server-watch.js';
import { isRepeatable, openSource, type ArtifactOptions, type ArtifactSource } from '../artifacts/source.js';

export interface RunHandleOptions {
  runId: string;
  name: string;
  transport: ProducerTransport;
  /**
   * Who produces the run: appends, heartbeats and the end name it. Null for
   * a handle attached to a run another process owns (`runtrail exec`,
   * `ctx.exec`): it adds events and artifacts; the owner heartbeats and ends it.
   */
  owner: Owner | null;
  leaseTtlMs: number;
  /** Send a batch this long after its first event (default 20 ms). */
  flushIntervalMs?: number;
  /** Send at once when this many events wait (default 500). */
  maxBatch?: number;
  /**
   * Send at once when the waiting events reach this many bytes of JSON; no
   * batch is larger, unless one event alone is (default 1 MiB, well below a
   * server's default request limit of 8 MiB, `bodyLimitBytes`).
   */
  maxBatchBytes?: number;
  /**
   * Largest data of one event, in bytes of JSON, that `event()` accepts
   * (default 1 MiB, a server's default `maxEventDataBytes`; set it to your
   * server's if you changed that). Larger data is refused at the call site.
   */
  maxEventDataBytes?: number;
  /** The same for a `meta` event (default 64 KiB, a server's default `maxMetaBytes`). */
  maxMetaBytes?: number;
  /** Events that may wait unsent before `event()` refuses more (default 100,000). */
  maxQueued?: number;
  /** How long to keep retrying one batch through an outage (default 5 min). */
  retryForMs?: number;
  /** Start heartbeating (default true). */
  heartbeat?: boolean;
  /**
   * Keep one heartbeat always open, which the server holds until a cancel
   * is requested or the run ends (or for lease/3), so `signal` aborts as a
   * cancel happens rather than at the next heartbeat, up to lease/3 later
   * (default false). That open request keeps a Node process alive until
   * the run ends or the handle is closed; `runtrail exec` uses it.
   */
  holdHeartbeat?: boolean;
  /**
   * Time for event timestamps, batching, heartbeats and retry delays
   * (default the system clock): a test drives heartbeats and retries with a
   * manual one instead of waiting for them.
   */
  clock?: Clock;
}

export interface CallOptions {
  /** Extra attempts after the first failure (default 0). */
  retries?: number;
  callId?: string;
  /** Delay before a retry, by attempt number (default: backoff with jitter, 200 ms base). */
  retryDelayMs?: (attempt: number) => number;
}

let handleCounter = 0;

const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
/** Bytes of an event's JSON besides its data, type and id: keys, quotes, commas, ts. */
const ENVELOPE_BYTES = 64;

/**
 * A producer's handle on one run. Every method queues an event; the handle
 * sends them in order, in batches, and retries a failed batch with the same
 * event ids, so a retry can never store an event twice. `flush()` resolves
 * once everything queued before it is stored.
 */
export class RunHandle {
  readonly id: string;
  readonly name: string;
  /** Aborted when someone asks the run to cancel, or when the run ended without us. */
  readonly signal: AbortSignal;

  private readonly transport: ProducerTransport;
  private readonly owner: Owner | null;
  private readonly flushIntervalMs: number;
  // Lowered when the server refuses a batch as too large (413): a server
  // configured with smaller limits than ours is learned once, not refused
  // at every batch.
  private maxBatch: number;
  private maxBatchBytes: number;
  private readonly maxEventDataBytes: number;
  private readonly maxMetaBytes: number;
  private readonly maxQueued: number;
  private readonly retryForMs: number;
  private readonly idPrefix: string;
  private readonly clock: Clock;
  private readonly abort = new AbortController();
  private readonly stopped = new AbortController();
  private queue: RecordedEvent[] = [];
  /** Bytes of JSON each queued event adds to a request, and their sum. */
  private sizes: number[] = [];
  private queuedBytes = 0;
  private nextEventNo = 0;
  private callNo = 0;
  private timer: TimerHandle | null = null;
  /** Heartbeats missed in a row (the backoff of the next: see beat). */
  private missedBeats = 0;
  private heartbeatTimer: TimerHandle | null = null;
  private sending: Promise<void> = Promise.resolve();
  private failure: Error | null = null;
  private ended: Run | null = null;
  /** The finish body that ended the run, as JSON: the same end again is answered, another refused. */
  private endedWith: string | null = null;
  /** Why a cancel was requested, once one was (the signal's reason then says so too). */
  private cancelReason: string | null = null;
  /**
   * The end `finish()` was asked for and is sending (its events go first):
   * a process that exits before it is stored ends the run so, not as if
   * the script had never ended it.
   */
  private ending: Omit<FinishRunBody, 'id' | 'owner'> | null = null;
  /** The end being sent, while it is: a second finish() waits for it, then is answered as one after it. */
  private finishing: Promise<Run> | null = null;
  private serverListener: ServerChangeListener | null = null;

  constructor(options: RunHandleOptions) {
    this.id = options.runId;
    this.name = options.name;
    this.owner = options.owner;
    this.clock = options.clock ?? systemClock;
    this.transport = watchServer(options.transport, {
      leaseTtlMs: options.leaseTtlMs,
      owned: options.owner !== null,
      clock: this.clock,
      listener: () => this.serverListener,
    });
    this.flushIntervalMs = options.flushIntervalMs ?? 20;
    this.maxBatch = options.maxBatch ?? 500;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxEventDataBytes = options.maxEventDataBytes ?? MAX_EVENT_DATA_BYTES;
    this.maxMetaBytes = options.maxMetaBytes ?? MAX_META_BYTES;
    this.maxQueued = options.maxQueued ?? 100_000;
    this.retryForMs = options.retryForMs ?? 5 * 60_000;
    this.idPrefix = `${options.owner?.id ?? `attached-${globalThis.crypto.randomUUID()}`}.${(handleCounter++).toString(36)}`;
    this.signal = this.abort.signal;
    // An attached handle's run is heartbeated by its owner.
    if (options.heartbeat !== false && options.owner) {
      const everyMs = Math.max(250, Math.floor(options.leaseTtlMs / 3));
      // A held heartbeat is open from the start, so a cancel is heard at once from the start.
      this.scheduleBeat(everyMs, options.holdHeartbeat === true, options.holdHeartbeat ? 0 : everyMs);
    }
  }

  /**
   * Queue any event. Known types are checked here, and every event's size,
   * so bad data fails at the call site and nothing queued before it is lost.
   */
  event<T extends KnownEventType>(type: T, data: EventData<T>): void;
  event(type: `x.${string}`, data?: unknown): void;
  event(type: string, data?: unknown): void {
    if (this.failure) throw this.failure;
    if (this.ended) {
      throw new RuntrailError('run_already_terminal', `run ${this.id} already ended ${this.ended.status}`);
    }
    if (this.queue.length >= this.maxQueued) {
      throw new RuntrailError(
        'unavailable',
        `${this.queue.length} events of run ${this.id} are waiting to be sent; the server is not keeping up or unreachable (await run.flush())`,
      );
    }
    const event = { type, data: data ?? {}, ts: this.clock.now(), id: `${this.idPrefix}.${this.nextEventNo++}` };
    if (isKnownEventType(type)) {
      const issues = validateEventData([event], type);
      if (issues.length > 0) throw invalidRequest(`${type} event`, issues);
    } else if (!type.startsWith('x.')) {
      throw invalidRequest('event', [{ path: 'type', message: `unknown event type ${type}` }]);
    }
    const { dataJson, size } = this.measure(event);
    this.queue.push({ type, ts: event.ts, id: event.id, dataJson });
    this.sizes.push(size);
    this.queuedBytes += size;
    if (this.queue.length >= this.maxBatch || this.queuedBytes >= this.maxBatchBytes) this.kick();
    else if (this.timer === null) {
      this.timer = this.clock.setTimeout(() => this.kick(), this.flushIntervalMs);
    }
  }

  phase(name: string, options: { timeoutMs?: number } = {}): void {
    this.event('phase', { name, status: 'started', ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
  }

  phaseEnd(name: string, status: 'completed' | 'failed' = 'completed'): void {
    this.event('phase', { name, status });
  }

  /** Run `fn` as a phase: started, then completed or failed with its outcome. */
  async withPhase<T>(name: string, fn: () => Promise<T>, options: { timeoutMs?: number } = {}): Promise<T> {
    this.phase(name, options);
    try {
      const result = await fn();
      this.phaseEnd(name, 'completed');
      return result;
    } catch (err) {
      this.phaseEnd(name, 'failed');
      throw err;
    }
  }

  /**
   * Run one unit of work (an LLM call, a document) and record it: started,
   * then succeeded, or failed and retried up to `retries` times. This is the
   * stats tracker: counters live in the run's log, not in a local object.
   */
  async call<T>(label: string, fn: (attempt: number) => Promise<T>, options: CallOptions = {}): Promise<T> {
    // Checked before anything is recorded: a call of something that is not a function would be
    // stored as a failed call ("fn is not a function") before plain JS got its TypeError.
    if (typeof fn !== 'function') {
      throw invalidRequest('call', [{ path: 'fn', message: `must be the function that does the work, not ${typeName(fn)}` }]);
    }
    // Plain JS's options, checked as the Python client checks its: retries '2' was taken by coercion, NaN or
    // -1 as no retries and 2.5 as three, silently; a retryDelayMs that is no function threw only at the retry.
    const retries = options.retries ?? 0;
    if (!Number.isSafeInteger(retries) || retries < 0) {
      throw invalidRequest('call', [{ path: 'options.retries', message: `must be a whole number 0 or more (extra attempts after the first), not ${describeValue(retries)}` }]);
    }
    if (options.retryDelayMs !== undefined && typeof options.retryDelayMs !== 'function') {
      throw invalidRequest('call', [{ path: 'options.retryDelayMs', message: `must be a function of the attempt number giving milliseconds, not ${typeName(options.retryDelayMs)}` }]);
    }
    const callId = options.callId ?? `c${++this.callNo}`;
    const started = this.clock.now();
    this.event('call.started', { callId, label: cut(label, MAX_LABEL_CHARS) });
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await fn(attempt);
        this.event('call.succeeded', { callId, durationMs: this.clock.now() - started });
        return result;
      } catch (err) {
        const willRetry = attempt <= retries && !this.signal.aborted;
        this.event('call.failed', { callId, error: describe(err), willRetry });
        if (!willRetry) throw err;
        try {
          await delay(options.retryDelayMs?.(attempt) ?? backoffDelay(attempt, { initialMs: 200, maxMs: 10_000 }), this.signal, this.clock);
        } catch (stopped) {
          // A cancel while it waits to retry ends the call here, failed: its last word was "will
          // retry", and every snapshot showed it in flight for ever. (Ended elsewhere or its lease
          // lost, the run takes no more events.) As the Python client records it.
          if (stopped instanceof RunStopped && stopped.kind === 'cancel_requested' && !this.ended) {
            this.event('call.failed', { callId, error: cut(`stopped while waiting to retry: ${stopped.why}`), willRetry: false });
          }
          throw stopped;
        }
        this.event('call.retried', { callId, attempt: attempt + 1 });
      }
    }
  }

  progress(done: number, total?: number, message?: string): void {
    this.event('progress', { done, ...(total === undefined ? {} : { total }), ...(message === undefined ? {} : { message: cut(message, MAX_LABEL_CHARS) }) });
  }

  metric(name: string, value: number, step?: number): void {
    this.event('metric', { name, value, ...(step === undefined ? {} : { step }) });
  }

  count(name: string, delta = 1): void {
    this.event('counter', { name, delta });
  }

  log(message: string, level: LogLevel = 'info'): void {
    this.event('log', { level, message: cut(message, MAX_LOG_MESSAGE_CHARS) });
  }

  meta(values: Record<string, unknown>): void {
    this.event('meta', values);
  }

  /**
   * Store an artifact of this run: its content goes to the server (streamed),
   * which numbers it, records it and appends its `artifact` event. Events
   * queued before this call are stored before it. Resolves with the stored
   * record; the same content under the same name again is a no-op, other
   * content is refused (409) unless `replace`. Bytes, text and files are
   * retried through an outage like events; a stream is sent once.
   */
  async artifact(name: string, source: ArtifactSource, options: ArtifactOptions = {}): Promise<Artifact> {
    requireArtifactName(name);
    if (this.ended) throw new RuntrailError('run_already_terminal', `run ${this.id} already ended ${this.ended.status}`);
    await this.flush();
    const send = async () => this.transport.putArtifact(this.id, name, await openSource(source, options.size), options);
    return isRepeatable(source) ? this.withRetries(send) : send();
  }

  /** Resolve once every event queued so far is stored; reject if a batch could not be. */
  async flush(): Promise<void> {
    this.kick();
    await this.sending;
    if (this.failure) throw this.failure;
  }

  succeed(output?: unknown): Promise<Run> {
    return this.finish({ status: 'succeeded', ...(output === undefined ? {} : { output }) });
  }

  fail(error: unknown, kind: RunErrorKind = 'error'): Promise<Run> {
    return this.finish({ status: 'failed', error: { kind, message: describe(error) } });
  }

  cancelled(reason?: string): Promise<Run> {
    return this.finish({ status: 'cancelled', ...(reason ? { error: { kind: 'cancelled', message: reason } } : {}) });
  }

  /**
   * Write the run's one terminal event after everything queued. The finish
   * carries an id, so retrying it after a lost response is answered with the
   * run rather than a conflict. A run that fails or is cancelled is ended so
   * even after the server refused one of its events (413); such a run does
   * not succeed: `succeed()` rejects with why.
   */
  async finish(body: Omit<FinishRunBody, 'id' | 'owner'>): Promise<Run> {
    if (!this.owner) {
      throw new RuntrailError(
        'invalid_request',
        `run ${this.id} belongs to the process that runs this one (runtrail exec, a handler), which ends it when this process exits; this handle only adds events and artifacts`,
      );
    }
    // Another end is on its way (an abort handler's cancelled() or fail() while the script's succeed()
    // is sent): this one is answered as if it came after it. Both would send the handle's one finish
    // id, and the server would refuse the second as an event id conflict, naming ids nobody chose.
    while (this.finishing) {
      // The first caller gets that end's own rejection; this one only waits for it to settle.
      await this.finishing.catch(() => undefined);
    }
    if (this.ended) {
      // The same end again is answered with the run (the finish id makes it
      // idempotent); another end would reuse that id with other content and
      // be refused as an event id conflict, which names no run end.
      if (this.endedWith === JSON.stringify(body)) return this.ended;
      throw new RuntrailError(
        'run_already_terminal',
        `run ${this.id} already ended ${this.ended.status} (this handle ended it); it cannot also end ${body.status}`,
        { status: this.ended.status, terminal: this.ended.snapshot.terminal },
      );
    }
    // Said now, not sent: JSON.stringify's TypeError (a cycle, a BigInt) looks
    // like fetch's network failure, so the finish would be retried for
    // retryForMs while the run stayed running.
    jsonText(body, `end of run ${this.id}`, '');
    const sending = this.sendEnd(body, this.owner);
    this.finishing = sending;
    try {
      return await sending;
    } finally {
      this.finishing = null;
    }
  }

  /** finish() past its checks: the events queued before it, then the end. */
  private async sendEnd(body: Omit<FinishRunBody, 'id' | 'owner'>, owner: Owner): Promise<Run> {
    this.ending = body;
    try {
      await this.flush();
    } catch (err) {
      // The server is there and takes the end of a run that did not succeed; after an outage it may not be.
      if (body.status === 'succeeded' || !RuntrailError.isCode(err, 'payload_too_large')) throw err;
    }
    const run = await this.withRetries(() => this.transport.finish(this.id, { ...body, id: `${this.idPrefix}.finish`, owner }));
    this.ended = run;
    this.endedWith = JSON.stringify(body);
    this.close();
    return run;
  }

  /**
   * Hear when the server stops answering this handle's requests (appends,
   * heartbeats, artifacts, the end), and when it answers again: once per
   * outage, not per retry. The handle retries through the outage either
   * way; the listener is for telling a person (`runtrail exec` does), who
   * otherwise learns of it only when the run was reaped. One listener; a
   * new one replaces it.
   */
  onServerChange(listener: ServerChangeListener): void {
    this.serverListener = listener;
  }

  /** Call `fn` once this handle is closed (its run ended through it, or `close()`): at once if it is. */
  whenClosed(fn: () => void): void {
    // At once if closed; one listener on the handle's signal however many callers wait for it.
    onAbort(this.stopped.signal, fn);
  }

  /**
   * Stop heartbeating and drop timers (the run itself is not ended: the
   * reaper ends it once its lease lapses). Events queued and not yet sent
   * are dropped with the flush timer: `await run.flush()` first to keep them.
   */
  close(): void {
    if (this.heartbeatTimer !== null) this.clock.clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.stopped.abort();
  }

  private kick(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.queue.length === 0) return;
    // One batch in flight at a time keeps the server's seq order equal to ours.
    this.sending = this.sending.then(() => this.sendQueued());
  }

  private async sendQueued(): Promise<void> {
    while (this.queue.length > 0 && !this.failure) {
      const { count, bytes } = this.nextBatch(0);
      const batch = this.queue.slice(0, count);
      try {
        const response = await this.withRetries(() => this.transport.append(this.id, batch, this.owner));
        this.queue.splice(0, count);
        this.sizes.splice(0, count);
        this.queuedBytes -= bytes;
        if (response.cancelRequested) this.cancelRequested(response.cancelReason);
      } catch (err) {
        if (RuntrailError.isCode(err, 'payload_too_large') && count > 1) {
          // A server with smaller limits than ours (nothing of a refused
          // batch is stored): send it in halves, and no later batch larger.
          this.maxBatch = Math.ceil(count / 2);
          this.maxBatchBytes = Math.ceil(bytes / 2);
          continue;
        }
        this.failure = RuntrailError.isCode(err, 'payload_too_large')
          ? this.refused(batch[0]!, err)
          : err instanceof Error
            ? err
            : new Error(String(err));
        // The server's message says how the run ended (a timeout, the reaper, a cancel): the signal's reason keeps it.
        if (RuntrailError.isCode(err, 'run_already_terminal')) this.abortWith(err.message, 'ended');
        if (RuntrailError.isCode(err, 'lease_lost')) this.abortWith(err.message, endedIn(err) ? 'ended' : 'lease_lost');
      }
    }
  }

  /** The batch that starts at queue index `from`: as many events as maxBatch and maxBatchBytes allow. */
  private nextBatch(from: number): { count: number; bytes: number } {
    let count = 0;
    let bytes = 0;
    // At least one event, however large: the call site let it through.
    while (
      from + count < this.queue.length &&
      count < this.maxBatch &&
      (count === 0 || bytes + this.sizes[from + count]! <= this.maxBatchBytes)
    ) {
      bytes += this.sizes[from + count++]!;
    }
    return { count, bytes };
  }

  /**
   * The process is going away with this run still open: what must yet be
   * sent for the run to keep its events and end with the reason, as
   * append bodies in order and the finish (the Node exit guard sends them
   * from a worker thread while the process waits; see node/exit-guard.ts).
   * Every unsent event goes, the batch in flight too (its ids make a
   * second copy a no-op). Closes the handle. Null when there is nothing to
   * end: the run ended or another owner took it.
   */
  lastWords(end: ProcessEnd): LastWords | null {
    if (this.ended || this.stopped.signal.aborted) return null;
    // A run that ended elsewhere, or that another owner holds, takes nothing more from this one.
    if (this.abort.signal.aborted && this.cancelReason === null) {
      this.close();
      return null;
    }
    // The script ended the run itself and the process went away while that was sent (`void run.succeed();
    // process.exit()`): that end, with the same finish id, so a copy the server already stored is answered
    // with the run. A success whose events could not all be stored is not one (succeed() would reject).
    const asked = this.ending && !(this.failure && this.ending.status === 'succeeded') ? this.ending : null;
    const cancelled = !asked && this.cancelReason !== null && (end.kind !== 'crash' || isAbort(end.error));
    if (end.kind === 'crash' && !asked && !cancelled && !this.failure) {
      const stack = end.error instanceof Error && end.error.stack ? end.error.stack : describe(end.error);
      try {
        this.log(stack, 'error');
      } catch (err) {
        // The queue is full (maxQueued): the run's error still says what happened.
        void err;
      }
    }
    this.close();
    const appends: string[] = [];
    // After a refusal (413) or a failure no retry fixes, the queue is not sent: it would be refused again.
    for (let from = 0; !this.failure && from < this.queue.length; ) {
      const { count } = this.nextBatch(from);
      appends.push(appendBodyOf(this.queue.slice(from, from + count), this.owner).text);
      from += count;
    }
    const body: Omit<FinishRunBody, 'id' | 'owner'> = asked
      ? asked
      : cancelled
        ? { status: 'cancelled', error: { kind: 'cancelled', message: this.cancelReason! } }
        : {
            status: 'failed',
            error:
              end.kind === 'crash'
                ? { kind: 'error', message: cut(end.error instanceof Error ? `${end.error.name}: ${describe(end.error)}` : `uncaught: ${describe(end.error)}`) }
                : end.kind === 'signal'
                  ? { kind: 'interrupted', message: `the producer process was stopped by ${end.signal}` }
                  : { kind: 'orphaned', message: `the producer process exited (code ${end.code}) without ending the run` },
          };
    const events = this.failure ? 0 : this.queue.length;
    // Attached: its owner ends the run (from this process's exit); what was queued is all there is to send.
    if (!this.owner) return events > 0 ? { runId: this.id, appends, events, finish: null } : null;
    return { runId: this.id, appends, events, finish: { ...body, id: `${this.idPrefix}.finish`, owner: this.owner } };
  }

  /**
   * `event`'s data as the JSON that is sent, and the bytes the event adds to
   * a request. Data a server would refuse is refused here, before it is
   * queued: in a batch it would take every event of the batch down with it.
   */
  private measure(event: EventInput & { id: string }): { dataJson: string; size: number } {
    const json = jsonText(event.data, `${event.type} event`, 'data');
    const bytes = utf8Length(json);
    const [limit, setting] = event.type === 'meta' ? [this.maxMetaBytes, 'maxMetaBytes'] : [this.maxEventDataBytes, 'maxEventDataBytes'];
    if (bytes > limit) {
      throw new RuntrailError(
        'payload_too_large',
        `the data of a ${event.type} event is ${bytes} bytes as JSON, over the limit of ${limit} bytes (${setting}); ` +
          'it was not queued and the run goes on: send less in one event, or store it with run.artifact()',
        { type: event.type, bytes, limit },
      );
    }
    return { dataJson: json, size: bytes + utf8Length(event.type) + event.id.length + ENVELOPE_BYTES };
  }

  /** Why the run's events stop at `event`, which the server refused on its own (413). */
  private refused(event: RecordedEvent, err: RuntrailError): RuntrailError {
    const after = this.queue.length - 1;
    return new RuntrailError(
      'payload_too_large',
      `the server refused the ${event.type} event ${event.id} of run ${this.id}: ${err.message}. ` +
        `The events queued before it are stored; it and the ${after} queued after it are not, and this handle sends no more. ` +
        'Send smaller events (or raise the server\'s limit); end this run with fail()',
      { type: event.type, id: event.id, server: err.details },
    );
  }

  private withRetries<T>(send: () => Promise<T>): Promise<T> {
    return retrying(send, this.retryForMs, this.clock);
  }

  /**
   * Beat every `everyMs` until closed; a timer alone does not keep the
   * process alive. `held`: each beat asks the server to hold it for up to
   * `everyMs`, and one it held is followed at once by the next, so one is
   * always open; one answered at once (an older server, the server's own
   * in-process transport, an error) waits out the rest of the period. That
   * wait keeps the process alive as the open beat did: a server restarting
   * must not let a process that waits for its cancel exit meanwhile.
   */
  private scheduleBeat(everyMs: number, held: boolean, afterMs = everyMs): void {
    this.heartbeatTimer = this.clock.setTimeout(() => {
      if (this.heartbeatTimer === null) return;
      if (!held) {
        this.scheduleBeat(everyMs, held);
        void this.beat(0).then((retryInMs) => {
          // Missed (an outage, a 503): again sooner than the period, which could outlast the lease's rest.
          if (retryInMs === null || this.heartbeatTimer === null) return;
          this.clock.clearTimeout(this.heartbeatTimer);
          this.scheduleBeat(everyMs, held, Math.min(everyMs, retryInMs));
        });
        return;
      }
      const started = this.clock.now();
      // A lease over 3 minutes beats more often than lease/3: the server holds one at most a minute.
      const waitMs = Math.min(everyMs, MAX_HEARTBEAT_WAIT_MS);
      void this.beat(waitMs).then((retryInMs) => {
        // Closed meanwhile: no more beats.
        if (this.heartbeatTimer === null) return;
        const regular = Math.max(0, waitMs - (this.clock.now() - started));
        this.scheduleBeat(everyMs, held, retryInMs === null ? regular : Math.min(regular, retryInMs));
      });
    }, afterMs);
    if (!held) unrefTimer(this.heartbeatTimer);
  }

  /**
   * One heartbeat. Answers when to try again if the server did not take it
   * and another may (an outage, a restart, a 503): with backoff, or its
   * Retry-After. A beat missed in an outage waited the whole period (lease/3)
   * before the next; an outage that ended just after it left the lease two
   * periods old, and a short one more could see the run ended orphaned
   * though its producer never stopped. Null when answered, or when no retry helps.
   */
  private async beat(waitMs: number): Promise<number | null> {
    // Only a handle with an owner heartbeats (see the constructor).
    if (!this.owner) return null;
    try {
      const response = await this.transport.heartbeat(this.id, this.owner, waitMs, this.stopped.signal);
      this.missedBeats = 0;
      if (response.cancelRequested) this.cancelRequested(response.cancelReason);
      if (isTerminalStatus(response.status)) {
        this.abortWith(endedText(response.status, response.error), 'ended');
        this.close();
      }
    } catch (err) {
      // Closed while a held heartbeat was open: it was aborted on purpose.
      if (this.stopped.signal.aborted) return null;
      // Another owner holds the run, or it ended: this handle must stop working on it.
      if (RuntrailError.isCode(err, 'lease_lost')) {
        // Ended before this heartbeat reached the server: said as a held one that the end woke says it.
        const ended = endedIn(err);
        this.abortWith(ended ? endedText(ended.status, ended.error) : err.message, ended ? 'ended' : 'lease_lost');
        this.close();
        return null;
      }
      // A missed heartbeat is not fatal: the lease outlives several of them
      // and the next append or beat renews it. Appends report real failures.
      if (!isRetryable(err)) {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
        return null;
      }
      const asked = err instanceof RuntrailError ? (err.retryAfterMs ?? 0) : 0;
      return Math.max(asked, backoffDelay(this.missedBeats++, { initialMs: 250, maxMs: 5_000 }));
    }
    return null;
  }

  private cancelRequested(reason: string | null | undefined): void {
    // The first reason heard stays: the signal aborts once.
    if (this.abort.signal.aborted) return;
    this.cancelReason = cancelMessage(reason);
    this.abortWith(this.cancelReason, 'cancel_requested');
  }

  private abortWith(reason: string, kind: RunStoppedKind): void {
    if (this.abort.signal.aborted) return;
    this.abort.abort(new RunStopped(this.id, reason, kind));
  }
}

/** How a `lease_lost` refusal says the run ended, when it did (the server puts its status and error in the details). */
function endedIn(err: RuntrailError): { status: RunStatus; error: RunError | null | undefined } | null {
  const ended = err.details as { status?: RunStatus; error?: RunError | null } | undefined;
  return ended?.status && isTerminalStatus(ended.status) ? { status: ended.status, error: ended.error } : null;
}

/**
 * Why a handle's signal aborted: a cancel was requested (the owner still
 * ends the run), the run ended without this handle (the reaper, a
 * timeout, another finisher), or another owner took its lease.
 */
export type RunStoppedKind = 'cancel_requested' | 'ended' | 'lease_lost';

/**
 * Why a handle's `signal` aborted. The message names the run; `why` says the
 * rest alone, for a message that names the run already (`runtrail exec`'s
 * "run X cancelled (... stopped: cancel requested: wrong dataset; ...)").
 */
export class RunStopped extends Error {
  constructor(
    readonly runId: string,
    readonly why: string,
    readonly kind: RunStoppedKind = 'ended',
  ) {
    super(`run ${runId}: ${why}`);
    this.name = 'AbortError';
  }
}

/** What `signal.reason` says of a cancel: the requester's reason when one was given (an older server sends none). */
function cancelMessage(reason: string | null | undefined): string {
  return reason ? `cancel requested: ${reason}` : 'cancel requested';
}

/** Why a handle stops when its run ended without it: how it ended (an older server sends no error). */
function endedText(status: RunStatus, error: RunError | null | undefined): string {
  return `already ended ${status}${error ? ` (${error.kind}: ${error.message})` : ''}`;
}

/** How the process that holds a handle is going away (see RunHandle.lastWords). */
export type ProcessEnd =
  | { kind: 'crash'; error: unknown }
  | { kind: 'signal'; signal: string }
  | { kind: 'exit'; code: number };

/** What a handle still has to send when its process goes away: append bodies (JSON) in order, then the finish. */
export interface LastWords {
  runId: string;
  appends: string[];
  /** How many events the appends hold. */
  events: number;
  /** Null for an attached handle: the run's owner ends it. */
  finish: FinishRunBody | null;
}

/** An abort (a handle's signal, an AbortController) rather than a bug: the script stopped because it was told to. */
function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

/**
 * An error as call.failed and the run's error say it. NUL is written as the
 * two characters \0: the server refuses NUL in error messages (PostgreSQL
 * cannot store it), and a run must still end failed when its error held one.
 */
function describe(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : typeof err === 'string' ? err : thrownText(err);
  return cut(text.replaceAll('\u0000', '\\0'));
}

/**
 * Text for a thrown value that is not an Error. It must not throw itself:
 * describe() runs inside call()'s catch and in fail(), where its own
 * TypeError (a cycle, a BigInt) would replace the script's error and leave
 * the call unfinished or the run not ended.
 */
function thrownText(value: unknown): string {
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch (err) {
    // Not JSON (a cycle, a BigInt): the value's own string form below says what it was.
    void err;
  }
  if (typeof value === 'bigint') return `${value}n`;
  try {
    return String(value);
  } catch (err) {
    // No string form (an object without a prototype): its kind is all there is to say.
    void err;
    return Object.prototype.toString.call(value);
  }
}

/**
 * Text no longer than the server takes in that place (an error with an
 * API's whole answer in it, a long log line or label): cut, ending in "…",
 * as the Python client cuts it, so the call, log or end still goes through
 * rather than being refused.
 */
function cut(text: string, limit = MAX_ERROR_MESSAGE_CHARS): string {
  // Not text (plain JS: a log of an object, a number for a label): left as given, so the event's
  // check names the field and what it got, rather than "text.slice is not a function" from here.
  if (typeof text !== 'string') return text;
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}
