import { appendFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RunHandle, waitFor, type ProducerTransport, type RunHandleOptions, type Ready, type WaitForOptions } from '@runtrail/client';
import { FolderCollector, failureMessage, handleSink, runEnvironment, runProcess, startError, type FailureMessageOptions, type ProcessResult } from '@runtrail/client/node';
import { OUTPUT_LOG_ARTIFACT, type Owner, type Run, type RunErrorKind } from '@runtrail/protocol';
import { outputLogPath } from '../runs/output-log.js';
import type { RunService } from '../runs/run-service.js';

export interface ExecOptions {
  /** Total time allowed for the subprocess. */
  timeoutMs?: number;
  /** Longest time allowed without output. */
  idleTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /**
   * The command's working directory. A relative one is taken from the
   * server's own working directory (where it was started); without one the
   * command runs there. A relative program (`./train.sh`, `bin/x`) is
   * looked up in this folder, a bare name (`python3`) on PATH.
   */
  cwd?: string;
  /** After SIGTERM, how long the group has before SIGKILL (default: the executor's). */
  killGraceMs?: number;
  /** Reject when the command exits non-zero or is killed by a signal (default true). */
  reject?: boolean;
  /**
   * A folder whose files the command writes become artifacts of the run,
   * each new or changed file directly in it under its file name: while it
   * runs, once a file stayed the same for `collectEveryMs`, and when it
   * ends (however it ends), the rest and the latest versions.
   */
  collect?: string;
  /** How often `collect` looks at its folder while the command runs (default 2 s; 0: only at the end). */
  collectEveryMs?: number;
}

/**
 * A subprocess that did not end well; `kind` is the run error kind it maps
 * to, and its message (the run's error) is as `runtrail exec` ends a run
 * with: a one-line headline (the command's first line, how it ended, the
 * exception line), then the last stderr lines.
 */
export class ExecError extends Error {
  readonly kind: RunErrorKind;
  readonly result: ProcessResult;
  constructor(kind: RunErrorKind, result: ProcessResult, options: FailureMessageOptions = {}) {
    super(failureMessage(result, options));
    this.name = 'ExecError';
    this.kind = kind;
    this.result = result;
  }
}

/** Characters of the end note ctx.exec appends to the output log: a command line can be megabytes of arguments. */
const MAX_END_NOTE_CHARS = 64 * 1024;

export interface ContextDeps {
  run: Run;
  handle: RunHandle;
  signal: AbortSignal;
  runs: RunService;
  transport: ProducerTransport;
  owner: Owner;
  /** Folder of per-run output logs (one file per run, written by ctx.exec). */
  logDir: string | null;
  killGraceMs: number;
  /** This server's URL, told to subprocesses as RUNTRAIL_URL (null before it listens). */
  url: string | null;
  /** Child runs this context opened; the executor ends the ones left open. */
  children: Set<RunHandle>;
  /** Subprocesses of ctx.exec not yet ended; the executor waits for them to stop before giving up on a handler. */
  execs: Set<Promise<unknown>>;
  /** The server's limits on one event's data, for the child runs' handles. */
  eventLimits: EventLimits;
  /** With auth on: a write run token of a run, for its subprocesses (RUNTRAIL_TOKEN). */
  runToken: ((runId: string) => Promise<string>) | null;
}

export type EventLimits = Pick<RunHandleOptions, 'maxEventDataBytes' | 'maxMetaBytes'>;

/**
 * What a handler gets: the producer SDK's methods on its run (the same
 * RunHandle external producers use), plus the executor's extras. `signal`
 * aborts on cancel, timeout and node shutdown; everything here that waits
 * honours it.
 */
export class RunContext<Input = unknown> {
  readonly id: string;
  readonly name: string;
  readonly input: Input;
  /** The run as it was claimed (attempt, retryOf, labels, limits). */
  readonly run: Run;
  readonly signal: AbortSignal;
  /** The underlying producer handle, for APIs that want one. */
  readonly handle: RunHandle;

