import { z } from 'zod';
import { RuntrailError } from './errors.js';
import { EventInput, JsonValue, RunError, RunErrorKind, RunEventSchema } from './events.js';
import { withKey } from './data-keys.js';
import { SnapshotSchema } from './snapshot.js';
import { parseOrThrow } from './validate.js';
import { freeText, lineNameText, nameText } from './text.js';
import { MAX_ERROR_MESSAGE_CHARS } from './limits.js';

/**
 * A run id as the server mints it: a lower-case UUIDv7, whose first 48 bits
 * are its creation time in ms. Lists sort newest first by id, so only such
 * an id is a list cursor or the id of an imported run: any other string
 * would sort before or after every real run (a cursor that pages nowhere,
 * an import that stays on top of the list for good).
 */
export const RunId = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'must be a run id: a lower-case UUIDv7, as the server mints them');

/** The creation time (epoch ms) a run id carries. */
export function runIdTime(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * A whole number in a query string: decimal digits only, the one rule for
 * every integer parameter. z.coerce.number() read `0x10` as 16, an empty
 * value as 0 and `%20%201` as 1. A JSON number is taken as it is (the same
 * filters arrive as JSON over the WebSocket).
 */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z
    .union([z.number().int(), z.string().regex(/^[0-9]+$/, 'must be a whole number written in decimal digits (0-9)')])
    .transform(Number)
    .pipe(boundedInt(min, max));
}

/**
 * A JSON whole number in [min, max]. A number past a bound is told that
 * bound alone: int's own check of 2^53 would add a second message for 1e20.
 */
export function boundedInt(min: number, max: number) {
  return z.number().min(min, { abort: true }).max(max, { abort: true }).int();
}

export const RunStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type RunStatus = z.infer<typeof RunStatus>;
export const TERMINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];
export function isTerminalStatus(status: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export const OwnerKind = z.enum(['executor', 'producer']);
export const Owner = z.object({
  kind: OwnerKind,
  node: nameText().min(1).max(200),
  id: nameText().min(1).max(200),
});
export type Owner = z.infer<typeof Owner>;
/** An owner as stored and returned: read back as it was kept, also one stored before names refused control characters. */
const StoredOwner = z.object({ kind: OwnerKind, node: z.string().min(1).max(200), id: z.string().min(1).max(200) });

export const RunSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    parentId: z.string().nullable(),
    status: RunStatus,
    createdAt: z.number(),
    startedAt: z.number().nullable(),
    finishedAt: z.number().nullable(),
    input: z.unknown(),
    labels: z.record(z.string(), z.string()),
    error: RunError.nullable(),
    output: z.unknown(),
    seq: z.number().describe("seq of the run's last event (0 before the first)"),
    snapshot: SnapshotSchema,
    execute: z.boolean().describe('whether a worker of the server executes it (a registered handler)'),
    owner: StoredOwner.nullable(),
    leaseTtlMs: z.number(),
    leaseExpiresAt: z.number().nullable(),
    heartbeatAt: z.number().nullable(),
    cancelRequestedAt: z.number().nullable(),
    timeoutMs: z.number().nullable(),
    stallTimeoutMs: z.number().nullable(),
    failOnStall: z.boolean(),
    retryOf: z.string().nullable(),
    attempt: z.number(),
  })
  .meta({ id: 'Run', description: 'A run as every API returns it; times are epoch milliseconds' });
export type Run = z.infer<typeof RunSchema>;

/** `GET /runs/:id` also says how many watchers follow the run, on every node of a cluster. */
export const RunWithObserversSchema = RunSchema.extend({
  observers: z.number().describe('WS and SSE subscriptions following the run, on every node of a cluster'),
}).meta({ id: 'RunWithObservers' });
export type RunWithObservers = z.infer<typeof RunWithObserversSchema>;

