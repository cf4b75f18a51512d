import { describe, expect, it } from 'vitest';
import { EventInput, MAX_JSON_DEPTH, withinJsonDepth } from './events.js';
import { RuntrailError, isErrorCode } from './errors.js';
import { PROGRESS_TYPES, SnapshotFold, applyEvent, foldEvents, type ReducibleEvent } from './reducer.js';
import { buildPath, routes } from './routes.js';
import { CreateRunBody, FinishRunBody } from './run.js';
import { SNAPSHOT_LIMITS, SnapshotSchema, callsInFlight, hasCalls, initialSnapshot, unfinishedCalls, type Snapshot } from './snapshot.js';
import { validateEventData } from './validate.js';

/** A run's log as the store would number it: seq 1, 2, 3 … and ts = 1000 + 10·seq unless given. */
function log(...events: Array<[type: string, data?: unknown, ts?: number]>): ReducibleEvent[] {
  return events.map(([type, data, ts], i) => ({ seq: i + 1, ts: ts ?? 1000 + 10 * (i + 1), type, data: data ?? {} }));
}

const fold = (...events: Array<[type: string, data?: unknown, ts?: number]>): Snapshot => foldEvents(log(...events));

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** A realistic log touching every rule, used by the purity and determinism tests. */
function everyKindOfEvent(): ReducibleEvent[] {
  return log(
    ['run.started'],
    ['meta', { model: 'gpt-4', docs: 3 }],
    ['phase', { name: 'generate', status: 'started', timeoutMs: 60_000 }],
    ['call.started', { callId: 'c1', label: 'Generating doc_1 with gpt-4' }],
    ['call.failed', { callId: 'c1', error: 'rate limited', willRetry: true }],
    ['call.retried', { callId: 'c1', attempt: 2 }],
    ['call.succeeded', { callId: 'c1', durationMs: 120 }],
    ['progress', { done: 1, total: 3, message: 'generated 1' }],
    ['metric', { name: 'latency_ms', value: 120, step: 1 }],
    ['counter', { name: 'tokens', delta: 512 }],
    ['log', { level: 'info', message: 'generated doc_1' }],
    ['artifact', { name: 'doc_1.json', uri: 'file:///tmp/doc_1.json', contentType: 'application/json', size: 42 }],
    ['run.stalled', { stallTimeoutMs: 5000, lastProgressAt: 1120 }],
    ['x.custom', { anything: [1, 2, 3] }],
    ['phase', { name: 'generate', status: 'completed' }],
    ['phase', { name: 'evaluate', status: 'started' }],
    ['call.started', { callId: 'c2', label: 'Evaluating doc_1 with gpt-4' }],
    ['call.failed', { callId: 'c2', error: 'timeout', willRetry: false }],
    ['run.cancel_requested', { reason: 'user asked' }],
    ['run.failed', { error: { kind: 'error', message: 'evaluation failed' }, output: { partial: true } }],
  );
}

describe('reducer: call counters', () => {
  it('counts each succeeded call as ok and each final failure as failed', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.succeeded', { callId: 'a' }],
      ['call.started', { callId: 'b', label: 'B' }],
      ['call.succeeded', { callId: 'b' }],
      ['call.started', { callId: 'c', label: 'C' }],
      ['call.failed', { callId: 'c', error: 'boom', willRetry: false }],
    );
    expect(s.counters).toEqual({ ok: 2, failed: 1, retries: 0, named: {} });
  });

  it('does not count a failure that will be retried as failed; the retry is counted as a retry', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.failed', { callId: 'a', error: '429', willRetry: true }],
      ['call.retried', { callId: 'a', attempt: 2 }],
      ['call.failed', { callId: 'a', error: '429', willRetry: true }],
      ['call.retried', { callId: 'a', attempt: 3 }],
      ['call.succeeded', { callId: 'a' }],
    );
    expect(s.counters).toEqual({ ok: 1, failed: 0, retries: 2, named: {} });
  });

  it('counts a call that fails after retrying as one failure and its retries', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.failed', { callId: 'a', error: '500', willRetry: true }],
      ['call.retried', { callId: 'a', attempt: 2 }],
      ['call.failed', { callId: 'a', error: '500', willRetry: false }],
    );
    expect(s.counters).toEqual({ ok: 0, failed: 1, retries: 1, named: {} });
  });

  it('adds named counter deltas, including negative ones, per name', () => {
    const s = fold(
      ['counter', { name: 'tokens', delta: 100 }],
      ['counter', { name: 'tokens', delta: 50 }],
      ['counter', { name: 'cache_hits', delta: 1 }],
      ['counter', { name: 'tokens', delta: -30 }],
    );
    expect(s.counters.named).toEqual({ tokens: 120, cache_hits: 1 });
    expect(s.counters.ok).toBe(0);
  });

  it('holds a counter whose sum would overflow at ±Number.MAX_VALUE, so the snapshot stays valid JSON', () => {
    const s = fold(
      ['counter', { name: 'up', delta: 1e308 }],
      ['counter', { name: 'up', delta: 1e308 }],
      ['counter', { name: 'up', delta: 1 }],
      ['counter', { name: 'down', delta: -1e308 }],
      ['counter', { name: 'down', delta: -1e308 }],
    );
    expect(s.counters.named).toEqual({ up: Number.MAX_VALUE, down: -Number.MAX_VALUE });
    expect(SnapshotSchema.parse(JSON.parse(JSON.stringify(s))).counters.named).toEqual({ up: Number.MAX_VALUE, down: -Number.MAX_VALUE });
    // Coming back down from the bound is ordinary arithmetic again.
    expect(applyEvent(s, { seq: 6, ts: 2000, type: 'counter', data: { name: 'up', delta: -Number.MAX_VALUE } }).counters.named.up).toBe(0);
  });
});

