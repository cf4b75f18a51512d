import { memo, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { OUTPUT_LOG_ARTIFACT, RuntrailError, SNAPSHOT_LIMITS, type ArtifactRecord, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { client, messageOf } from '../../client.js';
import { TRY_AGAIN, isUnreachable, problemText } from '../../problem-text.js';
import { copyText } from '../../components/clipboard.js';
import { fileNameOf, saveResponse } from '../../components/download.js';
import { JumpToLatest } from '../../components/JumpToLatest.js';
import { useVirtualTail, virtualRowProps, type VirtualRowPlace } from '../../components/use-virtual-tail.js';
import { countOf, formatNumber } from '../../format.js';
import { visibleText } from '../../visible-text.js';
import { terminalLine } from './terminal-line.js';
import './run-panels.css';

/** A line unwrapped (0.8rem at a line height of 1.35): each line drawn is measured, so one that wraps is as tall as it is. */
const LINE_HEIGHT = 17;
/** Above the first line and below the last (the box's padding, inside its scroll height). */
const PADDING = 6;

interface Line {
  seq: number;
  ts: number;
  level: string;
  stream: 'stdout' | 'stderr' | null;
  message: string;
}

/*
 * One Line per log event, made once: a batch of other events (progress, a
 * call) leaves every line as it was, and so every row drawn, which the rows'
 * memo relies on.
 */
const lineOfEvent = new WeakMap<RunEvent, Line | null>();

function lineOf(e: RunEvent): Line | null {
  const known = lineOfEvent.get(e);
  if (known !== undefined) return known;
  const data = e.data as { level?: unknown; message?: unknown; stream?: unknown } | null;
  const line: Line | null =
    !data || typeof data.message !== 'string'
      ? null
      : {
          seq: e.seq,
          ts: e.ts,
          level: typeof data.level === 'string' ? data.level : 'info',
          stream: data.stream === 'stdout' || data.stream === 'stderr' ? data.stream : null,
          // Shown and searched as the reader sees it: as a terminal shows it, direction controls as markers.
          message: visibleText(terminalLine(data.message)),
        };
  lineOfEvent.set(e, line);
  return line;
}

/** The log lines of `events`: `previous` itself when they are the same lines, so nothing downstream sees a change. */
function linesOf(events: readonly RunEvent[], previous: Line[]): Line[] {
  const lines: Line[] = [];
  for (const e of events) {
    const line = e.type === 'log' ? lineOf(e) : null;
    if (line) lines.push(line);
  }
  return lines.length === previous.length && lines.every((l, i) => l === previous[i]) ? previous : lines;
}

/** `text` with each case-insensitive occurrence of `needle` marked. */
function highlighted(text: string, needle: string) {
  if (!needle) return text;
  const parts: ReactNode[] = [];
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, at)) {
    parts.push(text.slice(at, i), <mark key={i}>{text.slice(i, i + needle.length)}</mark>);
    at = i + needle.length;
  }
  parts.push(text.slice(at));
  return parts;
}

type LogFile = { state: 'none' } | { state: 'checking' } | { state: 'here' } | { state: 'elsewhere'; message: string };

/**
 * Whether this server has the run's output log file (a one-byte range
 * request), or why not: a log on another host is said, not offered.
 */
function useLogFile(runId: string, artifacts: readonly ArtifactRecord[], ended: boolean): LogFile {
  // A link to the file (ctx.exec, an embedded exec) or the log stored when the command ended (exec --server).
  const linked = artifacts.some((a) => a.name === OUTPUT_LOG_ARTIFACT);
  const [file, setFile] = useState<LogFile>({ state: 'none' });
  useEffect(() => {
    if (!linked) return;
    const aborter = new AbortController();
    setFile({ state: 'checking' });
    client.fetchLog(runId, { range: 'bytes=0-0', signal: aborter.signal }).then(
      async (res) => {
        await res.body?.cancel();
        setFile({ state: 'here' });
      },
      (err: unknown) => {
        if (aborter.signal.aborted) return;
        // An empty log (416 for any range) is still a log to download.
        if (RuntrailError.isCode(err, 'range_not_satisfiable')) setFile({ state: 'here' });
        else setFile({ state: 'elsewhere', message: isUnreachable(err) ? problemText(err, 'could not check for the log', TRY_AGAIN) : messageOf(err) });
      },
    );
    return () => aborter.abort();
    // Asked again when the run ends: a command may not have printed anything when the page first asked.
  }, [runId, linked, ended]);
  return file;
}

/**
 * The run's output as a terminal shows it: each line as printed
 * (indentation kept), stderr marked, levels coloured; search; it follows
 * the newest line until the reader scrolls up. The full log (every line,
 * unthrottled) downloads from the server when it has it.
 *
 * Virtualised: only the lines in and near view are on the page (a busy run
 * holds thousands, and drawing them all kept the page busy). Lines wrap,
 * each as tall as it is drawn. What is not on the page cannot be selected
 * or found: a selection or the browser's find in page reaches the lines in
 * and near view; the search box above searches them all, and Copy all
 * copies every line the page holds (those the search matches, while it
 * narrows them).
 */