const MAX_LABELS = 50;
const labelValue = nameText().max(500);
const labels = z
  .record(nameText().min(1).max(100), labelValue)
  .refine((l) => Object.keys(l).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

/**
 * The labels of a create body with every key kept as data. zod's record
 * parse skips a key named "__proto__" (neither checks nor keeps it); here
 * that label is checked like the others and kept, in a null-prototype record.
 */
export function labelsAsSent(
  body: unknown,
  parsed: Record<string, string> | undefined,
): Record<string, string> | undefined {
  const raw = (body as { labels?: unknown } | null)?.labels;
  if (parsed === undefined || raw === null || typeof raw !== 'object' || !Object.hasOwn(raw, '__proto__')) return parsed;
  const value = parseOrThrow(labelValue, (raw as Record<string, unknown>)['__proto__'], 'label __proto__');
  if (Object.keys(parsed).length >= MAX_LABELS) {
    throw new RuntrailError('invalid_request', `invalid request body: labels: at most ${MAX_LABELS} labels`);
  }
  return withKey(parsed, '__proto__', value);
}

export const DEFAULT_LEASE_TTL_MS = 30_000;

/**
 * A run's name, which is also the name of the handler that executes it
 * (`define(name, …)`, `POST /runs {name, execute: true}`): one rule for
 * both, so no run is refused a name its handler was defined with, and no
 * handler is defined under a name no run can take. Listed on one line by
 * GET /handlers, `runtrail handlers` and the dashboard, it holds no control
 * character and no line separator.
 */
export const RunName = lineNameText().min(1).max(200);

/** Why `name` cannot name a run or a handler (the first issue RunName finds), or null. */
export function runNameProblem(name: unknown): string | null {
  const parsed = RunName.safeParse(name);
  return parsed.success ? null : parsed.error.issues[0]!.message;
}

export const CreateRunBody = z.strictObject({
  name: RunName,
  input: JsonValue.optional(),
  labels: labels.optional(),
  parentId: nameText().min(1).max(100).optional(),
  /** Queue it for a registered handler of this name instead of producing it yourself. */
  execute: z.boolean().optional(),
  owner: Owner.optional(),
  leaseTtlMs: boundedInt(1000, 24 * 3600_000).optional(),
  timeoutMs: z.number().int().positive().optional(),
  stallTimeoutMs: z.number().int().positive().optional(),
  failOnStall: z.boolean().optional(),
});
export type CreateRunBody = z.infer<typeof CreateRunBody>;

/**
 * One `key=value` label (the value may itself hold '='), as a filter pair or
 * a CLI `--label` gives it; `what` names where it came from in the error.
 */
export function parseLabelPair(pair: string, what: string): [string, string] {
  const at = pair.indexOf('=');
  if (at <= 0) {
    throw new RuntrailError('invalid_request', `${what} "${pair}" must be key=value`, {
      issues: [{ path: 'label', message: 'must be key=value[,key=value]' }],
    });
  }
  return [pair.slice(0, at), pair.slice(at + 1)];
}

/**
 * `key=value,key2=value2` -> pairs that must all match a run's labels. Used
 * by the runs list query and the live runs subscription alike.
 */
export function parseLabelFilter(label: string | undefined): Array<[string, string]> {
  if (!label) return [];
  return label.split(',').map((pair) => parseLabelPair(pair, 'label filter'));
}

export function matchesLabels(labels: Record<string, string>, pairs: Array<[string, string]>): boolean {
  return pairs.every(([key, value]) => Object.hasOwn(labels, key) && labels[key] === value);
}

export const MAX_LIST_LIMIT = 200;
/** Parents whose children one `parentIds` filter may ask for (a page of the dashboard's list). */
export const MAX_PARENT_IDS = 50;

/**
 * What a list of runs can be narrowed by, shared by `GET /runs` and the live
 * runs subscription (RunsFilter) so the two always agree. A run matches when
 * it matches every field given.
 */
export const RunsFilterFields = {
  status: RunStatus.optional(),
  /** The exact name. */
  name: nameText().min(1).max(200).optional(),
  /** A part of the name, in any case of A-Z ("eval" finds "LLM-Eval-3"). */
  nameContains: nameText().min(1).max(200).optional(),
  parentId: nameText().min(1).max(100).optional(),
  /** Children of any of these runs: comma-separated ids. */
  parentIds: nameText()
    .max(MAX_PARENT_IDS * 101)
    .refine((ids) => ids.split(',').every((id) => id.length > 0) && ids.split(',').length <= MAX_PARENT_IDS, {
      message: `comma-separated run ids, at most ${MAX_PARENT_IDS}`,
    })
    .optional(),
  /** `true`: only runs without a parent. */
  topLevel: z.enum(['true', 'false']).optional(),
  /** `key=value`; several comma-separated pairs must all match. */
  label: nameText().max(1000).optional(),
  /**
   * How the run failed: its error's kind (a cancelled run's is `cancelled`).
   * `stalled` also finds running runs that are stalled now.
   */
  errorKind: RunErrorKind.optional(),
  /** Created at or after this time (epoch ms). */
  createdAfter: wholeNumber(0).optional(),
  /** Created before this time (epoch ms). */
  createdBefore: wholeNumber(0).optional(),
};

export const ListRunsQuery = z.object({
  ...RunsFilterFields,
  limit: wholeNumber(1, MAX_LIST_LIMIT).optional(),
  /** The `nextCursor` of the page before: the id of its last run. */
  cursor: RunId.optional(),
});
export type ListRunsQuery = z.infer<typeof ListRunsQuery>;

/**
 * Lower-case A-Z only, as the stores' lower() does (SQLite's always,
 * PostgreSQL's under the "C" collation), so a name search matches the same
 * runs in the list, the live subscription and either store.
 */
export function foldCase(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

type RunsFilterValue = Omit<ListRunsQuery, 'limit' | 'cursor'>;

/**
 * Whether a run matches the parts of a filter that never change over its
 * life (name, parent, labels, creation time). `labels` is the filter's
 * `label`, parsed once by the caller.
 */
export function matchesFixedFilter(run: Run, filter: RunsFilterValue, labels: Array<[string, string]>): boolean {
  if (filter.name !== undefined && run.name !== filter.name) return false;
  if (filter.nameContains !== undefined && !foldCase(run.name).includes(foldCase(filter.nameContains))) return false;
  if (filter.parentId !== undefined && run.parentId !== filter.parentId) return false;
  if (filter.parentIds !== undefined && (run.parentId === null || !filter.parentIds.split(',').includes(run.parentId))) return false;
  if (filter.topLevel === 'true' && run.parentId !== null) return false;
  if (filter.topLevel === 'false' && run.parentId === null) return false;
  if (filter.createdAfter !== undefined && run.createdAt < filter.createdAfter) return false;
  if (filter.createdBefore !== undefined && run.createdAt >= filter.createdBefore) return false;
  return matchesLabels(run.labels, labels);
}

/** Whether a run matches the parts of a filter that change as it runs (status, how it failed). */
export function matchesStateFilter(run: Run, filter: RunsFilterValue): boolean {
  if (filter.status !== undefined && run.status !== filter.status) return false;
  if (filter.errorKind !== undefined && failureKindOf(run) !== filter.errorKind) return false;
  return true;
}

/**
 * How a run failed, as lists show and filter it: its error's kind, or
 * `stalled` for a running run that is stalled now; null for a run that has
 * not failed.
 */
export function failureKindOf(run: Run): RunErrorKind | null {
  if (run.error) return run.error.kind;
  if (run.status === 'running' && run.snapshot.stalled) return 'stalled';
  return null;
}

export const ListRunsResponseSchema = z.object({ runs: z.array(RunSchema), nextCursor: z.string().nullable() });
export type ListRunsResponse = z.infer<typeof ListRunsResponseSchema>;

/**
 * How many runs match a filter (the list's, RunsFilterFields), by status,
 * over every page: what a list's totals say ("3 running, 2 failed") when it
 * shows one page of many.
 */
export const RunCountsSchema = z
  .object({
    total: z.number().int().describe('every run that matches'),
    byStatus: z.record(RunStatus, z.number().int()).describe('each status, 0 when none'),
    stalled: z.number().int().describe('running runs that are stalled now (also counted as running)'),
  })
  .meta({ id: 'RunCounts' });
export type RunCounts = z.infer<typeof RunCountsSchema>;

/**
 * The default of the server's `maxEventsPerBatch`. The limit is a setting,
 * checked by the server before the body is validated (413 naming it), so it
 * is not a bound of the schema: the body limit bounds the array anyway.
 */
export const DEFAULT_MAX_EVENTS_PER_BATCH = 5000;
export const AppendEventsBody = z.strictObject({
  events: z.array(EventInput).min(1),
  /** Renew the lease as this owner (an append is also a heartbeat). */
  owner: Owner.optional(),
});
export type AppendEventsBody = z.infer<typeof AppendEventsBody>;
export const AppendEventsResponseSchema = z.object({
  seq: z.number(),
  seqs: z.array(z.number()).describe('seq of each event of the batch, in order (the original seq for a duplicate id)'),
  cancelRequested: z.boolean(),
  cancelReason: z.string().nullable().describe('the reason given with the cancel request, if any'),
});
export type AppendEventsResponse = z.infer<typeof AppendEventsResponseSchema>;

export const MAX_READ_LIMIT = 5000;
export const ReadEventsQuery = z.object({
  after: wholeNumber(0).optional(),
  limit: wholeNumber(1, MAX_READ_LIMIT).optional(),
});
export type ReadEventsQuery = z.infer<typeof ReadEventsQuery>;

export const ReadEventsResponseSchema = z.object({
  events: z.array(RunEventSchema),
  seq: z.number().describe("the run's current last seq, so a reader knows whether more is waiting"),
  status: RunStatus,
});
export type ReadEventsResponse = z.infer<typeof ReadEventsResponseSchema>;

export const FinishRunBody = z
  .strictObject({
    status: z.enum(['succeeded', 'failed', 'cancelled']),
    // Strict: the run's error is exactly {kind, message}; an extra field
    // (a stack, a code) is refused by name rather than dropped. Put it in output.
    error: z.strictObject({ kind: RunErrorKind.optional(), message: freeText().min(1).max(MAX_ERROR_MESSAGE_CHARS) }).optional(),
    output: JsonValue.optional(),
    /** Idempotency id of the terminal event: a retried finish with the same id succeeds. */
    id: nameText().min(1).max(128).optional(),
    /** The finisher's identity: refused (409 lease_lost) while another owner holds the run's lease. */
    owner: Owner.optional(),
  })
  .refine((b) => b.status !== 'failed' || b.error !== undefined, {
    message: 'a failed run needs an error {kind?, message}',
    path: ['error'],
  });
export type FinishRunBody = z.infer<typeof FinishRunBody>;

/** The longest a heartbeat may ask to be held (the server holds one no longer than a third of the run's lease). */
export const MAX_HEARTBEAT_WAIT_MS = 60_000;
export const HeartbeatQuery = z.object({
  waitMs: wholeNumber(0, MAX_HEARTBEAT_WAIT_MS)
    .optional()
    .describe("hold the answer until a cancel is requested or the run ends, or this long (at most a third of the run's lease)"),
});
export type HeartbeatQuery = z.infer<typeof HeartbeatQuery>;
export const HeartbeatBody = z.strictObject({ owner: Owner.optional() });
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;
export const HeartbeatResponseSchema = z.object({
  leaseExpiresAt: z.number().nullable(),
  cancelRequested: z.boolean(),
  cancelReason: z.string().nullable().describe('the reason given with the cancel request, if any'),
  status: RunStatus,
  error: RunError.nullable().describe('how the run ended, when it ended without its owner (a timeout, the reaper, a cancel)'),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponseSchema>;

export const CancelRunBody = z.strictObject({ reason: freeText().max(MAX_ERROR_MESSAGE_CHARS).optional() });
export type CancelRunBody = z.infer<typeof CancelRunBody>;

export { RunError };
