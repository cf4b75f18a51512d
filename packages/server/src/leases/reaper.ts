import type { FastifyBaseLogger } from 'fastify';
import { RepeatedFailureLog } from '../repeated-failure-log.js';
import { stopRecordedGroup, type ProcessIdentity, type RecordedGroup } from '@runtrail/client/node';
import { RuntrailError, type Owner, type Run } from '@runtrail/protocol';
import { DEFAULT_KILL_GRACE_MS } from '../executor/executor.js';
import type { RunService } from '../runs/run-service.js';

export interface ReaperOptions {
  runs: RunService;
  /** This node's name (config.node). */
  node: string;
  /**
   * The owner id this node's executor uses in THIS process. A run held on
   * this node under any other id belongs to a previous incarnation that
   * died, so nobody will ever finish it.
   */
  incarnation: string;
  intervalMs: number;
  log: FastifyBaseLogger;
  /** Called for each run this reaper ended or marked stalled (runtrail_reaped_runs_total). */
  onReaped?: (kind: ReapKind) => void;
  /** Runs of each kind handled per sweep; the next sweep takes the rest. */
  batchSize?: number;
  /** SIGTERM-to-SIGKILL grace for a subprocess group a dead incarnation left running. */
  killGraceMs?: number;
  /**
   * How long the handler of queued runs may go undefined by every live node
   * before those runs end failed/orphaned (config.queuedOrphanTimeoutMs);
   * 0 or absent: they wait for such a node forever.
   */
  queuedOrphanTimeoutMs?: number;
}

export type ReapKind = 'orphaned' | 'timeout' | 'stalled' | 'cancelled';

export interface SweepReport {
  orphaned: string[];
  timedOut: string[];
  stalled: string[];
}

/**
 * The server's guarantee that no run stays `running` without a live owner
 * (field notes 5, 6, 7). Every node runs one. Each decision ends with an
 * append through RunService, and the store accepts one terminal event per
 * run, so several reapers (several nodes, or a reaper racing the owner's own
 * finish) can never end a run twice; the losers are told and move on.
 */
export class Reaper {
  private readonly runs: RunService;
  private readonly node: string;
  private readonly incarnation: string;
  private readonly intervalMs: number;
  private readonly log: FastifyBaseLogger;
  private readonly batchSize: number;
  private readonly killGraceMs: number;
  private startedAt: number | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private current: Promise<unknown> | null = null;
  private stopped = false;
  private readonly onReaped: ReaperOptions['onReaped'];
  private readonly queuedOrphanTimeoutMs: number;
  /** Per handler name of queued runs: when this reaper first saw no live node define it (since then without a break). */
  private readonly undefinedSince = new Map<string, number>();
  /** A sweep fails every interval while the store is down: logged once, counted, and its recovery. */
  private readonly sweepFailures: RepeatedFailureLog;

  constructor(options: ReaperOptions) {
    this.onReaped = options.onReaped;
    this.runs = options.runs;
    this.node = options.node;
    this.incarnation = options.incarnation;
    this.intervalMs = options.intervalMs;
    this.log = options.log;
    this.sweepFailures = new RepeatedFailureLog(options.log, { failed: 'reaper sweep failed', recovered: 'reaper sweeps work again' });
    this.batchSize = options.batchSize ?? 200;
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.queuedOrphanTimeoutMs = options.queuedOrphanTimeoutMs ?? 0;
  }

  /** Recover this node's dead runs, sweep once, then keep sweeping every interval. */
  async start(): Promise<void> {
    this.startedAt = this.runs.now();
    this.stopped = false;
    await this.recoverOwnRuns();
    await this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.current;
  }

  /**
   * End at once the runs this node's executor held in a previous
   * incarnation: their handlers died with that process, so waiting for the
   * lease would only show a dead run as running for another TTL. Producer
   * runs are left alone: their producers are separate processes that retry
   * through our restart and keep their leases alive.
   */
  async recoverOwnRuns(): Promise<string[]> {
    const held = await this.runs.findOwnedBy(this.node, 'executor');
    const ended: string[] = [];
    for (const run of held) {
      if (run.status !== 'running' || run.owner?.id === this.incarnation) continue;
      // Its ctx.exec group's watchdog normally stopped the group when the
      // old process died; if the group is still there (the watchdog was
      // killed too), stop it, but only if its leader is provably the
      // recorded process (pid and start time), never a reused pid.
      const group = runningGroupOf(run);
      if (group && stopRecordedGroup(group, this.killGraceMs)) {
        this.log.warn({ runId: run.id, pgid: group.pgid }, 'stopped the subprocess group a previous incarnation left running');
      }
      const message =
        `node ${this.node} restarted while its executor was running this run ` +
        `(previous incarnation ${run.owner?.id ?? 'unknown'}, last heartbeat ${at(run.heartbeatAt)})`;
      if (await this.end(run.id, 'failed', 'orphaned', message)) ended.push(run.id);
    }
    if (ended.length > 0) this.log.warn({ runs: ended }, `ended ${ended.length} run(s) of a previous incarnation as orphaned`);
    return ended;
  }

