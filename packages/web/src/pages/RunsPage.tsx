import { useEffect, useMemo, useState } from 'react';
import { RunErrorKind, RunStatus, dashboardRunPath } from '@runtrail/protocol';
import { cannotText, useAccess } from '../access.js';
import { ConnectionIndicator } from '../components/ConnectionIndicator.js';
import { StartRunForm } from '../components/StartRunForm.js';
import { Link, navigate, replaceQuery, useQuery } from '../router.js';
import { useNow } from '../use-now.js';
import { useRunsPage } from '../use-runs-page.js';
import { RunsTable } from './runs/RunsTable.js';
import { TRY_AGAIN, problemText } from '../problem-text.js';
import {
  NO_FILTER,
  SINCE,
  filterFromQuery,
  isFiltered,
  labelFilterValid,
  narrows,
  queryFromFilter,
  serverFilter,
  type ListFilter,
  type SinceKey,
} from './runs-filter.js';

/** Typing in the name or label box waits this long for the next key before the list is asked again. */
const TYPING_MS = 250;

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
  // The URL is the filter: shareable, and a reload keeps it.
  const query = useQuery();
  const applied = filterFromQuery(query);
  const appliedKey = queryFromFilter(applied).toString();
  const [draft, setDraft] = useState<ListFilter>(applied);
  // Back/forward or a pasted link changes the URL under the form: follow it.
  useEffect(() => setDraft(filterFromQuery(new URLSearchParams(appliedKey))), [appliedKey]);

  const apply = (next: ListFilter) => {
    replaceQuery(queryFromFilter(next));
    setCursors([undefined]);
  };
  const change = (patch: Partial<ListFilter>, typing = false) => {
    const next = { ...draft, ...patch };
    setDraft(next);
    if (!typing) apply(next);
  };
  // Text boxes apply when typing pauses; selects at once.
  const draftKey = queryFromFilter(draft).toString();
  useEffect(() => {
    if (draftKey === appliedKey || !labelFilterValid(draft.label)) return;
    const timer = setTimeout(() => apply(filterFromQuery(new URLSearchParams(draftKey))), TYPING_MS);
    return () => clearTimeout(timer);
    // apply is a fresh closure each render; the keys say everything that matters.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [draftKey, appliedKey]);

  // Cursors of the pages before this one; the first page has none.
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const [starting, setStarting] = useState(false);
  const cursor = cursors[cursors.length - 1];

  // A relative range ("last hour") is anchored when the filter is applied, not on every render.
  const server = useMemo(() => serverFilter(filterFromQuery(new URLSearchParams(appliedKey)), Date.now()), [appliedKey]);
  // The totals count every matching run, children included, whether or not the list nests them.
  const countFilter = useMemo(() => {
    const { topLevel: _nested, ...rest } = server;
    return rest;
  }, [server]);
  const { runs, connection, error, hasOlder, olderCursor } = useRunsPage(server, cursor);
  const [pageError, setPageError] = useState<unknown>(null);
  const older = () => {
    setPageError(null);
    olderCursor().then(
      (next) => next && setCursors((c) => [...c, next]),
      (err: unknown) => setPageError(err),
    );
  };
  const anyRunning = runs.some((r) => r.status === 'running');
  const now = useNow(anyRunning);
  const labelInvalid = !labelFilterValid(draft.label);
  const problem = pageError ?? error;

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

      <form className="filters panel" onSubmit={(e) => e.preventDefault()} aria-label="filter runs">
        <input
          type="search"
          aria-label="search run names"
          placeholder="search names"
          value={draft.q}
          onChange={(e) => change({ q: e.target.value }, true)}
        />
        <Choice label="filter by status" any="any status" value={draft.status} options={RunStatus.options} onChange={(status) => change({ status })} />
        <Choice label="filter by failure kind" any="any outcome" value={draft.failed} options={RunErrorKind.options} onChange={(failed) => change({ failed })} />
        <Choice
          label="filter by start time"
          any="any time"
          value={draft.since}
          options={Object.keys(SINCE) as SinceKey[]}
          text={(k) => SINCE[k].text}
          onChange={(since) => change({ since })}
        />
        <input
          aria-label="filter by labels (key=value, comma separated)"
          aria-invalid={labelInvalid}
          placeholder="labels: key=value,key2=value2"
          value={draft.label}
          onChange={(e) => change({ label: e.target.value }, true)}
        />
        <button type="button" onClick={() => apply(NO_FILTER)} disabled={!isFiltered(applied) && !isFiltered(draft)}>
          Clear
        </button>
        {labelInvalid && <span className="invalid">labels must be key=value, comma separated</span>}
      </form>

      {problem !== null && problem !== undefined && (
        <p className="invalid" role="alert">
          {pageError !== null ? problemText(pageError, 'could not read older runs', TRY_AGAIN) : problemText(error, 'could not list runs')}
        </p>
      )}

      <RunsTable
        runs={runs}
        now={now}
        nest={!narrows(applied)}
        empty={
          connection === 'connecting' && !error
            ? 'Loading…'
            : error
              ? 'No runs to show until the server answers.'
              : isFiltered(applied)
                ? 'No runs match these filters.'
                : 'No runs yet. Start one with “Start run”.'
        }
        onClear={isFiltered(applied) && runs.length === 0 && !error ? () => apply(NO_FILTER) : undefined}
        countFilter={countFilter}
        onPick={(pick) => change(pick)}
      />

      <nav className="pager" aria-label="pages of runs">
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))} aria-label="newer runs">
          ← Newer
        </button>
        <span className="muted">page {cursors.length}</span>
        <button type="button" disabled={!hasOlder} onClick={older} aria-label="older runs">
          Older →
        </button>
      </nav>
    </main>
  );
}

/** A select of one filter: `any` (the empty value) or one of `options`. */
function Choice<T extends string>(props: {
  label: string;
  any: string;
  value: T | '';
  options: readonly T[];
  text?: (option: T) => string;
  onChange: (value: T | '') => void;
}) {
  return (
    <select aria-label={props.label} value={props.value} onChange={(e) => props.onChange(e.target.value as T | '')}>
      <option value="">{props.any}</option>
      {props.options.map((option) => (
        <option key={option} value={option}>
          {props.text ? props.text(option) : option}
        </option>
      ))}
    </select>
  );
}
