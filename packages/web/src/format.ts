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
 * A number with the precision a reader can use: integers whole, large values
 * with one decimal, small ones with three significant digits (0.000123, not
 * 0.0001 or 0.00012345678).
 */
export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString();
  const abs = Math.abs(n);
  if (abs >= 1000) return n.toLocaleString(undefined, { maximumFractionDigits: 1 });
  if (abs >= 1) return n.toLocaleString(undefined, { maximumFractionDigits: 3 });
  return n.toLocaleString(undefined, { maximumSignificantDigits: 3 });
}

/**
 * An axis tick: as many decimals as the spacing between ticks needs (ticks
 * 0.05 apart read 0.10, 0.15, not 0.1, 0.15000000000000002), and millions
 * and up in compact form (1.2M) so they fit beside the plot.
 */
export function formatTick(value: number, increment: number): string {
  if (Math.abs(value) >= 1e6) return value.toLocaleString(undefined, { notation: 'compact', maximumFractionDigits: 1 });
  const decimals = increment > 0 ? Math.min(10, Math.max(0, Math.ceil(-Math.log10(increment) - 1e-9))) : 0;
  return value.toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}
