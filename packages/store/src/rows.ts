import { initialSnapshot, type Owner, type Run, type RunError, type RunEvent, type RunStatus, type Snapshot } from '@runtrail/protocol';

/**
 * The run and event rows both adapters store (same columns; SQLite keeps
 * booleans as 0/1 and labels as JSON text, PostgreSQL as booleans and jsonb),
 * and the one mapping from a row to the API's Run and RunEvent.
 */
export interface RunRow {
  id: string;
  name: string;
  parent_id: string | null;
  status: RunStatus;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  input: string | null;
  labels: string | Record<string, string>;
  error: string | null;
  output: string | null;
  seq: number;
  snapshot?: string;
  execute: number | boolean;
  owner: string | null;
  lease_ttl_ms: number;
  lease_expires_at: number | null;
  heartbeat_at: number | null;
  cancel_requested_at: number | null;
  timeout_ms: number | null;
  stall_timeout_ms: number | null;
  fail_on_stall: number | boolean;
  last_progress_at: number | null;
  stalled_at: number | null;
  retry_of: string | null;
  attempt: number;
}

export interface EventRow {
  run_id: string;
  seq: number;
  type: string;
  ts: number;
  data: string | null;
  event_id: string | null;
}

export const json = (value: unknown): string | null => (value === undefined ? null : JSON.stringify(value));
export const parse = <T>(text: string | null | undefined, fallback: T): T =>
  text === null || text === undefined ? fallback : (JSON.parse(text) as T);

const flag = (value: number | boolean): boolean => value === true || value === 1;

export function rowToRun(row: RunRow, snapshot: Snapshot | undefined): Run {
  return {
    id: row.id,
    name: row.name,
    parentId: row.parent_id,
    status: row.status,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    input: parse(row.input, null),
    labels: typeof row.labels === 'string' ? parse(row.labels, {}) : row.labels,
    error: parse<RunError | null>(row.error, null),
    output: parse(row.output, null),
    seq: row.seq,
    snapshot: snapshot ?? parse(row.snapshot, initialSnapshot()),
    execute: flag(row.execute),
    owner: parse<Owner | null>(row.owner, null),
    leaseTtlMs: row.lease_ttl_ms,
    leaseExpiresAt: row.lease_expires_at,
    heartbeatAt: row.heartbeat_at,
    cancelRequestedAt: row.cancel_requested_at,
    timeoutMs: row.timeout_ms,
    stallTimeoutMs: row.stall_timeout_ms,
    failOnStall: flag(row.fail_on_stall),
    retryOf: row.retry_of,
    attempt: row.attempt,
  };
}

export function rowToEvent(row: EventRow): RunEvent {
  const event: RunEvent = { runId: row.run_id, seq: row.seq, type: row.type, ts: row.ts, data: parse(row.data, {}) };
  if (row.event_id !== null) event.id = row.event_id;
  return event;
}
