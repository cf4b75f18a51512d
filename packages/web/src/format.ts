import type { RunErrorKind } from '@runtrail/protocol';

/** What each way of failing means, for someone who did not write the server. */
const ERROR_KIND_TEXT: Record<RunErrorKind, string> = {
  error: 'the run raised an error',
  timeout: 'the run went over its time limit',
  orphaned: 'the process running it stopped heartbeating (server restart or crash)',
  stalled: 'no progress within its stall timeout',
  cancelled: 'someone cancelled it',
  interrupted: 'the server shut down while running it',
};

export function errorKindText(kind: RunErrorKind): string {
  return ERROR_KIND_TEXT[kind];
}

export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60} m`;
}

export function formatTime(ts: number | null): string {
  if (ts === null) return '–';
  const d = new Date(ts);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour12: false })
    : d.toLocaleString(undefined, { hour12: false, dateStyle: 'short', timeStyle: 'medium' });
}

/**
 * Remaining time at the average rate so far; null until there is a rate to
 * speak of (an ETA from one data point jumps around more than it helps).
 */
export function estimateEta(
  progress: { done: number; total: number | null; updatedAt: number } | null,
  startedAt: number | null,
): number | null {
  if (!progress || progress.total === null || startedAt === null) return null;
  const elapsed = progress.updatedAt - startedAt;
  if (progress.done <= 0 || elapsed <= 0) return null;
  const remaining = Math.max(0, progress.total - progress.done);
  return (remaining / progress.done) * elapsed;
}

export function formatNumber(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString() : n.toLocaleString(undefined, { maximumFractionDigits: 4 });
}
