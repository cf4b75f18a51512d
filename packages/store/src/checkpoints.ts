import { RuntrailError, SnapshotFold, initialSnapshot, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { parse } from './rows.js';

/**
 * When an append persists its run's snapshot. The run row always holds the
 * run's seq and `snapshot_seq` (<= seq); table run_checkpoints holds the
 * snapshot at snapshot_seq (none at 0: the initial snapshot), and the
 * snapshot at seq is the checkpoint plus the fold of the events after it.
 * Writing the whole snapshot (100 KB with 1,000 calls in flight) on every
 * append made an event's cost grow with the calls in flight. A checkpoint
 * of B bytes is written every B / 20 events instead (within everyEvents ..
 * maxEvents): serializing and writing it then costs each event about as much
 * as 20 bytes of JSON, whatever the snapshot's size, and maxEvents bounds how
 * many events a reader without the head in memory folds.
 */
export interface CheckpointPolicy {
  /** Events between checkpoints of a small snapshot (default 1,000). */
  everyEvents: number;
  /** Events between checkpoints of any snapshot, at most (default 10,000): bounds a read's fold. */
  maxEvents: number;
  /**
   * An append at least this long (by its server time) after this process
   * last wrote the run's checkpoint writes it again (default 1,000 ms), so a
   * slow run's checkpoint stays close to its head.
   */
  everyMs: number;
}

export const DEFAULT_CHECKPOINT_POLICY: CheckpointPolicy = { everyEvents: 1000, maxEvents: 10_000, everyMs: 1000 };

/** Bytes of checkpoint per event between checkpoints (see CheckpointPolicy). */
const CHECKPOINT_BYTES_PER_EVENT = 20;

/** The store options that set the policy. */
export interface CheckpointOptions {
  /** Events between checkpoints of a small snapshot (default 1,000; see CheckpointPolicy). */
  checkpointEveryEvents?: number | undefined;
  /** Events between checkpoints of any snapshot, at most (default 10,000): bounds a read's fold. */
  checkpointMaxEvents?: number | undefined;
  /** An append this long after this process last wrote a run's checkpoint writes it (default 1,000 ms). */
  checkpointEveryMs?: number | undefined;
}

/** The policy from a store's options, with a clear error naming a bad value. */
export function checkpointPolicy(options: CheckpointOptions): CheckpointPolicy {
  const everyEvents = options.checkpointEveryEvents ?? DEFAULT_CHECKPOINT_POLICY.everyEvents;
  const maxEvents = options.checkpointMaxEvents ?? Math.max(everyEvents, DEFAULT_CHECKPOINT_POLICY.maxEvents);
  const everyMs = options.checkpointEveryMs ?? DEFAULT_CHECKPOINT_POLICY.everyMs;
  for (const [name, value] of [['checkpointEveryEvents', everyEvents], ['checkpointMaxEvents', maxEvents]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RuntrailError('invalid_request', `${name} must be a whole number of events >= 1, not ${value}`);
    }
  }
  if (maxEvents < everyEvents) {
    throw new RuntrailError('invalid_request', `checkpointMaxEvents (${maxEvents}) must be >= checkpointEveryEvents (${everyEvents})`);
  }
  if (!Number.isFinite(everyMs) || everyMs < 0) {
    throw new RuntrailError('invalid_request', `checkpointEveryMs must be a number of milliseconds >= 0, not ${everyMs}`);
  }
  return { everyEvents, maxEvents, everyMs };
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

/** The last checkpoint this process wrote for a run: its server time and its size in bytes. */
export interface WrittenCheckpoint {
  at: number;
  bytes: number;
}

interface Head {
  seq: number;
  snapshot: Snapshot;
  /** null: not known here (another process wrote it, or none yet). */
  checkpoint: WrittenCheckpoint | null;
}

/**
 * Run snapshots as both adapters keep them: the heads this process knows
 * (the last ones it appended or folded, a bounded cache), when an append
 * writes a checkpoint, and how a read gets the snapshot at a row's seq:
 * the head in memory, else the checkpoint plus the fold of the events after
 * it (read by the adapter, fewer than `maxEvents` of them: every append
 * that would leave more writes the checkpoint).
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
    if (!head || head.seq < tail.upto) this.remember(tail.runId, tail.upto, fold.snapshot, head?.checkpoint ?? null);
    return fold.snapshot;
  }

  /**
   * Whether an append that took a run from `before` (its snapshot when the
   * append began) to `after`, at server time `now`, writes the checkpoint:
   * when the run ended (an ended run is read whole, and deleted only so),
   * when its phases changed (the reaper's query reads phase timeouts from the
   * checkpoint), when the checkpoint would fall its interval behind (see
   * CheckpointPolicy; everyEvents for a size not known here), and when this
   * process has not written it for `everyMs` (or not at all).
   */
  shouldCheckpoint(runId: string, checkpointSeq: number, before: Snapshot, after: Snapshot, now: number): boolean {
    if (after.terminal !== null || after.phases !== before.phases) return true;
    const last = this.heads.get(runId)?.checkpoint ?? null;
    if (last === null || now - last.at >= this.policy.everyMs) return true;
    const { everyEvents, maxEvents } = this.policy;
    const interval = Math.min(maxEvents, Math.max(everyEvents, Math.ceil(last.bytes / CHECKPOINT_BYTES_PER_EVENT)));
    return after.seq - checkpointSeq >= interval;
  }

  /** An append wrote the run's head, and its checkpoint when `checkpoint` is given. */
  appended(runId: string, seq: number, snapshot: Snapshot, checkpoint: WrittenCheckpoint | null): void {
    this.remember(runId, seq, snapshot, checkpoint ?? this.heads.get(runId)?.checkpoint ?? null);
  }

  /** Forget a run's head: a write that may be in it was rolled back, or the run is gone. */
  forget(runId: string): void {
    this.heads.delete(runId);
  }

  private remember(runId: string, seq: number, snapshot: Snapshot, checkpoint: WrittenCheckpoint | null): void {
    this.heads.delete(runId);
    this.heads.set(runId, { seq, snapshot, checkpoint });
    if (this.heads.size > this.size) {
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) this.heads.delete(oldest);
    }
  }
}
