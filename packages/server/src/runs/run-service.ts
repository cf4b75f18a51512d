import {
  DEFAULT_LEASE_TTL_MS,
  MAX_LIST_LIMIT,
  RuntrailError,
  invalidRequest,
  runNotFound,
  isTerminalStatus,
  validateEventData,
  type AppendEventsBody,
  type AppendEventsResponse,
  type CreateRunBody,
  type EventInput,
  type FinishRunBody,
  type HeartbeatResponse,
  type ListRunsQuery,
  type ListRunsResponse,
  type RunCounts,
  type RunsFilter,
  type Owner,
  type Artifact,
  type Run,
  type RunEvent,
  type RunWithObservers,
} from '@runtrail/protocol';
import type { AppendResult, HandlersAnnouncement, PutArtifactInput, PutArtifactResult, RunBundle, RunStore } from '@runtrail/store';
import type { Hub } from '../hub.js';

export interface Clock {
  now(): number;
}

export interface RunServiceOptions {
  store: RunStore;
  hub: Hub;
  now: () => number;
  newId: () => string;
  leaseTtlMs?: number;
}

/**
 * Every change to runs goes through here: validate, write to the store (one
 * transaction), THEN publish to the hub. Transports, the executor and the
 * reaper all use this one path, so nothing is ever seen before it is durable.
 */
export class RunService {
  // Private on purpose: a change written around this class would skip the
  // publish-after-commit order (field note 1). Reads and subscriptions have methods here too.
  private readonly store: RunStore;
  private readonly hub: Hub;
  readonly now: () => number;
  private readonly newId: () => string;
  private readonly leaseTtlMs: number;
  private readonly deletedHooks: Array<(run: Run, artifacts: Artifact[]) => Promise<void>> = [];
  private held = 0;
  private refusedAt: number | null = null;

  /**
   * When the store last refused an append or a heartbeat as `unavailable`
   * (a full disk, a locked or read-only file, the database down), or null.
   * Owners could not renew their leases meanwhile: the reaper gives their
   * runs one more lease from then before calling them orphaned.
   */
  get writesRefusedAt(): number | null {
    return this.refusedAt;
  }

  /** Heartbeats this node holds open now, waiting for a cancel or an end (?waitMs=). */
  get heldHeartbeats(): number {
    return this.held;
  }

