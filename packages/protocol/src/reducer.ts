import {
  type RunError,
  isKnownEventType,
  isTerminalType,
  type KnownEventType,
  type TypedEvent,
} from './events.js';
import { dataRecord, ownValue } from './data-keys.js';
import { SNAPSHOT_LIMITS, initialSnapshot, type ArtifactRecord, type PhaseRecord, type Snapshot } from './snapshot.js';

/**
 * THE reducer: snapshot = events.reduce(applyEvent, initialSnapshot()).
 * The server persists its result with every append and clients run the same
 * function over the events they receive, so both always agree.
 *
 * Pure and total: no clock, no randomness, no I/O; every known event type is
 * handled (the `never` check below fails to compile otherwise); unknown and
 * `x.` events only advance `seq`. The input state is never mutated.
 *
 * Names chosen by producers (metric, counter, meta key, call id) are data:
 * read with own-key checks and written into null-prototype records
 * (data-keys.ts), so "constructor" or "__proto__" is a name like any other.
 */

/** Events that show a run is moving; `log`, `meta` and run bookkeeping do not. */
export const PROGRESS_TYPES: ReadonlySet<string> = new Set<KnownEventType>([
  'run.started',
  'phase',
  'call.started',
  'call.succeeded',
  'call.failed',
  'call.retried',
  'progress',
  'metric',
  'counter',
  'artifact',
]);

export interface ReducibleEvent {
  seq: number;
  ts: number;
  type: string;
  data: unknown;
}

export function applyEvent(state: Snapshot, event: ReducibleEvent): Snapshot {
  return new SnapshotFold(state).apply(event);
}

export function foldEvents(
  events: Iterable<ReducibleEvent>,
  from: Snapshot = initialSnapshot(),
): Snapshot {
  const fold = new SnapshotFold(from);
  for (const event of events) fold.apply(event);
  return fold.snapshot;
}

/**
 * foldEvents one event at a time, for a caller that looks at each result (the
 * store's append, which folds every batch inside its write transaction).
 *
 * A fold copies each keyed record (in-flight calls, metrics, named counters,
 * meta) the first time an event changes it and changes its own copy after
 * that, so an event costs the same with 10 or 1,000 calls in flight. The
 * snapshot it starts from is never changed; the snapshots `apply` returns
 * share the fold's records, so keep only the last one.
 */
export class SnapshotFold {
  private readonly records = new FoldRecords();

  constructor(private state: Snapshot) {}

  get snapshot(): Snapshot {
    return this.state;
  }

  apply(event: ReducibleEvent): Snapshot {
    const state = this.state;
    // A run's log ends at its terminal event; anything after is not part of it.
    if (state.terminal !== null || event.seq <= state.seq) return state;
    if (!isKnownEventType(event.type)) {
      this.state = { ...state, seq: event.seq, lastEventAt: event.ts };
      return this.state;
    }
    const e = event as TypedEvent;
    // The rules return only the fields they change.
    const next: Snapshot = { ...state, ...reduceKnown(state, e, this.records), seq: e.seq, lastEventAt: e.ts };
    if (PROGRESS_TYPES.has(e.type)) {
      next.lastProgressAt = e.ts;
      next.stalled = null;
    }
    this.state = next;
    return next;
  }
}

/**
 * The keyed records of one fold: which ones it made itself (and so may
 * change) and how many keys each holds, so a bound check is not a walk over
 * every key. Sizes are known only within the fold: nothing outside it may
 * change a record it owns while it runs.
 */
class FoldRecords {
  private readonly owned = new Set<object>();
  private readonly sizes = new Map<object, number>();

  /** `record` may take `key`: it has it already or holds fewer than `limit` keys. */
  hasRoom(record: Record<string, unknown>, key: string, limit: number): boolean {
    return Object.hasOwn(record, key) || this.sizeOf(record) < limit;
  }

  /** How many keys `record` holds. */
  size(record: object): number {
    return this.sizeOf(record);
  }

  /** `record` with `key` set: the record itself when this fold made it, else a copy it now owns. */
  set<T>(record: Record<string, T>, key: string, value: T): Record<string, T> {
    const had = Object.hasOwn(record, key);
    const target = this.writable(record);
    target[key] = value;
    if (!had) this.sizes.set(target, this.sizeOf(target) + 1);
    return target;
  }