  readonly event: RunHandle['event'];
  readonly phase: RunHandle['phase'];
  readonly phaseEnd: RunHandle['phaseEnd'];
  readonly withPhase: RunHandle['withPhase'];
  readonly call: RunHandle['call'];
  readonly progress: RunHandle['progress'];
  readonly metric: RunHandle['metric'];
  readonly count: RunHandle['count'];
  readonly log: RunHandle['log'];
  readonly meta: RunHandle['meta'];
  readonly artifact: RunHandle['artifact'];
  readonly flush: RunHandle['flush'];

  private readonly deps: ContextDeps;
  private logFile: string | null = null;
  /**
   * The run token its subprocesses get, minted at the first exec and
   * handed to the rest: one per exec was a store record each, alive for
   * 30 days, so a handler looping over ctx.exec filled run_tokens.
   */
  private execToken: Promise<string> | undefined;

  constructor(deps: ContextDeps) {
    const h = deps.handle;
    this.deps = deps;
    this.id = deps.run.id;
    this.name = deps.run.name;
    // The store shares one frozen parse of a large input among its readers: the handler gets its own copy to change.
    this.input = structuredClone(deps.run.input) as Input;
    this.run = deps.run;
    this.signal = deps.signal;
    this.handle = h;
    this.event = h.event.bind(h);
    this.phase = h.phase.bind(h);
    this.phaseEnd = h.phaseEnd.bind(h);
    this.withPhase = h.withPhase.bind(h);
    this.call = h.call.bind(h);
    this.progress = h.progress.bind(h);
    this.metric = h.metric.bind(h);
    this.count = h.count.bind(h);
    this.log = h.log.bind(h);
    this.meta = h.meta.bind(h);
    this.artifact = h.artifact.bind(h);
    this.flush = h.flush.bind(h);
  }

  /**
   * Open a child run of this one (its parentId is this run). The handler
   * produces it through the returned handle and ends it; a child still open
   * when the handler returns is ended with it.
   */
  async child(name: string, options: { input?: unknown; labels?: Record<string, string> } = {}): Promise<RunHandle> {
    const { runs, owner, transport } = this.deps;
    const { run } = await runs.create({
      name,
      ...(options.input === undefined ? {} : { input: options.input }),
      ...(options.labels ? { labels: options.labels } : {}),
      parentId: this.id,
      owner,
      leaseTtlMs: this.run.leaseTtlMs,
    });
    const handle = new RunHandle({ runId: run.id, name: run.name, transport, owner, leaseTtlMs: run.leaseTtlMs, ...this.deps.eventLimits });
    this.deps.children.add(handle);
    return handle;
  }

  /**
   * Poll an external job until `check` returns a value (not undefined, null
   * or false). Each poll that is not ready yet counts on the run (counter
   * `polls: <label>`), so a long wait shows as movement, not as a stall.
   */
  waitFor<T>(check: (attempt: number) => T | Promise<T>, options: Omit<WaitForOptions, 'signal' | 'onPoll'> = {}): Promise<Ready<T>> {
    const label = (options.label ?? 'external job').slice(0, 150);
    return waitFor(check, { ...options, label, signal: this.signal, onPoll: () => this.count(`polls: ${label}`) });
  }