describe('reducer: in-flight calls (current)', () => {
  it('lists started calls with their labels, start time and attempt 1', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'Evaluating doc_123 with gpt-4' }, 5000],
      ['call.started', { callId: 'b', label: 'Evaluating doc_124 with gpt-4' }, 5001],
    );
    expect(s.current).toEqual({
      a: { callId: 'a', label: 'Evaluating doc_123 with gpt-4', startedAt: 5000, attempt: 1 },
      b: { callId: 'b', label: 'Evaluating doc_124 with gpt-4', startedAt: 5001, attempt: 1 },
    });
  });

  it('keeps a call that will be retried in flight and shows its attempt number', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.failed', { callId: 'a', error: '429', willRetry: true }],
      ['call.retried', { callId: 'a', attempt: 2 }],
    );
    expect(s.current.a).toMatchObject({ label: 'A', attempt: 2 });
  });

  it('keeps the attempt number when a retried call is started again', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }, 1000],
      ['call.retried', { callId: 'a', attempt: 2 }],
      ['call.started', { callId: 'a', label: 'A (retry)' }, 3000],
    );
    expect(s.current.a).toEqual({ callId: 'a', label: 'A (retry)', startedAt: 3000, attempt: 2 });
  });

  it('removes a call when it succeeds or finally fails, and leaves the others', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.started', { callId: 'b', label: 'B' }],
      ['call.started', { callId: 'c', label: 'C' }],
      ['call.succeeded', { callId: 'a' }],
      ['call.failed', { callId: 'b', error: 'x', willRetry: false }],
    );
    expect(Object.keys(s.current)).toEqual(['c']);
  });

  it('counts a success of a call it never saw start without inventing an in-flight entry', () => {
    const s = fold(['call.succeeded', { callId: 'ghost' }], ['call.retried', { callId: 'ghost2', attempt: 2 }]);
    expect(s.current).toEqual({});
    expect(s.counters).toMatchObject({ ok: 1, retries: 1 });
  });
});

describe('reducer: every call in flight, past the ones current lists', () => {
  const n = SNAPSHOT_LIMITS.inFlight;
  const started = (id: string): [string, unknown] => ['call.started', { callId: id, label: `doc ${id}` }];
  const ended = (id: string, i: number): [string, unknown] =>
    i % 3 === 0 ? ['call.failed', { callId: id, error: 'no', willRetry: false }] : ['call.succeeded', { callId: id }];
  /** 0, 1, … count-1 in an order that is neither the one they started in nor its reverse. */
  const shuffled = (count: number) => Array.from({ length: count }, (_, i) => (i * 7919) % count);

  /**
   * 3,000 calls started; a listed one started again, a duplicate delivery,
   * a retried unlisted one; then ends out of order (unlisted ones backwards,
   * listed ones shuffled, a call started once room was made, an end of a
   * call already ended), and every call open at each point, by id.
   */
  function manyOpen(): { events: ReducibleEvent[]; open: number[] } {
    const events: Array<[string, unknown]> = [];
    const live = new Set<string>();
    const open: number[] = [];
    const push = (e: [string, unknown], change?: () => void) => {
      events.push(e);
      change?.();
      open.push(live.size);
    };
    for (let i = 0; i < 3 * n; i++) push(started(`c${i}`), () => live.add(`c${i}`));
    push(started('c5'));
    push(['call.failed', { callId: `c${2 * n + 500}`, error: '429', willRetry: true }]);
    push(['call.retried', { callId: `c${2 * n + 500}`, attempt: 2 }]);
    for (let i = 3 * n - 1; i >= 2 * n; i--) push(ended(`c${i}`, i), () => live.delete(`c${i}`));
    for (const i of shuffled(n / 2)) push(ended(`c${i}`, i), () => live.delete(`c${i}`));
    push(started('late'), () => live.add('late'));
    for (const i of shuffled(n)) push(ended(`c${n + i}`, i), () => live.delete(`c${n + i}`));
    push(ended('c0', 1));
    return { events: log(...events), open };
  }

  it('counts every call in flight, not only the 1,000 it lists, through duplicates, retries and ends out of order', () => {
    const { events, open } = manyOpen();
    const fold = new SnapshotFold(initialSnapshot());
    const counted = events.map((e) => callsInFlight(fold.apply(e)));
    expect(counted).toEqual(open);
    expect(counted[3 * n - 1]).toBe(3 * n);
    const s = fold.snapshot;
    // Counted as ended as before: each end once, the end of a call already ended too.
    expect(s.counters.ok + s.counters.failed).toBe(2.5 * n + 1);
    expect(s.counters.retries).toBe(1);
    // Every unlisted call has ended: the field is gone, and current lists them all.
    expect(Object.keys(s.current)).toHaveLength(n / 2 + 1);
    expect(s.counters).not.toHaveProperty('inFlight');
    // A duplicate delivery (the same seq again) changes nothing.
    expect(foldEvents([...events.slice(0, 3 * n), events[3 * n - 1]!, ...events.slice(3 * n)])).toEqual(s);
  });

  it('while current is full, says how many are in flight in counters.inFlight, valid by the schema', () => {
    const { events } = manyOpen();
    const s = foldEvents(events.slice(0, 3 * n));
    expect(Object.keys(s.current)).toHaveLength(n);
    expect(s.counters.inFlight).toBe(3 * n);
    expect(SnapshotSchema.parse(JSON.parse(JSON.stringify(s))).counters.inFlight).toBe(3 * n);
    // A run that never had more open than it lists has the snapshot it always had.
    expect(fold(started('a'), started('b')).counters).toEqual({ ok: 0, failed: 0, retries: 0, named: {} });
    expect(callsInFlight(fold(started('a'), started('b')))).toBe(2);
  });

  it('folding in pieces from a stored snapshot equals folding the whole log at once, with more than 1,000 open', () => {
    const { events } = manyOpen();
    const whole = foldEvents(events);
    // Every 97th event, and each one around the first left unlisted and where the ends begin.
    const cuts = [...Array.from({ length: Math.ceil(events.length / 97) }, (_, i) => i * 97), n - 1, n, n + 1, 3 * n - 1, 3 * n, 3 * n + 1, 3 * n + 3, 3 * n + 4, events.length];
    for (const cut of cuts) {
      const stored = JSON.parse(JSON.stringify(foldEvents(events.slice(0, cut)))) as Snapshot;
      const rest = foldEvents(events.slice(cut), stored);
      expect(rest, `cut at ${cut}`).toEqual(whole);
    }
    let stepped = initialSnapshot();
    for (const e of events.slice(0, 3 * n + 20)) stepped = applyEvent(stepped, e);
    expect(stepped).toEqual(foldEvents(events.slice(0, 3 * n + 20)));
  });

  it('counts the calls a run left in flight as unfinished, the unlisted ones too', () => {
    const { events } = manyOpen();
    const s = foldEvents([...events.slice(0, 3 * n), { seq: 3 * n + 1, ts: 99_999, type: 'run.failed', data: { error: { kind: 'orphaned', message: 'gone' } } }]);
    expect(s.counters.unfinished).toBe(3 * n);
    expect(s.counters).not.toHaveProperty('inFlight');
    expect(callsInFlight(s)).toBe(0);
  });

  it('reads a snapshot stored before it counted calls in flight as its listed ones, and counts on from there', () => {
    const { events } = manyOpen();
    const stored = JSON.parse(JSON.stringify(foldEvents(events.slice(0, n)))) as Snapshot;
    expect(stored.counters).not.toHaveProperty('inFlight');
    expect(SnapshotSchema.parse(stored).counters.inFlight).toBeUndefined();
    expect(callsInFlight(stored)).toBe(n);
    expect(callsInFlight(foldEvents(events.slice(n, 3 * n), stored))).toBe(3 * n);
  });
});