  /** `record` without `key` (the same object when it has no such key). */
  delete<T>(record: Record<string, T>, key: string): Record<string, T> {
    if (!Object.hasOwn(record, key)) return record;
    const target = this.writable(record);
    delete target[key];
    this.sizes.set(target, this.sizeOf(target) - 1);
    return target;
  }

  private sizeOf(record: object): number {
    let size = this.sizes.get(record);
    if (size === undefined) {
      size = Object.keys(record).length;
      this.sizes.set(record, size);
    }
    return size;
  }

  private writable<T>(record: Record<string, T>): Record<string, T> {
    if (this.owned.has(record)) return record;
    // A null-prototype copy (data-keys.ts): "__proto__" is stored as a key.
    // Its size comes from the same walk over the keys (with 1,000 calls in
    // flight a second Object.keys was a third of the copy's cost).
    const copy = dataRecord<T>();
    const keys = Object.keys(record);
    for (const key of keys) copy[key] = record[key]!;
    this.sizes.set(copy, keys.length);
    this.owned.add(copy);
    return copy;
  }
}

/** The fields of the snapshot that event `e` changes. */
function reduceKnown(s: Snapshot, e: TypedEvent, records: FoldRecords): Partial<Snapshot> {
  switch (e.type) {
    case 'run.started':
      return { startedAt: s.startedAt ?? e.ts };

    case 'phase':
      return reducePhase(s, e.data, e.ts, e.seq);

    case 'call.started': {
      const prev = ownValue(s.current, e.data.callId);
      const unlisted = unlistedCalls(s, records);
      // Full: the call is counted, not listed, so the count of calls in
      // flight stays the truth however many are open. Not listed, it is not
      // named either: a second start of the same call (a producer's own
      // duplicate; a redelivered event has a seq already folded and never
      // gets here) cannot be told from a new call and is counted again.
      if (!records.hasRoom(s.current, e.data.callId, SNAPSHOT_LIMITS.inFlight)) {
        return { counters: countInFlight(s.counters, s.current, unlisted + 1, records) };
      }
      const current = records.set(s.current, e.data.callId, {
        callId: e.data.callId,
        label: e.data.label,
        startedAt: e.ts,
        attempt: prev?.attempt ?? 1,
      });
      // A listed call started again (a duplicate) is counted once.
      return prev ? { current } : { current, counters: countInFlight(s.counters, current, unlisted, records) };
    }

    case 'call.succeeded':
      // Any success clears the last error: an error that was retried away or
      // followed by successes must not stay on screen (field note 8).
      return {
        ...endCall(s, { ...s.counters, ok: s.counters.ok + 1 }, e.data.callId, records),
        lastError: null,
      };

    case 'call.failed': {
      const lastError = { message: e.data.error, callId: e.data.callId, seq: e.seq, ts: e.ts };
      if (e.data.willRetry) return { lastError };
      return {
        ...endCall(s, { ...s.counters, failed: s.counters.failed + 1 }, e.data.callId, records),
        lastError,
      };
    }

    case 'call.retried': {
      const prev = ownValue(s.current, e.data.callId);
      return {
        counters: { ...s.counters, retries: s.counters.retries + 1 },
        current: prev ? records.set(s.current, e.data.callId, { ...prev, attempt: e.data.attempt }) : s.current,
      };
    }

    case 'progress': {
      const total = e.data.total ?? s.progress?.total ?? null;
      const done = e.data.done;
      return {
        progress: {
          done,
          total,
          percent: total !== null && total > 0 ? Math.min(100, (done / total) * 100) : null,
          message: e.data.message ?? s.progress?.message ?? null,
          updatedAt: e.ts,
        },
      };
    }

    case 'metric': {
      const { name, value } = e.data;
      const step = e.data.step ?? null;
      const prev = ownValue(s.metrics, name);
      if (!records.hasRoom(s.metrics, name, SNAPSHOT_LIMITS.names)) return {};
      const point: [number, number] = [step ?? e.seq, value];
      const recent = prev ? appendBounded(prev.recent, point, SNAPSHOT_LIMITS.metricPoints) : [point];
      return {
        metrics: records.set(s.metrics, name, {
          last: value,
          min: prev ? Math.min(prev.min, value) : value,
          max: prev ? Math.max(prev.max, value) : value,
          count: (prev?.count ?? 0) + 1,
          step,
          ts: e.ts,
          recent,
        }),
      };
    }

    case 'counter': {
      const { name, delta } = e.data;
      if (!records.hasRoom(s.counters.named, name, SNAPSHOT_LIMITS.names)) return {};
      return {
        counters: {
          ...s.counters,
          named: records.set(s.counters.named, name, saturatingSum(ownValue(s.counters.named, name) ?? 0, delta)),
        },
      };
    }

    case 'meta': {
      let meta = s.meta;
      for (const key of Object.keys(e.data)) {
        if (records.hasRoom(meta, key, SNAPSHOT_LIMITS.names)) meta = records.set(meta, key, e.data[key]);
      }
      return { meta };
    }

    case 'log':
      return {
        logs: appendBounded(
          s.logs,
          { seq: e.seq, ts: e.ts, level: e.data.level, message: e.data.message },
          SNAPSHOT_LIMITS.logs,
        ),
      };

    case 'artifact': {
      const record: ArtifactRecord = {
        seq: e.seq,
        ts: e.ts,
        name: e.data.name,
        uri: e.data.uri ?? null,
        contentType: e.data.contentType ?? null,
        size: e.data.size ?? null,
        ordinal: e.data.ordinal ?? null,
        sha256: e.data.sha256 ?? null,
        metadata: e.data.metadata ?? null,
      };
      // A stored artifact replaced under its name keeps its ordinal and its place.
      const at = record.ordinal === null ? -1 : s.artifacts.findIndex((a) => a.ordinal === record.ordinal);
      if (at >= 0) return { artifacts: s.artifacts.map((a, i) => (i === at ? record : a)) };
      return { artifacts: appendBounded(s.artifacts, record, SNAPSHOT_LIMITS.artifacts) };
    }

    case 'run.cancel_requested':
      return { cancelRequested: true, cancelReason: e.data.reason ?? null };

    case 'run.stalled':
      return {
        stalled: {
          at: e.ts,
          stallTimeoutMs: e.data.stallTimeoutMs,
          lastProgressAt: e.data.lastProgressAt,
        },
      };

    case 'run.succeeded':
      return terminal(s, e.seq, e.ts, 'succeeded', null, e.data.output);
    case 'run.failed':
      return {
        ...terminal(s, e.seq, e.ts, 'failed', e.data.error, e.data.output),
        lastError: { message: e.data.error.message, callId: null, seq: e.seq, ts: e.ts },
      };
    case 'run.cancelled':
      return terminal(
        s,
        e.seq,
        e.ts,
        'cancelled',
        // An owner that stops on request without a reason of its own ends
        // with the requester's: `runtrail cancel --reason` is what it says.
        // (A snapshot checkpointed before cancelReason existed has none.)
        { kind: 'cancelled', message: e.data.reason ?? s.cancelReason ?? 'cancelled' },
        undefined,
      );

    default: {
      const unhandled: never = e;
      return unhandled;
    }
  }
}

