import type { Command } from 'commander';
import type { RuntrailClient } from '@runtrail/client';
import { RunErrorKind, RunStatus, callsInFlight, failureKindOf, hasCalls, ordinal, slotWaitShort, slotWaitText, unfinishedCalls, type HandlersResponse, type Run, type RunCounts } from '@runtrail/protocol';
import { formatDuration } from '../duration.js';
import { clientFor } from '../client.js';
import { labelFilter } from '../options.js';
import { note, oneLineSafe, plural, print, printJson, table, terminalSafe, utcTime } from '../output.js';

export interface LsFlags {
  status?: RunStatus;
  name?: string;
  search?: string;
  failedWith?: RunErrorKind;
  parent?: string;
  label?: string[];
  limit: number;
  cursor?: string;
  json?: boolean;
}

/** `runtrail runs ls`. */
export async function listRuns(flags: LsFlags, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const filter = {
    status: flags.status,
    name: flags.name,
    nameContains: flags.search,
    errorKind: flags.failedWith,
    parentId: flags.parent,
    label: labelFilter(flags.label),
  };
  const page = await client.listRuns({ ...filter, limit: flags.limit, ...(flags.cursor ? { cursor: flags.cursor } : {}) });
  // A mistyped parent id matches no run, as a parent without children does: only one of them is "no runs".
  if (page.runs.length === 0 && flags.parent !== undefined) await client.getRun(flags.parent);
  if (flags.json) return printJson(page);
  if (page.runs.length === 0) return note('no runs');
  const shown = formatTable(page.runs, process.stdout.isTTY === true ? (process.stdout.columns ?? 0) : undefined);
  print(shown.table);
  if (shown.leftOut.length > 0) {
    note(`${shown.leftOut.join(', ')} left out to fit the terminal's ${process.stdout.columns} columns: runs show ID has them, and piped or --json every column is there`);
  }
  // A note, not a STATUS of its own: scripts match the column's word `queued`, and rows keep their columns.
  const held = await limitNote(client, page.runs);
  if (held) note(held);
  if (page.nextCursor) {
    // How much the table leaves out, by status, so a capped list does not pass for all of them.
    // A note, so on stderr: a script reading the rows (`| awk 'NR>1 {print $1}'`) gets rows only.
    const counts = await client.countRuns(filter);
    note(`… ${plural(page.runs.length, 'run')} shown of ${counts.total} that match (${byStatusText(counts)}); the next page: the same command with --cursor ${page.nextCursor}`);
  }
}

/** `runtrail runs show ID`. */
export async function showRun(id: string, flags: { json?: boolean }, cmd: Command): Promise<void> {
  const client = clientFor(cmd);
  const run = await client.getRun(id);
  if (flags.json) return printJson(run);
  print(formatRun(run, await client.countRuns({ parentId: run.id }), run.status === 'queued' && run.execute ? await queuedWhy(client, run) : null));
}

/**
 * Why a queued run waits, as the dashboard's run page says it: no live node defines its handler
 * (and when the server ends it for that), or a concurrency limit holds it; null otherwise.
 */
async function queuedWhy(client: RuntrailClient, run: Run): Promise<string | null> {
  const [handlers, older] = await Promise.all([
    client.describeHandlers(),
    // Claims take the oldest first: the queued runs of its handler created before it are ahead of it.
    client.countRuns({ status: 'queued', name: run.name, createdBefore: run.createdAt }),
  ]);
  if (!handlers.nodes.some((n) => n.handlers.includes(run.name))) return undefinedHandlerText(run.name, handlers);
  return slotWaitText(run.name, handlers.nodes, older.byStatus.queued);
}