describe('reducer: lastError (field note 8)', () => {
  it('is set by a call failure, with the call id, seq and time', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.failed', { callId: 'a', error: 'rate limited', willRetry: true }, 4242],
    );
    expect(s.lastError).toEqual({ message: 'rate limited', callId: 'a', seq: 2, ts: 4242 });
  });

  it('is cleared by a later success of the same call', () => {
    const s = fold(
      ['call.started', { callId: 'a', label: 'A' }],
      ['call.failed', { callId: 'a', error: 'rate limited', willRetry: true }],
      ['call.retried', { callId: 'a', attempt: 2 }],
      ['call.succeeded', { callId: 'a' }],
    );
    expect(s.lastError).toBeNull();
  });

  it('is cleared by a later success of ANY call, not only the one that failed', () => {
    const events: Array<[string, unknown]> = [
      ['call.started', { callId: 'bad', label: 'bad' }],
      ['call.failed', { callId: 'bad', error: 'boom', willRetry: false }],
    ];
    for (let i = 0; i < 7; i++) {
      events.push(['call.started', { callId: `ok${i}`, label: 'ok' }], ['call.succeeded', { callId: `ok${i}` }]);
    }
    expect(fold(...events.slice(0, 2)).lastError?.message).toBe('boom');
    expect(fold(...events.slice(0, 3)).lastError?.message).toBe('boom');
    expect(fold(...events.slice(0, 4)).lastError).toBeNull();
    expect(fold(...events).lastError).toBeNull();
  });

  it('is not cleared by events that are not call successes', () => {
    const s = fold(
      ['call.failed', { callId: 'a', error: 'boom', willRetry: false }],
      ['call.started', { callId: 'b', label: 'B' }],
      ['progress', { done: 1, total: 2 }],
      ['metric', { name: 'm', value: 1 }],
      ['log', { level: 'info', message: 'still going' }],
      ['phase', { name: 'p', status: 'completed' }],
      ['call.retried', { callId: 'b', attempt: 2 }],
    );
    expect(s.lastError?.message).toBe('boom');
  });

  it('shows the latest of several failures', () => {
    const s = fold(
      ['call.failed', { callId: 'a', error: 'first', willRetry: false }],
      ['call.failed', { callId: 'b', error: 'second', willRetry: true }],
    );
    expect(s.lastError).toMatchObject({ message: 'second', callId: 'b', seq: 2 });
  });

  it('is set by a failed phase', () => {
    const s = fold(['phase', { name: 'evaluate', status: 'started' }], ['phase', { name: 'evaluate', status: 'failed' }, 7777]);
    expect(s.lastError).toEqual({ message: 'phase evaluate failed', callId: null, seq: 2, ts: 7777 });
  });

  it('is set by run.failed with the run error, even after a success cleared an earlier one', () => {
    const s = fold(
      ['call.failed', { callId: 'a', error: 'boom', willRetry: false }],
      ['call.succeeded', { callId: 'b' }],
      ['run.failed', { error: { kind: 'timeout', message: 'took longer than 60 s' } }, 9000],
    );
    expect(s.lastError).toEqual({ message: 'took longer than 60 s', callId: null, seq: 3, ts: 9000 });
  });
});

