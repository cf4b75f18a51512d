import type { Run, RunEvent, Snapshot } from '@runtrail/protocol';
import { childLabel } from './metric-series.js';

export type BarKind = 'phase' | 'call' | 'child';
/** `unfinished`: a call or phase still open when its run ended; it never will end. */
export type BarState = 'running' | 'ok' | 'failed' | 'cancelled' | 'unfinished';

/** One row of the waterfall: something that started and (maybe) ended, in ms since the epoch. */
export interface TimelineBar {
  key: string;
  kind: BarKind;
  label: string;
  start: number;
  /** Null while it runs; drawn up to now. */
  end: number | null;
  state: BarState;
  /** What a reader hovering it should learn beyond the label (attempts, timeout, error). */
  detail: string | null;
  /** A child run's id, to link to it. */
  runId?: string;
}

/**
 * Calls beyond this are counted, not drawn: the waterfall stays a picture,
 * not a log. The latest are drawn, so a live run's calls in flight are in it.
 */
export const MAX_CALL_BARS = 200;

/**
 * Calls as bars, from their events: started at `call.started`, ended by
 * `call.succeeded` or a final `call.failed`; retries counted on the bar.
 * Calls that started before the events the page holds are not shown.
 */
export function callBars(events: readonly RunEvent[]): { bars: TimelineBar[]; total: number } {
  const open = new Map<string, TimelineBar & { attempts: number }>();
  const bars: Array<TimelineBar & { attempts: number }> = [];
  for (const e of events) {
    const data = e.data as { callId?: unknown; label?: unknown; error?: unknown; willRetry?: unknown };
    if (typeof data?.callId !== 'string') continue;
    const id = data.callId;
    switch (e.type) {
      case 'call.started': {
        const bar = { key: `call:${id}:${e.seq}`, kind: 'call' as const, label: typeof data.label === 'string' && data.label ? data.label : id, start: e.ts, end: null, state: 'running' as const, detail: null, attempts: 1 };
        open.set(id, bar);
        bars.push(bar);
        break;
      }
      case 'call.retried': {
        const bar = open.get(id);
        if (bar) bar.attempts++;
        break;
      }
      case 'call.succeeded':
      case 'call.failed': {
        const bar = open.get(id);
        if (!bar) break;
        if (e.type === 'call.failed' && data.willRetry === true) break;
        bar.end = e.ts;
        bar.state = e.type === 'call.succeeded' ? 'ok' : 'failed';
        if (e.type === 'call.failed' && typeof data.error === 'string') bar.detail = data.error;
        open.delete(id);
        break;
      }
    }
  }
  for (const bar of bars) {
    if (bar.attempts > 1) bar.detail = [`${bar.attempts} attempts`, bar.detail].filter(Boolean).join('; ');
  }
  return { bars: bars.slice(-MAX_CALL_BARS).map(({ attempts: _attempts, ...bar }) => bar), total: bars.length };
}

export function phaseBars(phases: Snapshot['phases']): TimelineBar[] {
  return phases.map((p, i) => ({
    key: `phase:${i}`,
    kind: 'phase',
    label: p.name,
    start: p.startedAt,
    end: p.endedAt,
    state: p.status === 'started' ? 'running' : p.status === 'completed' ? 'ok' : 'failed',
    detail: p.timeoutMs === null ? null : `timeout ${p.timeoutMs} ms`,
  }));
}

/**
 * Calls and phases still open when the run ended stop there: the run's
 * producer is gone (orphaned, timed out, failed mid-call) and nothing will
 * end them. Drawn up to now, a reload an hour later showed a call of 1 h on
 * a run of 8 s. Child runs are runs of their own and keep their status.
 */
export function endOpenBars(bars: readonly TimelineBar[], runEndedAt: number | null): TimelineBar[] {
  if (runEndedAt === null) return [...bars];
  return bars.map((bar) =>
    bar.end !== null || bar.kind === 'child'
      ? bar
      : {
          ...bar,
          end: Math.max(bar.start, runEndedAt),
          state: 'unfinished',
          detail: ['never finished: the run ended first', bar.detail].filter(Boolean).join('; '),
        },
  );
}

export function childBars(children: readonly Run[]): TimelineBar[] {
  return children.map((c) => ({
    key: `child:${c.id}`,
    kind: 'child',
    label: childLabel(c, children),
    start: c.startedAt ?? c.createdAt,
    end: c.finishedAt,
    state: c.status === 'succeeded' ? 'ok' : c.status === 'failed' ? 'failed' : c.status === 'cancelled' ? 'cancelled' : 'running',
    detail: c.error ? `${c.error.kind}: ${c.error.message}` : null,
    runId: c.id,
  }));
}

const ROUND_STEPS = [1, 1.5, 2, 3, 5, 7.5];

/** The round length (1, 1.5, 2, 3, 5 or 7.5 times a power of ten ms) at or just above `elapsed`. */
export function axisSpan(elapsed: number): number {
  const ms = Math.max(1, elapsed);
  const power = 10 ** Math.floor(Math.log10(ms));
  const step = ROUND_STEPS.find((s) => s * power >= ms) ?? 10;
  return step * power;
}

/** Round tick steps a reader counts in: ms, seconds, minutes, hours. */
const TICK_STEPS_MS = [
  1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500,
  1000, 2000, 5000, 10_000, 15_000, 30_000,
  60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000,
  3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/**
 * Axis ticks (ms from the start) at the smallest round step that gives at
 * most `most` intervals over `span`: 0, 10 s, 20 s, … rather than quarters
 * of the span (0, 13 s, 25 s, 38 s).
 */
export function timeTicks(span: number, most = 5): number[] {
  const rough = Math.max(1, span) / most;
  const step = TICK_STEPS_MS.find((s) => s >= rough) ?? Math.ceil(rough / 86_400_000) * 86_400_000;
  const ticks: number[] = [];
  for (let t = 0; t <= span; t += step) ticks.push(t);
  return ticks;
}

/** A tick's label: as short as its round value allows (0, 250 ms, 1.5 s, 30 s, 2 m, 1 m 30 s, 3 h). */
export function tickLabel(ms: number): string {
  if (ms === 0) return '0';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(2))} s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return [h > 0 && `${h} h`, m > 0 && `${m} m`, s > 0 && `${s} s`].filter(Boolean).join(' ');
}
