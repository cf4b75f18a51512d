import {
  SnapshotFold,
  foldEvents,
  isTerminalType,
  type Artifact,
  type Owner,
  type Run,
  type RunError,
  RunStatus,
  type RunCounts,
  type RunEvent,
  type Snapshot,
} from '@runtrail/protocol';
import { eventJson, type EventText } from './event-text.js';
import type { NodeHandlers, NodeSlots } from './store.js';

/**
 * The run and event rows both adapters store (same columns; SQLite keeps
 * booleans as 0/1 and labels as JSON text, PostgreSQL as booleans and jsonb),
 * and the one mapping from a row to the API's Run and RunEvent.
 */
export interface RunRow {
  id: string;
  name: string;
  parent_id: string | null;
  status: RunStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  input: string | null;
  labels: string | Record<string, string>;
  error: string | null;
  output: string | null;
  seq: number;
  /** Where the run's snapshot checkpoint is (see ../checkpoints.ts). */
  snapshot_seq: number;
  execute: number | boolean;
  owner: string | null;
  lease_ttl_ms: number;
  lease_expires_at: number | null;
  heartbeat_at: number | null;
  cancel_requested_at: number | null;
  timeout_ms: number | null;
  stall_timeout_ms: number | null;
  fail_on_stall: number | boolean;
  last_progress_at: number | null;
  stalled_at: number | null;
  retry_of: string | null;
  attempt: number;
}

/** What reads of events select: the row's key, its type and the stored body (see eventBody). */
export interface EventRow {
  run_id: string;
  seq: number;
  type: string;
  body: string;
}

/** A field of an owner stored as JSON text (the owner_node and owner_kind columns). */
export function ownerField(ownerJson: string | null, field: 'node' | 'kind'): string | null {
  const owner = parse<Owner | null>(ownerJson, null);
  return owner ? owner[field] : null;
}

export const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));
export const parse = <T>(text: string | null | undefined, fallback: T): T =>
  text === null || text === undefined ? fallback : (JSON.parse(text) as T);

const flag = (value: number | boolean): boolean => value === true || value === 1;

/** What a run's row says about it besides its lease and owner, as an append batch moves it on. */
export interface RunHead {
  seq: number;
  snapshot: Snapshot;
  status: RunStatus;
  startedAt: number | null;
  finishedAt: number | null;
  /** JSON text of the run's error and output, as stored. */
  error: string | null;
  output: string | null;
  cancelRequestedAt: number | null;
}

/** The head of a run as its row stores it, at `snapshot` (the snapshot at the row's seq). */
export function headOfRow(row: RunRow, snapshot: Snapshot): RunHead {
  return {
    seq: row.seq,
    snapshot,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error,
    output: row.output,
    cancelRequestedAt: row.cancel_requested_at,
  };
}

/**
 * Folds an append batch's stored events into the run's head: seq, snapshot,
 * start, cancel request and end. One SnapshotFold for the batch, so an
 * event's cost does not grow with the calls in flight. The head it starts
 * from is not changed.
 */
export class HeadFold {
  readonly head: RunHead;
  private readonly fold: SnapshotFold;

  constructor(from: RunHead) {
    const { seq, snapshot, status, startedAt, finishedAt, error, output, cancelRequestedAt } = from;
    this.head = { seq, snapshot, status, startedAt, finishedAt, error, output, cancelRequestedAt };
    this.fold = new SnapshotFold(snapshot);
  }

  apply(stored: RunEvent): void {
    const head = this.head;
    head.seq = stored.seq;
    head.snapshot = this.fold.apply(stored);
    if (stored.type === 'run.started' && head.startedAt === null) head.startedAt = stored.ts;
    if (stored.type === 'run.cancel_requested' && head.cancelRequestedAt === null) head.cancelRequestedAt = stored.ts;
    const end = head.snapshot.terminal;
    if (end !== null && isTerminalType(stored.type)) {
      head.status = end.status;
      head.finishedAt = stored.ts;
      head.error = json(end.error ?? undefined);
      head.output = json(end.output ?? undefined);
    }
  }
}

/** When a run's lease runs out and when its owner last showed it was alive. */
export interface LeaseTimes {
  leaseExpiresAt: number | null;
  heartbeatAt: number | null;
}