describe('reducer: phases', () => {
  it('records each phase with its start, end and duration, and names the running one', () => {
    const running = fold(['phase', { name: 'generate', status: 'started', timeoutMs: 30_000 }, 1000]);
    expect(running.phase).toBe('generate');
    expect(running.phases).toEqual([
      { name: 'generate', status: 'started', startedAt: 1000, endedAt: null, durationMs: null, timeoutMs: 30_000 },
    ]);

    const s = fold(
      ['phase', { name: 'generate', status: 'started', timeoutMs: 30_000 }, 1000],
      ['phase', { name: 'generate', status: 'completed' }, 1500],
      ['phase', { name: 'evaluate', status: 'started' }, 1600],
      ['phase', { name: 'evaluate', status: 'failed' }, 2600],
    );
    expect(s.phase).toBeNull();
    expect(s.phases).toEqual([
      { name: 'generate', status: 'completed', startedAt: 1000, endedAt: 1500, durationMs: 500, timeoutMs: 30_000 },
      { name: 'evaluate', status: 'failed', startedAt: 1600, endedAt: 2600, durationMs: 1000, timeoutMs: null },
    ]);
  });

  it('records a phase completed without a start as an instant phase instead of dropping it', () => {
    const s = fold(['phase', { name: 'setup', status: 'completed' }, 3000]);
    expect(s.phases).toEqual([
      { name: 'setup', status: 'completed', startedAt: 3000, endedAt: 3000, durationMs: 0, timeoutMs: null },
    ]);
    expect(s.phase).toBeNull();
  });

  it('does not stop showing the running phase when a different phase ends', () => {
    const s = fold(
      ['phase', { name: 'generate', status: 'started' }, 1000],
      ['phase', { name: 'evaluate', status: 'started' }, 1100],
      ['phase', { name: 'generate', status: 'completed' }, 1200],
    );
    expect(s.phase).toBe('evaluate');
    expect(s.phases.map((p) => [p.name, p.status, p.durationMs])).toEqual([
      ['generate', 'completed', 200],
      ['evaluate', 'started', null],
    ]);
  });

  it('shows the enclosing phase again when a nested phase ends', () => {
    const s = fold(
      ['phase', { name: 'pipeline', status: 'started' }, 1000],
      ['phase', { name: 'stage-1', status: 'started' }, 1100],
      ['phase', { name: 'stage-1', status: 'completed' }, 1300],
    );
    expect(s.phase).toBe('pipeline');
    const done = foldEvents(
      [{ seq: 4, ts: 1400, type: 'phase', data: { name: 'pipeline', status: 'completed' } }],
      s,
    );
    expect(done.phase).toBeNull();
    expect(done.phases.map((p) => [p.name, p.durationMs])).toEqual([
      ['pipeline', 400],
      ['stage-1', 200],
    ]);
  });

  it('closes the most recent open phase of a name when the same name runs twice at once', () => {
    const s = fold(
      ['phase', { name: 'epoch', status: 'started' }, 1000],
      ['phase', { name: 'epoch', status: 'started' }, 2000],
      ['phase', { name: 'epoch', status: 'completed' }, 2500],
    );
    expect(s.phases.map((p) => [p.status, p.startedAt, p.durationMs])).toEqual([
      ['started', 1000, null],
      ['completed', 2000, 500],
    ]);
    expect(s.phase).toBe('epoch');
  });

  it('keeps at most SNAPSHOT_LIMITS.phases phases, dropping the oldest', () => {
    const events: Array<[string, unknown]> = [];
    for (let i = 0; i < SNAPSHOT_LIMITS.phases + 10; i++) {
      events.push(['phase', { name: `p${i}`, status: 'started' }], ['phase', { name: `p${i}`, status: 'completed' }]);
    }
    const s = fold(...events);
    expect(s.phases).toHaveLength(SNAPSHOT_LIMITS.phases);
    expect(s.phases[0]!.name).toBe('p10');
    expect(s.phases.at(-1)!.name).toBe(`p${SNAPSHOT_LIMITS.phases + 9}`);
  });
});

describe('reducer: progress', () => {
  it('computes percent from done and total', () => {
    const s = fold(['progress', { done: 25, total: 200, message: 'evaluating' }, 5000]);
    expect(s.progress).toEqual({ done: 25, total: 200, percent: 12.5, message: 'evaluating', updatedAt: 5000 });
  });

  it('has no percent while the total is 0 or unknown', () => {
    expect(fold(['progress', { done: 0, total: 0 }]).progress).toMatchObject({ total: 0, percent: null });
    expect(fold(['progress', { done: 3 }]).progress).toMatchObject({ done: 3, total: null, percent: null });
  });

  it('keeps the previous total (and message) when a progress event leaves them out', () => {
    const s = fold(['progress', { done: 1, total: 4, message: 'docs' }], ['progress', { done: 3 }]);
    expect(s.progress).toMatchObject({ done: 3, total: 4, percent: 75, message: 'docs' });
  });

  it('caps percent at 100 when done exceeds total', () => {
    expect(fold(['progress', { done: 12, total: 10 }]).progress).toMatchObject({ done: 12, total: 10, percent: 100 });
  });

  it('lets a later total replace the earlier one', () => {
    const s = fold(['progress', { done: 5, total: 10 }], ['progress', { done: 5, total: 20 }]);
    expect(s.progress?.percent).toBe(25);
  });
});

describe('reducer: metrics', () => {
  it('tracks latest, min, max and count per name', () => {
    const s = fold(
      ['metric', { name: 'loss', value: 0.9, step: 1 }, 1000],
      ['metric', { name: 'loss', value: 0.4, step: 2 }, 1100],
      ['metric', { name: 'loss', value: 0.6, step: 3 }, 1200],
      ['metric', { name: 'acc', value: 0.5 }, 1300],
    );
    expect(s.metrics.loss).toEqual({
      last: 0.6,
      min: 0.4,
      max: 0.9,
      count: 3,
      step: 3,
      ts: 1200,
      recent: [
        [1, 0.9],
        [2, 0.4],
        [3, 0.6],
      ],
    });
    // Without a step, a point is placed at its seq so the series still has an x axis.
    expect(s.metrics.acc).toMatchObject({ last: 0.5, count: 1, step: null, recent: [[4, 0.5]] });
  });

  it('keeps only the latest SNAPSHOT_LIMITS.metricPoints points but counts them all', () => {
    const n = SNAPSHOT_LIMITS.metricPoints + 30;
    const events: Array<[string, unknown]> = [];
    for (let i = 1; i <= n; i++) events.push(['metric', { name: 'm', value: i, step: i }]);
    const m = fold(...events).metrics.m!;
    expect(m.recent).toHaveLength(SNAPSHOT_LIMITS.metricPoints);
    expect(m.recent[0]).toEqual([31, 31]);
    expect(m.recent.at(-1)).toEqual([n, n]);
    expect(m).toMatchObject({ count: n, min: 1, max: n, last: n });
  });
});

