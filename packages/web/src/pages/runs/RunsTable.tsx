import { Fragment, memo, useCallback, useContext, useEffect, useId, useState, type CSSProperties, type ReactNode } from 'react';
import { MAX_PARENT_IDS, RunStatus, dashboardRunPath, failureKindOf, type Run, type RunCounts, type RunsFilter, type Snapshot, callsInFlight, hasCalls, unfinishedCalls } from '@runtrail/protocol';
import { ProgressBar } from '../../components/ProgressBar.js';
import { RunningFor, StalledFor } from '../../components/RunningFor.js';
import { LiveHandlers, QueuedWhy } from '../../components/QueuedWhy.js';
import { StatusBadge } from '../../components/StatusBadge.js';
import { errorKindText, formatDuration, formatNumber, formatTime, formatZone } from '../../format.js';
import { When } from '../../components/When.js';
import { estimateProgress, recentSamples, progressSamples, stalledForMs, type ProgressSample } from '../../progress-estimate.js';
import { Link } from '../../router.js';
import { useClock, useNow } from '../../use-now.js';
import { useChildRuns, useChildTotals, useRunCounts } from '../../use-runs-page.js';
import { QueuedPlacesContext } from '../../use-queued-places.js';
import { oneLine } from './failure-line.js';
import { visibleText } from '../../visible-text.js';
import { terminalText } from '../run/terminal-line.js';

const COLUMNS = 6;

interface RunsTableProps {
  runs: readonly Run[];
  /** Show top-level runs with their children nested under them (the list holds top-level runs only). */
  nest: boolean;
  /** What an empty list says. */
  empty: string;
  /** Offered in the empty state when filters hid everything. */
  onClear: (() => void) | undefined;
  /** The runs the totals count: every run the list's filter matches on any page, children included. */
  countFilter: RunsFilter;
  /** A status in the totals was clicked: narrow the list to it. */
  onPick: (pick: TotalsPick) => void;
}

export type TotalsPick = { status: RunStatus } | { failed: 'stalled' };

/** The runs table with its status totals; nested or flat, see `nest`. */
export function RunsTable(props: RunsTableProps) {
  return props.nest && props.runs.length > 0 ? <NestedTable {...props} /> : <Table {...props} rows={props.runs.map((run) => <RunRow key={run.id} run={run} />)} shown={props.runs} />;
}

/** Which families the reader folded away, by the id of the run whose children are hidden. */
interface Folding {
  collapsed: ReadonlySet<string>;
  /** The same function at every render, so the rows' memo holds. */
  toggle(id: string): void;
}

/**
 * What a family's rows below the top two generations tell the totals: each
 * generation reports its runs' states under a key of its own (null when it
 * goes), so a grandchild that ends re-counts them at once, as a child does.
 */
type ReportShown = (key: string, states: string | null) => void;

/** What the totals follow of a run: whether it started, ended or stalled. */
const stateKey = (runs: readonly Run[]) => runs.map((r) => `${r.id}:${r.status}:${r.snapshot.stalled ? 1 : 0}`).join(',');

/**
 * The children of these runs, live, with how many each has in all when the
 * subscription (the newest MAX_CHILDREN for all of them together) may have
 * cut some off: the parents created before its oldest child are counted.
 */
function useFamilies(runs: readonly Run[]): { byParent: Map<string, Run[]>; family(run: Run): Family } {
  const { byParent, cutBefore } = useChildRuns(runs.map((r) => r.id));
  const maybeCut = cutBefore === null ? [] : runs.filter((r) => r.createdAt <= cutBefore).map((r) => r.id);
  const totals = useChildTotals(maybeCut);
  return {
    byParent,
    family: (run) => {
      const shown = byParent.get(run.id)?.length ?? 0;
      if (!maybeCut.includes(run.id)) return { shown, total: shown, cut: false };
      const total = totals.get(run.id);
      // Not counted yet: some may be missing ("200+"); counted, the count says whether any are.
      return total === undefined ? { shown, total: null, cut: true } : { shown, total: Math.max(total, shown), cut: total > shown };
    },
  };
}