/**
 * A new run's lease: the producer that creates it holds it from the start;
 * a queued run (executed by a worker) has none until a worker claims it.
 */
export function leaseOfNewRun(execute: boolean, now: number, ttlMs: number): LeaseTimes {
  return execute ? { leaseExpiresAt: null, heartbeatAt: null } : { leaseExpiresAt: now + ttlMs, heartbeatAt: now };
}

/**
 * The lease after an append at `now`: any append renews a running run's
 * lease (unless it asked not to, `renew` false); an ended run holds none.
 */
export function leaseAfterAppend(status: RunStatus, held: LeaseTimes, ttlMs: number, now: number, renew: boolean): LeaseTimes {
  if (status !== 'running') return { leaseExpiresAt: null, heartbeatAt: held.heartbeatAt };
  // A new object even when unchanged: `held` may be a caller's whole run state, which it spreads the answer over.
  return renew ? { leaseExpiresAt: now + ttlMs, heartbeatAt: now } : { leaseExpiresAt: held.leaseExpiresAt, heartbeatAt: held.heartbeatAt };
}

/**
 * The Run of a row and its snapshot at the row's seq (the adapter knows it:
 * see RunHeads). Adapters pass the input from their ParsedInputs.
 */
export function rowToRun(row: RunRow, snapshot: Snapshot, input: unknown = parse(row.input, null)): Run {
  return {
    id: row.id,
    name: row.name,
    parentId: row.parent_id,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    input,
    labels: typeof row.labels === 'string' ? parse(row.labels, {}) : row.labels,
    error: parse<RunError | null>(row.error, null),
    output: parse(row.output, null),
    seq: row.seq,
    snapshot,
    execute: flag(row.execute),
    owner: parse<Owner | null>(row.owner, null),
    leaseTtlMs: row.lease_ttl_ms,
    leaseExpiresAt: row.lease_expires_at,
    heartbeatAt: row.heartbeat_at,
    cancelRequestedAt: row.cancel_requested_at,
    timeoutMs: row.timeout_ms,
    stallTimeoutMs: row.stall_timeout_ms,
    failOnStall: flag(row.fail_on_stall),
    retryOf: row.retry_of,
    attempt: row.attempt,
  };
}

/** The event's JSON text from its row, without parsing it (see EventText). */
export function rowToEventText(row: EventRow): EventText {
  return { seq: row.seq, type: row.type, json: eventJson(row.run_id, row.body) };
}

export function rowToEvent(row: EventRow): RunEvent {
  return JSON.parse(eventJson(row.run_id, row.body)) as RunEvent;
}

/** An artifact record's row (the content is in the blob store, addressed by sha256). */
export interface ArtifactRow {
  run_id: string;
  ordinal: number;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  created_at: number;
  metadata: string | null;
}

export function toArtifact(row: ArtifactRow): Artifact {
  return {
    runId: row.run_id,
    ordinal: row.ordinal,
    name: row.name,
    contentType: row.content_type,
    size: Number(row.size),
    sha256: row.sha256,
    createdAt: Number(row.created_at),
    metadata: parse(row.metadata, null),
  };
}

export function artifactRow(a: Artifact): ArtifactRow {
  return {
    run_id: a.runId,
    ordinal: a.ordinal,
    name: a.name,
    content_type: a.contentType,
    size: a.size,
    sha256: a.sha256,
    created_at: a.createdAt,
    metadata: json(a.metadata ?? undefined),
  };
}

/**
 * The runs row of an imported run, column by column: as exported, with the
 * seq of its last event and no lease (booleans as booleans; SQLite stores
 * them as 0/1); and its checkpoint, the snapshot folded from its events
 * (null for a run without events).
 */