  /** One pass over everything due now. Exposed so tests and callers can force a sweep. */
  async sweep(): Promise<SweepReport> {
    const now = this.runs.now();
    const due = await this.runs.findDue(now, this.batchSize);
    const report: SweepReport = { orphaned: [], timedOut: [], stalled: [] };

    for (const run of due.expired) {
      // Within the start-up grace (below) by what the query saw, before the run is read whole: a
      // restarted server found the same abandoned runs due on every sweep for a lease's length, and
      // reading each one's input again made one with 200 such runs of 1 MiB inputs hold 500 MB.
      // An owner or lease renewed since only makes the run less due.
      if (this.inStartupGrace(run, now)) continue;
      const fresh = await this.runs.find(run.id);
      // The owner may have renewed between the query and now; its word wins.
      if (!fresh || fresh.status !== 'running' || fresh.leaseExpiresAt === null || fresh.leaseExpiresAt >= now) continue;
      // Nobody could heartbeat to this node while it was down: give every
      // run one full lease after start-up before calling its owner gone.
      if (this.inStartupGrace(fresh, now)) continue;
      const silence = `${describeOwner(fresh.owner)} stopped heartbeating: last heartbeat ${at(fresh.heartbeatAt)}, lease of ${fresh.leaseTtlMs} ms lapsed ${at(fresh.leaseExpiresAt)}`;
      const ended =
        fresh.cancelRequestedAt !== null
          ? await this.end(fresh.id, 'cancelled', 'cancelled', `cancel requested ${at(fresh.cancelRequestedAt)}${cancelReasonOf(fresh)}; ${silence}`)
          : await this.end(fresh.id, 'failed', 'orphaned', silence);
      if (ended) report.orphaned.push(fresh.id);
    }

    for (const run of due.overdue) {
      const message = `run exceeded its total timeout of ${run.timeoutMs} ms (started ${at(run.startedAt)})`;
      if (await this.end(run.id, 'failed', 'timeout', message)) report.timedOut.push(run.id);
    }

    for (const run of due.phaseOverdue) {
      const phase = run.snapshot.phases.find(
        (p) => p.status === 'started' && p.timeoutMs !== null && p.startedAt + p.timeoutMs < now,
      );
      if (!phase) continue;
      const message = `phase "${phase.name}" exceeded its timeout of ${phase.timeoutMs} ms (started ${at(phase.startedAt)})`;
      if (await this.end(run.id, 'failed', 'timeout', message)) report.timedOut.push(run.id);
    }

    for (const run of due.stalled) {
      if (await this.markStalled(run)) report.stalled.push(run.id);
    }

    if (this.queuedOrphanTimeoutMs > 0) report.orphaned.push(...(await this.endUnclaimable(now)));

    const total = report.orphaned.length + report.timedOut.length + report.stalled.length;
    if (total > 0) this.log.info({ ...report }, 'reaper sweep');
    return report;
  }

  /**
   * Queued runs of a handler that no live node defines (every node that had
   * it shut down or died, or a redeploy dropped it) would show `queued`
   * forever: nothing will ever claim them, and unlike a running run they
   * have no lease to lapse. Once no live node has defined the handler for
   * queuedOrphanTimeoutMs, as this reaper saw it without a break (long
   * enough for a redeploy; a reaper that just started waits the whole of
   * it), they end failed/orphaned, naming the handler. A node that defines
   * it again before then claims them as usual.
   */
  private async endUnclaimable(now: number): Promise<string[]> {
    const names = await this.runs.queuedHandlerNames(MAX_QUEUED_NAMES);
    const defined = new Set((await this.runs.nodeHandlers()).flatMap((n) => n.handlers));
    for (const name of this.undefinedSince.keys()) if (!names.includes(name) || defined.has(name)) this.undefinedSince.delete(name);
    const ended: string[] = [];
    for (const name of names) {
      if (defined.has(name)) continue;
      const since = this.undefinedSince.get(name) ?? now;
      this.undefinedSince.set(name, since);
      if (now < since + this.queuedOrphanTimeoutMs) continue;
      const { runs } = await this.runs.list({ status: 'queued', name, limit: this.batchSize });
      for (const run of runs) {
        const message =
          `no live node has defined handler "${name}" since ${new Date(since).toISOString()} (queuedOrphanTimeoutMs ${this.queuedOrphanTimeoutMs} ms), ` +
          `so nothing would ever start this run, queued ${at(run.createdAt)}; start a node that defines it and retry the run`;
        if (await this.end(run.id, 'failed', 'orphaned', message)) ended.push(run.id);
      }
    }
    return ended;
  }