/** A queued run whose handler no live node defines: what it waits for, and when the server's reaper ends it if nothing comes. */
function undefinedHandlerText(handler: string, { queuedOrphanTimeoutMs, unclaimable }: HandlersResponse): string {
  const waits = `no live node defines handler ${handler}: the run waits until a node that defines it starts`;
  if (queuedOrphanTimeoutMs === 0) return `${waits} (the server's queuedOrphanTimeoutMs is 0: it waits for ever)`;
  const timeout = formatDuration(queuedOrphanTimeoutMs);
  const endsAt = unclaimable.find((u) => u.handler === handler)?.endsAt;
  // Not counted yet: the server's reaper starts counting at its next sweep (every few seconds), from when it finds none.
  if (endsAt === undefined) return `${waits}; if none does within ${timeout} (the server's queuedOrphanTimeoutMs) of the server finding none, it ends failed / orphaned`;
  return `${waits}; if none does by ${utcTime(endsAt)} UTC, it ends failed / orphaned (the server's queuedOrphanTimeoutMs, ${timeout}, from when it found none)`;
}

/**
 * Which of the listed queued runs wait for a concurrency limit, as the
 * dashboard's list marks them, and their places in line: "2 queued runs
 * wait for a concurrency limit: gpu (1 at a time on node-a; 3rd to 4th in
 * line); …". Null when none does. Asks for the handlers only when the list
 * has queued runs a handler executes; for the places, at most two counts
 * per handler held (its oldest and newest listed run's, as `runs show`
 * counts one run's), not one per row.
 */
async function limitNote(client: RuntrailClient, runs: Run[]): Promise<string | null> {
  const queued = runs.filter((r) => r.status === 'queued' && r.execute);
  if (queued.length === 0) return null;
  const { nodes } = await client.describeHandlers();
  const held = new Map<string, { runs: Run[]; limits: string }>();
  for (const run of queued) {
    const known = held.get(run.name);
    if (known) {
      known.runs.push(run);
      continue;
    }
    const limits = slotWaitShort(run.name, nodes);
    if (limits !== null) held.set(run.name, { runs: [run], limits });
  }
  if (held.size === 0) return null;
  const total = [...held.values()].reduce((sum, h) => sum + h.runs.length, 0);
  const handlers = await Promise.all(
    [...held].map(async ([name, h]) => `${name} (${h.limits}${held.size > 1 ? `: ${plural(h.runs.length, 'run')}` : ''}; ${await placesInLine(client, name, h.runs)})`),
  );
  return oneLineSafe(`${plural(total, 'queued run')} ${total === 1 ? 'waits' : 'wait'} for a concurrency limit: ${handlers.join('; ')}; \`runtrail runs show ID\` says more`);
}

/**
 * Where listed queued runs of one handler are in its line: claims take the oldest first, so a
 * run's place is one more than the queued runs of its handler created before it. "3rd in line",
 * "3rd to 5th in line" when the list holds every run between its oldest and newest, else
 * "between 3rd and 9th in line" (a filtered list leaves some out).
 */
async function placesInLine(client: RuntrailClient, handler: string, runs: Run[]): Promise<string> {
  const byAge = [...runs].sort((a, b) => a.createdAt - b.createdAt);
  const place = async (run: Run) => (await client.countRuns({ status: 'queued', name: handler, createdBefore: run.createdAt })).byStatus.queued + 1;
  const [first, last] = await Promise.all([place(byAge[0]!), byAge.length > 1 ? place(byAge.at(-1)!) : null]);
  if (last === null || last === first) return `${ordinal(first)} in line`;
  if (last - first + 1 === runs.length) return `${ordinal(first)} to ${ordinal(last)} in line`;
  return `between ${ordinal(first)} and ${ordinal(last)} in line`;
}

/** The widest a NAME or LABELS cell is on a terminal: one run named with 200 characters pushed every other column off the screen. */
const TERMINAL_CELL_CHARS = 40;

/** The narrowest NAME a terminal too narrow for the rest is given: cut shorter, names stop telling runs apart. */
const NARROW_NAME_CHARS = 8;