  constructor(options: RunServiceOptions) {
    this.store = options.store;
    this.hub = options.hub;
    this.now = options.now;
    this.newId = options.newId;
    this.leaseTtlMs = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  async create(body: CreateRunBody, extra: { idempotencyKey?: string; retryOf?: string; attempt?: number } = {}): Promise<{ run: Run; created: boolean }> {
    const result = await this.store.createRun({
      id: this.newId(),
      now: this.now(),
      name: body.name,
      input: body.input,
      labels: body.labels,
      parentId: body.parentId,
      execute: body.execute,
      owner: body.owner,
      leaseTtlMs: body.leaseTtlMs ?? this.leaseTtlMs,
      timeoutMs: body.timeoutMs,
      stallTimeoutMs: body.stallTimeoutMs,
      failOnStall: body.failOnStall,
      idempotencyKey: extra.idempotencyKey,
      retryOf: extra.retryOf,
      attempt: extra.attempt,
    });
    if (result.created) this.hub.publishRun('created', result.run);
    return result;
  }

  async get(id: string): Promise<RunWithObservers> {
    const run = await this.store.getRun(id);
    if (!run) throw runNotFound(id);
    return { ...run, observers: this.hub.watchersEverywhere(id) };
  }

  /** The run, or null when it does not exist (no observer count). */
  find(id: string): Promise<Run | null> {
    return this.store.getRun(id);
  }

  /**
   * Claim up to `limit` queued runs named in `names` (at most `perName` of a
   * name there) for `owner` (they become
   * running under its lease), and tell the runs list. The executor's one way
   * to take work; with several nodes on one store, each run goes to one of them.
   */
  async claimQueued(owner: Owner, names: string[], limit: number, perName?: ReadonlyMap<string, number>): Promise<Run[]> {
    const claimed = await this.store.claimQueued({ owner, names, limit, now: this.now(), perName });
    for (const run of claimed) this.hub.publishRun('updated', run);
    return claimed;
  }

  /** The executor registry (RunStore.announceHandlers): which node executes which handlers, and which process it is. */
  announceHandlers(announcement: Omit<HandlersAnnouncement, 'now' | 'liveUntil'> & { liveForMs: number }): Promise<void> {
    const { liveForMs, ...rest } = announcement;
    const now = this.now();
    return this.store.announceHandlers({ ...rest, now, liveUntil: now + liveForMs });
  }

  /** The nodes live now by their last announcement. */
  nodeHandlers(): ReturnType<RunStore['nodeHandlers']> {
    return this.store.nodeHandlers(this.now());
  }

  forgetHandlers(node: string): Promise<void> {
    return this.store.forgetHandlers(node);
  }

  /** Runs held by `node`'s executor (a restarted node ends those of its previous incarnation). */
  findOwnedBy(node: string, kind: 'executor' | 'producer'): Promise<Run[]> {
    return this.store.findOwnedBy(node, kind);
  }

  /** The handler names of queued runs (the reaper checks a live node still defines each). */
  queuedHandlerNames(limit: number): Promise<string[]> {
    return this.store.queuedHandlerNames(limit);
  }

  /** Running runs whose lease lapsed, whose total timeout passed or that stalled, as of `now`. */
  findDue(now: number, limit: number): ReturnType<RunStore['findDue']> {
    return this.store.findDue(now, limit);
  }

  /** Every committed batch of one run's events, in order, after it is durable. */
  onEvents(runId: string, listener: Parameters<Hub['subscribe']>[1]): () => void {
    return this.hub.subscribe(runId, listener);
  }

  /** Every run created, updated or deleted, after it is durable. */
  onRunChange(listener: Parameters<Hub['subscribeRuns']>[0]): () => void {
    return this.hub.subscribeRuns(listener);
  }

  /** A page of runs; `maxBytes`: cut short past this many bytes of their inputs, outputs and errors (at least one run), with a nextCursor. */
  list(query: ListRunsQuery, maxBytes?: number): Promise<ListRunsResponse> {
    return this.store.listRuns(query, maxBytes === undefined ? {} : { maxBytes });
  }

  /** How many runs match a list's filter, by status, over every page. */
  count(filter: RunsFilter): Promise<RunCounts> {
    return this.store.countRuns(filter);
  }

  /**
   * A page of events after `after` with the run's seq and status, as the
   * JSON text of the readEvents response (ReadEventsResponse), made from the
   * events' stored texts: a catch-up read parses and serializes no event.
   */
  /** A page of events as the readEvents route answers it; `maxBytes`: cut short past this many bytes of events (at least one). */
  async readEventsJson(id: string, after: number, limit: number, maxBytes?: number): Promise<string> {
    const texts = await this.store.readEventTexts(id, after, limit, maxBytes === undefined ? {} : { maxBytes });
    const run = await this.store.getRun(id);
    if (!run) throw runNotFound(id);
    return `{"events":[${texts.map((t) => t.json).join(',')}],"seq":${run.seq},"status":${JSON.stringify(run.status)}}`;
  }

  /** Append validated producer events. Terminal events go through `finish`. */
  async append(id: string, body: AppendEventsBody): Promise<AppendEventsResponse> {
    const issues = validateEventData(body.events);
    body.events.forEach((event, i) => {
      // Stored artifacts are announced by the server when their content is stored; a producer can only link.
      const data = event.data as Record<string, unknown> | undefined;
      if (event.type !== 'artifact' || !data) return;
      if (data.ordinal !== undefined || data.sha256 !== undefined) {
        issues.push({ path: `events[${i}].data`, message: 'ordinal and sha256 are set by the server; store content with PUT /api/v1/runs/:id/artifacts/:name' });
      } else if (data.uri === undefined) {
        // Without a uri it would be listed as stored content nobody can download (404 behind every link).
        issues.push({
          path: `events[${i}].data.uri`,
          message: 'required: an artifact event a producer appends links content kept elsewhere; store content with PUT /api/v1/runs/:id/artifacts/:name',
        });
      }
    });
    if (issues.length > 0) throw invalidRequest('events', issues);
    const result = await this.appendEvents(id, body.events, body.owner);
    return { seq: result.seq, seqs: result.seqs, ...cancelOf(result.run) };
  }

  /**
   * The one write path to the log (already-validated events). Events the
   * server writes on its own behalf pass `renewLease: false` so they never
   * keep a run alive whose owner has gone silent.
   */
  async appendEvents(id: string, events: EventInput[], owner?: Owner, options: { renewLease?: boolean } = {}): Promise<AppendResult> {
    let result: AppendResult;
    // Not a wrapping async helper: every append comes through here, and each promise and await costs.
    try {
      result = await this.store.append(id, events, { now: this.now(), owner, renewLease: options.renewLease });
    } catch (err) {
      this.noteRefusal(err);
      throw err;
    }
    this.publish(result);
    return result;
  }

  /** Remember when the store refused a write for want of space or a connection (writesRefusedAt). */
  private noteRefusal(err: unknown): void {
    if (RuntrailError.isCode(err, 'unavailable')) this.refusedAt = this.now();
  }

  /** Fan out what an append stored (the store has committed it). */
  publish(result: AppendResult): void {
    if (result.appended.length > 0) {
      this.hub.publishEvents(result.run, result.appended, 'local', result.appendedText);
      this.hub.publishRun('updated', result.run);
    }
  }

  /** Record a stored artifact and its `artifact` event (one store transaction), then publish the event. */
  async putArtifact(input: PutArtifactInput): Promise<PutArtifactResult> {
    const result = await this.store.putArtifact(input);
    if (result.append) this.publish(result.append);
    return result;
  }

  listArtifacts(runId: string): Promise<Artifact[]> {
    return this.store.listArtifacts(runId);
  }

  getArtifact(runId: string, name: string): Promise<Artifact | null> {
    return this.store.getArtifact(runId, name);
  }

  /** Which of these content hashes some artifact record still refers to. */
  blobsInUse(sha256s: string[]): Promise<Set<string>> {
    return this.store.blobsInUse(sha256s);
  }

  /** A page of a run's stored events (an export reads the whole log). */
  readEventPage(id: string, after: number, limit: number, maxBytes?: number): Promise<RunEvent[]> {
    if (maxBytes === undefined) return this.store.readEvents(id, after, limit);
    // Each text is exactly JSON.stringify of its event; the store stops the page at maxBytes (one event at least).
    return this.store.readEventTexts(id, after, limit, { maxBytes }).then((texts) => texts.map((t) => JSON.parse(t.json) as RunEvent));
  }

  /** Load an exported run as it was, then tell live run lists it exists. */
  async importRun(bundle: RunBundle): Promise<Run> {
    const run = await this.store.importRun(bundle);
    this.hub.publishRun('created', run);
    return run;
  }

  /** Load exported runs, parents first, in one store transaction (all or none), then tell live run lists of each. */
  async importRuns(bundles: RunBundle[]): Promise<Run[]> {
    const runs = await this.store.importRuns(bundles);
    for (const run of runs) this.hub.publishRun('created', run);
    return runs;
  }

  /**
   * The run and every run under it, parents before their children, for an
   * export of the whole family; refused (nothing exported) when one of them
   * has not ended, naming it, or when there are more than `maxRuns`.
   */
  async endedFamily(id: string, maxRuns: number): Promise<Run[]> {
    const run = await this.get(id);
    const family = [run, ...(await this.descendantsOf(run, maxRuns - 1, 'export'))];
    const live = family.find((r) => !isTerminalStatus(r.status));
    if (live) {
      const what = live.id === id ? `run ${id} is ${live.status}` : `run ${live.id} (${live.name}) under run ${id} is ${live.status}`;
      throw new RuntrailError('run_not_terminal', `${what}; an import takes a family only once every run in it has ended: export it then`, {
        status: live.status,
        runId: live.id,
      });
    }
    return family;
  }

  /** Called after a run is deleted, with the artifact records it had (their content may now be unreferenced). */
  onDeleted(hook: (run: Run, artifacts: Artifact[]) => Promise<void>): void {
    this.deletedHooks.push(hook);
  }

  async finish(id: string, body: FinishRunBody): Promise<Run> {
    return (await this.appendEvents(id, [terminalEventOf(body)], body.owner)).run;
  }

  /** End a run with a reason the server decided (reaper, executor); a run that already ended is left as it is. */
  async endIfRunning(id: string, status: 'failed' | 'cancelled', error: { kind: NonNullable<Run['error']>['kind']; message: string }): Promise<Run | null> {
    try {
      return await this.finish(id, { status, error });
    } catch (err) {
      // Losing the race to another finisher is the expected outcome here:
      // the run has exactly one end and it is already written.
      if (RuntrailError.isCode(err, 'run_already_terminal')) return null;
      throw err;
    }
  }

  /**
   * Renew the owner's lease. With `waitMs` the answer is held until a
   * cancel is requested or the run ends (through this node or another), or
   * until waitMs (at most a third of the lease) has passed: a producer that
   * keeps one such heartbeat open hears of a cancel at once, not at its next
   * beat. `gone` aborts when the caller has gone away.
   */
  async heartbeat(id: string, owner?: Owner, options: { waitMs?: number; gone?: AbortSignal } = {}): Promise<HeartbeatResponse> {
    const waitMs = options.waitMs ?? 0;
    const news = waitMs > 0 ? this.stopNews(id) : null;
    try {
      const run = await this.store.heartbeat(id, { now: this.now(), owner }).catch((err: unknown) => {
        this.noteRefusal(err);
        throw err;
      });
      const answer = heartbeatAnswer(run);
      if (!news || answer.cancelRequested || run.status !== 'running') return answer;
      this.held++;
      try {
        const until = Date.now() + Math.min(waitMs, Math.floor(run.leaseTtlMs / 3));
        for (;;) {
          const woke = await news.wait(until - Date.now(), options.gone);
          // Nobody is there to read a fresher answer.
          if (woke === 'gone') return answer;
          // Read again from here on: news that comes while the run is read wakes the next wait at once.
          news.heardNothing();
          const fresh = heartbeatAnswer(await this.get(id));
          // A wake that brought no stop (every held heartbeat re-reads after the database listener
          // reconnected, whatever its run) holds on: answered at once, the cancel made a moment
          // later reached the owner a whole heartbeat late.
          if (woke === 'time' || fresh.cancelRequested || fresh.status !== 'running') return fresh;
        }
      } finally {
        this.held--;
      }
    } finally {
      news?.stop();
    }
  }

  /**
   * Listens, from now, for the run's owner being told to stop (a cancel
   * request, the run's end, on any node: Hub.onStop), so none is missed
   * between a read of the run and the wait.
   */
  private stopNews(id: string): { wait(ms: number, gone?: AbortSignal): Promise<'news' | 'time' | 'gone'>; heardNothing(): void; stop(): void } {
    let heard = false;
    let wake: (() => void) | null = null;
    const off = this.hub.onStop(id, () => {
      heard = true;
      wake?.();
    });
    return {
      wait: (ms, gone) =>
        new Promise((resolve) => {
          if (heard) return resolve('news');
          if (gone?.aborted) return resolve('gone');
          const done = (why: 'news' | 'time' | 'gone') => {
            clearTimeout(timer);
            gone?.removeEventListener('abort', onGone);
            wake = null;
            resolve(why);
          };
          const onGone = () => done('gone');
          const timer = setTimeout(() => done('time'), ms);
          gone?.addEventListener('abort', onGone, { once: true });
          wake = () => done('news');
        }),
      heardNothing: () => {
        heard = false;
      },
      stop: off,
    };
  }

  /**
   * Ask a run to stop. A queued run has no owner to ask, so it ends at once;
   * a running one records the request as an event, which its owner sees on
   * its next heartbeat or append (or at once, in-process).
   */
  async cancel(id: string, reason?: string): Promise<Run> {
    const run = await this.get(id);
    if (isTerminalStatus(run.status)) {
      throw new RuntrailError('run_already_terminal', `run ${id} already ended ${run.status}`, {
        status: run.status,
        terminal: run.snapshot.terminal,
      });
    }
    if (run.status === 'queued') {
      return this.finish(id, { status: 'cancelled', error: { kind: 'cancelled', message: reason ?? 'cancelled before it started' } });
    }
    if (run.cancelRequestedAt !== null) return run;
    const request: EventInput = { type: 'run.cancel_requested', data: reason ? { reason } : {} };
    return (await this.appendEvents(id, [request], undefined, { renewLease: false })).run;
  }

  /**
   * A new attempt of a run a handler executes. A run that its producer
   * drives (`runtrail exec`, the SDK, HTTP) has nothing here that could run
   * it again: a new `running` run would just wait for its lease to lapse
   * and end orphaned, so it is refused.
   *
   * With `idempotencyKey`, the same key answers the attempt it made
   * (`created: false`) instead of making another: a retry sent twice (a
   * double click, a client retrying a lost answer) is one new attempt.
   */
  async retry(id: string, requireHandler?: (name: string, input?: unknown) => void | Promise<void>, idempotencyKey?: string): Promise<{ run: Run; created: boolean }> {
    const prev = await this.get(id);
    if (!prev.execute) {
      throw new RuntrailError(
        'run_not_retryable',
        `run ${id} (${prev.name}) is not executed by a handler on the server, so the server cannot run it again: only handler runs (created with execute: true) can be retried; start its producer again instead`,
        { runId: id, execute: false },
      );
    }
    // Two attempts at once of the same work (a retry clicked while the first still runs) is never what was meant.
    if (prev.status === 'queued' || prev.status === 'running') {
      throw new RuntrailError(
        'run_not_retryable',
        `run ${id} (${prev.name}) is still ${prev.status}: a retry runs it again once it has ended; cancel it first (runtrail cancel ${id} --wait) to run it again now`,
        { runId: id, status: prev.status },
      );
    }
    await requireHandler?.(prev.name, prev.input);
    const { run, created } = await this.create(
      {
        name: prev.name,
        input: prev.input ?? undefined,
        labels: prev.labels,
        parentId: prev.parentId ?? undefined,
        execute: prev.execute,
        leaseTtlMs: prev.leaseTtlMs,
        timeoutMs: prev.timeoutMs ?? undefined,
        stallTimeoutMs: prev.stallTimeoutMs ?? undefined,
        failOnStall: prev.failOnStall,
      },
      { retryOf: prev.id, attempt: prev.attempt + 1, ...(idempotencyKey === undefined ? {} : { idempotencyKey }) },
    );
    if (!created && run.retryOf !== prev.id) {
      throw new RuntrailError(
        'idempotency_conflict',
        `Idempotency-Key ${idempotencyKey} was used for run ${run.id}, which is not a retry of run ${prev.id}; use a new key for each retry`,
        { runId: run.id },
      );
    }
    return { run, created };
  }

  /**
   * Delete an ended run with every run under it (its children, theirs…):
   * children left behind would point at a run that no longer exists, and
   * vanish from the runs list, which shows top-level runs. Refused, with
   * nothing deleted, while any of them has not ended, or when there are
   * more than MAX_RUNS_DELETED_AT_ONCE. Deepest first, each run in its own
   * transaction: an interrupted delete leaves a smaller family, which
   * deleting again finishes. Answers how many runs went.
   *
   * A run created under one of them meanwhile (through any node) makes the
   * store refuse to delete its parent (runHasChildren); the family is then
   * listed again, so the new run is deleted too, or, if it runs, named in
   * the 409.
   */
  async delete(id: string): Promise<number> {
    const deleted = { count: 0 };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deleteFamily(id, deleted);
        return deleted.count;
      } catch (err) {
        if (attempt >= DELETE_ATTEMPTS || !isChildrenConflict(err)) throw err;
      }
    }
  }

  private async deleteFamily(id: string, deleted: { count: number }): Promise<void> {
    const run = await this.get(id);
    const family = await this.descendantsOf(run, MAX_RUNS_DELETED_AT_ONCE - 1, 'delete');
    const live = [run, ...family].find((r) => !isTerminalStatus(r.status));
    if (live) {
      const what = live.id === id ? `run ${id} is ${live.status}` : `run ${live.id} under run ${id} is ${live.status}`;
      throw new RuntrailError('run_not_terminal', `${what}; cancel it and wait for it to end before deleting it (runtrail cancel ${live.id} --wait)`, { status: live.status, runId: live.id });
    }
    for (const member of [...family.reverse(), run]) {
      const artifacts = await this.store.listArtifacts(member.id);
      await this.store.deleteRun(member.id);
      this.hub.publishRun('deleted', member);
      for (const hook of this.deletedHooks) await hook(member, artifacts);
      deleted.count++;
    }
  }

  /** Every run under `run`, parents before their children; refused when there are more than `max` with it. */
  private async descendantsOf(run: Run, max: number, doing: 'delete' | 'export'): Promise<Run[]> {
    const found: Run[] = [];
    for (let i = -1; i < found.length; i++) {
      const parentId = i < 0 ? run.id : found[i]!.id;
      let cursor: string | undefined;
      do {
        const page = await this.store.listRuns({ parentId, limit: MAX_LIST_LIMIT, ...(cursor ? { cursor } : {}) });
        found.push(...page.runs);
        if (found.length > max) throw tooManyUnder(run.id, max, doing);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    }
    return found;
  }
}

