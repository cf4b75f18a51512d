import { isDeepStrictEqual } from 'node:util';
import { RuntrailError, isTerminalStatus, runNotFound, type EventInput, type Owner, type RunStatus, type Snapshot } from '@runtrail/protocol';
import { eventBody } from './event-text.js';
import { json, type ArtifactRow } from './rows.js';
import type { PutArtifactInput } from './store.js';

/** Errors every adapter raises the same way (same code, same message, same details). */
/** The one "run not found" (protocol's runNotFound), under the name the adapters use. */
export function notFound(runId: string): RuntrailError {
  return runNotFound(runId);
}

export function terminalConflict(runId: string, status: RunStatus, snapshot: Snapshot): RuntrailError {
  const end = snapshot.terminal;
  const why = end?.error ? ` (${end.error.kind}: ${end.error.message})` : '';
  return new RuntrailError(
    'run_already_terminal',
    `run ${runId} already ended ${status}${why}; its log is closed`,
    { status, terminal: end },
  );
}

export function describeOwner(owner: Owner): string {
  return `${owner.kind} ${owner.id} on ${owner.node}`;
}

function sameOwner(a: Owner, b: Owner): boolean {
  return a.kind === b.kind && a.node === b.node && a.id === b.id;
}

/**
 * Fencing: may `caller` write to (append, heartbeat, finish) a run held by
 * `holder` at `now`? Not while another owner's lease holds, and a heartbeat
 * not once the run has ended: a process that lost its lease must stop, so
 * two nodes never both believe they own a run. A lapsed lease may be taken
 * over (the old holder is then refused). Returns the error to throw, or null.
 */
export function fence(
  runId: string,
  run: { status: RunStatus; owner: Owner | null; leaseExpiresAt: number | null; snapshot?: Snapshot },
  caller: Owner | undefined,
  now: number,
  write: 'append' | 'heartbeat',
): RuntrailError | null {
  if (!caller) return null;
  if (write === 'heartbeat' && isTerminalStatus(run.status)) {
    const end = run.snapshot?.terminal;
    const why = end?.error ? ` (${end.error.kind}: ${end.error.message})` : '';
    return new RuntrailError('lease_lost', `run ${runId} ended ${run.status}${why}; ${describeOwner(caller)} no longer holds its lease: stop working on it`, {
      status: run.status,
      error: end?.error ?? null,
      owner: run.owner,
    });
  }
  const holder = run.owner;
  if (run.status !== 'running' || !holder || sameOwner(holder, caller)) return null;
  if (run.leaseExpiresAt === null || run.leaseExpiresAt < now) return null;
  return new RuntrailError(
    'lease_lost',
    `run ${runId} is held by ${describeOwner(holder)} (lease until ${new Date(run.leaseExpiresAt).toISOString()}); ` +
      `${describeOwner(caller)} does not hold its lease: stop working on it`,
    { owner: holder, leaseExpiresAt: run.leaseExpiresAt },
  );
}

/** What an event id refers to: enough to tell a retry from a different event. */
export interface StoredEventRef {
  seq: number;
  type: string;
  ts: number;
  /** The stored body (see eventBody). */
  body: string;
}

/**
 * The original seq when `event` is a retry of the stored one; an id reused
 * for a different event is refused, never answered as if it were stored.
 * A retry without `ts` matches whatever time the server gave the original.
 */
export function sameEventOrConflict(runId: string, event: EventInput, stored: StoredEventRef): number {
  const text = JSON.stringify(event.data === undefined ? {} : event.data);
  // A retry sends the same bytes, which give the same body; data whose keys came in another order is the same too.
  const same =
    event.type === stored.type &&
    (event.ts === undefined || event.ts === stored.ts) &&
    (eventBody(stored.seq, stored.type, stored.ts, text, event.id) === stored.body ||
      isDeepStrictEqual(JSON.parse(text), (JSON.parse(stored.body) as { data: unknown }).data));
  if (same) return stored.seq;
  throw new RuntrailError(
    'event_id_conflict',
    `event id ${event.id} of run ${runId} is already stored at seq ${stored.seq} with a different payload; give each new event a new id`,
    { runId, eventId: event.id, seq: stored.seq },
  );
}