describe('reducer: meta, logs, artifacts', () => {
  it('merges meta objects key by key, later values winning', () => {
    const s = fold(['meta', { model: 'gpt-4', temperature: 0 }], ['meta', { temperature: 0.7, dataset: 'docs' }]);
    expect(s.meta).toEqual({ model: 'gpt-4', temperature: 0.7, dataset: 'docs' });
  });

  it('keeps the last SNAPSHOT_LIMITS.logs log lines in order', () => {
    const n = SNAPSHOT_LIMITS.logs + 25;
    const events: Array<[string, unknown]> = [];
    for (let i = 1; i <= n; i++) events.push(['log', { level: i % 2 ? 'info' : 'warn', message: `line ${i}` }]);
    const s = fold(...events);
    expect(s.logs).toHaveLength(SNAPSHOT_LIMITS.logs);
    expect(s.logs[0]).toMatchObject({ seq: 26, message: 'line 26', level: 'warn' });
    expect(s.logs.at(-1)).toMatchObject({ seq: n, message: `line ${n}` });
  });

  it('lists artifacts with their optional fields as null', () => {
    const s = fold(
      ['artifact', { name: 'report.html', uri: 's3://b/report.html', contentType: 'text/html', size: 1024 }, 2000],
      ['artifact', { name: 'notes.txt' }, 2100],
    );
    expect(s.artifacts).toEqual([
      { seq: 1, ts: 2000, name: 'report.html', uri: 's3://b/report.html', contentType: 'text/html', size: 1024, ordinal: null, sha256: null, metadata: null },
      { seq: 2, ts: 2100, name: 'notes.txt', uri: null, contentType: null, size: null, ordinal: null, sha256: null, metadata: null },
    ]);
  });

  it('lists stored artifacts with ordinal, sha256 and metadata; a replaced one keeps its place', () => {
    const sha = (c: string) => c.repeat(64);
    const s = fold(
      ['artifact', { name: 'a.txt', contentType: 'text/plain', size: 1, ordinal: 1, sha256: sha('a'), createdAt: 10, metadata: { k: 1 } }, 10],
      ['artifact', { name: 'b.png', contentType: 'image/png', size: 2, ordinal: 2, sha256: sha('b'), createdAt: 11 }, 11],
      ['artifact', { name: 'a.txt', contentType: 'text/plain', size: 3, ordinal: 1, sha256: sha('c'), createdAt: 12 }, 12],
    );
    expect(s.artifacts.map((a) => [a.ordinal, a.name, a.size, a.sha256, a.metadata])).toEqual([
      [1, 'a.txt', 3, sha('c'), null],
      [2, 'b.png', 2, sha('b'), null],
    ]);
  });
});

describe('reducer: bounded snapshot', () => {
  const many = (n: number, make: (i: number) => [string, unknown]) => Array.from({ length: n }, (_, i) => make(i));

  it('tracks at most SNAPSHOT_LIMITS.names metrics, named counters and meta keys, and keeps updating those it has', () => {
    const n = SNAPSHOT_LIMITS.names;
    const s = fold(
      ...many(n + 5, (i) => ['metric', { name: `m${i}`, value: i }]),
      ...many(n + 5, (i) => ['counter', { name: `c${i}`, delta: 1 }]),
      ['meta', Object.fromEntries(many(n + 5, (i) => [`k${i}`, i]))],
      ['metric', { name: 'm0', value: 99 }],
      ['counter', { name: 'c0', delta: 2 }],
      ['meta', { k0: 'updated', extra: true }],
    );
    expect(Object.keys(s.metrics)).toHaveLength(n);
    expect(s.metrics[`m${n}`]).toBeUndefined();
    expect(s.metrics.m0!.last).toBe(99);
    expect(Object.keys(s.counters.named)).toHaveLength(n);
    expect(s.counters.named.c0).toBe(3);
    expect(Object.keys(s.meta)).toHaveLength(n);
    expect(s.meta.k0).toBe('updated');
    expect(s.meta.extra).toBeUndefined();
  });

  it('lists at most SNAPSHOT_LIMITS.inFlight calls in flight but still counts every success', () => {
    const n = SNAPSHOT_LIMITS.inFlight;
    const s = fold(
      ...many(n + 10, (i) => ['call.started', { callId: `c${i}`, label: `call ${i}` }]),
      ...many(n + 10, (i) => ['call.succeeded', { callId: `c${i}` }]),
    );
    expect(s.counters.ok).toBe(n + 10);
    expect(s.current).toEqual({});
    const open = fold(...many(n + 10, (i) => ['call.started', { callId: `c${i}`, label: `call ${i}` }]));
    expect(Object.keys(open.current)).toHaveLength(n);
  });
});

describe('reducer: stall', () => {
  const stalled: [string, unknown, number] = ['run.stalled', { stallTimeoutMs: 5000, lastProgressAt: 1000 }, 7000];

  it('marks the run stalled', () => {
    const s = fold(['progress', { done: 1 }, 1000], stalled);
    expect(s.stalled).toEqual({ at: 7000, stallTimeoutMs: 5000, lastProgressAt: 1000 });
    expect(s.lastProgressAt).toBe(1000);
  });

  it.each([...PROGRESS_TYPES])(
    'clears the stall on the next %s event',
    (type) => {
      const data: Record<string, unknown> = {
        'run.started': {},
        phase: { name: 'p', status: 'started' },
        'call.started': { callId: 'c', label: 'C' },
        'call.succeeded': { callId: 'c' },
        'call.failed': { callId: 'c', error: 'e', willRetry: true },
        'call.retried': { callId: 'c', attempt: 2 },
        progress: { done: 2 },
        metric: { name: 'm', value: 1 },
        counter: { name: 'n', delta: 1 },
        artifact: { name: 'a' },
      };
      expect(data[type], `test data for ${type}`).toBeDefined();
      const s = fold(stalled, [type, data[type], 8000]);
      expect(s.stalled).toBeNull();
      expect(s.lastProgressAt).toBe(8000);
    },
  );

  it('stays stalled on log, meta, cancel requests and extension events', () => {
    const s = fold(
      stalled,
      ['log', { level: 'info', message: 'heartbeat' }, 8000],
      ['meta', { still: 'here' }, 8100],
      ['run.cancel_requested', {}, 8200],
      ['x.ping', {}, 8300],
    );
    expect(s.stalled).toEqual({ at: 7000, stallTimeoutMs: 5000, lastProgressAt: 1000 });
    expect(s.lastProgressAt).toBeNull();
    expect(s.lastEventAt).toBe(8300);
  });
});