/**
 * A family too large to handle at once: a delete's is 400 (delete some of
 * its children first), as it always was; an export's is 413 naming the
 * server's maxImportRuns, the most one archive may hold.
 */
function tooManyUnder(runId: string, max: number, doing: 'delete' | 'export'): RuntrailError {
  if (doing === 'delete') {
    return new RuntrailError('invalid_request', `run ${runId} has more than ${max} runs under it; delete some of its children first`, { runId, limit: max });
  }
  return new RuntrailError(
    'payload_too_large',
    `run ${runId} and the runs under it are more than ${max + 1} runs, the most one archive may hold here (maxImportRuns); ` +
      'export the run alone, then the family of each run under it',
    { runId, limit: max + 1 },
  );
}

/** How often a delete lists the family again when runs keep being created under it. */
const DELETE_ATTEMPTS = 5;

/** The store refused to delete a run because a run was created under it after the family was listed. */
function isChildrenConflict(err: unknown): boolean {
  if (!RuntrailError.isCode(err, 'run_not_terminal')) return false;
  const details = err.details as { parentId?: unknown } | undefined;
  return typeof details?.parentId === 'string';
}

/** Runs one delete may remove with the run asked for (it and the runs under it). */
const MAX_RUNS_DELETED_AT_ONCE = 10_001;

