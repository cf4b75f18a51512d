import { useEffect, useMemo, useRef, useState } from 'react';
import { RunErrorKind, RunStatus, dashboardRunPath } from '@runtrail/protocol';
import { cannotText, useAccess } from '../access.js';
import { ConnectionIndicator } from '../components/ConnectionIndicator.js';
import { StartRunForm } from '../components/StartRunForm.js';
import { Link, navigate, pushQuery, rememberListLocation, replaceQuery, useQuery, useRestoredScroll } from '../router.js';
import { LiveHandlers } from '../components/QueuedWhy.js';
import { useLiveHandlers } from '../use-live-handlers.js';
import { QueuedPlacesContext, useQueuedPlaces } from '../use-queued-places.js';
import { ClockContext, useServerClock } from '../use-now.js';
import { useDocumentTitle } from './run/use-document-title.js';
import { PAGE_SIZE, useRunCounts, useRunsPage } from '../use-runs-page.js';
import { MAX_KEPT_CURSORS, knowsNewer, newerPage, olderPage, pagesFromQuery, writePages, type ListPages } from './runs/list-pages.js';
import { countOf } from '../format.js';
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
    <main className="page runs-page" tabIndex={-1}>
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
  useRestoredScroll();
  useDocumentTitle('Runs · runtrail');
  // The URL is the filter: shareable, and a reload keeps it.
  const query = useQuery();
  const applied = filterFromQuery(query);
  const appliedKey = queryFromFilter(applied).toString();
  const [draft, setDraft] = useState<ListFilter>(applied);
  // The URL this form last wrote: that change is the form's own, and its half-typed labels stay in the box.
  const written = useRef<string | null>(null);
  // Back/forward or a pasted link changes the URL under the form: follow it.
  useEffect(() => {
    if (appliedKey !== written.current) setDraft(filterFromQuery(new URLSearchParams(appliedKey)));
    written.current = null;
  }, [appliedKey]);

  // Labels that are not (yet) a filter leave the applied ones in place, and
  // every other box still applies: a half-typed label once held back the
  // name search, so the list showed runs the form no longer asked for.
  const applicable = (next: ListFilter): ListFilter => (labelFilterValid(next.label) ? next : { ...next, label: applied.label });
  // Another filter lists other runs: it starts again at the newest page (no cursor).
  const apply = (next: ListFilter) => {
    const q = queryFromFilter(applicable(next));
    written.current = q.toString();
    replaceQuery(q);
  };
  const change = (patch: Partial<ListFilter>, typing = false) => {
    const next = { ...draft, ...patch };
    setDraft(next);
    if (!typing) apply(next);
  };
  // Text boxes apply when typing pauses; selects at once.
  const draftKey = queryFromFilter(applicable(draft)).toString();
  useEffect(() => {
    if (draftKey === appliedKey) return;
    const timer = setTimeout(() => apply(filterFromQuery(new URLSearchParams(draftKey))), TYPING_MS);
    return () => clearTimeout(timer);
    // apply is a fresh closure each render; the keys say everything that matters.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [draftKey, appliedKey]);

  // The page is in the URL too (see list-pages: this page's cursor and a bounded way back), each step
  // a history entry, so Back, a reload and a shared link show the same page.
  const search = query.toString();
  const at = pagesFromQuery(query);
  const cursor = at.cursors.at(-1);
  const toPage = (next: ListPages) => pushQuery(writePages(queryFromFilter(filterFromQuery(query)), next));
  // A run page's "All runs" comes back to this list as it is now.
  useEffect(() => rememberListLocation(search ? `?${search}` : ''), [search]);
  const [starting, setStarting] = useState(false);
  const startButton = useRef<HTMLButtonElement>(null);
  // Closed (✕ or Escape), the panel gives the focus back to the button that opened it.
  const closeStart = () => {
    setStarting(false);
    startButton.current?.focus();
  };

  // A relative range ("last hour") is anchored when the filter is applied, not on every render.
  const server = useMemo(() => serverFilter(filterFromQuery(new URLSearchParams(appliedKey)), Date.now()), [appliedKey]);
  // The totals count every matching run, children included, whether or not the list nests them.
  const countFilter = useMemo(() => {
    const { topLevel: _nested, ...rest } = server;
    return rest;
  }, [server]);
  const { runs, connection, error, hasOlder: mayHaveOlder, olderCursor, lastHeardAt } = useRunsPage(server, cursor);
  // How many runs the pages list (top-level ones when children nest under them), re-read when this page's runs change.
  const listed = useRunCounts(server, runs.map((r) => r.id).join(','));
  // A full newest page may be all there is: the count says whether an older page has anything.
  const hasOlder = mayHaveOlder && !(at.page === 1 && listed !== null && listed.total <= PAGE_SIZE);
  const [pageError, setPageError] = useState<unknown>(null);
  const older = () => {
    setPageError(null);
    olderCursor().then(
      // Unless the reader moved on (another filter or page) while the server was asked.
      (next) => next && new URLSearchParams(window.location.search).toString() === search && toPage(olderPage(at, next)),
      (err: unknown) => setPageError(err),
    );
  };
  // Running and queued rows count time on (how long each has run, or waited).
  const anyLive = runs.some((r) => r.status === 'running' || r.status === 'queued');
  // Frozen while the server is away: the list knows nothing newer than when it last heard it. The page
  // passes the clock down without reading it: a tick renders the times in the rows, not the page.
  const { clock, asOf } = useServerClock(anyLive, connection, lastHeardAt);
  const handlers = useLiveHandlers(runs.some((r) => r.status === 'queued' && r.execute));
  const queuedPlaces = useQueuedPlaces(handlers);
  const labelInvalid = !labelFilterValid(draft.label);
  // The labels the list is filtered by while the box holds text that is not (yet) a filter: never a silent old result.
  const appliedLabel = server.label ?? '';
  const clear = () => {
    setDraft(NO_FILTER);
    apply(NO_FILTER);
  };
  const problem = pageError ?? error;
  const nest = !narrows(applied);

  return (
    <main className="page runs-page" tabIndex={-1}>
      <div className="page-head">
        <h1>Runs</h1>
        <ConnectionIndicator state={connection} asOf={asOf} />
        <button
          ref={startButton}
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

      {starting && <StartRunForm onClose={closeStart} onStarted={(id) => navigate(dashboardRunPath(id))} />}

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
        {/* Anything in a box or the URL, well-formed or not, is something to clear. */}
        <button type="button" onClick={clear} disabled={draftKey === '' && appliedKey === ''}>
          Clear
        </button>
        {labelInvalid && (
          <span className="invalid" role="status">
            labels must be key=value, comma separated;{' '}
            {appliedLabel ? `the list still shows only runs labelled ${appliedLabel}` : 'the list is not filtered by labels'}
          </span>
        )}
      </form>

      {problem !== null && problem !== undefined && (
        <p className="invalid" role="alert">
          {pageError !== null ? problemText(pageError, 'could not read older runs', TRY_AGAIN) : problemText(error, 'could not list runs')}
        </p>
      )}

      <LiveHandlers.Provider value={handlers}>
        <QueuedPlacesContext value={queuedPlaces}>
          <ClockContext value={clock}>
            <RunsTable
              runs={runs}
              nest={nest}
              empty={
                connection === 'connecting' && !error
                  ? 'Loading…'
                  : error
                    ? connection === 'ended'
                      ? 'No runs to show: the server refused this page (start again from the first page).'
                      : 'No runs to show until the server answers.'
                    : isFiltered(applied)
                      ? 'No runs match these filters.'
                      : 'No runs yet. Start one with “Start run”.'
              }
              onClear={isFiltered(applied) && runs.length === 0 && !error ? clear : undefined}
              countFilter={countFilter}
              onPick={(pick) => change(pick)}
            />
          </ClockContext>
        </QueuedPlacesContext>
      </LiveHandlers.Provider>

      {/* One page (or none) has nothing to page through; the totals above say how many runs there are. */}
      {(at.page > 1 || hasOlder) && (
        <nav className="pager" aria-label="pages of runs">
          {knowsNewer(at) ? (
            <button type="button" disabled={at.page === 1} onClick={() => toPage(newerPage(at))} aria-label="Newer runs">
              ← Newer
            </button>
          ) : (
            <button
              type="button"
              onClick={() => toPage(newerPage(at))}
              aria-label="Newest runs"
              title={`The list keeps its way back for ${MAX_KEPT_CURSORS} pages; the browser's Back still steps back page by page.`}
            >
              ⇤ Newest
            </button>
          )}
          <span className="muted">page {at.page}</span>
          {listed !== null && (
            <span className="muted" data-testid="pager-count">
              {countOf(listed.total, nest ? (isFiltered(applied) ? 'matching top-level run' : 'top-level run') : 'matching run')}
            </span>
          )}
          <button type="button" disabled={!hasOlder} onClick={older} aria-label="Older runs">
            Older →
          </button>
        </nav>
      )}
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