  /**
   * The handlers this reaper counts as undefined (see endUnclaimable), with
   * the moment it started counting and the moment from which its sweeps end
   * their queued runs: GET /handlers reports them, so a page can say when.
   */
  unclaimable(): Array<{ handler: string; undefinedSince: number; endsAt: number }> {
    if (this.queuedOrphanTimeoutMs === 0) return [];
    return [...this.undefinedSince].map(([handler, since]) => ({ handler, undefinedSince: since, endsAt: since + this.queuedOrphanTimeoutMs }));
  }

  private async markStalled(run: Run): Promise<boolean> {
    const lastProgressAt = run.snapshot.lastProgressAt ?? run.startedAt;
    const stallTimeoutMs = run.stallTimeoutMs!;
    try {
      // The id makes two reapers that see the same stall write it once.
      await this.runs.appendEvents(
        run.id,
        [{ type: 'run.stalled', id: `reaper.stalled.${lastProgressAt ?? 0}`, data: { stallTimeoutMs, lastProgressAt } }],
        undefined,
        { renewLease: false },
      );
    } catch (err) {
      // The run ended between the query and this append: nothing is stalled.
      if (RuntrailError.isCode(err, 'run_already_terminal')) return false;
      throw err;
    }
    this.onReaped?.('stalled');
    if (run.failOnStall) {
      await this.end(run.id, 'failed', 'stalled', `no progress for ${stallTimeoutMs} ms (last progress ${at(lastProgressAt)})`);
    }
    return true;
  }

  private async end(
    id: string,
    status: 'failed' | 'cancelled',
    kind: ReapKind,
    message: string,
  ): Promise<boolean> {
    const run = await this.runs.endIfRunning(id, status, { kind, message });
    if (run) this.log.warn({ runId: id, status, kind }, message);
    // A stalled run that fails on stall was counted when it was marked.
    if (run && kind !== 'stalled') this.onReaped?.(kind);
    return run !== null;
  }

  /**
   * Whether the run's owner had no fair chance to heartbeat: this node
   * started less than the run's lease ago (not its own executor's run,
   * whose previous incarnation is dead), or the store refused a write
   * (a full disk, a locked file) less than a lease ago, when no owner could
   * renew. Without the second, a producer whose beats a full disk refused
   * was ended orphaned by the first sweep after space was freed, before its
   * next beat could land, though it never stopped.
   */
  private inStartupGrace(run: Run, now: number): boolean {
    const refusedAt = this.runs.writesRefusedAt;
    if (refusedAt !== null && now < refusedAt + run.leaseTtlMs) return true;
    return !this.isOwnExecutor(run.owner) && this.startedAt !== null && now < this.startedAt + run.leaseTtlMs;
  }

  private isOwnExecutor(owner: Owner | null): boolean {
    return owner !== null && owner.kind === 'executor' && owner.node === this.node;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const pass = this.sweep().then(
      () => this.sweepFailures.succeeded(),
      (err: unknown) => {
        // A failed sweep (store busy, disk full) must not stop the reaper: the
        // next interval tries again, and the error is on record.
        this.sweepFailures.failed(err);
      },
    );
    this.current = pass;
    await pass;
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref?.();
  }
}

/** The process group `meta.exec` of a run records as started and not yet ended (see runProcess). */
function runningGroupOf(run: Run): RecordedGroup | null {
  const exec = run.snapshot.meta.exec as Record<string, unknown> | undefined;
  if (!exec || typeof exec !== 'object' || 'exitCode' in exec || typeof exec.pgid !== 'number') return null;
  const members: ProcessIdentity[] = [];
  for (const [pid, startTime] of [
    [exec.pgid, exec.pgidStartTime],
    [exec.pid, exec.pidStartTime],
  ]) {
    if (typeof pid === 'number' && typeof startTime === 'number') members.push({ pid, startTime });
  }
  return members.length > 0 ? { pgid: exec.pgid, members } : null;
}

/** Handler names of queued runs checked per sweep; a store with more looks at the first this many by name. */
const MAX_QUEUED_NAMES = 1000;

function at(ms: number | null): string {
  return ms === null ? 'never' : `at ${new Date(ms).toISOString()}`;
}

function describeOwner(owner: Owner | null): string {
  return owner ? `owner ${owner.kind} ${owner.id} on ${owner.node}` : 'its producer (it named no owner)';
}

/** The requester's reason, quoted in the end the reaper writes for a cancel its owner never carried out. */
function cancelReasonOf(run: Run): string {
  const reason = run.snapshot.cancelReason ?? null;
  return reason === null ? '' : ` (${JSON.stringify(reason)})`;
}