/** Whether a cancel was requested, and why: an owner told of it ends the run with the requester's reason. */
function cancelOf(run: Run): { cancelRequested: boolean; cancelReason: string | null } {
  // `?? null`: a snapshot checkpointed before cancelReason existed has none.
  return { cancelRequested: run.cancelRequestedAt !== null, cancelReason: run.snapshot.cancelReason ?? null };
}

/** The one terminal event a finish writes (the route checks its size before the service stores it). */
export function terminalEventOf(body: FinishRunBody): EventInput {
  const event: EventInput =
    body.status === 'succeeded'
      ? { type: 'run.succeeded', data: body.output === undefined ? {} : { output: body.output } }
      : body.status === 'failed'
        ? {
            type: 'run.failed',
            data: {
              error: { kind: body.error?.kind ?? 'error', message: body.error?.message ?? 'failed' },
              ...(body.output === undefined ? {} : { output: body.output }),
            },
          }
        : { type: 'run.cancelled', data: body.error ? { reason: body.error.message } : {} };
  if (body.id !== undefined) event.id = body.id;
  return event;
}

function heartbeatAnswer(run: Run): HeartbeatResponse {
  return { leaseExpiresAt: run.leaseExpiresAt, ...cancelOf(run), status: run.status, error: run.error };
}