export const Console = memo(function Console({
  runId,
  events,
  recentLogs,
  artifacts,
  ended,
}: {
  runId: string;
  events: readonly RunEvent[];
  /** The snapshot's last lines of output (with their seqs): whether the run printed before the events held. */
  recentLogs: Snapshot['logs'];
  artifacts: readonly ArtifactRecord[];
  ended: boolean;
}) {
  const [search, setSearch] = useState('');
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const [copied, setCopied] = useState<{ ok: boolean; text: string } | null>(null);
  const logFile = useLogFile(runId, artifacts, ended);
  // The lines as they were when no line came in: the search, the virtualiser and the follow all stay put.
  const kept = useRef<Line[]>([]);
  const lines = useMemo(() => (kept.current = linesOf(events, kept.current)), [events]);
  const needle = search.trim().toLowerCase();
  // The page holds a long run's latest events only. The snapshot keeps the
  // last 100 lines: one older than the held events, or all 100 of them held,
  // means output the console cannot show; fewer, all held, means none.
  const from = events[0]?.seq ?? 1;
  const olderOutput = from > 1 && recentLogs.length > 0 && (recentLogs[0]!.seq < from || recentLogs.length >= SNAPSHOT_LIMITS.logs);
  const within = olderOutput ? ` in the latest ${formatNumber(events.length)} events` : '';
  const shown = useMemo(() => (needle ? lines.filter((l) => l.message.toLowerCase().includes(needle)) : lines), [lines, needle]);

  const { rows, tail, onScroll } = useVirtualTail(shown, { content: shown, estimateSize: LINE_HEIGHT, overscan: 20, padding: PADDING });
  const follow = tail.following;

  const download = async () => {
    setDownloadError(null);
    try {
      const res = await client.fetchLog(runId);
      await saveResponse(res, fileNameOf(res, `${runId}.log`));
    } catch (err) {
      setDownloadError(problemText(err, 'download failed', TRY_AGAIN));
    }
  };

  // From the lines the page holds, not the drawn ones: a selection reaches only those in and near view.
  const copyAll = async () => {
    const copying = shown;
    try {
      await copyText(copying.map((l) => l.message).join('\n'));
      setCopied({ ok: true, text: `Copied ${countOf(copying.length, 'line')}.` });
    } catch (err) {
      setCopied({ ok: false, text: `Could not copy: ${messageOf(err)}` });
    }
  };

  return (
    <section className="panel console-panel" aria-labelledby="console-title">
      <header className="panel-head">
        <h2 id="console-title">
          Console <span className="muted">({shown.length === lines.length ? countOf(lines.length, 'line') : `${formatNumber(shown.length)} of ${countOf(lines.length, 'line')}`}{within})</span>
        </h2>
        <div className="filters">
          <input type="search" aria-label="search the output" placeholder="search output" value={search} onChange={(e) => setSearch(e.target.value)} />
          {/* An ended run prints nothing more: a pressed "Following" would promise lines that never come. */}
          {ended ? (
            <span className="muted follow-ended" data-testid="console-ended">
              run ended: no new output
            </span>
          ) : (
            <button type="button" className="small" aria-pressed={follow} onClick={() => tail.setFollowing(!follow)}>
              {follow ? 'Following' : 'Follow'}
            </button>
          )}
          {shown.length > 0 && (
            <button
              type="button"
              className="small"
              onClick={() => void copyAll()}
              title={shown.length === lines.length ? 'every line the page holds, not only those on screen' : 'every line the search matches, not only those on screen'}
            >
              {shown.length === lines.length ? 'Copy all' : 'Copy matching'}
            </button>
          )}
          {/* Beside the button, and told to a screen reader: always on the page, so a status that appears is announced. */}
          <span className={copied?.ok === false ? 'invalid' : 'muted small'} role="status" aria-label="copy of the output" data-testid="console-copied">
            {copied?.text}
          </span>
          {logFile.state === 'here' && (
            <button type="button" className="small" onClick={() => void download()}>
              Download full log
            </button>
          )}
        </div>
      </header>
      {logFile.state === 'elsewhere' && (
        <p className="note" data-testid="log-elsewhere">
          {logFile.message}
        </p>
      )}
      {downloadError && (
        <p className="invalid" role="alert">
          {downloadError}
        </p>
      )}
      <div className="follow-box">
      <div
        ref={tail.ref}
        className="console"
        role="log"
        aria-label="run output"
        // A log is a polite live region by default: a screen reader would read out every line as it is printed.
        aria-live="off"
        tabIndex={0}
        {...tail.handlers}
        onScroll={onScroll}
        style={tail.style}
      >
        {lines.length === 0 ? (
          <p className="muted console-empty">{olderOutput ? `No output${within}.` : ended ? 'No output.' : 'No output yet.'}</p>
        ) : shown.length === 0 ? (
          <p className="muted console-empty">No line matches “{search.trim()}”.</p>
        ) : (
          <div style={{ height: rows.getTotalSize(), position: 'relative' }}>
            {rows.getVirtualItems().map((row) => (
              <ConsoleLine key={shown[row.index]!.seq} line={shown[row.index]!} needle={needle} index={row.index} start={row.start} measure={rows.measureElement} />
            ))}
          </div>
        )}
      </div>
      {!follow && !ended && <JumpToLatest what="output" onJump={() => tail.setFollowing(true)} />}
      </div>
    </section>
  );
});

/** One line drawn; memoised, so a batch of events or a tick of the page leaves the lines in view as they are. */
const ConsoleLine = memo(function ConsoleLine({
  line: l,
  needle,
  index,
  start,
  measure,
}: {
  line: Line;
  needle: string;
} & VirtualRowPlace) {
  return (
    <div
      {...virtualRowProps({ index, start, measure })}
      className={`console-line level-${l.level}${l.stream ? ` stream-${l.stream}` : ' stream-runtrail'}`}
      data-stream={l.stream ?? 'runtrail'}
    >
      <span className="console-gutter" title={l.stream ?? 'runtrail'}>
        {l.stream === 'stderr' ? 'err' : l.stream === 'stdout' ? 'out' : l.level}
      </span>
      <span className="console-text">{highlighted(l.message, needle)}</span>
    </div>
  );
});
