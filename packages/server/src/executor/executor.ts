import { rm } from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import { longTimeout, RunHandle, WaitForTimeoutError, type LongTimer } from '@runtrail/client';
import { ProcessStartError } from '@runtrail/client/node';
import { RunErrorKind, RuntrailError, isTerminalType, runNameProblem, type HandlerInput, type Owner, type Run } from '@runtrail/protocol';
import { outputLogPath } from '../runs/output-log.js';
import { RepeatedFailureLog } from '../repeated-failure-log.js';
import type { NodeHandlers, NodeSlots } from '@runtrail/store';
import type { RunService } from '../runs/run-service.js';
import type { ArtifactService } from '../artifacts/artifact-service.js';
import { ExecError, RunContext, type EventLimits } from './context.js';
import { InProcessTransport } from './in-process-transport.js';
import { handlerInputOf } from './input-json-schema.js';

/** The work behind a run name: gets the run's context, returns its output (or throws to fail it). */
export type Handler<Input = unknown, Output = unknown> = (ctx: RunContext<Input>) => Output | Promise<Output>;

/**
 * What a handler's input must be, as a zod schema (or anything with zod's
 * safeParse): a run whose input it refuses is refused when it is created
 * (400 naming the fields), not started only to fail.
 */
export interface InputSchema {
  safeParse(value: unknown): { success: true } | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

export interface HandlerOptions {
  input?: InputSchema;
  /**
   * At most this many runs of this handler at once on this node (a whole
   * number from 1; the node's `concurrency` bounds it too). Its other queued
   * runs wait, unclaimed, while other handlers use the node's free slots.
   */
  concurrency?: number;
}

/** The keys of HandlerOptions: define refuses any other, by name. */
const HANDLER_OPTION_KEYS: readonly string[] = ['input', 'concurrency'] satisfies ReadonlyArray<keyof HandlerOptions>;

export type StopKind = 'cancelled' | 'timeout' | 'interrupted' | 'ended';

/** Why a handler's `ctx.signal` aborted; also the reason its run ends with. */
export class RunStop extends Error {
  constructor(
    readonly kind: StopKind,
    message: string,
  ) {
    super(message);
    // The name fetch, timers and child processes use for an abort, so code
    // that checks `err.name === 'AbortError'` treats it as one.
    this.name = 'AbortError';
  }
}

export interface ExecutorOptions {
  runs: RunService;
  /** Where ctx.artifact and ctx.exec({collect}) store artifacts. */
  artifacts: ArtifactService;
  node: string;
  /** Owner id of this process's executor; the reaper uses it to tell leftovers of a dead process. */
  incarnation: string;
  concurrency: number;
  shutdownGraceMs: number;
  log: FastifyBaseLogger;
  /** Folder of per-run output logs written by ctx.exec (null: none). */
  logDir?: string | null;
  /** How often to look for queued runs created elsewhere (another node, or before start-up). */
  claimIntervalMs?: number;
  /** SIGTERM-to-SIGKILL grace of ctx.exec subprocesses. */
  killGraceMs?: number;
  /** This server's limits on one event's data, which a handler's events are held to at the call site as an external producer's are. */
  eventLimits?: EventLimits;
  /** With auth on: mints a write run token of a run, given to its ctx.exec subprocesses. */
  runToken?: ((runId: string) => Promise<string>) | null;
  /**
   * How often this node announces its handlers in the store's registry
   * (default 10 s); a node not heard from for 2.5 of these is not counted
   * live, so a run of a handler only it has is refused elsewhere.
   */
  announceEveryMs?: number;
}

/** A run's input its handler's schema refuses: the message names the fields; the stack is runtrail's own. */
class InputRefused extends RuntrailError {}

/** How many announcement intervals a node's handlers count as live after it was last heard (as watcher counts). */
const LIVE_ANNOUNCEMENTS = 2.5;

/** SIGTERM-to-SIGKILL grace of ctx.exec subprocesses when the executor is not told another. */
export const DEFAULT_KILL_GRACE_MS = 5_000;

interface Active {
  run: Run;
  handle: RunHandle;
  stop(kind: StopKind, message: string): void;
  /** Settles once the run's slot is free: the handler returned and its end is written, or it was given up on. */
  released: Promise<void>;
}

/**
 * Runs registered handlers: a pool of `concurrency` slots claims queued runs
 * whose name has a handler, runs each under this node's executor owner with
 * a RunHandle over the in-process transport (so it heartbeats like any
 * producer), and writes the one end the outcome calls for.
 */
export class Executor {
  readonly owner: Owner;
  private readonly runs: RunService;
  private readonly handlers = new Map<string, Handler>();
  private readonly inputSchemas = new Map<string, InputSchema>();
  /** What each handler's input is, as GET /handlers reports it (its JSON Schema, or why none). */
  private readonly inputs = new Map<string, HandlerInput>();
  /** Handlers' own concurrency limits, and how many of their functions run now. */
  private readonly limits = new Map<string, number>();
  private readonly runningByName = new Map<string, number>();
  private readonly active = new Map<string, Active>();
  private readonly transport: InProcessTransport;
  private readonly options: ExecutorOptions;
  private readonly log: FastifyBaseLogger;
  /** This server's URL once it listens; subprocesses get it as RUNTRAIL_URL. */
  url: string | null = null;
  private started = false;
  private stopping: Promise<void> | null = null;
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  /** Claims fail at every wake-up and poll while the store is down: logged once, counted, and its recovery. */
  private readonly claimFailures: RepeatedFailureLog;
  private pollTimer: ReturnType<typeof setInterval> | null = null;
  private announceTimer: ReturnType<typeof setInterval> | null = null;
  private announcing: Promise<void> | null = null;
  private announceAgain = false;
  private readonly announceFailures: RepeatedFailureLog;
  private unsubscribe: (() => void) | null = null;

