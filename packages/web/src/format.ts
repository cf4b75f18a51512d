import type { RunErrorKind } from '@runtrail/protocol';

/** What each way of failing means, for someone who did not write the server. */
const ERROR_KIND_TEXT: Record<RunErrorKind, string> = {
  error: 'the run raised an error',
  timeout: 'the run went over its time limit',
  orphaned: 'what was running it stopped heartbeating without ending it (it exited, crashed, restarted or lost its connection)',
  stalled: 'no progress within its stall timeout',
  cancelled: 'someone cancelled it',
  interrupted: 'the server shut down while running it',
};

export function errorKindText(kind: RunErrorKind): string {
  return ERROR_KIND_TEXT[kind];
}

const NBSP = '\u00a0';

/**
 * A duration as a reader takes it in, "4 m 20 s", its spaces non-breaking
 * (U+00A0): on a phone a plain space let the line break inside it ("no
 * progress for 4" / "m 20 s"). Match it in tests with `\s`, not a space.
 */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}${NBSP}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}${NBSP}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}${NBSP}m${NBSP}${Math.floor(s % 60)}${NBSP}s`;
  const h = Math.floor(m / 60);
  return `${h}${NBSP}h${NBSP}${m % 60}${NBSP}m`;
}

/*
 * Formatters made once: toLocaleString with options builds a new Intl
 * formatter at every call, and a live run page formats thousands of numbers
 * and times a second (event rows, chart legends, ticks); that alone took
 * more main-thread time than React did.
 */
const TIME = new Intl.DateTimeFormat(undefined, { hourCycle: 'h23', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const DATE_TIME = new Intl.DateTimeFormat(undefined, { hourCycle: 'h23', dateStyle: 'short', timeStyle: 'medium' });
const FULL_DATE_TIME = new Intl.DateTimeFormat(undefined, { hourCycle: 'h23', dateStyle: 'full', timeStyle: 'full' });
const ZONE = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' });
const INTEGER = new Intl.NumberFormat();
const ONE_DECIMAL = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const THREE_DECIMALS = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
const THREE_DIGITS = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });
const COMPACT = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
const FIXED: Intl.NumberFormat[] = Array.from({ length: 11 }, (_, d) => new Intl.NumberFormat(undefined, { minimumFractionDigits: d, maximumFractionDigits: d }));

/** A time of day (13:04:05), as the event log's rows show it. */
export function formatClock(ts: number): string {
  return TIME.format(ts);
}

export function formatTime(ts: number | null): string {
  if (ts === null) return '–';
  const d = new Date(ts);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? TIME.format(d) : DATE_TIME.format(d);
}

/**
 * The time zone the page shows times in (the browser's), by its short name
 * at `ts` ("UTC", "GMT+5:30", "CET"): the times on the page are the
 * reader's local times, and a reader comparing them with a server's log in
 * UTC needs to know which.
 */
export function formatZone(ts: number = Date.now()): string {
  return ZONE.formatToParts(ts).find((p) => p.type === 'timeZoneName')?.value ?? '';
}

/** A moment in full, date and zone included ("Saturday, 28 November 2026 at 12:10:40 Coordinated Universal Time"): a time's tooltip. */
export function formatFullTime(ts: number): string {
  return FULL_DATE_TIME.format(ts);
}

/**
 * A number with the precision a reader can use: integers whole, large values
 * with one decimal, small ones with three significant digits (0.000123, not
 * 0.0001 or 0.00012345678).
 */
export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return INTEGER.format(n);
  const abs = Math.abs(n);
  if (abs >= 1000) return ONE_DECIMAL.format(n);
  if (abs >= 1) return THREE_DECIMALS.format(n);
  return THREE_DIGITS.format(n);
}

/** A count with its noun, in the reader's digits: "1 line", "20,004 lines". */
export function countOf(n: number, noun: string, plural = `${noun}s`): string {
  return `${formatNumber(n)} ${n === 1 ? noun : plural}`;
}

/** A size in bytes as people read it: "35 bytes", "137.4 KiB", "2.0 MiB". */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return countOf(bytes, 'byte');
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * An axis tick: as many decimals as the spacing between ticks needs (ticks
 * 0.05 apart read 0.10, 0.15, not 0.1, 0.15000000000000002; ticks 0.25 apart
 * read 0.25, 0.50, 0.75, never 0.3 and 0.8), and millions and up in compact
 * form (1.2M) so they fit beside the plot.
 */
export function formatTick(value: number, increment: number): string {
  if (Math.abs(value) >= 1e6) return COMPACT.format(value);
  return FIXED[decimalsOf(increment)]!.format(value);
}

/** The decimals a step needs to be written exactly (0.25: 2, 0.5: 1, 20: 0), at most 10. */
function decimalsOf(step: number): number {
  if (!(step > 0)) return 0;
  for (let d = 0; d < 10; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9 * scaled) return d;
  }
  return 10;
}
