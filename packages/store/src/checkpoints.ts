import { RuntrailError, SnapshotFold, initialSnapshot, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { parse } from './rows.js';

/**
 * When an append persists its run's snapshot. The run row always holds the
 * run's seq and `snapshot_seq` (<= seq); table run_checkpoints holds the
 * snapshot at snapshot_seq (none at 0: the initial snapshot), and the
 * snapshot at seq is the checkpoint plus the fold of the events after it. Writing the whole snapshot (100 KB with
 * 1,000 calls in flight) on every append made an event's cost grow with the
 * calls in flight; a checkpoint every so often keeps it flat, and the
 * interval bounds how many events a reader without the head in memory folds.
 */
export interface CheckpointPolicy {
  /** The checkpoint is at most this many events behind the run (default 1,000): bounds a read's fold. */
  everyEvents: number;
  /**
   * An append at least this long (by its server time) after this process
   * last wrote the run's checkpoint writes it again (default 1,000 ms), so a
   * slow run's checkpoint stays close to its head.
   */
  everyMs: number;
}

export const DEFAULT_CHECKPOINT_POLICY: CheckpointPolicy = { everyEvents: 1000, everyMs: 1000 };

/** The policy from a store's options, with a clear error naming a bad value. */
export function checkpointPolicy(options: { checkpointEveryEvents?: number | undefined; checkpointEveryMs?: number | undefined }): CheckpointPolicy {
  const everyEvents = options.checkpointEveryEvents ?? DEFAULT_CHECKPOINT_POLICY.everyEvents;
  const everyMs = options.checkpointEveryMs ?? DEFAULT_CHECKPOINT_POLICY.everyMs;
  if (!Number.isInteger(everyEvents) || everyEvents < 1) {
    throw new RuntrailError('invalid_request', `checkpointEveryEvents must be a whole number of events >= 1, not ${everyEvents}`);
  }
  if (!Number.isFinite(everyMs) || everyMs < 0) {
    throw new RuntrailError('invalid_request', `checkpointEveryMs must be a number of milliseconds >= 0, not ${everyMs}`);
  }
  return { everyEvents, everyMs };
}

/** The columns of a run row that say where its snapshot is: its checkpoint (in run_checkpoints) is at snapshot_seq. */
export interface CheckpointedRow {
  id: string;
  seq: number;
  snapshot_seq: number;
}

/** Events (after, upto] of a run still to fold onto `base` for its snapshot at `upto`. */
export interface Tail {
  runId: string;
  after: number;
  upto: number;
  base: Snapshot;
}

interface Head {
  seq: number;
  snapshot: Snapshot;
  /** Server time of the last checkpoint this process wrote for the run (null: not known here). */
  checkpointAt: number | null;
}

/**
 * Run snapshots as both adapters keep them: the heads this process knows
 * (the last ones it appended or folded, a bounded cache), when an append
 * writes a checkpoint, and how a read gets the snapshot at a row's seq:
 * the head in memory, else the checkpoint plus the fold of the events after
 * it (read by the adapter, at most `everyEvents` of them).
 */
export class RunHeads {
  private readonly heads = new Map<string, Head>();

  constructor(
    readonly policy: CheckpointPolicy,
    private readonly size: number,
  ) {}

  /**
   * The snapshot at `row.seq`, or the tail to read and fold for it.
   * `checkpoint` gives the text of the checkpoint at `row.snapshot_seq` (it
   * is asked only when needsCheckpoint(row)).
   */
  snapshotOrTail(row: CheckpointedRow, checkpoint: () => string): { snapshot: Snapshot } | { tail: Tail } {
    const head = this.usableHead(row);
    if (head && head.seq === row.seq) return { snapshot: head.snapshot };
    // This process's head lies between the checkpoint and the row (another node or process appended since): fold from it.
    if (head) return { tail: { runId: row.id, after: head.seq, upto: row.seq, base: head.snapshot } };
    const base = row.snapshot_seq === 0 ? initialSnapshot() : parse<Snapshot>(checkpoint(), initialSnapshot());
    if (row.snapshot_seq === row.seq) return { snapshot: base };
    return { tail: { runId: row.id, after: row.snapshot_seq, upto: row.seq, base } };
  }

  /** Whether snapshotOrTail(row) needs the checkpoint (this process holds no head between it and the row). */
  needsCheckpoint(row: CheckpointedRow): boolean {
    return row.snapshot_seq > 0 && this.usableHead(row) === undefined;
  }

  private usableHead(row: CheckpointedRow): Head | undefined {
    const head = this.heads.get(row.id);
    return head && head.seq >= row.snapshot_seq && head.seq <= row.seq ? head : undefined;
  }

  /** The snapshot at the tail's end: `events` (exactly the tail's, in seq order) folded onto its base, and remembered. */
  fold(tail: Tail, events: RunEvent[]): Snapshot {
    const expected = tail.upto - tail.after;
    if (events.length !== expected || (expected > 0 && (events[0]!.seq !== tail.after + 1 || events.at(-1)!.seq !== tail.upto))) {
      // Stored events are never changed and a run is deleted only once ended (its checkpoint then is its head): a bug if seen.
      throw new Error(
        `run ${tail.runId}: the log after its checkpoint should hold events ${tail.after + 1}..${tail.upto}, ` +
          `read ${events.length} (${events[0]?.seq ?? '-'}..${events.at(-1)?.seq ?? '-'})`,
      );
    }
    const fold = new SnapshotFold(tail.base);
    for (const event of events) fold.apply(event);
    const head = this.heads.get(tail.runId);
    // A read of an older row must not replace a newer head.
    if (!head || head.seq < tail.upto) this.remember(tail.runId, tail.upto, fold.snapshot, head?.checkpointAt ?? null);
    return fold.snapshot;
  }

  /**
   * Whether an append that took a run from `before` (its snapshot when the
   * append began) to `after`, at server time `now`, writes the checkpoint:
   * when the run ended (an ended run is read whole, and deleted only so),
   * when its phases changed (the reaper's query reads phase timeouts from the
   * checkpoint), when the checkpoint would fall `everyEvents` behind, and
   * when this process has not written it for `everyMs` (or not at all).
   */
  shouldCheckpoint(runId: string, checkpointSeq: number, before: Snapshot, after: Snapshot, now: number): boolean {
    if (after.terminal !== null || after.phases !== before.phases) return true;
    if (after.seq - checkpointSeq >= this.policy.everyEvents) return true;
    const at = this.heads.get(runId)?.checkpointAt ?? null;
    return at === null || now - at >= this.policy.everyMs;
  }

  /** An append wrote the run's head (and its checkpoint, when `checkpointAt` is given). */
  appended(runId: string, seq: number, snapshot: Snapshot, checkpointAt: number | null): void {
    this.remember(runId, seq, snapshot, checkpointAt ?? this.heads.get(runId)?.checkpointAt ?? null);
  }

  /** Forget a run's head: a write that may be in it was rolled back, or the run is gone. */
  forget(runId: string): void {
    this.heads.delete(runId);
  }

  private remember(runId: string, seq: number, snapshot: Snapshot, checkpointAt: number | null): void {
    this.heads.delete(runId);
    this.heads.set(runId, { seq, snapshot, checkpointAt });
    if (this.heads.size > this.size) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }
}