  constructor(options: ExecutorOptions) {
    this.options = options;
    this.runs = options.runs;
    this.log = options.log;
    this.claimFailures = new RepeatedFailureLog(options.log, { failed: 'executor could not claim runs', recovered: 'executor claims runs again' });
    this.announceFailures = new RepeatedFailureLog(options.log, {
      failed: 'executor could not announce its handlers',
      recovered: 'executor announces its handlers again',
    });
    this.owner = { kind: 'executor', node: options.node, id: options.incarnation };
    this.transport = new InProcessTransport(options.runs, options.artifacts);
  }

  /** Register the handler of runs named `name` (`POST /runs {name, execute: true}`). */
  define<Input = unknown, Output = unknown>(name: string, handler: Handler<Input, Output>, options: HandlerOptions = {}): void {
    // Refused where it is defined: the server does not start with a name that no run can take
    // (POST /runs checks the same RunName) or that breaks the one-line lists of handlers.
    const problem = runNameProblem(name);
    if (problem) throw new TypeError(`the handler name ${handlerNameText(name)} is refused: ${problem}`);
    if (this.handlers.has(name)) throw new Error(`a handler named "${name}" is already defined on this node`);
    // Checked here, where the mistake is, not as "handler is not a function" on the first run, by then queued and failed.
    if (typeof handler !== 'function') throw new TypeError(`the handler of "${name}" must be a function (ctx) => output; got ${handler === null ? 'null' : typeof handler}`);
    // A misspelt option (`concurency: 1`) would otherwise be dropped in silence, and the GPU job it was to limit run many at once.
    const unknown = Object.keys(options).filter((key) => !HANDLER_OPTION_KEYS.includes(key));
    if (unknown.length > 0) {
      throw new TypeError(`the options of "${name}" have no ${unknown.map((k) => `"${k}"`).join(', ')}; a handler's options are ${HANDLER_OPTION_KEYS.join(', ')}`);
    }
    // Without safeParse every run of it would be a 500 when it is created; a JSON Schema object is the likely slip, as GET /handlers speaks JSON Schema.
    const input: unknown = options.input;
    if (input !== undefined && typeof (input as { safeParse?: unknown } | null)?.safeParse !== 'function') {
      throw new TypeError(
        `the input of "${name}" must be a zod schema (z.object({ … })) or anything with safeParse(value); got ${describeValue(input)} without safeParse${isJsonSchemaLike(input) ? ' (it looks like a JSON Schema: define takes the zod schema, and GET /handlers reports its JSON Schema)' : ''}`,
      );
    }
    const limit = options.concurrency;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 1)) {
      throw new RangeError(`the concurrency of "${name}" must be a whole number from 1 (runs of it at once on this node); got ${String(limit)}`);
    }
    this.handlers.set(name, handler as Handler);
    if (limit !== undefined) this.limits.set(name, limit);
    if (options.input) this.inputSchemas.set(name, options.input);
    this.inputs.set(name, handlerInputOf(options.input));
    this.announce();
    this.wake();
  }

  names(): string[] {
    return [...this.handlers.keys()].sort();
  }

  /** What input a handler this node defines takes (its JSON Schema, or why none); undefined for a handler it does not define. */
  inputOf(name: string): HandlerInput | undefined {
    return this.inputs.get(name);
  }

  /**
   * Throw handler_not_found unless this node or another live one executes
   * runs named `name`, and invalid_request if this node's input schema
   * refuses `input` (a run for a handler only another node has is checked
   * by the node that runs it).
   */
  async requireHandler(name: string, input?: unknown): Promise<void> {
    if (this.handlers.has(name)) {
      const refused = this.inputRefusal(name, input);
      if (refused) throw refused;
      return;
    }
    // Behind a load balancer the node a run reaches need not be one that runs it.
    const others = (await this.liveNodes()).filter((n) => n.node !== this.options.node);
    if (others.some((n) => n.handlers.includes(name))) return;
    const known = [...new Set([...this.names(), ...others.flatMap((n) => n.handlers)])].sort();
    const where = others.length ? ` nor on the other live nodes (${others.map((n) => n.node).join(', ')})` : '';
    throw new RuntrailError(
      'handler_not_found',
      `no handler named "${name}" on node ${this.options.node}${where}; ${known.length ? `known handlers: ${known.join(', ')}` : 'no handlers are defined'} (a node defines one with define(name, handler) in its program, or \`runtrail serve --handlers FILE\`)`,
      { name, handlers: known },
    );
  }

  /** Every live node's handlers, this node's included (GET /handlers). */
  liveNodes(): Promise<NodeHandlers[]> {
    return this.runs.nodeHandlers();
  }

  private get announceEveryMs(): number {
    return this.options.announceEveryMs ?? 10_000;
  }

  /** The error of a run whose input this node's schema of its handler refuses, or null. */
  private inputRefusal(name: string, input: unknown): InputRefused | null {
    const checked = this.inputSchemas.get(name)?.safeParse(input ?? undefined);
    if (!checked || checked.success) return null;
    const issues = checked.error.issues.map((i) => ({ path: ['input', ...i.path].map(String).join('.'), message: i.message }));
    return new InputRefused('invalid_request', `the input of a "${name}" run: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }

  /**
   * Tell the registry which handlers this node executes, none included: the
   * registry is also how a second process under a live node's name is
   * refused (refuseLiveNamesake), so a node with no handlers announces too.
   * A failure is retried at the next announcement. One at a time: two in flight (two
   * defines in a row) could commit out of order and leave the shorter list.
   */
  private announce(): void {
    if (!this.started || this.stopping) return;
    if (this.announcing) {
      this.announceAgain = true;
      return;
    }
    this.announcing = this.runs
      .announceHandlers({
        node: this.options.node,
        handlers: this.names(),
        liveForMs: LIVE_ANNOUNCEMENTS * this.announceEveryMs,
        incarnation: this.options.incarnation,
        url: this.url,
        slots: this.slots(),
      })
      .then(
        () => this.announceFailures.succeeded(),
        (err: unknown) => this.announceFailures.failed(err),
      )
      .finally(() => {
        this.announcing = null;
        if (this.announceAgain) {
          this.announceAgain = false;
          this.announce();
        }
      });
  }

  /** Its limits and what uses them, as the registry tells other nodes and GET /handlers tells why a run waits. */
  private slots(): NodeSlots {
    return {
      concurrency: this.options.concurrency,
      running: this.active.size,
      handlerConcurrency: Object.fromEntries(this.limits),
      runningByHandler: Object.fromEntries(this.runningByName),
    };
  }

  /** Runs being executed now. */
  get running(): number {
    return this.active.size;
  }

  /** Start claiming; settles once the registry has this node's handlers (or was told and refused, which is logged). */
  start(): Promise<void> {
    if (this.started) return Promise.resolve();
    this.started = true;
    this.unsubscribe = this.runs.onRunChange((change, run) => {
      if (change === 'created' && run.status === 'queued' && this.handlers.has(run.name)) this.wake();
      // A deleted run takes its output log with it.
      const logFile = change === 'deleted' && this.options.logDir ? outputLogPath(this.options.logDir, run.id) : null;
      if (logFile) {
        rm(logFile, { force: true }).catch((err: unknown) =>
          this.log.warn({ err, runId: run.id }, 'could not remove the output log of a deleted run'),
        );
      }
    });
    this.pollTimer = setInterval(() => this.wake(), this.options.claimIntervalMs ?? 1_000);
    this.pollTimer.unref?.();
    this.announceTimer = setInterval(() => this.announce(), this.announceEveryMs);
    this.announceTimer.unref?.();
    this.announce();
    this.wake();
    return this.announcing ?? Promise.resolve();
  }

  /**
   * Stop claiming, ask every running handler to stop (`ctx.signal`), wait up
   * to shutdownGraceMs, then end what is still running as failed with kind
   * 'interrupted'. Nothing this node executes is left `running`.
   */
  shutdown(): Promise<void> {
    this.stopping ??= this.drain();
    return this.stopping;
  }

  private async drain(): Promise<void> {
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.announceTimer) clearInterval(this.announceTimer);
    this.unsubscribe?.();
    // Beside the handlers' stop, not before it: a store that does not answer must not delay their signal.
    const left = this.leaveRegistry();
    try {
      await this.stopHandlers();
    } finally {
      // Bounded as the rest of the shutdown: the announcement lapses by itself anyway.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([left, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.shutdownGraceMs)))]);
      clearTimeout(timer);
    }
  }

  /** Runs of this node's handlers are no longer accepted for it through other nodes. */
  private async leaveRegistry(): Promise<void> {
    if (!this.started) return;
    // One still in flight would otherwise put the node back after it is forgotten.
    await this.announcing;
    await this.runs.forgetHandlers(this.options.node).catch((err: unknown) => {
      this.log.warn({ err }, 'could not take this node out of the handler registry; it lapses unannounced');
    });
  }

  private async stopHandlers(): Promise<void> {
    await this.claiming;
    const pending = [...this.active.values()];
    if (pending.length === 0) return;
    this.log.info({ runs: pending.map((a) => a.run.id), graceMs: this.options.shutdownGraceMs }, 'executor stopping: asking handlers to stop');
    for (const a of pending) a.stop('interrupted', `node ${this.options.node} is shutting down`);
    // A handler that does not return within the grace is given up on (see
    // launch). This bound is for the rest: an end that cannot be written (a
    // store that is down) would otherwise hold the shutdown for as long as
    // the handle retries it. Subprocesses get their kill grace on top.
    const bound = this.options.shutdownGraceMs + (this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const inTime = await Promise.race([
      Promise.allSettled(pending.map((a) => a.released)).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), bound))),
    ]);
    clearTimeout(timer);
    if (inTime) return;
    for (const a of [...this.active.values()]) {
      a.handle.close();
      const message = `node ${this.options.node} shut down and the end of the run could not be recorded within ${bound} ms`;
      const ended = await this.runs.endIfRunning(a.run.id, 'failed', { kind: 'interrupted', message }).catch((err: unknown) => {
        // The store still refuses it: the next start of this node ends the run (orphaned), as after a crash.
        this.log.error({ err, runId: a.run.id }, 'could not end a run at shutdown; the next start of this node ends it');
        return false;
      });
      if (ended) this.log.warn({ runId: a.run.id }, message);
    }
  }

  /** Claim as many queued runs as there are free slots; coalesces concurrent wake-ups. */
  private wake(): void {
    if (!this.started || this.stopping) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimOnce()
      .then(
        () => this.claimFailures.succeeded(),
        (err: unknown) => {
          // A failed claim (store busy) is retried by the next wake-up or poll.
          this.claimFailures.failed(err);
        },
      )
      .finally(() => {
        this.claiming = null;
        if (this.claimAgain) {
          this.claimAgain = false;
          this.wake();
        }
      });
  }

  private async claimOnce(): Promise<void> {
    const free = this.options.concurrency - this.active.size;
    if (free <= 0 || this.handlers.size === 0) return;
    // Only what can start now is claimed: a run claimed to wait for its
    // handler's slot would hold a lease (and look running) while it waits.
    // Claims are never concurrent (wake), so these counts stand until launch.
    const perName = new Map<string, number>();
    for (const [name, limit] of this.limits) perName.set(name, Math.max(0, limit - (this.runningByName.get(name) ?? 0)));
    const names = [...this.handlers.keys()].filter((n) => perName.get(n) !== 0);
    if (names.length === 0) return;
    const claimed = await this.runs.claimQueued(this.owner, names, free, perName.size ? perName : undefined);
    for (const run of claimed) this.launch(run);
  }

  private handlerStarted(name: string): void {
    this.runningByName.set(name, (this.runningByName.get(name) ?? 0) + 1);
    // Told at once, not at the next interval: a run queued behind this one says "limit reached" while it is. Coalesced by announce.
    this.announce();
  }

  private handlerReturned(name: string): void {
    const left = (this.runningByName.get(name) ?? 1) - 1;
    if (left > 0) this.runningByName.set(name, left);
    else this.runningByName.delete(name);
    this.announce();
  }

  private launch(run: Run): void {
    const handler = this.handlers.get(run.name)!;
    const controller = new AbortController();
    const handle = new RunHandle({
      runId: run.id,
      name: run.name,
      transport: this.transport,
      owner: this.owner,
      leaseTtlMs: run.leaseTtlMs,
      ...this.options.eventLimits,
    });
    const children = new Set<RunHandle>();
    const execs = new Set<Promise<unknown>>();
    let stopped: RunStop | null = null;
    let finishing = false;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // Set when the handler did not return within the grace after its signal
    // aborted: its run is ended and its slot freed without it.
    let abandoned = false;
    let graceTimer: ReturnType<typeof setTimeout> | null = null;
    const stop = (kind: StopKind, message: string) => {
      if (stopped || finishing) return;
      const why = new RunStop(kind, message);
      stopped = why;
      this.log.info({ runId: run.id, kind }, `stopping handler: ${message}`);
      controller.abort(why);
      // JavaScript cannot stop a function that ignores its signal. Without a
      // bound, a cancelled run would stay running (the handle keeps
      // heartbeating) and the slot stay taken for as long as the handler
      // hangs: `concurrency` such handlers and this node runs nothing more.
      // The grace counts from when its subprocesses have stopped (each within
      // its kill grace), so that their ends are recorded.
      const grace = this.options.shutdownGraceMs;
      void Promise.allSettled([...execs]).then(() => {
        if (!finishing) graceTimer = setTimeout(() => void abandon(why, grace), grace);
      });
    };
    const abandon = async (why: RunStop, grace: number) => {
      if (finishing) return;
      abandoned = true;
      timeoutTimer?.clear();
      const message = `${why.message}; the handler did not stop within the grace period of ${grace} ms, so its run was ended without it`;
      this.log.warn({ runId: run.id, kind: why.kind, graceMs: grace }, `${message} (it may still be running in this process, its events are refused)`);
      try {
        handle.close();
        unsubscribe();
        if (why.kind === 'cancelled') await this.runs.endIfRunning(run.id, 'cancelled', { kind: 'cancelled', message });
        else if (why.kind !== 'ended') await this.runs.endIfRunning(run.id, 'failed', { kind: why.kind, message });
        await this.closeChildren(run, children, why);
      } catch (err) {
        this.log.error({ err, runId: run.id }, 'could not end the run of a handler that did not stop');
      } finally {
        this.active.delete(run.id);
        // Its node slot is free while its handler's is not: both as the registry tells them.
        this.announce();
        release();
        this.wake();
      }
    };

    // In-process, a cancel is seen the moment it is committed, not at the next heartbeat.
    const unsubscribe = this.runs.onEvents(run.id, (events, fresh) => {
      for (const e of events) {
        if (e.type === 'run.cancel_requested') {
          stop('cancelled', (e.data as { reason?: string }).reason ?? 'cancel requested');
        } else if (isTerminalType(e.type)) {
          const why = fresh.error ? ` (${fresh.error.kind}: ${fresh.error.message})` : '';
          stop('ended', `run ended ${fresh.status}${why}`);
        }
      }
    });
    // The handle notices cancels and foreign ends on its own heartbeats too
    // (e.g. written by another node); translate that into our reasons.
    handle.signal.addEventListener('abort', () => {
      void this.runs.find(run.id).then(
        (fresh) => {
          if (fresh && fresh.status !== 'running' && fresh.status !== 'queued') stop('ended', `run ended ${fresh.status}`);
          else stop('cancelled', fresh?.snapshot.cancelReason ?? 'cancel requested');
        },
        (err: unknown) => stop('cancelled', `cancel requested (${(err as Error).message})`),
      );
    });

    let timeoutTimer: LongTimer | null = null;
    if (run.timeoutMs !== null && run.startedAt !== null) {
      const ms = run.timeoutMs;
      timeoutTimer = longTimeout(
        () => stop('timeout', `run exceeded its total timeout of ${ms} ms`),
        Math.max(0, run.startedAt + ms - this.runs.now()),
      );
    }

    const ctx = new RunContext({
      run,
      handle,
      signal: controller.signal,
      runs: this.runs,
      transport: this.transport,
      owner: this.owner,
      logDir: this.options.logDir ?? null,
      killGraceMs: this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      url: this.url,
      children,
      execs,
      eventLimits: this.options.eventLimits ?? {},
      runToken: this.options.runToken ?? null,
    });

    void (async () => {
      let outcome: { ok: true; output: unknown } | { ok: false; error: unknown };
      try {
        const fresh = await this.runs.find(run.id);
        if (fresh && fresh.cancelRequestedAt !== null) stop('cancelled', fresh.snapshot.cancelReason ?? 'cancel requested');
        // Cancelled (or ended) between its claim and now: the handler is not called at all. Called, it got a signal
        // already aborted, whose 'abort' event never comes, so a handler listening for it worked on for a cancelled run.
        if (stopped) throw stopped;
        handle.event('run.started', { node: this.options.node, attempt: run.attempt });
        // Made through a node without this handler, its input was not checked there.
        const refused = this.inputRefusal(run.name, run.input);
        if (refused) throw refused;
        outcome = { ok: true, output: await handler(ctx) };
      } catch (error) {
        outcome = { ok: false, error };
      }
      timeoutTimer?.clear();
      // Given up on already: its run was ended and its node slot handed on.
      // Its handler's own slot was kept until now: the function still ran
      // (a GPU job limited to 1 at a time must not get a second beside it).
      if (abandoned) {
        this.handlerReturned(run.name);
        this.wake();
        return;
      }
      finishing = true;
      if (graceTimer) clearTimeout(graceTimer);
      try {
        await this.end(run, handle, stopped, outcome);
      } finally {
        unsubscribe();
        handle.close();
        await this.closeChildren(run, children, stopped);
        this.active.delete(run.id);
        this.handlerReturned(run.name);
        release();
        this.wake();
      }
    })().catch((err: unknown) => this.log.error({ err, runId: run.id }, 'could not clean up after a handler'));
    this.active.set(run.id, { run, handle, stop, released });
    this.handlerStarted(run.name);
  }

  /** Write the one end the outcome calls for; losing to an end written elsewhere is fine. */
  private async end(
    run: Run,
    handle: RunHandle,
    stopped: RunStop | null,
    outcome: { ok: true; output: unknown } | { ok: false; error: unknown },
  ): Promise<void> {
    try {
      if (stopped) {
        if (stopped.kind === 'cancelled') await handle.cancelled(stopped.message);
        else if (stopped.kind !== 'ended') await handle.fail(stopped.message, stopped.kind);
      } else if (outcome.ok) {
        const problem = outputProblem(outcome.output) ?? (await succeeded(handle, outcome.output));
        if (problem) await handle.fail(`the handler's return value cannot be stored as the run's output: ${problem}`);
      } else {
        await this.failed(run, handle, outcome.error);
      }
    } catch (err) {
      // Someone else (the handler itself, a cancel of a queued run, the
      // reaper) wrote the run's one end first; it stands.
      if (RuntrailError.isCode(err, 'run_already_terminal')) return;
      this.log.error({ err, runId: run.id }, 'could not record the end of a run');
      await this.runs.endIfRunning(run.id, 'failed', {
        kind: 'error',
        message: `the executor could not record the run's end: ${(err as Error).message}`,
      });
    }
  }

  /**
   * End the run of a handler that threw. Its message alone ("Cannot read
   * properties of undefined") says neither what kind of error it was nor
   * where: the run's error names the class, and the stack goes to the run's
   * log and to this server's log, as a crashing producer process's does.
   */
  private async failed(run: Run, handle: RunHandle, error: unknown): Promise<void> {
    // ctx.exec's and ctx.waitFor's errors already say what happened (how the command ended, with its stderr; what was
    // not ready); their stacks are runtrail's own.
    const own = error instanceof ExecError || error instanceof ProcessStartError || error instanceof WaitForTimeoutError || error instanceof InputRefused;
    const thrown = error instanceof Error && !own ? error : null;
    this.log.warn({ err: error, runId: run.id, name: run.name }, 'handler failed');
    if (thrown?.stack) {
      try {
        handle.log(thrown.stack, 'error');
      } catch (err) {
        // The handle refuses more events (its queue is full, or the server refused one): the run's error still says what was thrown.
        void err;
      }
    }
    // runtrail's own errors (an event the handler got wrong) read as they are.
    // `throw undefined` (a rethrown value that was never set, `reject()` with nothing) would otherwise be the run's whole error: "undefined".
    const nothing = error === undefined || error === null ? `the handler threw ${String(error)}, not an Error: there is no message or stack to show` : null;
    const named = nothing ?? (thrown && thrown.name !== 'Error' && !(thrown instanceof RuntrailError) ? `${thrown.name}: ${thrown.message || '(no message)'}` : error);
    await handle.fail(named, errorKind(error));
  }

  /**
   * End the child runs a handler left open. A cancel or a shutdown of the
   * parent is theirs too, and said so (`runs ls --failed-with cancelled`
   * finds them with it); otherwise they were left behind: orphaned.
   */
  private async closeChildren(parent: Run, children: Set<RunHandle>, stopped: RunStop | null): Promise<void> {
    for (const child of children) {
      child.close();
      const ended =
        stopped?.kind === 'cancelled'
          ? await this.runs.endIfRunning(child.id, 'cancelled', { kind: 'cancelled', message: `its parent run ${parent.id} was cancelled: ${stopped.message}` })
          : stopped?.kind === 'interrupted'
            ? await this.runs.endIfRunning(child.id, 'failed', { kind: 'interrupted', message: `its parent run ${parent.id} was interrupted: ${stopped.message}` })
            : await this.runs.endIfRunning(child.id, 'failed', { kind: 'orphaned', message: `its parent run ${parent.id} ended before it did` });
      if (ended) this.log.warn({ runId: child.id, parentId: parent.id }, 'ended a child run its handler left open');
    }
  }
}