function NestedTable(props: RunsTableProps) {
  const { runs } = props;
  const { byParent, family } = useFamilies(runs);
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(new Set());
  const toggle = useCallback(
    (id: string) =>
      setCollapsed((c) => {
        const next = new Set(c);
        if (next.has(id)) next.delete(id);
        else next.add(id);
        return next;
      }),
    [],
  );
  const folding: Folding = { collapsed, toggle };
  const [deeper, setDeeper] = useState<ReadonlyMap<string, string>>(new Map());
  const report = useCallback<ReportShown>(
    (key, states) =>
      setDeeper((known) => {
        if ((known.get(key) ?? null) === states) return known;
        const next = new Map(known);
        if (states === null) next.delete(key);
        else next.set(key, states);
        return next;
      }),
    [],
  );
  const rows: ReactNode[] = [];
  const shown: Run[] = [];
  for (const run of runs) {
    const children = byParent.get(run.id) ?? [];
    const open = !collapsed.has(run.id);
    shown.push(run, ...children);
    rows.push(<RunRow key={run.id} run={run} {...familyProps(family(run))} open={open} onToggle={children.length > 0 ? toggle : undefined} />);
    if (open && children.length > 0) rows.push(<Generation key={`${run.id}-children`} runs={children} depth={1} folding={folding} report={report} />);
  }
  const changedDeeper = [...deeper.keys()].sort().map((k) => deeper.get(k)).join(';');
  return <Table {...props} rows={rows} shown={shown} changedDeeper={changedDeeper} />;
}

/**
 * Runs of one family at `depth` (1: children of a top-level run), each with
 * its own children under it, to any depth. One live subscription asks for the
 * children of up to MAX_PARENT_IDS of these runs (the API's bound), so a
 * family of 200 children is 4; a generation opens only under a parent that
 * is shown and unfolded.
 */
function Generation({ runs, depth, folding, report }: { runs: readonly Run[]; depth: number; folding: Folding; report: ReportShown }) {
  const chunks: Run[][] = [];
  for (let i = 0; i < runs.length; i += MAX_PARENT_IDS) chunks.push(runs.slice(i, i + MAX_PARENT_IDS));
  return (
    <>
      {/* By place: a new child at the top shifts the chunks, and each keeps its subscription (re-aimed) rather than a new one. */}
      {chunks.map((chunk, i) => (
        <GenerationChunk key={i} runs={chunk} depth={depth} folding={folding} report={report} />
      ))}
    </>
  );
}

function GenerationChunk({ runs, depth, folding, report }: { runs: readonly Run[]; depth: number; folding: Folding; report: ReportShown }) {
  const { byParent, family } = useFamilies(runs);
  // The children this chunk fetched (depth + 1, two below the top or deeper): NestedTable's own `shown`
  // covers the top two generations.
  const id = useId();
  const states = stateKey([...byParent.values()].flat());
  useEffect(() => report(id, states), [report, id, states]);
  useEffect(() => () => report(id, null), [report, id]);
  return (
    <>
      {runs.map((run) => {
        const children = byParent.get(run.id) ?? [];
        const open = !folding.collapsed.has(run.id);
        return (
          <Fragment key={run.id}>
            <RunRow run={run} depth={depth} {...familyProps(family(run))} open={open} onToggle={children.length > 0 ? folding.toggle : undefined} />
            {open && children.length > 0 && <Generation runs={children} depth={depth + 1} folding={folding} report={report} />}
          </Fragment>
        );
      })}
    </>
  );
}

