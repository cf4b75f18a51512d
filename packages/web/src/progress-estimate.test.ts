import { initialSnapshot, type RunEvent } from '@runtrail/protocol';
import { describe, expect, test } from 'vitest';
import { estimateProgress, progressSamples, stalledForMs, type ProgressSample } from './progress-estimate.js';

const T0 = 1_800_000_000_000;
const at = (s: number) => T0 + s * 1000;

function progressEvent(seq: number, ts: number, done: number): RunEvent {
  return { runId: 'r', seq, type: 'progress', ts, data: { done, total: 64 } };
}

describe('estimateProgress', () => {
  test('a run stuck at 3 of 64 for two minutes is stalled, not "about 244 ms left"', () => {
    const samples: ProgressSample[] = [
      { ts: at(0), done: 0 },
      { ts: at(0.1), done: 1 },
      { ts: at(0.2), done: 2 },
      { ts: at(0.3), done: 3 },
    ];
    expect(estimateProgress({ samples, total: 64, now: at(120.3) })).toEqual({ kind: 'stalled', sinceMs: 120_000 });
  });

  test('uses the recent rate: a run that slowed down gets the slow estimate, not its early average', () => {
    // 50 items in the first 5 s, then one item every 2 s.
    const samples: ProgressSample[] = [{ ts: at(0), done: 0 }, { ts: at(5), done: 50 }];
    for (let i = 1; i <= 20; i++) samples.push({ ts: at(5 + 2 * i), done: 50 + i });
    const estimate = estimateProgress({ samples, total: 100, now: at(45) });
    // 30 left at 0.5 item/s = 60 s (the whole-run average would say about 23 s).
    expect(estimate).toEqual({ kind: 'eta', remainingMs: 60_000 });
  });

  test('a pause shorter than the stall threshold lengthens the estimate at once', () => {
    const samples: ProgressSample[] = [
      { ts: at(0), done: 0 },
      { ts: at(1), done: 10 },
    ];
    const fresh = estimateProgress({ samples, total: 20, now: at(1) });
    const paused = estimateProgress({ samples, total: 20, now: at(3) });
    expect(fresh).toEqual({ kind: 'eta', remainingMs: 1000 });
    expect(paused).toEqual({ kind: 'eta', remainingMs: 3000 });
  });

  test('a fast steady run keeps its estimate whenever the page renders, not only right after a reading', () => {
    // 300 items a second for 10 s, 6,000 in all: about 10 s left.
    const samples: ProgressSample[] = [];
    for (let i = 0; i <= 3000; i++) samples.push({ ts: at(i / 300), done: i });
    const atReading = estimateProgress({ samples, total: 6000, now: at(10) });
    const renderLater = estimateProgress({ samples, total: 6000, now: at(10.2) });
    expect(atReading).toEqual({ kind: 'eta', remainingMs: 10_000 });
    expect(renderLater?.kind).toBe('eta');
    expect((renderLater as { remainingMs: number }).remainingMs).toBeLessThan(10_300);
  });

  test('a slow but steady run (one item a minute) is not called stalled between items', () => {
    const samples: ProgressSample[] = [0, 1, 2, 3].map((i) => ({ ts: at(60 * i), done: i }));
    expect(estimateProgress({ samples, total: 10, now: at(180 + 59) })?.kind).toBe('eta');
    expect(estimateProgress({ samples, total: 10, now: at(180 + 301) })?.kind).toBe('stalled');
  });

  test('the server’s stall detector wins, with its own count of the time stuck', () => {
    const samples: ProgressSample[] = [
      { ts: at(0), done: 0 },
      { ts: at(1), done: 3 },
      { ts: at(2), done: 3 },
    ];
    expect(estimateProgress({ samples, total: 64, now: at(10), stalledForMs: 8000 })).toEqual({ kind: 'stalled', sinceMs: 8000 });
  });

  test('the time stuck counts from the last event that showed the run moving, else from its start', () => {
    expect(stalledForMs({ at: at(5), stallTimeoutMs: 1000, lastProgressAt: at(3) }, at(0), at(10))).toBe(7000);
    expect(stalledForMs({ at: at(5), stallTimeoutMs: 1000, lastProgressAt: null }, at(1), at(10))).toBe(9000);
    expect(stalledForMs({ at: at(5), stallTimeoutMs: 1000, lastProgressAt: null }, null, at(10))).toBe(5000);
  });

  test('nothing to say without a total, before the first item, or once every item is done', () => {
    expect(estimateProgress({ samples: [{ ts: at(0), done: 0 }, { ts: at(1), done: 5 }], total: null, now: at(2) })).toBeNull();
    expect(estimateProgress({ samples: [{ ts: at(0), done: 0 }], total: 10, now: at(2) })).toBeNull();
    expect(estimateProgress({ samples: [], total: 10, now: at(2) })).toBeNull();
    expect(estimateProgress({ samples: [{ ts: at(0), done: 0 }, { ts: at(1), done: 10 }], total: 10, now: at(2) })).toBeNull();
  });
});

describe('progressSamples', () => {
  test('reads progress events in order, starting from 0 at the start of a complete log', () => {
    const events = [progressEvent(1, at(1), 1), { runId: 'r', seq: 2, type: 'log', ts: at(1), data: {} }, progressEvent(3, at(2), 2)];
    expect(progressSamples(events, initialSnapshot(), at(0))).toEqual([
      { ts: at(0), done: 0 },
      { ts: at(1), done: 1 },
      { ts: at(2), done: 2 },
    ]);
  });

  test('falls back to the snapshot when the kept events hold no progress', () => {
    const snapshot = { ...initialSnapshot(), progress: { done: 7, total: 10, percent: 70, message: null, updatedAt: at(7) } };
    expect(progressSamples([], snapshot, at(0))).toEqual([
      { ts: at(0), done: 0 },
      { ts: at(7), done: 7 },
    ]);
  });
});
