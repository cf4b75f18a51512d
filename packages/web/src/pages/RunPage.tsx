import { useMemo } from 'react';
import { useRun } from '@runtrail/client/react';
import { RuntrailError, hasCalls, isTerminalStatus, unfinishedCalls } from '@runtrail/protocol';
import { LIVE_RENDER_MS } from '../client.js';
import { Artifacts } from '../components/Artifacts.js';
import { ChildRuns } from '../components/ChildRuns.js';
import { EventLog } from '../components/EventLog.js';
import { problemText } from '../problem-text.js';
import { Link, listLocation, useRestoredScroll } from '../router.js';
import { useLiveHandlers } from '../use-live-handlers.js';
import { ClockContext, useServerClock } from '../use-now.js';
import { Console } from './run/Console.js';
import { Counters } from './run/Counters.js';
import { InFlight } from './run/InFlight.js';
import { LastErrorPanel } from './run/LastErrorPanel.js';
import { Metrics } from './run/Metrics.js';
import { ProgressPanel } from './run/ProgressPanel.js';
import { RunContext } from './run/RunContext.js';
import { cancelRequestOf } from './run/cancel-request.js';
import { useSaidPercent } from './run/RunAnnouncement.js';
import { RunHeader, useHeaderRun } from './run/RunHeader.js';
import { TIMELINE_CALL_EVENTS, Timeline } from './run/Timeline.js';
import { useChildCount, useChildRuns } from './run/use-child-runs.js';
import { useDocumentTitle } from './run/use-document-title.js';
import { useEventsOf } from '../use-events-of.js';
import { visibleText } from '../visible-text.js';

/** The events the Last error panel's failed calls are made of: the failures, and the starts that name their calls. */
const CALL_EVENTS: ReadonlySet<string> = new Set(['call.started', 'call.failed']);
const METRIC_EVENTS: ReadonlySet<string> = new Set(['metric']);
const CANCEL_EVENTS: ReadonlySet<string> = new Set(['run.cancel_requested']);

/**
 * One run's page: its header, then one panel per part of the snapshot
 * (each in pages/run/), the child runs, artifacts and the event log.
 */