function Table({ runs, rows, shown, changedDeeper = '', empty, onClear, countFilter, onPick }: RunsTableProps & { rows: ReactNode[]; shown: readonly Run[]; changedDeeper?: string }) {
  // A run shown here, at any depth, that starts, ends or stalls changes the totals: read them again then.
  const changed = `${stateKey(shown)};${changedDeeper}`;
  const counts = useRunCounts(countFilter, changed);
  return (
    <>
      <FilterResult filter={countFilter} counts={counts} />
      {counts !== null && counts.total > 0 && <StatusTotals counts={counts} filtered={Object.keys(countFilter).length > 0} onPick={onPick} />}
      <div className="table-wrap">
        <table className="runs-table" aria-label="runs, newest first">
          <thead>
            <tr>
              <th scope="col" className="col-name">Name</th>
              <th scope="col" className="col-status">Status</th>
              <th scope="col" className="col-progress">Progress</th>
              <th scope="col" className="num col-counters" title="calls succeeded / failed / retried">
                OK / Failed / Retries
              </th>
              <th scope="col" className="num col-duration">Duration</th>
              <th scope="col" className="col-started">
                {/* The reader's local time: which zone, so it can be matched with a log in UTC. */}
                Started <span className="th-zone">({formatZone()})</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows}
            {runs.length === 0 && (
              <tr>
                <td colSpan={COLUMNS} className="empty" data-testid="runs-empty">
                  {empty}
                  {onClear && (
                    <>
                      {' '}
                      <button type="button" className="link-button" onClick={onClear}>
                        Clear the filters
                      </button>
                    </>
                  )}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </>
  );
}

/**
 * What a screen reader is told when the filters change (typing a name
 * included): how many runs match now, once the server has counted them.
 * Only then: runs that start and end while the list is open re-count the
 * totals, and each of those would be announced too.
 */
function FilterResult({ filter, counts }: { filter: RunsFilter; counts: RunCounts | null }) {
  const key = JSON.stringify(filter);
  const [said, setSaid] = useState<{ key: string; text: string } | null>(null);
  if (counts !== null && said?.key !== key) {
    const filtered = Object.keys(filter).length > 0;
    const runs = `${counts.total} ${counts.total === 1 ? 'run' : 'runs'}`;
    const text = counts.total === 0 ? (filtered ? 'No runs match these filters.' : 'No runs yet.') : filtered ? `${runs} ${counts.total === 1 ? 'matches' : 'match'}.` : `${runs}.`;
    // Derived from the props as they change: React renders again at once with it.
    setSaid({ key, text });
  }
  return (
    <p className="visually-hidden" role="status" data-testid="filter-result">
      {said?.text}
    </p>
  );
}

/**
 * "12 runs: 3 running (1 stalled), 7 succeeded, 2 failed": every run the
 * filter matches, on every page, children included (not only those loaded).
 * Each status is a button that narrows the list to it.
 */
function StatusTotals({ counts, filtered, onPick }: { counts: RunCounts; filtered: boolean; onPick: (pick: TotalsPick) => void }) {
  const statuses = RunStatus.options.filter((s) => counts.byStatus[s] > 0);
  const runs = `${counts.total} ${counts.total === 1 ? 'run' : 'runs'}`;
  // The name starts with what the button shows (WCAG 2.5.3): a voice-control user says "click 3 running".
  const pick = (text: string, what: TotalsPick, label: string) => (
    <button type="button" className="link-button" aria-label={`${text}: ${label}`} onClick={() => onPick(what)}>
      {text}
    </button>
  );
  return (
    <p className="totals" data-testid="totals" aria-label="runs by status, on every page">
      {filtered ? `${runs} ${counts.total === 1 ? 'matches' : 'match'}` : runs}:{' '}
      {statuses.map((s, i) => (
        <Fragment key={s}>
          {i > 0 && ', '}
          {pick(`${counts.byStatus[s]} ${s}`, { status: s }, `list only the ${s} runs`)}
          {s === 'running' && counts.stalled > 0 && (
            <>
              {' ('}
              {pick(`${counts.stalled} stalled`, { failed: 'stalled' }, 'list only the stalled runs')}
              {')'}
            </>
          )}
        </Fragment>
      ))}
    </p>
  );
}

/**
 * A run's children in the list: `shown` of `total`; `cut` when some are not
 * shown (the newest MAX_CHILDREN of a group of parents are), `total` null
 * while their number is not known yet.
 */
interface Family {
  shown: number;
  total: number | null;
  cut: boolean;
}

/** A family as a row's props: numbers and a flag, which its memo compares as they are (an object would be new at every render). */
const familyProps = ({ shown, total, cut }: Family) => ({ familyShown: shown, familyTotal: total, familyCut: cut });

interface RunRowProps {
  run: Run;
  /** How far under its top-level ancestor the row sits in a nested list (0: top level or a flat list). */
  depth?: number;
  /** Its children (a Family): how many the list shows, and how many it has when some are not shown. */
  familyShown?: number;
  familyTotal?: number | null;
  familyCut?: boolean;
  open?: boolean;
  /** Folds or unfolds the family of the run whose id it is given. */
  onToggle?: ((id: string) => void) | undefined;
}

/** "200 of 534", "200+" while not counted, "3" when all are shown. */
function familyText({ shown, total, cut }: Family): string {
  if (!cut) return String(shown);
  return total === null ? `${shown}+` : `${shown} of ${total}`;
}

/**
 * The progress readings this page has seen of a run, oldest first: the
 * snapshot's latest each time it moved, as many as the recent rate is
 * measured over (recentSamples). The average since the start said "~1 m left" for a run that did
 * its first 100 items at once and one every 2 s since (about 30 m left).
 */
function useReadings(progress: Snapshot['progress']): ProgressSample[] {
  const [readings, setReadings] = useState<ProgressSample[]>([]);
  const last = readings.at(-1);
  if (progress && (!last || last.ts < progress.updatedAt)) {
    // Derived from the props as they change: React renders again at once with it.
    setReadings(recentSamples([...readings, { ts: progress.updatedAt, done: progress.done }]));
  }
  return readings;
}

/**
 * One run's row, memoised on its run (the list keeps the object of a run
 * that did not change): a change to one run renders its row alone, and the
 * clock reaches only the times in it (RunningFor, StalledFor, Pace).
 */
const RunRow = memo(function RunRow({ run, depth = 0, familyShown = 0, familyTotal = 0, familyCut = false, open = true, onToggle }: RunRowProps) {
  const family: Family = { shown: familyShown, total: familyTotal, cut: familyCut };
  const s = run.snapshot;
  const { counters, progress } = s;
  const labels = Object.entries(run.labels);
  const kind = failureKindOf(run);
  const stalled = run.status === 'running' && s.stalled !== null;
  const inFlight = callsInFlight(s);
  const cancelAsked = run.status === 'running' && (s.cancelRequested || run.cancelRequestedAt !== null);
  const reason = run.error ? visibleText(oneLine(terminalText(run.error.message))) : null;
  const activity = run.status === 'running' ? visibleText([s.phase, progress?.message].filter(Boolean).join(' · ')) : '';
  const name = visibleText(run.name);
  const readings = useReadings(progress);
  // The list has no events, only each snapshot's latest reading. Once it has seen two, the rate is the
  // one between them (the pace now, as on the run's page); before that, from the start up to now.
  const samples = readings.length >= 2 ? readings : progressSamples([], s, run.startedAt);
  const paced = run.status === 'running' && !stalled && progress !== null;
  const total = progress?.total ?? null;
  // Whether it has gone quiet (its bar then turns the warning colour): the row renders when that flips, not at each tick.
  const quiet = useClock((now) => paced && estimateProgress({ samples, total, now })?.kind === 'stalled');
  const nested = depth > 0;
  return (
    <tr
      data-run-id={run.id}
      data-parent-id={run.parentId ?? undefined}
      data-depth={nested ? depth : undefined}
      className={nested ? 'child-row' : undefined}
      style={nested ? ({ '--depth': depth } as CSSProperties) : undefined}
    >
      <td className="col-name">
        <div className="name-line">
          {nested && <span className="nest-mark" aria-hidden="true">↳</span>}
          {onToggle && (
            <button
              type="button"
              className="toggle"
              aria-expanded={open}
              // What it shows first ("200 of 534"), then whose children they are; shown or hidden is aria-expanded.
              aria-label={`${familyText(family)} ${family.shown === 1 && !family.cut ? 'child run' : 'child runs'} of ${name}`}
              title={family.cut ? `the list shows the newest ${family.shown}${family.total === null ? '; there are more' : ` of ${family.total}`}` : undefined}
              onClick={() => onToggle(run.id)}
            >
              {open ? '▾' : '▸'} {familyText(family)}
            </button>
          )}
          <Link href={dashboardRunPath(run.id)} className="run-name">
            {name}
          </Link>
          {labels.length > 0 && (
            <span className="labels">
              {labels.map(([k, v]) => {
                const label = visibleText(`${k}=${v}`);
                return (
                  <span key={k} className="label" title={label}>
                    {label}
                  </span>
                );
              })}
            </span>
          )}
        </div>
        {/* Every child this run has is older than the ones its generation shows: none listed, but they exist. */}
        {!onToggle && family.cut && family.total !== null && (
          <div className="muted small">
            <Link href={dashboardRunPath(run.id)} data-testid="unlisted-children">
              {family.total} child runs, not listed
            </Link>
          </div>
        )}
        {!nested && run.parentId !== null && (
          <div className="muted small">
            child of <Link href={dashboardRunPath(run.parentId)}>{run.parentId.slice(-8)}</Link>
          </div>
        )}
        {kind !== null && run.status !== 'running' && (
          <div className="reason" data-testid="reason" title={run.error ? visibleText(terminalText(run.error.message)) : undefined}>
            <span className={`kind kind-${kind}`} title={errorKindText(kind)} data-testid="failure-kind">
              {kind}
            </span>{' '}
            {reason}
          </div>
        )}
        {activity && (
          <div className="activity muted small" data-testid="activity">
            {activity}
          </div>
        )}
      </td>
      <td className="col-status">
        <StatusBadge status={run.status} />
        {stalled && <StalledBadge stalled={s.stalled!} startedAt={run.startedAt} />}
      </td>
      <td className="col-progress">
        {progress ? <ProgressBar percent={progress.percent} done={progress.done} label={`progress of ${name}`} status={run.status} stalled={stalled || quiet} /> : <span className="muted">–</span>}
        {run.status === 'queued' && run.execute && <QueuedRowWhy run={run} />}
        {run.status === 'running' && (
          <div className="muted small progress-notes" data-testid="progress-notes">
            {inFlight > 0 && <span data-testid="in-flight-count">{formatNumber(inFlight)} in flight</span>}
            {/* Asked to stop, still running: the owner has not stopped yet (as the run's page says). */}
            {cancelAsked && (
              <span className="stalled-text" data-testid="cancel-requested">
                cancel requested
              </span>
            )}
            {stalled ? (
              <span className="stalled-text">
                stalled <StalledFor stalled={s.stalled!} startedAt={run.startedAt} />
              </span>
            ) : (
              paced && <Pace samples={samples} total={total} />
            )}
          </div>
        )}
      </td>
      <td className="num counters-cell col-counters">
        {/* A run that makes no calls (a command, a parent) has no counters, as on its page: not "0 / 0 / 0". */}
        {hasCalls(s) ? (
          <>
            <span className="ok">{counters.ok}</span> / <span className="failed">{counters.failed}</span> /{' '}
            <span className="retries">{counters.retries}</span>
            {unfinishedCalls(s) > 0 && (
              <div className="muted small unfinished" data-testid="unfinished" title="calls in flight when the run ended, which never finished">
                {unfinishedCalls(s)} unfinished
              </div>
            )}
          </>
        ) : (
          <span className="muted" title="no calls" data-testid="no-calls">
            –
          </span>
        )}
      </td>
      <td className="num col-duration">
        {run.status === 'queued' && run.startedAt === null ? (
          // No duration yet: how long it has waited, as its page says ("Queued for").
          <span className="muted" data-testid="queued-for" title={`queued since ${formatTime(run.createdAt)}`}>
            queued <RunningFor since={run.createdAt} />
          </span>
        ) : run.startedAt !== null && run.finishedAt === null && run.status === 'running' ? (
          <RunningFor since={run.startedAt} />
        ) : (
          formatDuration(run.startedAt !== null && run.finishedAt !== null ? run.finishedAt - run.startedAt : null)
        )}
      </td>
      <td className="col-started">
        {run.startedAt === null ? (
          <span className="muted" title={`queued since ${formatTime(run.createdAt)}`}>
            –
          </span>
        ) : (
          <When ts={run.startedAt} />
        )}
      </td>
    </tr>
  );
});

/**
 * A queued row's note of why it waits, with its place in line when a limit
 * holds it: it reads the live handlers and the places, so their refresh
 * (every 15 s while a queued run is listed) renders these notes, not every
 * row of the list.
 */
function QueuedRowWhy({ run }: { run: Run }) {
  const handlers = useContext(LiveHandlers);
  const places = useContext(QueuedPlacesContext);
  if (handlers === null) return null;
  return (
    <div className="muted small progress-notes">
      <QueuedWhy run={run} handlers={handlers} short ahead={places?.aheadOf(run) ?? null} />
    </div>
  );
}

/** The stalled badge, whose tooltip says for how long: it reads the clock, so the row around it need not. */
function StalledBadge({ stalled, startedAt }: { stalled: NonNullable<Snapshot['stalled']>; startedAt: number | null }) {
  return (
    <span className="badge badge-stalled" data-testid="stalled" title={`no progress for ${formatDuration(stalledForMs(stalled, startedAt, useNow()))}`}>
      stalled
    </span>
  );
}

/** A running run's ETA at the pace the page has seen, or how long it has made no progress when far past that pace. */
function Pace({ samples, total }: { samples: readonly ProgressSample[]; total: number | null }) {
  const estimate = estimateProgress({ samples, total, now: useNow() });
  if (estimate?.kind === 'stalled') return <span className="stalled-text">no progress for {formatDuration(estimate.sinceMs)}</span>;
  return estimate?.kind === 'eta' ? <span>~{formatDuration(estimate.remainingMs)} left</span> : null;
}