/**
 * Why a handler's return value cannot be its run's output, or null. A
 * function (`return compute` for `return compute()`) or a symbol JSON would
 * drop without a word: the run would succeed with no output.
 */
function outputProblem(value: unknown): string | null {
  if (typeof value === 'function') return 'it is a function, which JSON cannot hold (return what it computes)';
  if (typeof value === 'symbol') return 'it is a symbol, which JSON cannot hold';
  try {
    JSON.stringify(value);
    return null;
  } catch (err) {
    // V8's cycle message spans lines (where the circle starts and closes): the run's error is read on one line.
    return `it is not JSON (${(err as Error).message.replace(/\s*\n\s*/g, ' ')})`;
  }
}

/**
 * Succeed the run with `output`, or say why the SDK refused it before
 * sending anything (a Map or a Set JSON would write as {}, a NaN as null):
 * that is the handler's value, not the executor failing to record an end.
 */
async function succeeded(handle: RunHandle, output: unknown): Promise<string | null> {
  try {
    await handle.succeed(output);
    return null;
  } catch (err) {
    const issues = RuntrailError.isCode(err, 'invalid_request') ? (err.details as { issues?: Array<{ path: string; message: string }> } | undefined)?.issues : undefined;
    const about = issues?.filter((i) => i.path === 'output' || i.path.startsWith('output.') || i.path.startsWith('output['));
    if (!about?.length || about.length !== issues?.length) throw err;
    return about.map((i) => `${i.path} ${i.message}`).join('; ');
  }
}

function errorKind(err: unknown): RunErrorKind {
  const kind = (err as { kind?: unknown } | null)?.kind;
  const parsed = RunErrorKind.safeParse(kind);
  return parsed.success ? parsed.data : 'error';
}

/** What a wrong option is, in a few words: "null", "a string", "an object". */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function isJsonSchemaLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && ('type' in value || 'properties' in value || '$schema' in value);
}

/** A refused handler name as an error shows it: quoted, with JSON's escapes and DEL, C1 and line separators escaped too (none reaches a log or terminal raw), a long one cut. */
function handlerNameText(name: unknown): string {
  if (typeof name !== 'string') return `(a ${name === null ? 'null' : typeof name}, not a string)`;
  const shown = JSON.stringify(name.length > 60 ? name.slice(0, 60) : name).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return name.length > 60 ? `${shown}… (${name.length} characters)` : shown;
}