export function RunPage({ id }: { id: string }) {
  // "N watching": pushed by the server on the page's stream while it is live (null otherwise), never polled.
  // untilDeleted: an ended run deleted by someone else (another tab, `runtrail delete`) while this page shows it says so.
  const { run, snapshot, events, connection, reason, error, observers, lastHeardAt } = useRun(id, { throttleMs: LIVE_RENDER_MS, observers: true, untilDeleted: true });
  const live = run !== null && !isTerminalStatus(run.status) && !snapshot.terminal;
  // Frozen while the server is away: the page knows nothing newer than when it last heard it. The page
  // passes the clock down without reading it: a tick renders the times on it, not the page.
  const { clock, asOf } = useServerClock(live, connection, lastHeardAt);
  const handlers = useLiveHandlers(run !== null && run.status === 'queued' && run.execute && !snapshot.terminal);
  const children = useChildRuns(id);
  const childCount = useChildCount(id, children.length);
  // Hooks, so above the early return: the panels that show them are memoised on these slices.
  const callEvents = useEventsOf(events, CALL_EVENTS);
  const metricEvents = useEventsOf(events, METRIC_EVENTS);
  const timelineCallEvents = useEventsOf(events, TIMELINE_CALL_EVENTS);
  const cancelEvents = useEventsOf(events, CANCEL_EVENTS);
  const { cancelRequested, cancelReason } = snapshot;
  const cancel = useMemo(() => cancelRequestOf(cancelEvents, { cancelRequested, cancelReason }), [cancelEvents, cancelRequested, cancelReason]);
  // The header is memoised on what it shows: these change with it, not with each batch of events.
  const headerRun = useHeaderRun(run);
  const said = useSaidPercent(snapshot.progress?.percent ?? null);
  const shownStatus = snapshot.terminal?.status ?? run?.status;
  // A link to a deleted run (or a mistyped one) is a page of its own: its tab and heading say so.
  const missing = !run && error instanceof RuntrailError && error.code === 'run_not_found';
  // Deleted while shown: what the page still holds is of a run that is gone, so none of it is shown.
  const deleted = reason === 'deleted';
  // The status first: a tab shows the first twenty-odd characters, and a longer name hid whether the run ended.
  useDocumentTitle(
    deleted ? 'Run deleted · runtrail' : run ? `${shownStatus} · ${visibleText(run.name)} · runtrail` : missing ? 'Run not found · runtrail' : `run ${id} · runtrail`,
  );
  useRestoredScroll();

  if (deleted) {
    return (
      <main className="page" tabIndex={-1}>
        <p>
          <Link href={listLocation()}>← All runs</Link>
        </p>
        <h1>Run deleted</h1>
        <p role="alert">
          Run <span className="mono">{visibleText(run ? `${run.name} (${id})` : id)}</span> was deleted while this page showed it.{' '}
          <Link href={listLocation()}>Back to all runs</Link>
        </p>
      </main>
    );
  }

  if (!run || !headerRun) {
    return (
      <main className="page" tabIndex={-1}>
        <p>
          <Link href={listLocation()}>← All runs</Link>
        </p>
        {missing ? (
          <>
            <h1>Run not found</h1>
            <p role="alert">
              Run <span className="mono">{visibleText(id)}</span> does not exist on this server: it was deleted, or the link is mistyped.
            </p>
          </>
        ) : error ? (
          <p className="invalid" role="alert">
            {problemText(error, 'could not load the run')}
          </p>
        ) : (
          <p className="muted">Loading run {id}…</p>
        )}
      </main>
    );
  }

  // The watcher never shows a snapshot behind the one the server had
  // persisted when the page (re)loaded, so a reload never shows lower
  // numbers than before it (field note 4).
  const s = snapshot;
  // The snapshot's terminal entry arrives with the stream, before the run's
  // own fields are re-read; it is the same terminal event, so show it at once.
  const status = s.terminal?.status ?? run.status;
  const runError = run.error ?? s.terminal?.error ?? null;
  const finishedAt = run.finishedAt ?? s.terminal?.at ?? null;

  return (
    <main className="page run-page" tabIndex={-1}>
      <p className="crumbs">
        <Link href={listLocation()}>← All runs</Link>
      </p>
      {/* Inside <main>, which stays the element it was while the run loaded: a new one would drop the focus
          the app gave it. The big parts below are memoised on what they are given: a render of the page for
          its header (the connection, the watchers) or for a part of the snapshot leaves the others as they are. */}
      <ClockContext value={clock}>
        <RunHeader
          run={headerRun}
          stalled={s.stalled}
          cancelRequested={s.cancelRequested}
          cancel={cancel}
          said={said}
          status={status}
          runError={runError}
          finishedAt={finishedAt}
          asOf={asOf}
          handlers={handlers}
          connection={connection}
          observers={observers}
          streamError={error}
          childCount={childCount}
        />
        <RunContext
          input={run.input}
          output={run.output ?? s.terminal?.output}
          labels={run.labels}
          meta={s.meta}
          startedAt={run.startedAt ?? s.startedAt}
          ended={isTerminalStatus(status)}
        />

        <div className="grid">
          <Counters counters={s.counters} madeCalls={hasCalls(s)} unfinished={unfinishedCalls(s)} />
          <ProgressPanel snapshot={s} events={events} status={status} startedAt={run.startedAt} />
        </div>
        <div className="grid">
          <InFlight snapshot={s} />
          <LastErrorPanel
            lastError={s.lastError}
            runError={runError}
            callEvents={callEvents}
            failedCount={s.counters.failed}
            retriesCount={s.counters.retries}
            // The counters come from the persisted snapshot at once, the events that name the failed calls after it.
            reading={(events.at(-1)?.seq ?? 0) < s.seq}
            cancelledAt={status === 'cancelled' ? run.cancelRequestedAt : null}
          />
        </div>
        <Timeline
          runStart={run.startedAt ?? run.createdAt}
          phases={s.phases}
          callEvents={timelineCallEvents}
          callsCounted={s.counters.ok + s.counters.failed + Object.keys(s.current).length}
          children={children}
          childCount={childCount}
          finishedAt={finishedAt}
        />
        <Metrics metrics={s.metrics} metricEvents={metricEvents} children={children} childCount={childCount} />
        <ChildRuns children={children} total={childCount} />
        <Artifacts runId={run.id} artifacts={s.artifacts} />
        <Console runId={run.id} events={events} recentLogs={s.logs} artifacts={s.artifacts} ended={isTerminalStatus(status)} />
        <EventLog events={events} total={s.seq} ended={isTerminalStatus(status)} />
      </ClockContext>
    </main>
  );
}
