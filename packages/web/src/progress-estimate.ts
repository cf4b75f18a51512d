import type { RunEvent, Snapshot } from '@runtrail/protocol';

/** One reading of a run's progress: `done` items at time `ts`. */
export interface ProgressSample {
  ts: number;
  done: number;
}

export type ProgressEstimate =
  /** About `remainingMs` left at the recent rate. */
  | { kind: 'eta'; remainingMs: number }
  /** No progress for `sinceMs`, much longer than the recent pace (or the server said so). */
  | { kind: 'stalled'; sinceMs: number };

/** Progress readings the rate is measured over: the latest ones, not the whole run. */
export const RECENT_SAMPLES = 10;
/**
 * ... and at least this much time, when the readings go back that far. A
 * fast run's last ten readings span a few milliseconds, so the time since
 * the last one (up to a render's worth, 200 ms, however healthy the run)
 * decided the rate: "about 13 s left", then 30 s, then 13 s again.
 */
export const RECENT_MIN_SPAN_MS = 10_000;
/**
 * A run is called stalled when it has gone this many recent intervals
 * without progress, and at least STALLED_AFTER_MIN_MS: a run that reports
 * every 50 ms is not stuck after 300 ms, and one that reports every ten
 * minutes is not stuck after eleven.
 */
export const STALLED_AFTER_INTERVALS = 5;
export const STALLED_AFTER_MIN_MS = 30_000;

/**
 * The run's progress readings from its events (oldest first), starting at 0
 * when it started; without progress events in the window (a long log that
 * kept only its tail), the snapshot's last reading.
 */
export function progressSamples(events: readonly RunEvent[], snapshot: Snapshot, startedAt: number | null): ProgressSample[] {
  const samples: ProgressSample[] = [];
  if (startedAt !== null && (events.length === 0 || events[0]!.seq <= 1)) samples.push({ ts: startedAt, done: 0 });
  for (const e of events) {
    if (e.type !== 'progress') continue;
    const done = (e.data as { done?: unknown }).done;
    if (typeof done === 'number') samples.push({ ts: e.ts, done });
  }
  const p = snapshot.progress;
  if (p && (samples.length === 0 || samples[samples.length - 1]!.ts < p.updatedAt)) {
    if (samples.length === 0 && startedAt !== null) samples.push({ ts: startedAt, done: 0 });
    samples.push({ ts: p.updatedAt, done: p.done });
  }
  return samples;
}

/**
 * Time left at the RECENT rate, measured up to `now`: while no progress
 * comes the rate falls and the estimate grows, and past a few recent
 * intervals without progress the run is "stalled" rather than "about 244 ms
 * left" (a run stuck at 3 of 64 for two minutes). The average over the whole
 * run would hide both a slowdown and a stop. Null when there is nothing to
 * estimate (no total, not two readings yet, or every item done).
 */
export function estimateProgress(input: {
  samples: readonly ProgressSample[];
  total: number | null;
  now: number;
  /** The server's stall detector fired (snapshot.stalled): how long it has seen no progress (stalledForMs). */
  stalledForMs?: number | null;
}): ProgressEstimate | null {
  const { samples, total, now } = input;
  const last = samples[samples.length - 1];
  if (!last) return null;
  const firstProgress = samples.findIndex((s) => s.done > 0);
  if (input.stalledForMs !== undefined && input.stalledForMs !== null) return { kind: 'stalled', sinceMs: input.stalledForMs };
  if (total === null || firstProgress < 0) return null;
  const recent = recentSamples(samples);
  const first = recent[0]!;
  const span = last.ts - first.ts;
  const moved = last.done - first.done;
  const quiet = now - lastChange(samples);
  if (recent.length >= 2 && span > 0) {
    const interval = span / (recent.length - 1);
    if (quiet > Math.max(STALLED_AFTER_MIN_MS, STALLED_AFTER_INTERVALS * interval)) {
      return { kind: 'stalled', sinceMs: quiet };
    }
  }
  const remaining = Math.max(0, total - last.done);
  // All items done but the run not ended (it is finishing up): no time to tell.
  if (remaining === 0) return null;
  // Measured up to now, so a pause counts against the rate at once.
  const elapsed = Math.max(now, last.ts) - first.ts;
  if (moved <= 0 || elapsed <= 0) return null;
  return { kind: 'eta', remainingMs: (remaining * elapsed) / moved };
}

/**
 * The readings the recent rate is measured over: the last RECENT_SAMPLES
 * intervals, reaching further back until they span RECENT_MIN_SPAN_MS.
 */
export function recentSamples<T extends ProgressSample>(samples: readonly T[]): T[] {
  const last = samples[samples.length - 1];
  if (!last) return [];
  let from = Math.max(0, samples.length - RECENT_SAMPLES - 1);
  while (from > 0 && last.ts - samples[from]!.ts < RECENT_MIN_SPAN_MS) from--;
  return samples.slice(from);
}

/**
 * How long a run the server found stalled has made no progress: from the
 * last event that showed it moving (its start if none did) up to `now`. The
 * one reckoning of it, so the header, the Progress card and the runs list
 * say the same number at the same moment (a count from the last change of
 * `done` was up to a whole second, or a whole call, apart from it).
 */
export function stalledForMs(stalled: NonNullable<Snapshot['stalled']>, startedAt: number | null, now: number): number {
  return Math.max(0, now - (stalled.lastProgressAt ?? startedAt ?? stalled.at));
}

/** When `done` last changed (a reading that repeats the same count is no progress). */
function lastChange(samples: readonly ProgressSample[]): number {
  for (let i = samples.length - 1; i > 0; i--) {
    if (samples[i]!.done !== samples[i - 1]!.done) return samples[i]!.ts;
  }
  return samples[0]?.ts ?? 0;
}
