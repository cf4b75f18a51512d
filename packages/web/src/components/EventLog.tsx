import { memo, useCallback, useMemo, useState } from 'react';
import type { RunEvent } from '@runtrail/protocol';
import { formatClock, formatFullTime, formatNumber } from '../format.js';
import { callLabels, eventSummary } from './event-summary.js';
import { visibleText } from '../visible-text.js';
import { JumpToLatest } from './JumpToLatest.js';
import { useVirtualTail, virtualRowProps, type VirtualRowPlace } from './use-virtual-tail.js';
import { useEventsOf } from '../use-events-of.js';

const ROW_HEIGHT = 24;
const CALL_STARTS: ReadonlySet<string> = new Set(['call.started']);

/**
 * Each event's summary as last made, with the label of its call it was made
 * with: the rows in view and the text filter ask for the same summaries
 * again and again, and one changes only when its call's label does.
 */
const summaries = new WeakMap<RunEvent, { label: string | undefined; text: string }>();

function summaryOf(event: RunEvent, labels: ReadonlyMap<string, string>): string {
  const callId = (event.data as { callId?: unknown } | null)?.callId;
  const label = typeof callId === 'string' ? labels.get(callId) : undefined;
  const known = summaries.get(event);
  if (known && known.label === label) return known.text;
  const text = eventSummary(event, labels);
  summaries.set(event, { label, text });
  return text;
}

/** An event in full, for its expanded row: its message or error as printed (newlines kept), the rest as indented JSON. */
function fullText(event: RunEvent): string {
  const head = `#${event.seq} ${event.type} at ${new Date(event.ts).toISOString()}`;
  const data = event.data;
  if (data === undefined || data === null) return head;
  if (typeof data !== 'object' || Array.isArray(data)) return `${head}\n${JSON.stringify(data, null, 2)}`;
  const texts: string[] = [];
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if ((key === 'message' || key === 'error') && typeof value === 'string') texts.push(value);
    else rest[key] = value;
  }
  return [head, ...texts, ...(Object.keys(rest).length > 0 ? [JSON.stringify(rest, null, 2)] : [])].join('\n');
}

/**
 * The run's event log, virtualised so the rows in view are all that is
 * rendered. The page holds only the latest events of a long run (the
 * watcher's `maxEvents`); `total`, the run's last seq, says how many there
 * are in all, so a count of the held ones is never passed off as the run's. It follows the tail until the reader
 * scrolls up, and picks it up again when they scroll back to the bottom.
 * A row opens to its full text (a long message, a traceback, the whole
 * data), wrapped to the width of the page, on a phone too.
 */