/** `text` cut to `chars` characters, its last one "…" when anything was cut. */
const cut = (text: string, chars: number) => (text.length > chars ? `${text.slice(0, chars - 1)}…` : text);

/**
 * The columns a terminal too narrow for a whole row leaves out, the least
 * needed first (a row of all ten is ~190 characters with a parent, and
 * wrapped rows of an 80- or 120-column terminal could not be read as a
 * table): each is in `runs show ID`, and piped or `--json` every one is there.
 */
const NARROW_TERMINAL_LEAVES_OUT = ['PARENT', 'LABELS', 'CREATED (UTC)', 'OK/FAIL/RETRY', 'DURATION'];

/**
 * The runs as a table, and the columns it left out. `terminalColumns`: not
 * given, piped (every cell whole, every column); on a terminal, long names
 * and labels are cut to TERMINAL_CELL_CHARS with "…", columns are left
 * out (NARROW_TERMINAL_LEAVES_OUT, in order) until a row fits its width, and
 * names are cut shorter if it still does not and that makes it fit
 * (0: a terminal whose width was never set, taken as wide enough).
 */
export function formatTable(runs: Run[], terminalColumns?: number): { table: string; leftOut: string[] } {
  const onTerminal = terminalColumns !== undefined;
  const cell = (text: string) => (onTerminal ? cut(text, TERMINAL_CELL_CHARS) : text);
  const header = ['ID', 'NAME', 'STATUS', 'FAILED', 'PROGRESS', 'OK/FAIL/RETRY', 'DURATION', 'CREATED (UTC)', 'PARENT', 'LABELS'];
  let rows = runs.map((r) => [
    r.id,
    cell(r.name),
    r.status,
    failureKindOf(r) ?? '-',
    progressText(r),
    // A command or a parent makes no calls: no counters, as on the dashboard.
    hasCalls(r.snapshot) ? `${r.snapshot.counters.ok}/${r.snapshot.counters.failed}/${r.snapshot.counters.retries}` : '-',
    duration(r),
    utcTime(r.createdAt),
    r.parentId ?? '-',
    cell(labelsText(r)) || '-',
  ]);
  let shown = header;
  const leftOut: string[] = [];
  for (const column of NARROW_TERMINAL_LEAVES_OUT) {
    if (!terminalColumns || tableWidth(shown, rows) <= terminalColumns) break;
    const at = shown.indexOf(column);
    shown = shown.filter((_, i) => i !== at);
    rows = rows.map((row) => row.filter((_, i) => i !== at));
    leftOut.push(column);
  }
  // Still too wide with only the columns a row needs (an 80-column terminal: the id alone is 36): names are cut
  // to fit, when NARROW_NAME_CHARS or more are left for them; `runs show ID` has the whole name. Cut and still
  // wrapped, a row would only have lost the name's end.
  const over = terminalColumns ? tableWidth(shown, rows) - terminalColumns : 0;
  const nameWidth = Math.max('NAME'.length, ...rows.map((row) => row[1]!.length)) - over;
  if (over > 0 && nameWidth >= NARROW_NAME_CHARS) rows = rows.map((row) => row.map((text, i) => (i === 1 ? cut(text, nameWidth) : text)));
  return { table: table(shown, rows), leftOut };
}

/** How wide the rows of table(header, rows) are: each column as its widest cell, two spaces between. */
function tableWidth(header: string[], rows: string[][]): number {
  return header.reduce((sum, h, i) => sum + Math.max(h.length, ...rows.map((row) => row[i]!.length)), 0) + 2 * (header.length - 1);
}

/** "2 running, 3 succeeded, 1 failed": the statuses that have runs. */
function byStatusText(counts: RunCounts): string {
  return RunStatus.options
    .filter((status) => counts.byStatus[status] > 0)
    .map((status) => `${counts.byStatus[status]} ${status}`)
    .join(', ');
}

