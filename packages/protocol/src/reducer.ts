import {
  type RunError,
  isKnownEventType,
  isTerminalType,
  type KnownEventType,
  type TypedEvent,
} from './events.js';
import { dataRecord, ownValue, withKey, withoutKey } from './data-keys.js';
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
  // A run's log ends at its terminal event; anything after is not part of it.
  if (state.terminal !== null || event.seq <= state.seq) return state;
  if (!isKnownEventType(event.type)) return { ...state, seq: event.seq, lastEventAt: event.ts };
  const e = event as TypedEvent;
  // One copy per event: the rules return only the fields they change. This
  // fold runs inside every append transaction, so its cost is the store's.
  const next: Snapshot = { ...state, ...reduceKnown(state, e), seq: e.seq, lastEventAt: e.ts };
  if (PROGRESS_TYPES.has(e.type)) {
    next.lastProgressAt = e.ts;
    next.stalled = null;
  }
  return next;
}

export function foldEvents(
  events: Iterable<ReducibleEvent>,
  from: Snapshot = initialSnapshot(),
): Snapshot {
  let state = from;
  for (const event of events) state = applyEvent(state, event);
  return state;
}

/** The fields of the snapshot that event `e` changes. */
function reduceKnown(s: Snapshot, e: TypedEvent): Partial<Snapshot> {
  switch (e.type) {
    case 'run.started':
      return { startedAt: s.startedAt ?? e.ts };

    case 'phase':
      return reducePhase(s, e.data, e.ts, e.seq);

    case 'call.started': {
      const prev = ownValue(s.current, e.data.callId);
      if (!hasRoom(s.current, e.data.callId, SNAPSHOT_LIMITS.inFlight)) return {};
      return {
        current: withKey(s.current, e.data.callId, {
          callId: e.data.callId,
          label: e.data.label,
          startedAt: e.ts,
          attempt: prev?.attempt ?? 1,
        }),
      };
    }

    case 'call.succeeded':
      // Any success clears the last error: an error that was retried away or
      // followed by successes must not stay on screen (field note 8).
      return {
        counters: { ...s.counters, ok: s.counters.ok + 1 },
        current: withoutKey(s.current, e.data.callId),
        lastError: null,
      };

    case 'call.failed': {
      const lastError = { message: e.data.error, callId: e.data.callId, seq: e.seq, ts: e.ts };
      if (e.data.willRetry) return { lastError };
      return {
        counters: { ...s.counters, failed: s.counters.failed + 1 },
        current: withoutKey(s.current, e.data.callId),
        lastError,
      };
    }

    case 'call.retried': {
      const prev = ownValue(s.current, e.data.callId);
      return {
        counters: { ...s.counters, retries: s.counters.retries + 1 },
        current: prev ? withKey(s.current, e.data.callId, { ...prev, attempt: e.data.attempt }) : s.current,
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
      if (!hasRoom(s.metrics, name, SNAPSHOT_LIMITS.names)) return {};
      const point: [number, number] = [step ?? e.seq, value];
      const recent = prev ? appendBounded(prev.recent, point, SNAPSHOT_LIMITS.metricPoints) : [point];
      return {
        metrics: withKey(s.metrics, name, {
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
      if (!hasRoom(s.counters.named, name, SNAPSHOT_LIMITS.names)) return {};
      return {
        counters: {
          ...s.counters,
          named: withKey(s.counters.named, name, (ownValue(s.counters.named, name) ?? 0) + delta),
        },
      };
    }

    case 'meta': {
      const meta = dataRecord(s.meta);
      for (const key of Object.keys(e.data)) {
        const value = e.data[key];
        if (hasRoom(meta, key, SNAPSHOT_LIMITS.names)) meta[key] = value;
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
      return { cancelRequested: true };

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
        { kind: 'cancelled', message: e.data.reason ?? 'cancelled' },
        undefined,
      );

    default: {
      const unhandled: never = e;
      return unhandled;
    }
  }
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
  // running phase; keeping them would show spinners on a finished run.
  const phases = s.phases.map((p) =>
    p.status === 'started'
      ? { ...p, status: status === 'succeeded' ? ('completed' as const) : ('failed' as const), endedAt: ts, durationMs: Math.max(0, ts - p.startedAt) }
      : p,
  );
  return {
    current: dataRecord(),
    phase: null,
    phases,
    stalled: null,
    terminal: { status, at: ts, seq, error, output: output ?? null },
  };
}

/** A record may take `key` if it has it already or holds fewer than `limit` keys. */
function hasRoom(record: Record<string, unknown>, key: string, limit: number): boolean {
  return Object.hasOwn(record, key) || Object.keys(record).length < limit;
}

function appendBounded<T>(list: T[], item: T, limit: number): T[] {
  const next = list.length >= limit ? list.slice(list.length - limit + 1) : list.slice();
  next.push(item);
  return next;
}

export { isTerminalType };