describe('reducer: run lifecycle and terminal events', () => {
  it('records when the run started, once', () => {
    const s = fold(['run.started', {}, 1000], ['run.started', {}, 2000]);
    expect(s.startedAt).toBe(1000);
  });

  it('records a cancel request', () => {
    expect(fold(['run.cancel_requested', { reason: 'user' }]).cancelRequested).toBe(true);
  });

  it('records success with its output, clears in-flight calls and closes open phases as completed', () => {
    const s = fold(
      ['phase', { name: 'generate', status: 'started' }, 1000],
      ['call.started', { callId: 'a', label: 'A' }, 1100],
      ['run.succeeded', { output: { score: 0.93 } }, 2000],
    );
    expect(s.terminal).toEqual({ status: 'succeeded', at: 2000, seq: 3, error: null, output: { score: 0.93 } });
    expect(s.current).toEqual({});
    expect(s.phase).toBeNull();
    expect(s.phases[0]).toMatchObject({ status: 'completed', endedAt: 2000, durationMs: 1000 });
  });

  it('records failure with its error and closes open phases as failed', () => {
    const s = fold(
      ['phase', { name: 'evaluate', status: 'started' }, 1000],
      ['call.started', { callId: 'a', label: 'A' }],
      ['run.failed', { error: { kind: 'orphaned', message: 'owner stopped heartbeating' } }, 3000],
    );
    expect(s.terminal).toMatchObject({ status: 'failed', error: { kind: 'orphaned', message: 'owner stopped heartbeating' }, output: null });
    expect(s.current).toEqual({});
    expect(s.phases[0]).toMatchObject({ status: 'failed', endedAt: 3000, durationMs: 2000 });
  });

  it('records cancellation with its reason as a cancelled error', () => {
    const s = fold(['call.started', { callId: 'a', label: 'A' }], ['run.cancelled', { reason: 'user pressed stop' }]);
    expect(s.terminal).toMatchObject({ status: 'cancelled', error: { kind: 'cancelled', message: 'user pressed stop' } });
    expect(s.current).toEqual({});
  });

  it('counts the calls in flight when the run ended as unfinished, so every started call is counted once', () => {
    for (const end of [
      ['run.failed', { error: { kind: 'orphaned', message: 'owner stopped heartbeating' } }],
      ['run.failed', { error: { kind: 'timeout', message: 'ran too long' } }],
      ['run.cancelled', { reason: 'stop' }],
      ['run.succeeded', {}],
    ] as const) {
      const s = fold(
        ['call.started', { callId: 'a', label: 'A' }],
        ['call.succeeded', { callId: 'a' }],
        ['call.started', { callId: 'b', label: 'B' }],
        ['call.failed', { callId: 'b', error: 'no', willRetry: false }],
        ['call.started', { callId: 'c', label: 'C' }],
        ['call.failed', { callId: 'c', error: 'rate limited', willRetry: true }],
        ['call.retried', { callId: 'c', attempt: 2 }],
        ['call.started', { callId: 'd', label: 'D' }],
        [end[0], end[1]],
      );
      expect(s.counters, end[0]).toMatchObject({ ok: 1, failed: 1, retries: 1, unfinished: 2 });
      expect(unfinishedCalls(s)).toBe(2);
      expect(s.current).toEqual({});
    }
  });

  it('has no unfinished count while the run runs, nor for a run that ended with nothing in flight', () => {
    const running = fold(['call.started', { callId: 'a', label: 'A' }]);
    expect(running.counters).not.toHaveProperty('unfinished');
    expect(unfinishedCalls(running)).toBe(0);
    const ended = fold(['call.started', { callId: 'a', label: 'A' }], ['call.succeeded', { callId: 'a' }], ['run.succeeded', {}]);
    expect(ended.counters).not.toHaveProperty('unfinished');
    expect(SnapshotSchema.parse(ended).counters.unfinished).toBeUndefined();
  });

  it('reads a snapshot stored before unfinished calls were counted as none unfinished; a run whose only call never finished has calls', () => {
    const stored = JSON.parse(JSON.stringify(fold(['call.started', { callId: 'a', label: 'A' }], ['run.failed', { error: { kind: 'orphaned', message: 'gone' } }]))) as Snapshot;
    delete stored.counters.unfinished;
    expect(SnapshotSchema.parse(stored).counters.unfinished).toBeUndefined();
    expect(unfinishedCalls(stored)).toBe(0);
    expect(hasCalls(fold(['call.started', { callId: 'a', label: 'A' }], ['run.cancelled', {}]))).toBe(true);
  });

  it('clears a stall when the run ends', () => {
    const s = fold(['run.stalled', { stallTimeoutMs: 1000, lastProgressAt: null }], ['run.failed', { error: { kind: 'stalled', message: 'no progress' } }]);
    expect(s.stalled).toBeNull();
  });

  it('ignores everything after the terminal event, including a second terminal event', () => {
    const ended = fold(['call.started', { callId: 'a', label: 'A' }], ['run.succeeded', {}]);
    const after = foldEvents(
      [
        { seq: 3, ts: 9000, type: 'call.started', data: { callId: 'late', label: 'late' } },
        { seq: 4, ts: 9001, type: 'run.failed', data: { error: { kind: 'error', message: 'too late' } } },
        { seq: 5, ts: 9002, type: 'x.after', data: {} },
      ],
      ended,
    );
    expect(after).toBe(ended);
    expect(after.seq).toBe(2);
    expect(after.terminal?.status).toBe('succeeded');
  });
});

describe('reducer: order edge cases', () => {
  it('ignores a duplicate delivery of an event it already applied', () => {
    const [a, b] = log(['call.succeeded', { callId: 'a' }], ['call.succeeded', { callId: 'b' }]);
    const s = foldEvents([a!, b!, b!, a!]);
    expect(s.counters.ok).toBe(2);
    expect(s.seq).toBe(2);
  });

  it('ignores an event whose seq is not after the snapshot seq (out of order)', () => {
    const s1 = applyEvent(initialSnapshot(), { seq: 5, ts: 1000, type: 'counter', data: { name: 'n', delta: 1 } });
    const s2 = applyEvent(s1, { seq: 3, ts: 1001, type: 'counter', data: { name: 'n', delta: 100 } });
    expect(s2).toBe(s1);
    expect(s2.counters.named.n).toBe(1);
    expect(s2.seq).toBe(5);
  });

  it('folding in pieces from a stored snapshot equals folding the whole log at once', () => {
    const events = everyKindOfEvent();
    const whole = foldEvents(events);
    for (let cut = 0; cut <= events.length; cut++) {
      // The store persists the snapshot as JSON and continues from it on the next append.
      const stored = JSON.parse(JSON.stringify(foldEvents(events.slice(0, cut)))) as Snapshot;
      expect(foldEvents(events.slice(cut), stored), `cut at ${cut}`).toEqual(whole);
    }
  });
});

