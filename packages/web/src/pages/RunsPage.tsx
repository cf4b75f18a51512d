import { useState, type FormEvent } from 'react';
import { RunStatus, type Run, dashboardRunPath } from '@runtrail/protocol';
import { cannotText, useAccess } from '../access.js';
import { messageOf } from '../client.js';
import { ConnectionIndicator } from '../components/ConnectionIndicator.js';
import { ProgressBar } from '../components/ProgressBar.js';
import { StartRunForm } from '../components/StartRunForm.js';
import { StatusBadge } from '../components/StatusBadge.js';
import { formatDuration, formatTime } from '../format.js';
import { Link, navigate } from '../router.js';
import { useNow } from '../use-now.js';
import { useRunsPage } from '../use-runs-page.js';

interface Filter {
  status: RunStatus | '';
  name: string;
  label: string;
}
const NO_FILTER: Filter = { status: '', name: '', label: '' };

export function RunsPage() {
  const access = useAccess();
  if (access.principal.kind === 'run') return <OneRunOnly runId={access.principal.runId} />;
  return <RunsList />;
}

/** A shared link's token reads one run (and its children) and nothing else: say so, and lead there. */
function OneRunOnly({ runId }: { runId: string }) {
  return (
    <main className="page runs-page">
      <h1>Runs</h1>
      <p className="note" role="status">
        This tab opened a read-only link to one run; its token cannot list runs.
      </p>
      <p>
        <Link href={`/runs/${runId}`}>Open that run</Link>
      </p>
    </main>
  );
}

function RunsList() {
  const access = useAccess();
  const [draft, setDraft] = useState<Filter>(NO_FILTER);
  const [filter, setFilter] = useState<Filter>(NO_FILTER);
  // Cursors of the pages before this one; the first page has none.
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const [starting, setStarting] = useState(false);
  const cursor = cursors[cursors.length - 1];

  const { runs, connection, error, hasOlder, olderCursor } = useRunsPage(
    {
      ...(filter.status ? { status: filter.status } : {}),
      ...(filter.name ? { name: filter.name } : {}),
      ...(filter.label ? { label: filter.label } : {}),
    },
    cursor,
  );
  const [pageError, setPageError] = useState<string | null>(null);
  const older = () => {
    setPageError(null);
    olderCursor().then(
      (next) => next && setCursors((c) => [...c, next]),
      (err: unknown) => setPageError(`could not read older runs: ${messageOf(err)}`),
    );
  };
  const anyRunning = runs.some((r) => r.status === 'running');
  const now = useNow(anyRunning);

  const apply = (e: FormEvent) => {
    e.preventDefault();
    const label = draft.label
      .split(',')
      .filter((pair) => pair.trim() !== '')
      .map((pair) => pair.split('=').map((part) => part.trim()).join('='))
      .join(',');
    setFilter({ ...draft, name: draft.name.trim(), label });
    setCursors([undefined]);
  };
  const clear = () => {
    setDraft(NO_FILTER);
    setFilter(NO_FILTER);
    setCursors([undefined]);
  };
  const labelInvalid = draft.label !== '' && !/^[^=,]+=[^,]*(,[^=,]+=[^,]*)*$/.test(draft.label);

  return (
    <main className="page runs-page">
      <div className="page-head">
        <h1>Runs</h1>
        <ConnectionIndicator state={connection} />
        <button
          type="button"
          className="primary"
          onClick={() => setStarting((s) => !s)}
          aria-expanded={starting}
          disabled={!access.canProduce}
          title={access.canProduce ? undefined : cannotText(access, 'producer')}
        >
          Start run
        </button>
      </div>
      {!access.canProduce && <p className="note cannot">{cannotText(access, 'producer')}</p>}

      {starting && <StartRunForm onClose={() => setStarting(false)} onStarted={(id) => navigate(dashboardRunPath(id))} />}

      <form className="filters panel" onSubmit={apply} aria-label="filter runs">
        <select
          aria-label="filter by status"
          value={draft.status}
          onChange={(e) => setDraft({ ...draft, status: e.target.value as Filter['status'] })}
        >
          <option value="">any status</option>
          {RunStatus.options.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <input
          aria-label="filter by name"
          placeholder="name"
          value={draft.name}
          onChange={(e) => setDraft({ ...draft, name: e.target.value })}
        />
        <input
          aria-label="filter by labels (key=value, comma separated)"
          aria-invalid={labelInvalid}
          placeholder="labels: key=value,key2=value2"
          value={draft.label}
          onChange={(e) => setDraft({ ...draft, label: e.target.value })}
        />
        <button type="submit" disabled={labelInvalid}>
          Filter
        </button>
        <button type="button" onClick={clear}>
          Clear
        </button>
      </form>

      {(error || pageError) && (
        <p className="invalid" role="alert">
          {pageError ?? messageOf(error)}
        </p>
      )}

      <div className="table-wrap">
        <table className="runs-table" aria-label="runs, newest first">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col" className="col-progress">Progress</th>
              <th scope="col" className="num" title="calls succeeded / failed / retried">
                OK / Failed / Retries
              </th>
              <th scope="col" className="num">Duration</th>
              <th scope="col" className="col-started">Started</th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <RunRow key={run.id} run={run} now={now} />
            ))}
            {runs.length === 0 && (
              <tr>
                <td colSpan={6} className="empty">
                  {connection === 'connecting' ? 'Loading…' : 'No runs yet. Start one with “Start run”.'}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>

      <nav className="pager" aria-label="pages of runs">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))} aria-label="newer runs">
          ← Newer
        </button>
        <span className="muted">page {cursors.length}</span>
        <button
          type="button"
          disabled={!hasOlder}
          onClick={older}
          aria-label="older runs"
        >
          Older →
        </button>
      </nav>
    </main>
  );
}

function RunRow({ run, now }: { run: Run; now: number }) {
  const { counters, progress } = run.snapshot;
  const end = run.finishedAt ?? (run.status === 'running' ? now : null);
  const labels = Object.entries(run.labels);
  return (
    <tr data-run-id={run.id}>
      <td>
        <Link href={dashboardRunPath(run.id)} className="run-name">
          {run.name}
        </Link>
        {labels.length > 0 && (
          <span className="labels">
            {labels.map(([k, v]) => (
              <span key={k} className="label">
                {k}={v}
              </span>
            ))}
          </span>
        )}
      </td>
      <td>
        <StatusBadge status={run.status} />
      </td>
      <td className="col-progress">
        {progress ? <ProgressBar percent={progress.percent} label={`progress of ${run.name}`} /> : <span className="muted">–</span>}
      </td>
      <td className="num counters-cell">
        <span className="ok">{counters.ok}</span> / <span className="failed">{counters.failed}</span> /{' '}
        <span className="retries">{counters.retries}</span>
      </td>
      <td className="num">{formatDuration(run.startedAt !== null && end !== null ? end - run.startedAt : null)}</td>
      <td className="col-started">{formatTime(run.startedAt ?? run.createdAt)}</td>
    </tr>
  );
}
