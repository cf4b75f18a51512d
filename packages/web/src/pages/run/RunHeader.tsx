import { memo, useMemo, useRef, useState } from 'react';
import type { ConnectionState } from '@runtrail/client/react';
import type { HandlerAvailability } from '@runtrail/client';
import { dashboardRunPath, isTerminalStatus, type Run, type RunError, type RunStatus, RuntrailError, slotWaitText, type Snapshot } from '@runtrail/protocol';
import { cannotText, useAccess } from '../../access.js';
import { client } from '../../client.js';
import { TRY_AGAIN, problemText } from '../../problem-text.js';
import { ConfirmButton } from '../../components/ConfirmButton.js';
import { ConnectionIndicator } from '../../components/ConnectionIndicator.js';
import { QueuedWhy } from '../../components/QueuedWhy.js';
import { StalledFor } from '../../components/RunningFor.js';
import { StatusBadge } from '../../components/StatusBadge.js';
import { formatDuration, formatTime, formatZone } from '../../format.js';
import { When } from '../../components/When.js';
import { Link, listLocation, navigate } from '../../router.js';
import { logOut } from '../../session.js';
import type { CancelRequest } from './cancel-request.js';
import { RunAnnouncement } from './RunAnnouncement.js';
import { RunErrorBox } from './RunErrorBox.js';
import { useNow } from '../../use-now.js';
import { useQueuedAhead } from '../../use-queued-ahead.js';
import { visibleText } from '../../visible-text.js';

/** The run's fields the header shows. */
const HEADER_FIELDS = ['id', 'name', 'status', 'execute', 'createdAt', 'startedAt', 'attempt', 'retryOf', 'parentId'] as const;
export type HeaderRun = Pick<Run, (typeof HEADER_FIELDS)[number]>;

/**
 * The run's fields the header shows, as the same object while they hold:
 * the page's run is a new object at every batch of events (it carries the
 * latest snapshot), which would render the memoised header at each one.
 */
export function useHeaderRun(run: Run | null): HeaderRun | null {
  // What the memo below last made: a box it updates, not state, since updating it must not render again.
  const [last] = useState<{ shown: HeaderRun | null }>(() => ({ shown: null }));
  return useMemo(() => {
    const prev = last.shown;
    if (run !== null && prev !== null && HEADER_FIELDS.every((k) => prev[k] === run[k])) return prev;
    last.shown = run === null ? null : (Object.fromEntries(HEADER_FIELDS.map((k) => [k, run[k]])) as HeaderRun);
    return last.shown;
  }, [run, last]);
}

export interface RunHeaderProps {
  run: HeaderRun;
  stalled: Snapshot['stalled'];
  cancelRequested: boolean;
  /** The run's cancel request (cancelRequestOf), made once per change of the events that carry it. */
  cancel: CancelRequest | null;
  /** The progress the live region says (useSaidPercent): it changes once a tenth, not at every progress event. */
  said: number | null;
  /** The status to show (the snapshot's terminal status as soon as it is known). */
  status: RunStatus;
  runError: RunError | null;
  finishedAt: number | null;
  /** While the server is away: when the page last heard it (its figures are from then). */
  asOf: number | null;
  /** The handlers live nodes define and when queued runs of the others end (null: not known or not asked), to say why a queued run waits. */
  handlers: HandlerAvailability | null;
  connection: ConnectionState;
  observers: number | null;
  /** Why the page's watcher gave up, if it did (a revoked token): said, never just an "ended" dot. */
  streamError: RuntrailError | null;
  /** Runs directly under this one: a delete takes them too, and asks so. */
  childCount: number;
}

/**
 * The run's name, status, timings, error and its actions (cancel, retry,
 * delete). Memoised on what it shows, so an event that changes none of it
 * (progress, a log line) leaves it be.
 */