describe('reducer: extension and unknown events', () => {
  it('only advances seq and lastEventAt for x. events', () => {
    const before = fold(['progress', { done: 1, total: 2 }, 1000]);
    const after = applyEvent(before, { seq: 2, ts: 1500, type: 'x.gpu', data: { util: 0.9, done: 2 } });
    expect(after).toEqual({ ...before, seq: 2, lastEventAt: 1500 });
  });

  it('treats a type named like an Object.prototype member as unknown, not as a snapshot', () => {
    for (const type of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const s = applyEvent(initialSnapshot(), { seq: 1, ts: 1, type, data: {} });
      expect(s, type).toEqual({ ...initialSnapshot(), seq: 1, lastEventAt: 1 });
    }
  });
});

describe('reducer: purity and determinism', () => {
  it('never mutates the state it is given', () => {
    const events = everyKindOfEvent();
    let state = deepFreeze(initialSnapshot());
    for (const event of events) {
      const copy = structuredClone(state);
      const next = applyEvent(state, deepFreeze(structuredClone(event)));
      expect(state).toEqual(copy);
      state = deepFreeze(next);
    }
    expect(state.terminal?.status).toBe('failed');
  });

  it('gives deep-equal snapshots when the same events are folded twice', () => {
    const a = foldEvents(everyKindOfEvent());
    const b = foldEvents(everyKindOfEvent());
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
  });

  it('folds the realistic log into the numbers a user expects to see', () => {
    const s = foldEvents(everyKindOfEvent());
    expect(s).toMatchObject({
      seq: 20,
      counters: { ok: 1, failed: 1, retries: 1, named: { tokens: 512 } },
      current: {},
      phase: null,
      progress: { done: 1, total: 3 },
      meta: { model: 'gpt-4', docs: 3 },
      cancelRequested: true,
      stalled: null,
      startedAt: 1010,
      lastError: { message: 'evaluation failed', callId: null },
      terminal: { status: 'failed', output: { partial: true } },
    });
    expect(s.phases.map((p) => [p.name, p.status])).toEqual([
      ['generate', 'completed'],
      ['evaluate', 'failed'],
    ]);
  });
});

describe('reducer: a fold copies keyed records once and never changes its input', () => {
  const call = (type: 'call.started' | 'call.succeeded' | 'call.failed' | 'call.retried', callId: string): [string, unknown] =>
    type === 'call.started'
      ? [type, { callId, label: `Evaluating ${callId}` }]
      : type === 'call.failed'
        ? [type, { callId, error: 'boom', willRetry: false }]
        : type === 'call.retried'
          ? [type, { callId, attempt: 2 }]
          : [type, { callId, durationMs: 1 }];

  /** 1,000 calls started, then a mix of every keyed record's events, then half the calls ended. */
  function manyInFlight(): ReducibleEvent[] {
    const events: Array<[string, unknown]> = [];
    for (let i = 0; i < 1000; i++) events.push(call('call.started', `c${i}`));
    events.push(['meta', { a: 1, b: 2 }], ['counter', { name: 'docs', delta: 2 }], ['metric', { name: 'loss', value: 1 }]);
    for (let i = 0; i < 500; i++) {
      if (i % 10 === 0) events.push(call('call.retried', `c${i}`));
      events.push(call(i % 2 ? 'call.succeeded' : 'call.failed', `c${i}`));
      if (i % 50 === 0) events.push(['counter', { name: 'docs', delta: 1 }], ['metric', { name: 'loss', value: i }], ['meta', { step: i }]);
    }
    return log(...events);
  }

  it('folding a batch equals applying its events one by one, and the snapshot it started from is unchanged', () => {
    const events = manyInFlight();
    const half = deepFreeze(foldEvents(events.slice(0, 700)));
    const before = structuredClone(half);
    const folded = foldEvents(events.slice(700), half);
    let stepped = half;
    for (const e of events.slice(700)) stepped = applyEvent(stepped, e);
    expect(folded).toEqual(stepped);
    expect(half).toEqual(before);
    // What the dashboard's in-flight panel lists: the 500 calls still running, by id.
    expect(Object.keys(folded.current)).toHaveLength(500);
    expect(Object.values(folded.current).every((c) => c.callId === `c${c.callId.slice(1)}` && Number(c.callId.slice(1)) >= 500)).toBe(true);
    expect(folded.counters).toMatchObject({ ok: 250, failed: 250, retries: 50, named: { docs: 12 } });
    expect(folded.meta).toEqual({ a: 1, b: 2, step: 450 });
    expect(folded.metrics.loss).toMatchObject({ count: 11, last: 450 });
  });

  it('a snapshot a fold returned is not changed by a later fold, so each append can hand its snapshot to watchers', () => {
    const events = manyInFlight();
    const first = new SnapshotFold(initialSnapshot());
    for (const e of events.slice(0, 1000)) first.apply(e);
    const published = first.snapshot;
    const shown = JSON.stringify(published);
    const second = new SnapshotFold(published);
    for (const e of events.slice(1000)) second.apply(e);
    expect(JSON.stringify(published)).toBe(shown);
    expect(Object.keys(published.current)).toHaveLength(1000);
    expect(Object.keys(second.snapshot.current)).toHaveLength(500);
  });

  it('keeps the in-flight bound within a fold: past 1,000 calls a new one is not listed, and room made by an ended call is reused', () => {
    const events: Array<[string, unknown]> = [];
    for (let i = 0; i <= SNAPSHOT_LIMITS.inFlight; i++) events.push(call('call.started', `c${i}`));
    events.push(call('call.succeeded', 'c0'), call('call.started', 'late'));
    const s = foldEvents(log(...events));
    expect(Object.keys(s.current)).toHaveLength(SNAPSHOT_LIMITS.inFlight);
    expect(Object.hasOwn(s.current, `c${SNAPSHOT_LIMITS.inFlight}`)).toBe(false);
    expect(Object.hasOwn(s.current, 'late')).toBe(true);
  });

  it('a key named __proto__ is a key like any other, in every keyed record', () => {
    const s = foldEvents([
      { seq: 1, ts: 1, type: 'call.started', data: { callId: '__proto__', label: 'p' } },
      { seq: 2, ts: 2, type: 'counter', data: JSON.parse('{"name":"__proto__","delta":3}') },
      { seq: 3, ts: 3, type: 'meta', data: JSON.parse('{"__proto__":{"polluted":true}}') },
    ]);
    expect(Object.hasOwn(s.current, '__proto__')).toBe(true);
    expect(Object.hasOwn(s.counters.named, '__proto__')).toBe(true);
    expect(Object.hasOwn(s.meta, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('protocol: buildPath', () => {
  it('fills params, URL-encoding them', () => {
    expect(buildPath('getRun', { id: 'abc' })).toBe('/api/v1/runs/abc');
    expect(buildPath('appendEvents', { id: 'a/b?c#d e' })).toBe('/api/v1/runs/a%2Fb%3Fc%23d%20e/events');
  });

  it('adds a query string, leaving out undefined values', () => {
    expect(buildPath('readEvents', { id: 'r1' }, { after: 10, limit: 5, extra: undefined })).toBe(
      '/api/v1/runs/r1/events?after=10&limit=5',
    );
    expect(buildPath('listRuns', {}, { label: 'team=a b&c' })).toBe('/api/v1/runs?label=team%3Da+b%26c');
    expect(buildPath('listRuns', {}, {})).toBe('/api/v1/runs');
  });

  it('refuses to build a path with a missing param', () => {
    expect(() => buildPath('getRun', {} as { id: string })).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: 'invalid getRun path: id: must be a non-empty string, not undefined' }),
    );
    // Before, '' built /api/v1/runs/ and the server said "run  does not exist".
    expect(() => buildPath('getRun', { id: '' })).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: 'invalid getRun path: id: must be a non-empty string, not an empty string' }),
    );
    expect(() => buildPath('getArtifact', { id: 'r1', name: 42 as unknown as string })).toThrow(/invalid getArtifact path: name: must be a non-empty string, not a number \(42\)/);
  });

  it('builds every route of the table to a path with no unfilled param', () => {
    for (const name of Object.keys(routes) as Array<keyof typeof routes>) {
      const path = buildPath(name, { id: 'x', name: 'a.txt' });
      expect(path, name).not.toMatch(/:/);
      expect(path.startsWith('/api/v1/') || path.startsWith('/'), name).toBe(true);
    }
  });
});