/** `children`: how many child runs it has, by status (a parent's table lists them: `runs ls --parent`). */
export function formatRun(run: Run & { observers?: number }, children?: RunCounts, queuedWhy: string | null = null): string {
  const s = run.snapshot;
  const kind = failureKindOf(run);
  const lines = [
    `${run.name}  ${run.id}`,
    `status     ${run.status}${kind ? ` (${kind})` : ''}`,
  ];
  if (queuedWhy) lines.push(`waiting    ${queuedWhy}`);
  if (run.parentId) lines.push(`parent     ${run.parentId}`);
  if (run.retryOf) lines.push(`retry of   ${run.retryOf} (attempt ${run.attempt})`);
  if (children && children.total > 0) lines.push(`children   ${children.total}: ${byStatusText(children)} (runtrail runs ls --parent ${run.id})`);
  const labels = labelsText(run);
  if (labels) lines.push(`labels     ${labels}`);
  // When, not only how long: "it failed" is half an answer to "did last night's run fail?".
  lines.push(`created    ${utcTime(run.createdAt)} UTC`);
  if (run.finishedAt !== null) lines.push(`ended      ${utcTime(run.finishedAt)} UTC`);
  lines.push(
    `duration   ${duration(run)}   seq ${run.seq}${run.observers !== undefined ? `   observers ${run.observers}` : ''}`,
    `progress   ${progressText(run)}${s.progress?.message ? `  ${s.progress.message}` : ''}`,
    // An ended run has nothing in flight; the calls it left open never finished, and are counted so.
    `calls      ok ${s.counters.ok}  failed ${s.counters.failed}  retries ${s.counters.retries}  in flight ${callsInFlight(s)}${unfinishedCalls(s) > 0 ? `  unfinished ${unfinishedCalls(s)}` : ''}`,
  );
  for (const [name, value] of Object.entries(s.counters.named)) lines.push(`counter    ${name} ${value}`);
  for (const [name, m] of Object.entries(s.metrics)) {
    lines.push(`metric     ${name} ${fmt(m.last)} (min ${fmt(m.min)}, max ${fmt(m.max)}, n ${m.count})`);
  }
  for (const p of s.phases) {
    lines.push(`phase      ${p.name} ${p.status}${p.durationMs !== null ? ` in ${(p.durationMs / 1000).toFixed(1)}s` : ''}`);
  }
  for (const call of Object.values(s.current).slice(0, 10)) lines.push(`in flight  ${call.label} (attempt ${call.attempt})`);
  if (s.stalled && run.status === 'running') lines.push(`stalled    no progress since ${utcTime(s.stalled.lastProgressAt ?? s.stalled.at)} UTC`);
  // The run's own error is shown whole below; a call's or a phase's that it did not end with, here.
  if (s.lastError && s.lastError.message !== run.error?.message) lines.push(`last error ${s.lastError.message}`);
  lines.push(...block('input', run.input), ...block('output', run.output));
  // The error last and whole: a traceback keeps its lines and indentation.
  if (run.error) lines.push(...block(`error (${run.error.kind})`, run.error.message));
  return terminalSafe(lines.join('\n'));
}

/** A titled, indented block of a value: text as it is, anything else as pretty JSON; nothing for no value. */
function block(title: string, value: unknown): string[] {
  if (value === null || value === undefined) return [];
  const text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return [`${title}:`, ...text.split('\n').map((line) => (line === '' ? '' : `  ${line}`))];
}

function labelsText(run: Run): string {
  return Object.entries(run.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function progressText(run: Run): string {
  const p = run.snapshot.progress;
  if (!p) return '-';
  return p.percent !== null ? `${p.done}/${p.total} ${p.percent.toFixed(0)}%` : String(p.done);
}

function duration(run: Run): string {
  if (run.startedAt === null) return '-';
  const end = run.finishedAt ?? Date.now();
  return `${((end - run.startedAt) / 1000).toFixed(1)}s`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(3);
}