export const RunHeader = memo(function RunHeader({ run, stalled, cancelRequested, cancel, said, status, runError, finishedAt, asOf, handlers, connection, observers, streamError, childCount }: RunHeaderProps) {
  const [actionError, setActionError] = useState<string | null>(null);
  // A double click must not make two attempts: the ref refuses a second click
  // before the disabled button is rendered, the state shows it is pending.
  const retrying = useRef(false);
  const [retryPending, setRetryPending] = useState(false);
  const access = useAccess();
  // Its place is asked only when a limit holds it: otherwise no sentence says it.
  const ahead = useQueuedAhead(run, status === 'queued' && run.execute && handlers !== null && slotWaitText(run.name, handlers.nodes) !== null, handlers);
  const terminal = isTerminalStatus(status);
  const waiting = status === 'queued' && run.startedAt === null;
  const act = (what: string, action: () => Promise<void>) => async () => {
    setActionError(null);
    try {
      await action();
    } catch (err) {
      setActionError(problemText(err, `${what} failed`, TRY_AGAIN));
    }
  };
  return (
    <header className="run-head panel">
      <div className="run-title">
        <h1>{visibleText(run.name)}</h1>
        <StatusBadge status={status} />
        {stalled && !terminal && (
          <span className="badge badge-stalled" data-testid="stalled-badge">
            stalled
          </span>
        )}
        <ConnectionIndicator state={connection} observers={observers} runEnded={terminal} asOf={asOf} />
      </div>
      <RunAnnouncement status={status} stalled={stalled !== null} said={said} />
      <dl className="timings">
        <div>
          <dt>Run id</dt>
          <dd className="mono">{run.id}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <When ts={run.createdAt} />
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            <When ts={run.startedAt} />
          </dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>
            <When ts={finishedAt} />
          </dd>
        </div>
        <div>
          {/* A run still queued has no duration yet: how long it has waited is what its reader asks. */}
          <dt data-testid="duration-title">{waiting ? 'Queued for' : 'Duration'}</dt>
          <dd data-testid="duration">
            <RunDuration waiting={waiting} createdAt={run.createdAt} startedAt={run.startedAt} finishedAt={finishedAt} />
          </dd>
        </div>
        <div>
          {/* The times above are the reader's local times: which zone that is, once. */}
          <dt>Time zone</dt>
          <dd data-testid="time-zone">{formatZone(run.createdAt)}</dd>
        </div>
        {run.attempt > 1 && (
          <div>
            <dt>Attempt</dt>
            <dd>{run.attempt}</dd>
          </div>
        )}
        {run.retryOf && (
          <div>
            <dt>Retry of</dt>
            <dd>
              <Link href={dashboardRunPath(run.retryOf)}>earlier run</Link>
            </dd>
          </div>
        )}
        {run.parentId && (
          <div>
            <dt>Parent</dt>
            <dd>
              <Link href={dashboardRunPath(run.parentId)}>parent run</Link>
            </dd>
          </div>
        )}
      </dl>
      <RunErrorBox error={runError} />
      {status === 'queued' && <QueuedWhy run={run} handlers={handlers} ahead={ahead} />}
      {cancelRequested && !terminal && <p className="note">Cancel requested; waiting for the run to stop.</p>}
      {cancel?.reason && cancel.reason !== runError?.message && (
        <p className="note" data-testid="cancel-reason">
          Cancel reason: <q>{visibleText(cancel.reason)}</q>
          {cancel.at !== null && <span className="muted"> (asked at {formatTime(cancel.at)})</span>}
        </p>
      )}
      {stalled && (
        // Not a live region: it counts up every second (RunAnnouncement says "stalled" once).
        <p className="note warn" data-testid="stalled">
          Stalled: no progress for <StalledFor stalled={stalled} startedAt={run.startedAt} />
          {stalled.lastProgressAt !== null && ` (last progress at ${formatTime(stalled.lastProgressAt)})`}; it is
          called stalled after {formatDuration(stalled.stallTimeoutMs)}.
        </p>
      )}
      {access.canProduce ? (
        <div className="actions">
          <ConfirmButton
            label="Cancel run"
            question="Cancel this run?"
            confirmLabel="Yes, cancel it"
            danger
            disabled={terminal || cancelRequested}
            reasonLabel="reason (optional)"
            onConfirm={(reason) =>
              act('Cancel', async () => {
                await client.cancelRun(run.id, reason || 'cancelled from the dashboard');
              })()
            }
          />
          {/* Only a handler run can be run again by the server (a producer's run gets 409 run_not_retryable). */}
          {run.execute && (
            <button
              type="button"
              disabled={!terminal || retryPending}
              onClick={() => {
                if (retrying.current) return;
                retrying.current = true;
                setRetryPending(true);
                void act('Retry', async () => {
                  try {
                    const next = await client.retryRun(run.id);
                    navigate(dashboardRunPath(next.id));
                  } finally {
                    retrying.current = false;
                    setRetryPending(false);
                  }
                })();
              }}
            >
              Retry
            </button>
          )}
          {access.canAdmin ? (
            <ConfirmButton
              label="Delete run"
              question={
                childCount > 0
                  ? `Delete this run, the ${childCount === 1 ? 'run' : `${childCount.toLocaleString('en-US')} runs`} under it (and theirs) and all their events?`
                  : 'Delete this run and all its events?'
              }
              confirmLabel="Yes, delete it"
              danger
              disabled={!terminal}
              onConfirm={act('Delete', async () => {
                try {
                  await client.deleteRun(run.id);
                } catch (err) {
                  // Deleted meanwhile (another tab, the CLI): what was asked is done, not failed.
                  if (!(err instanceof RuntrailError && err.code === 'run_not_found')) throw err;
                }
                navigate(listLocation());
              })}
            />
          ) : (
            <span className="muted cannot">Deleting: {cannotText(access, 'admin')}</span>
          )}
        </div>
      ) : (
        <p className="note cannot" data-testid="cannot">
          {cannotText(access, 'producer')}
        </p>
      )}
      {actionError && (
        <p className="invalid" role="alert">
          {actionError}
        </p>
      )}
      {/* The watcher stopped before the run ended: the numbers above are frozen, and the reader must know why. */}
      {connection === 'ended' && streamError && !terminal && (
        <p className="invalid" role="alert" data-testid="stream-problem">
          {problemText(streamError, 'the page stopped following the run')}
          {streamError.code === 'unauthorized' && access.auth && (
            <>
              {' '}
              <button type="button" className="small" onClick={logOut}>
                Log in again
              </button>
            </>
          )}
        </p>
      )}
    </header>
  );
});

/** How long the run has run (or waited, queued): the header's one part that reads the clock. */
function RunDuration({ waiting, createdAt, startedAt, finishedAt }: { waiting: boolean; createdAt: number; startedAt: number | null; finishedAt: number | null }) {
  const now = useNow();
  return <>{formatDuration(waiting ? now - createdAt : startedAt === null ? null : (finishedAt ?? now) - startedAt)}</>;
}