export const EventLog = memo(function EventLog({ events, total, ended }: { events: readonly RunEvent[]; total: number; ended: boolean }) {
  const [type, setType] = useState('');
  const [text, setText] = useState('');
  const [expanded, setExpanded] = useState<ReadonlySet<number>>(() => new Set());
  // The same function at every render, so the rows' memo holds.
  const toggle = useCallback(
    (seq: number) =>
      setExpanded((open) => {
        const next = new Set(open);
        if (!next.delete(seq)) next.add(seq);
        return next;
      }),
    [],
  );

  const types = useMemo(() => [...new Set(events.map((e) => e.type))].sort(), [events]);
  // Made again only when a call starts, not from every held event at each batch.
  const starts = useEventsOf(events, CALL_STARTS);
  const labels = useMemo(() => callLabels(starts), [starts]);
  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    // What the row says, or anything in its data (an id the summary leaves out).
    return events.filter(
      (e) =>
        (type === '' || e.type === type) &&
        (needle === '' ||
          e.type.includes(needle) ||
          summaryOf(e, labels).toLowerCase().includes(needle) ||
          JSON.stringify(e.data ?? '').toLowerCase().includes(needle)),
    );
  }, [events, type, text, labels]);

  const { rows, tail, onScroll } = useVirtualTail(shown, { content: shown.length, estimateSize: ROW_HEIGHT, overscan: 12 });
  const { following: follow, setFollowing: setFollow, ref: scroller } = tail;

  // Seqs are 1, 2, … per run: held events that do not start at 1 are the latest of more.
  const partial = events.length > 0 && events[0]!.seq > 1 && total > events.length;
  const held = partial ? `the latest ${formatNumber(events.length)} of ${formatNumber(total)}` : formatNumber(events.length);

  return (
    <section className="panel event-log" aria-labelledby="events-title">
      <header className="panel-head">
        <h2 id="events-title">
          Events <span className="muted">({shown.length === events.length ? held : `${formatNumber(shown.length)} of ${held}`})</span>
        </h2>
        <div className="filters">
          <select aria-label="filter events by type" value={type} onChange={(e) => setType(e.target.value)}>
            <option value="">all types</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {visibleText(t)}
              </option>
            ))}
          </select>
          <input
            type="search"
            aria-label="filter events by text"
            placeholder="filter text"
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
          {/* An ended run gets no new events: a "follow" to tick would promise some. "Jump to latest" still reaches the end. */}
          {ended ? (
            <span className="muted follow-ended" data-testid="events-ended">
              run ended: no new events
            </span>
          ) : (
            <label className="check">
              <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} aria-label="follow the newest events" />
              follow
            </label>
          )}
        </div>
      </header>
      {partial && (
        <p className="note" data-testid="events-partial">
          This page holds the latest {formatNumber(events.length)} events; the {formatNumber(total - events.length)} before them are not
          loaded here (<code>runtrail export</code> has them all).
        </p>
      )}
      {/* Not live (a log is polite by default): a screen reader would read out every event as it arrives. */}
      <div className="follow-box">
      <div ref={scroller} className="log-scroll" {...tail.handlers} onScroll={onScroll} style={tail.style} role="log" aria-live="off" aria-label="event log" tabIndex={0}>
        <div style={{ height: rows.getTotalSize(), position: 'relative' }}>
          {rows.getVirtualItems().map((row) => {
            const e = shown[row.index]!;
            return (
              <EventRow
                key={e.seq}
                event={e}
                summary={summaryOf(e, labels)}
                open={expanded.has(e.seq)}
                onToggle={toggle}
                index={row.index}
                start={row.start}
                measure={rows.measureElement}
              />
            );
          })}
        </div>
      </div>
      {!follow && <JumpToLatest what="events" onJump={() => setFollow(true)} />}
      </div>
    </section>
  );
});

/**
 * One event's row. Memoised on what it shows (its summary as a string: the
 * call labels it is made from change when any call starts), so a batch of
 * new events draws the new rows, not again the ones in view.
 */
const EventRow = memo(function EventRow({
  event: e,
  summary,
  open,
  onToggle,
  index,
  start,
  measure,
}: {
  event: RunEvent;
  summary: string;
  open: boolean;
  onToggle: (seq: number) => void;
} & VirtualRowPlace) {
  return (
    <div {...virtualRowProps({ index, start, measure })} className={`log-entry type-${e.type.replace(/[^a-z]/g, '-')}${open ? ' open' : ''}`}>
      {/* The whole row opens on a click; the button is its keyboard and screen-reader handle. */}
      <div className="log-row" onClick={() => onToggle(e.seq)}>
        <button
          type="button"
          className="log-toggle"
          aria-expanded={open}
          aria-label={`${open ? 'hide' : 'show'} event ${e.seq} in full`}
          onClick={(click) => {
            click.stopPropagation();
            onToggle(e.seq);
          }}
        >
          {open ? '▾' : '▸'}
        </button>
        <span className="log-seq">{e.seq}</span>
        <time className="log-time" dateTime={new Date(e.ts).toISOString()} title={formatFullTime(e.ts)}>
          {formatClock(e.ts)}
        </time>
        <span className="log-type">{visibleText(e.type)}</span>
        <span className="log-data">{visibleText(summary)}</span>
      </div>
      {open && (
        <pre className="log-full" aria-label={`event ${e.seq} in full`}>
          {visibleText(fullText(e))}
        </pre>
      )}
    </div>
  );
});
