import { memo, useMemo, type CSSProperties } from 'react';
import { dashboardRunPath, type Run, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { formatDuration, formatNumber } from '../../format.js';
import { Link } from '../../router.js';
import { axisSpan, callBars, childBars, endOpenBars, phaseBars, tickLabel, timeTicks, type TimelineBar } from './timeline.js';
import { visibleText } from '../../visible-text.js';
import { JumpToLatest } from '../../components/JumpToLatest.js';
import { useClock, useNow } from '../../use-now.js';
import { useFollowTail } from '../../components/use-follow-tail.js';
import './run-insights.css';

const GROUP_TITLES = { phase: 'Phases', child: 'Child runs', call: 'Calls' } as const;

/** The events the timeline's call bars are made of (callBars reads no others). */
export const TIMELINE_CALL_EVENTS: ReadonlySet<string> = new Set(['call.started', 'call.retried', 'call.succeeded', 'call.failed']);

/**
 * The run as a waterfall: its phases, child runs and calls as bars on one
 * time axis from the run's start, each with its duration, so a reader sees
 * what ran when, what overlapped and what took longest. Memoised on the
 * parts of the run it draws, not the run, its snapshot or all its events:
 * an event that is none of them (progress, a log line) leaves it be, and
 * the open bars grow with the clock on their own.
 */
export const Timeline = memo(function Timeline({
  runStart,
  phases,
  callEvents,
  callsCounted,
  children,
  childCount,
  finishedAt,
}: {
  /** When the run started, or was created if it has not started. */
  runStart: number;
  phases: Snapshot['phases'];
  /** The page's events of TIMELINE_CALL_EVENTS (useEventsOf). */
  callEvents: readonly RunEvent[];
  /** The calls the snapshot counts: ended (ok or failed) and in flight. */
  callsCounted: number;
  children: readonly Run[];
  /** How many children the run has in all; more than `children` when the page watches only the latest. */
  childCount: number;
  finishedAt: number | null;
}) {
  const calls = useMemo(() => callBars(callEvents), [callEvents]);
  // The page holds only a long run's latest events; every call started either
  // ended (ok or failed, counted by the snapshot) or is in flight.
  const callsInAll = Math.max(calls.total, callsCounted);
  const groups = useMemo(
    () => [
      { kind: 'phase' as const, bars: endOpenBars(phaseBars(phases), finishedAt) },
      { kind: 'child' as const, bars: childBars(children) },
      { kind: 'call' as const, bars: endOpenBars(calls.bars, finishedAt) },
    ].filter((g) => g.bars.length > 0),
    [phases, children, calls, finishedAt],
  );
  // Calls are drawn oldest first, so the ones in flight are at the bottom of the box: while the run
  // goes on it keeps them in view, as the Console keeps the newest line, until the reader scrolls up.
  const tail = useFollowTail<HTMLDivElement>(groups, { enabled: finishedAt === null });
  const all = groups.flatMap((g) => g.bars);
  const from = Math.min(runStart, ...all.map((b) => b.start));
  const open = finishedAt === null || all.some((b) => b.end === null);
  const lastEnd = Math.max(finishedAt ?? -Infinity, ...all.map((b) => b.end ?? -Infinity));
  // While the run goes on the axis ends at a round length ahead of now, so it
  // (and with it the style of every bar) changes now and then, not at every
  // event; the timeline reads the clock only for that span, and renders again
  // when it changes, not at every tick (the open bars tick on their own).
  const span = useClock((now) => {
    if (finishedAt === null) return axisSpan(Math.max(now, lastEnd) - from);
    // Ended, with a child run still going: up to the next whole second, a span that holds still between ticks.
    return Math.max(1, (open ? Math.max(Math.ceil(now / 1000) * 1000, lastEnd) : lastEnd) - from);
  });
  if (groups.length === 0) return null;
  const ticks = timeTicks(span);

  return (
    <section className="panel" aria-labelledby="timeline-title">
      <h2 id="timeline-title">Timeline</h2>
      {/* Bars are placed by CSS from the axis span (--span here, --start/--duration on each bar), so as the
          run goes on only this element and the running bars change, not every bar of a long run. */}
      <div className="follow-box">
      <div
        ref={tail.ref}
        className="timeline"
        role="table"
        aria-label="phases, child runs and calls over time"
        tabIndex={0}
        {...tail.handlers}
        style={{ '--span': span, ...tail.style } as CSSProperties}
      >
        <div className="tl-row tl-axis" role="row" aria-hidden="true">
          <span className="tl-label" />
          <span className="tl-track">
            {/* Every other tick is left out on a phone, where five labels do not fit. */}
            {ticks.map((t, i) => (
              <span
                key={t}
                className={`tl-tick${i % 2 === 1 && ticks.length > 3 ? ' tl-tick-minor' : ''}${t === span && t > 0 ? ' tl-tick-end' : ''}`}
                style={{ left: `${(t / span) * 100}%` }}
              >
                {tickLabel(t)}
              </span>
            ))}
          </span>
          <span className="tl-duration" />
        </div>
        {groups.map((g) => (
          <div key={g.kind} role="rowgroup" className={`tl-group tl-group-${g.kind}`}>
            <div className="tl-group-title" role="row">
              <span role="columnheader">
                {GROUP_TITLES[g.kind]}
                {g.kind === 'call' && callsInAll > calls.bars.length && ` (latest ${formatNumber(calls.bars.length)} of ${formatNumber(callsInAll)})`}
                {g.kind === 'child' && childCount > g.bars.length && ` (latest ${formatNumber(g.bars.length)} of ${formatNumber(childCount)})`}
              </span>
            </div>
            {g.bars.map((bar) => (bar.end === null ? <OpenBarRow key={bar.key} bar={bar} from={from} /> : <BarRow key={bar.key} bar={bar} from={from} end={bar.end} />))}
          </div>
        ))}
      </div>
      {finishedAt === null && !tail.following && <JumpToLatest what="calls" onJump={() => tail.setFollowing(true)} />}
      </div>
    </section>
  );
});

/** A bar still open (a call in flight, the phase under way): it grows with the clock. */
function OpenBarRow({ bar, from }: { bar: TimelineBar; from: number }) {
  return <BarRow bar={bar} from={from} end={useNow()} />;
}

/** Re-renders only when its own bar changes (a finished call's row stays as it is while the run goes on). */
const BarRow = memo(
  function BarRow({ bar, from, end }: { bar: TimelineBar; from: number; end: number }) {
    const start = Math.max(0, bar.start - from);
    const duration = Math.max(0, end - bar.start);
    const label = visibleText(bar.label);
    const title = `${label}: ${formatDuration(duration)}${bar.end === null ? ' so far' : ''}, from +${formatDuration(start)}${bar.detail ? ` (${visibleText(bar.detail)})` : ''}`;
    return (
      <div className="tl-row" role="row" data-kind={bar.kind} data-state={bar.state} title={title}>
        <span className="tl-label" role="rowheader">
          {bar.runId ? <Link href={dashboardRunPath(bar.runId)}>{label}</Link> : label}
        </span>
        <span className="tl-track" role="cell">
          <span
            className={`tl-bar tl-${bar.state}`}
            style={{ '--start': start, '--duration': duration } as CSSProperties}
            data-start-ms={start}
            data-duration-ms={duration}
          />
        </span>
        <span className="tl-duration" role="cell">
          {formatDuration(duration)}
        </span>
      </div>
    );
  },
  (a, b) =>
    a.from === b.from &&
    a.end === b.end &&
    a.bar.key === b.bar.key &&
    a.bar.state === b.bar.state &&
    a.bar.start === b.bar.start &&
    a.bar.label === b.bar.label &&
    a.bar.detail === b.bar.detail,
);