/**
 * What a put of an artifact does, given the run's status, the record already
 * under its name and the run's artifact totals: `unchanged` (same content),
 * or the row to write (`existing` set when it replaces one). Refuses with the
 * same errors on every adapter, before anything is written.
 */
export function planArtifact(
  input: PutArtifactInput,
  status: RunStatus,
  existing: ArtifactRow | undefined,
  stats: { maxOrdinal: number; bytes: number },
): 'unchanged' | ArtifactRow {
  if (existing && existing.sha256 === input.sha256) return 'unchanged';
  if (isTerminalStatus(status)) {
    throw new RuntrailError(
      'run_already_terminal',
      `run ${input.runId} already ended ${status}; artifacts are stored while a run is running`,
      { status },
    );
  }
  if (existing && !input.replace) {
    throw new RuntrailError(
      'artifact_conflict',
      `run ${input.runId} already has an artifact named ${JSON.stringify(input.name)} with other content (sha256 ${existing.sha256}); put it with ?replace=true to replace it`,
      { name: input.name, sha256: existing.sha256 },
    );
  }
  const bytes = stats.bytes - (existing ? Number(existing.size) : 0) + input.size;
  if (bytes > input.maxRunBytes) {
    throw new RuntrailError(
      'payload_too_large',
      `run ${input.runId} would hold ${bytes} bytes of artifacts, more than its limit of ${input.maxRunBytes}`,
      { limitBytes: input.maxRunBytes, runBytes: stats.bytes },
    );
  }
  return {
    run_id: input.runId,
    ordinal: existing?.ordinal ?? stats.maxOrdinal + 1,
    name: input.name,
    content_type: input.contentType,
    size: input.size,
    sha256: input.sha256,
    created_at: input.now,
    metadata: json(input.metadata ?? undefined),
  };
}

export function runAlreadyExists(runId: string): RuntrailError {
  return new RuntrailError('run_already_exists', `run ${runId} already exists on this server; delete it first to import it again`, { runId });
}

/** Runs of an import that are taken here, all of them named: a family refused for one would otherwise be refused again for the next. */
export function runsAlreadyExist(runIds: string[]): RuntrailError {
  if (runIds.length === 1) return runAlreadyExists(runIds[0]!);
  const shown = runIds.slice(0, 20).join(', ');
  const more = runIds.length > 20 ? ` and ${runIds.length - 20} more` : '';
  return new RuntrailError(
    'run_already_exists',
    `${runIds.length} runs of the import already exist on this server (${shown}${more}); delete them first to import them again; nothing was imported`,
    { runId: runIds[0], runIds },
  );
}

/**
 * An imported run's parent is checked again where the run is written: the
 * archive's check comes before, and a delete of the parent in between
 * would leave the run under a run that is gone.
 */
export function importParentMissing(runId: string, parentId: string): RuntrailError {
  return new RuntrailError(
    'invalid_request',
    `run ${runId}'s parent run ${parentId} does not exist here (it was deleted while the run was being imported); import the parent first; nothing was imported`,
    { runId, parentId },
  );
}

/**
 * A run is deleted only once no run is under it: a child created after the
 * caller listed the family (on any node) would otherwise be left pointing
 * at nothing, missing from the list of top-level runs. `details.parentId`
 * tells the caller to list the family again.
 */
export function runHasChildren(runId: string, child: { id: string; status: RunStatus }): RuntrailError {
  return new RuntrailError(
    'run_not_terminal',
    `run ${runId} has run ${child.id} (${child.status}) under it; delete the runs under it first`,
    { runId: child.id, status: child.status, parentId: runId },
  );
}