describe('protocol: validateEventData', () => {
  it('names the exact field inside data that is wrong, e.g. events[3].data.done', () => {
    const events = [
      { type: 'log', data: { level: 'info', message: 'ok' } },
      { type: 'x.anything', data: 'free-form' },
      { type: 'progress', data: { done: 1 } },
      { type: 'progress', data: { done: 'half' } },
      { type: 'call.failed', data: { callId: 'c', error: 'e' } },
    ] as EventInput[];
    const issues = validateEventData(events);
    expect(issues.map((i) => i.path)).toEqual(['events[3].data.done', 'events[4].data.willRetry']);
  });

  it('rejects non-finite numbers', () => {
    const issues = validateEventData([{ type: 'metric', data: { name: 'm', value: Number.POSITIVE_INFINITY } }]);
    expect(issues).toEqual([{ path: 'events[0].data.value', message: expect.stringMatching(/finite|number/) }]);
  });

  it('treats missing data of an event whose fields are all optional as valid', () => {
    expect(validateEventData([{ type: 'run.started' }, { type: 'run.cancel_requested' }])).toEqual([]);
  });

  it('rejects an event type that is neither known nor x.-prefixed, including Object.prototype names', () => {
    for (const type of ['made.up', 'x.', 'toString', 'constructor', '__proto__']) {
      expect(EventInput.safeParse({ type }).success, type).toBe(false);
    }
    expect(EventInput.safeParse({ type: 'x.gpu' }).success).toBe(true);
  });
});

describe('protocol: free-form JSON depth', () => {
  const nested = (depth: number): unknown => JSON.parse('['.repeat(depth) + ']'.repeat(depth));

  it('accepts JSON nested up to MAX_JSON_DEPTH and refuses deeper, without overflowing on very deep input', () => {
    expect(withinJsonDepth(nested(MAX_JSON_DEPTH))).toBe(true);
    expect(withinJsonDepth(nested(MAX_JSON_DEPTH + 1))).toBe(false);
    expect(withinJsonDepth({ a: { b: [1, 'x', null] } }, 3)).toBe(true);
    expect(withinJsonDepth({ a: { b: [{}] } }, 3)).toBe(false);
    expect(withinJsonDepth(nested(100_000))).toBe(false);
    expect(withinJsonDepth('scalar')).toBe(true);
  });

  it('names the too-deep field of run input, event data and finish output', () => {
    const deep = nested(MAX_JSON_DEPTH + 1);
    expect(CreateRunBody.safeParse({ name: 'n', input: deep }).error?.issues[0]?.path).toEqual(['input']);
    expect(EventInput.safeParse({ type: 'x.a', data: deep }).error?.issues[0]?.path).toEqual(['data']);
    expect(FinishRunBody.safeParse({ status: 'succeeded', output: deep }).error?.issues[0]?.path).toEqual(['output']);
    expect(CreateRunBody.safeParse({ name: 'n', input: nested(10) }).success).toBe(true);
  });
});

describe('protocol: RuntrailError', () => {
  it('knows its own codes only, never a name inherited from Object.prototype', () => {
    expect(isErrorCode('run_not_found')).toBe(true);
    expect(new RuntrailError('run_not_found', 'm').status).toBe(404);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('nope')).toBe(false);
  });

  it('serialises to {error: {code, message, details}} and leaves out absent details', () => {
    expect(new RuntrailError('run_not_found', 'run r1 does not exist', { runId: 'r1' }).toBody()).toEqual({
      error: { code: 'run_not_found', message: 'run r1 does not exist', details: { runId: 'r1' } },
    });
    expect(new RuntrailError('internal', 'x').toBody()).toEqual({ error: { code: 'internal', message: 'x' } });
  });

  it('recognises its own codes', () => {
    const err = new RuntrailError('run_already_terminal', 'ended');
    expect(RuntrailError.isCode(err, 'run_already_terminal')).toBe(true);
    expect(RuntrailError.isCode(err, 'run_not_found')).toBe(false);
    expect(RuntrailError.isCode(new Error('x'), 'internal')).toBe(false);
  });
});