  /**
   * Run a subprocess in its own process group: its output becomes log
   * events and the run's output log, its `::runtrail::` lines become events,
   * and a timeout, idle timeout or this run's signal stops the whole group,
   * as does this server's death (the group's watchdog sees it). Its
   * environment has RUNTRAIL_RUN_ID and RUNTRAIL_URL.
   * Rejects with an ExecError (kind 'timeout' or 'error') unless it exits 0.
   */
  async exec(command: string, args: string[] = [], options: ExecOptions = {}): Promise<ProcessResult> {
    const logFile = this.openLogFile();
    // Absolute from here on, so that what an error names is the folder it means.
    const cwd = options.cwd ? resolve(options.cwd) : undefined;
    const collectDir = options.collect === undefined ? null : resolve(cwd ?? process.cwd(), options.collect);
    const collector = collectDir
      ? await FolderCollector.start(collectDir, (name, path, replace) => this.artifact(name, { path }, { replace }), {
          ...(options.collectEveryMs === undefined ? {} : { intervalMs: options.collectEveryMs }),
        })
      : null;
    // A command that cannot start stores nothing, and the folder is not looked at again.
    const running = runProcess(command, args, {
      sink: handleSink(this.handle),
      signal: this.signal,
      killGraceMs: options.killGraceMs ?? this.deps.killGraceMs,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
      // The command can append to its own run: RUNTRAIL_RUN_ID, RUNTRAIL_URL, with auth on RUNTRAIL_TOKEN (these win over options.env).
      env: { ...options.env, ...runEnvironment({ runId: this.id, url: this.deps.url, token: await this.subprocessToken() }) },
      ...(cwd ? { cwd } : {}),
      ...(logFile ? { logFile } : {}),
    });
    this.deps.execs.add(running);
    const result = await running
      .catch((err: unknown) => {
        collector?.stop();
        throw startError(err, command, cwd ?? process.cwd());
      })
      .finally(() => this.deps.execs.delete(running));
    if (collector) {
      const collected = await collector.finish();
      if (collected.unreadable) this.log(`cannot read ${collectDir} at the end (${collected.unreadable}): files written there since the last look were not stored`, 'warn');
      for (const { name, reason } of collected.skipped) this.log(`${JSON.stringify(name)} in ${collectDir} was not stored as an artifact: ${reason}`, 'warn');
    }
    // A headline that shows only the start of the command line says where the whole of it is.
    const said: FailureMessageOptions = { wholeCommandIn: logFile ? 'meta.exec.command and the output log' : 'meta.exec.command' };
    // Stopped by our own signal: surface the signal's reason (cancel,
    // timeout, shutdown) so the run ends with that, not with "exit 143".
    if (result.reason === 'aborted' && this.signal.aborted) throw this.signal.reason;
    let failure: ExecError | null = null;
    if (result.reason === 'timeout' || result.reason === 'idle_timeout') failure = new ExecError('timeout', result, said);
    else if (result.reason === 'aborted') failure = new ExecError('cancelled', result, said);
    else if (options.reject !== false && (result.exitCode !== 0 || result.signal !== null)) failure = new ExecError('error', result, said);
    if (failure === null) return result;
    // The same words as the run's error, with the whole command line.
    if (logFile) await this.noteEnd(logFile, `${result.command} ${result.ending}`);
    throw failure;
  }

  /**
   * The run's error names the command by its first line; the output log
   * gets, below the command's stderr, how it ended with its whole command
   * line (which may span lines).
   */
  private async noteEnd(logFile: string, note: string): Promise<void> {
    try {
      await appendFile(logFile, `[runtrail] ${note.length > MAX_END_NOTE_CHARS ? `${note.slice(0, MAX_END_NOTE_CHARS)}…` : note}\n`);
    } catch (err) {
      // The log could not take it (its disk is full, it was removed): the run's error and log events still say how it ended.
      this.log(`could not write how the command ended to its output log ${logFile}: ${(err as Error).message}`, 'warn');
    }
  }

  private subprocessToken(): Promise<string> | undefined {
    const mint = this.deps.runToken;
    if (!mint) return undefined;
    this.execToken ??= mint(this.id);
    // A mint the store failed is tried again by the next exec rather than remembered.
    this.execToken.catch(() => {
      this.execToken = undefined;
    });
    return this.execToken;
  }

  private openLogFile(): string | null {
    if (this.logFile || !this.deps.logDir) return this.logFile;
    this.logFile = outputLogPath(this.deps.logDir, this.id);
    if (!this.logFile) return null;
    // A link, not stored content: the log is still being written.
    this.event('artifact', { name: OUTPUT_LOG_ARTIFACT, uri: pathToFileURL(this.logFile).href, contentType: 'text/plain' });
    return this.logFile;
  }
}
