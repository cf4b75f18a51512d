import { useEffect, useRef, useState } from 'react';
import { pollEvery } from '@runtrail/client';
import { useRun } from '@runtrail/client/react';
import { isTerminalStatus, type LastError, type RunError, type Snapshot } from '@runtrail/protocol';
import { cannotText, useAccess } from '../access.js';
import { client, messageOf } from '../client.js';
import { Artifacts } from '../components/Artifacts.js';
import { ChildRuns } from '../components/ChildRuns.js';
import { ConfirmButton } from '../components/ConfirmButton.js';
import { ConnectionIndicator } from '../components/ConnectionIndicator.js';
import { EventLog } from '../components/EventLog.js';
import { MetricChart } from '../components/MetricChart.js';
import { ProgressBar } from '../components/ProgressBar.js';
import { StatusBadge } from '../components/StatusBadge.js';
import { errorKindText, estimateEta, formatDuration, formatNumber, formatTime } from '../format.js';
import { Link, navigate } from '../router.js';
import { useNow } from '../use-now.js';

const OBSERVERS_REFRESH_MS = 5000;

export function RunPage({ id }: { id: string }) {
  const { run, snapshot, events, connection, error } = useRun(id);
  const live = run !== null && !isTerminalStatus(run.status) && !snapshot.terminal;
  const now = useNow(live);
  const observers = useObservers(id, live);
  const [actionError, setActionError] = useState<string | null>(null);
  const access = useAccess();

  if (!run) {
    return (
      <main className="page">
        <p>
          <Link href="/">← All runs</Link>
        </p>
        {error ? (
          <p className="invalid" role="alert">
            {messageOf(error)}
          </p>
        ) : (
          <p className="muted">Loading run {id}…</p>
        )}
      </main>
    );
  }

  const act = (what: string, action: () => Promise<void>) => async () => {
    setActionError(null);
    try {
      await action();
    } catch (err) {
      setActionError(`${what} failed: ${messageOf(err)}`);
    }
  };
  // The watcher never shows a snapshot behind the one the server had
  // persisted when the page (re)loaded, so a reload never shows lower
  // numbers than before it (field note 4).
  const s = snapshot;
  // The snapshot's terminal entry arrives with the stream, before the run's
  // own fields are re-read; it is the same terminal event, so show it at once.
  const status = s.terminal?.status ?? run.status;
  const runError = run.error ?? s.terminal?.error ?? null;
  const finishedAt = run.finishedAt ?? s.terminal?.at ?? null;
  const terminal = isTerminalStatus(status);

  return (
    <main className="page run-page">
      <p className="crumbs">
        <Link href="/">← All runs</Link>
      </p>
      <header className="run-head panel">
        <div className="run-title">
          <h1>{run.name}</h1>
          <StatusBadge status={status} />
          <ConnectionIndicator state={connection} observers={observers} />
        </div>
        <dl className="timings">
          <div>
            <dt>Run id</dt>
            <dd className="mono">{run.id}</dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{formatTime(run.createdAt)}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{formatTime(run.startedAt)}</dd>
          </div>
          <div>
            <dt>Finished</dt>
            <dd>{formatTime(finishedAt)}</dd>
          </div>
          <div>
            <dt>Duration</dt>
            <dd data-testid="duration">
              {formatDuration(run.startedAt === null ? null : (finishedAt ?? now) - run.startedAt)}
            </dd>
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
                <Link href={`/runs/${run.retryOf}`}>earlier run</Link>
              </dd>
            </div>
          )}
          {run.parentId && (
            <div>
              <dt>Parent</dt>
              <dd>
                <Link href={`/runs/${run.parentId}`}>parent run</Link>
              </dd>
            </div>
          )}
        </dl>
        <RunErrorBox error={runError} />
        {s.cancelRequested && !terminal && <p className="note">Cancel requested; waiting for the run to stop.</p>}
        {s.stalled && (
          <p className="note warn" role="status">
            Stalled: no progress for {formatDuration(s.stalled.stallTimeoutMs)}
            {s.stalled.lastProgressAt !== null && ` (last progress at ${formatTime(s.stalled.lastProgressAt)})`}.
          </p>
        )}
        {access.canProduce ? (
          <div className="actions">
            <ConfirmButton
              label="Cancel run"
              question="Cancel this run?"
              confirmLabel="Yes, cancel it"
              danger
              disabled={terminal || s.cancelRequested}
              onConfirm={act('Cancel', async () => {
                await client.cancelRun(run.id, 'cancelled from the dashboard');
              })}
            />
            {/* Only a handler run can be run again by the server (a producer's run gets 409 run_not_retryable). */}
            {run.execute && (
              <button
                type="button"
                disabled={!terminal}
                onClick={() => {
                  void act('Retry', async () => {
                    const next = await client.retryRun(run.id);
                    navigate(`/runs/${next.id}`);
                  })();
                }}
              >
                Retry
              </button>
            )}
            {access.canAdmin ? (
              <ConfirmButton
                label="Delete run"
                question="Delete this run and all its events?"
                confirmLabel="Yes, delete it"
                danger
                disabled={!terminal}
                onConfirm={act('Delete', async () => {
                  await client.deleteRun(run.id);
                  navigate('/');
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
      </header>

      <div className="grid">
        <Counters snapshot={s} />
        <ProgressPanel snapshot={s} startedAt={run.startedAt} />
      </div>
      <div className="grid">
        <InFlight snapshot={s} now={now} />
        <LastErrorPanel lastError={s.lastError} />
      </div>
      <Phases snapshot={s} now={now} />
      <Metrics snapshot={s} />
      {access.canList && <ChildRuns parentId={run.id} />}
      <Artifacts artifacts={s.artifacts} />
      <EventLog events={events} />
    </main>
  );
}

/**
 * The observer count is a property of the server's view, not of the event
 * log, so the page re-reads it from GET /runs/:id while the run is live.
 */
function useObservers(id: string, live: boolean): number | null {
  const [observers, setObservers] = useState<number | null>(null);
  useEffect(() => {
    const stop = new AbortController();
    pollEvery(
      () => client.getRun(id),
      {
        onValue: (run) => {
          setObservers(run.observers);
          // An ended run's count is read once.
          if (!live) stop.abort();
        },
        // The connection indicator already tells the reader that the server is
        // unreachable; a stale count is harmless until the next read.
        onError: () => undefined,
      },
      { intervalMs: OBSERVERS_REFRESH_MS, signal: stop.signal },
    );
    return () => stop.abort();
  }, [id, live]);
  return observers;
}

function RunErrorBox({ error }: { error: RunError | null }) {
  if (!error) return null;
  return (
    <div className="run-error" role="alert" data-testid="run-error">
      <strong data-testid="error-kind">{error.kind}</strong>: {errorKindText(error.kind)}
      <div className="mono">{error.message}</div>
    </div>
  );
}

function Counters({ snapshot }: { snapshot: Snapshot }) {
  const { ok, failed, retries, named } = snapshot.counters;
  return (
    <section className="panel" aria-labelledby="counters-title">
      <h2 id="counters-title">Calls</h2>
      <div className="counters">
        <div className="counter ok">
          <span className="value" data-testid="counter-ok" aria-label={`${ok} succeeded`}>
            {ok}
          </span>
          <span className="name">OK</span>
        </div>
        <div className="counter failed">
          <span className="value" data-testid="counter-failed" aria-label={`${failed} failed`}>
            {failed}
          </span>
          <span className="name">Failed</span>
        </div>
        <div className="counter retries">
          <span className="value" data-testid="counter-retries" aria-label={`${retries} retries`}>
            {retries}
          </span>
          <span className="name">Retries</span>
        </div>
      </div>
      {Object.keys(named).length > 0 && (
        <dl className="named-counters">
          {Object.entries(named).map(([name, value]) => (
            <div key={name}>
              <dt>{name}</dt>
              <dd>{formatNumber(value)}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}

function ProgressPanel({ snapshot, startedAt }: { snapshot: Snapshot; startedAt: number | null }) {
  const p = snapshot.progress;
  const eta = snapshot.terminal ? null : estimateEta(p, startedAt);
  return (
    <section className="panel" aria-labelledby="progress-title">
      <h2 id="progress-title">Progress</h2>
      {p ? (
        <>
          <ProgressBar percent={p.percent} label="run progress" />
          <p>
            <span data-testid="progress-done">{formatNumber(p.done)}</span>
            {p.total !== null && ` of ${formatNumber(p.total)}`}
            {p.percent !== null && ` (${p.percent.toFixed(1)}%)`}
            {eta !== null && <span data-testid="eta"> · about {formatDuration(eta)} left</span>}
          </p>
          {p.message && <p className="muted">{p.message}</p>}
        </>
      ) : (
        <p className="muted">No progress reported yet.</p>
      )}
      {snapshot.phase && (
        <p>
          Phase: <strong>{snapshot.phase}</strong>
        </p>
      )}
    </section>
  );
}

function InFlight({ snapshot, now }: { snapshot: Snapshot; now: number }) {
  const calls = Object.values(snapshot.current).sort((a, b) => a.startedAt - b.startedAt);
  return (
    <section className="panel" aria-labelledby="inflight-title">
      <h2 id="inflight-title">In flight ({calls.length})</h2>
      {calls.length === 0 ? (
        <p className="muted">No calls running.</p>
      ) : (
        <ul className="inflight" data-testid="in-flight">
          {calls.map((c) => (
            <li key={c.callId}>
              <span className="spinner" aria-hidden="true" />
              <span className="call-label">{c.label}</span>
              {c.attempt > 1 && <span className="attempt">attempt {c.attempt}</span>}
              <span className="muted">{formatDuration(Math.max(0, now - c.startedAt))}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/**
 * The last error, and, once a later success cleared it, that it did: a
 * reader who saw it a moment ago should not wonder where it went (field
 * note 8: a cleared error must not stay on screen as if it were current).
 */
function LastErrorPanel({ lastError }: { lastError: LastError | null }) {
  const seen = useRef<LastError | null>(null);
  const [cleared, setCleared] = useState<LastError | null>(null);
  useEffect(() => {
    if (lastError) {
      seen.current = lastError;
      setCleared(null);
    } else if (seen.current) {
      setCleared(seen.current);
      seen.current = null;
    }
  }, [lastError]);
  return (
    <section className="panel" aria-labelledby="lasterror-title">
      <h2 id="lasterror-title">Last error</h2>
      {lastError ? (
        <p className="invalid" data-testid="last-error">
          {lastError.message}
          <span className="muted"> · {formatTime(lastError.ts)}</span>
        </p>
      ) : cleared ? (
        <p className="cleared" data-testid="last-error-cleared">
          Cleared by a later success: <s>{cleared.message}</s>
        </p>
      ) : (
        <p className="muted">None.</p>
      )}
    </section>
  );
}

function Phases({ snapshot, now }: { snapshot: Snapshot; now: number }) {
  if (snapshot.phases.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="phases-title">
      <h2 id="phases-title">Phases</h2>
      <ol className="phases">
        {snapshot.phases.map((p, i) => {
          const duration = p.durationMs ?? now - p.startedAt;
          const over = p.timeoutMs !== null && duration > p.timeoutMs;
          return (
            <li key={`${p.name}-${i}`} className={`phase phase-${p.status}`}>
              <span className="phase-name">{p.name}</span>
              <span className={`badge badge-phase-${p.status}`}>{p.status === 'started' ? 'running' : p.status}</span>
              <span className="muted">from {formatTime(p.startedAt)}</span>
              <span>{formatDuration(duration)}</span>
              {p.timeoutMs !== null && (
                <span className={over ? 'invalid' : 'muted'}>timeout {formatDuration(p.timeoutMs)}</span>
              )}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function Metrics({ snapshot }: { snapshot: Snapshot }) {
  const names = Object.keys(snapshot.metrics).sort();
  if (names.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="metrics-title">
      <h2 id="metrics-title">Metrics</h2>
      <div className="metrics">
        {names.map((name) => (
          <MetricChart key={name} name={name} metric={snapshot.metrics[name]!} />
        ))}
      </div>
    </section>
  );
}