/**
 * Calls in flight that `current` does not list: started while it was full
 * (SNAPSHOT_LIMITS.inFlight). Kept as `counters.inFlight`, every call in
 * flight, only while there are some, so a run that never had that many has
 * the snapshot it always had, and one stored before the field existed reads
 * as having none.
 */
function unlistedCalls(s: Snapshot, records: FoldRecords): number {
  const all = s.counters.inFlight;
  return all === undefined ? 0 : Math.max(0, all - records.size(s.current));
}

function countInFlight(counters: Snapshot['counters'], current: Snapshot['current'], unlisted: number, records: FoldRecords): Snapshot['counters'] {
  if (unlisted > 0) return { ...counters, inFlight: records.size(current) + unlisted };
  if (counters.inFlight === undefined) return counters;
  const next = { ...counters };
  delete next.inFlight;
  return next;
}

/**
 * The end of call `callId` (counted in `counters` already): off the list if
 * listed. One that is not listed is one of the unlisted calls if there are
 * any (which one cannot be told: they are counted, not named); with none,
 * it is the end of a call already ended, or never started, and nothing
 * was in flight for it.
 */
function endCall(s: Snapshot, counters: Snapshot['counters'], callId: string, records: FoldRecords): Pick<Snapshot, 'counters' | 'current'> {
  const unlisted = unlistedCalls(s, records);
  if (Object.hasOwn(s.current, callId)) {
    const current = records.delete(s.current, callId);
    return { current, counters: countInFlight(counters, current, unlisted, records) };
  }
  return { current: s.current, counters: countInFlight(counters, s.current, Math.max(0, unlisted - 1), records) };
}