export function importedRun(run: Run, events: RunEvent[]) {
  const snapshot = foldEvents(events);
  const seq = events.at(-1)?.seq ?? 0;
  const columns = {
    id: run.id,
    name: run.name,
    parent_id: run.parentId,
    status: run.status,
    created_at: run.createdAt,
    started_at: run.startedAt,
    finished_at: run.finishedAt,
    input: json(run.input ?? undefined),
    labels: JSON.stringify(run.labels ?? {}),
    error: json(run.error ?? undefined),
    output: json(run.output ?? undefined),
    seq,
    snapshot_seq: seq,
    execute: run.execute,
    owner: json(run.owner ?? undefined),
    owner_node: run.owner?.node ?? null,
    owner_kind: run.owner?.kind ?? null,
    lease_ttl_ms: run.leaseTtlMs,
    lease_expires_at: null,
    heartbeat_at: run.heartbeatAt,
    cancel_requested_at: run.cancelRequestedAt,
    timeout_ms: run.timeoutMs,
    stall_timeout_ms: run.stallTimeoutMs,
    fail_on_stall: run.failOnStall,
    last_progress_at: snapshot.lastProgressAt,
    stalled_at: snapshot.stalled?.at ?? null,
    retry_of: run.retryOf,
    attempt: run.attempt,
  };
  return { columns, checkpoint: seq > 0 ? { seq, snapshot: JSON.stringify(snapshot) } : null };
}

/** One row of a count of runs by status (both adapters' countRuns). */
export interface StatusCountRow {
  status: RunStatus;
  n: number;
}

/** The counts' rows as RunCounts: every status present, 0 when none. */
export function runCountsOf(rows: readonly StatusCountRow[], stalled: number): RunCounts {
  const byStatus = Object.fromEntries(RunStatus.options.map((s) => [s, 0])) as Record<RunStatus, number>;
  let total = 0;
  for (const row of rows) {
    byStatus[row.status] = Number(row.n);
    total += Number(row.n);
  }
  return { total, byStatus, stalled };
}

/** A node_handlers row (the executor registry), as both adapters read it. */
export interface NodeHandlersRow {
  node: string;
  handlers: string;
  heard_at: string | number;
  live_until: string | number;
  incarnation: string | null;
  url: string | null;
  slots: string | null;
}

export function nodeHandlersOf(r: NodeHandlersRow): NodeHandlers {
  return {
    node: r.node,
    handlers: JSON.parse(r.handlers) as string[],
    heardAt: Number(r.heard_at),
    liveUntil: Number(r.live_until),
    incarnation: r.incarnation,
    url: r.url,
    slots: r.slots === null ? null : (JSON.parse(r.slots) as NodeSlots),
  };
}

/**
 * The pairs of a label filter (parseLabelFilter's), each once: the same
 * pair given again asks nothing more, and the stores match the pairs in
 * one pass over a run's labels, counting distinct matches.
 */
export function distinctLabelPairs(pairs: ReadonlyArray<[string, string]>): Array<[string, string]> {
  const seen = new Set<string>();
  return pairs.filter((pair) => {
    const key = JSON.stringify(pair);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Whether two pairs name the same key with different values: no run has both, so the filter matches nothing. */
export function labelPairsConflict(pairs: ReadonlyArray<[string, string]>): boolean {
  return new Set(pairs.map(([key]) => key)).size < pairs.length;
}

/** The bytes of a run row that a list page is bounded by (ReadPageOptions): its input, output and error, the parts that can be large. */
export function runRowBytes(row: { input: string | null; output: string | null; error: string | null }): number {
  return (row.input === null ? 0 : Buffer.byteLength(row.input)) + (row.output === null ? 0 : Buffer.byteLength(row.output)) + (row.error === null ? 0 : Buffer.byteLength(row.error));
}

/**
 * The columns of a run row without its input (which reads as null): what
 * the reaper's queries (findDue) select. It never looks at an input, and a
 * sweep takes up to 200 runs of each kind: with 1 MiB inputs, every sweep
 * (each 2 s) read and parsed hundreds of MB, and a restarted server
 * holding abandoned runs climbed to 900 MB before it answered anything.
 */
export const RUN_COLUMNS_WITHOUT_INPUT = `id, name, parent_id, status, created_at, started_at, finished_at, NULL AS input, labels,
  error, output, seq, snapshot_seq, execute, owner, owner_node, owner_kind, lease_ttl_ms, lease_expires_at, heartbeat_at,
  cancel_requested_at, timeout_ms, stall_timeout_ms, fail_on_stall, last_progress_at, stalled_at, retry_of, attempt`;