function reducePhase(
  s: Snapshot,
  data: { name: string; status: 'started' | 'completed' | 'failed'; timeoutMs?: number | undefined },
  ts: number,
  seq: number,
): Partial<Snapshot> {
  if (data.status === 'started') {
    const record: PhaseRecord = {
      name: data.name,
      status: 'started',
      startedAt: ts,
      endedAt: null,
      durationMs: null,
      timeoutMs: data.timeoutMs ?? null,
    };
    return { phase: data.name, phases: appendBounded(s.phases, record, SNAPSHOT_LIMITS.phases) };
  }
  // Close the most recent open phase of that name; a phase that ends without
  // having been started is recorded as an instant one rather than dropped.
  let index = -1;
  for (let i = s.phases.length - 1; i >= 0; i--) {
    const p = s.phases[i]!;
    if (p.name === data.name && p.status === 'started') {
      index = i;
      break;
    }
  }
  const phases = s.phases.slice();
  const open = index >= 0 ? phases[index]! : null;
  const startedAt = open?.startedAt ?? ts;
  const closed: PhaseRecord = {
    name: data.name,
    status: data.status,
    startedAt,
    endedAt: ts,
    durationMs: Math.max(0, ts - startedAt),
    timeoutMs: open?.timeoutMs ?? data.timeoutMs ?? null,
  };
  if (index >= 0) phases[index] = closed;
  else phases.push(closed);
  const kept = phases.length > SNAPSHOT_LIMITS.phases ? phases.slice(-SNAPSHOT_LIMITS.phases) : phases;
  const failed = data.status === 'failed';
  return {
    // The running phase is the latest one still open: when a nested phase (or
    // a second run of the same name) ends, the one around it is still running.
    phase: kept.findLast((p) => p.status === 'started')?.name ?? null,
    phases: kept,
    lastError: failed
      ? { message: `phase ${data.name} failed`, callId: null, seq, ts }
      : s.lastError,
  };
}

function terminal(
  s: Snapshot,
  seq: number,
  ts: number,
  status: 'succeeded' | 'failed' | 'cancelled',
  error: RunError | null,
  output: unknown,
): Partial<Snapshot> {
  // Nothing is in flight once the run has ended, and a closed run has no
  // running phase; keeping them would show spinners on a finished run. The
  // calls that were in flight never finish: they are counted as unfinished,
  // so OK + Failed + Unfinished is every call started (as the timeline draws
  // them), not a count that lost them: those `current` did not list too.
  // Only a run that had some gets the field, so a snapshot is unchanged where
  // nothing was lost.
  const open = s.counters.inFlight ?? Object.keys(s.current).length;
  const counters = open > 0 ? { ...s.counters, unfinished: open } : { ...s.counters };
  delete counters.inFlight;
  const phases = s.phases.map((p) =>
    p.status === 'started'
      ? { ...p, status: status === 'succeeded' ? ('completed' as const) : ('failed' as const), endedAt: ts, durationMs: Math.max(0, ts - p.startedAt) }
      : p,
  );
  return {
    counters,
    current: dataRecord(),
    phase: null,
    phases,
    stalled: null,
    terminal: { status, at: ts, seq, error, output: output ?? null },
  };
}

function appendBounded<T>(list: T[], item: T, limit: number): T[] {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}

export { isTerminalType };

/**
 * a + b, held at ±Number.MAX_VALUE instead of overflowing: every delta is
 * finite, but two of 1e308 sum to Infinity, which JSON writes as null and
 * would break the snapshot for every reader. Saturating keeps the fold
 * total over any log (an old one, an import) without a clock or a throw.
 */
export function saturatingSum(a: number, b: number): number {
  const sum = a + b;
  if (Number.isFinite(sum)) return sum;
  if (Number.isNaN(sum)) return a;
  return sum > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE;
}
