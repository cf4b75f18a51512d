import { initialSnapshot, type Run } from '@runtrail/protocol';
import type { AppendFeed, WatchersAnnouncement } from '../store.js';

/**
 * The payloads of the store's NOTIFY channel, defined once for the writers
 * (pg-store) and the reader (pg-listener):
 * - `a <fromSeq> <seq> <runId>`: a commit took the run from fromSeq to seq
 *   (`a 0 0 <runId>`: created). The run id goes last: it may hold spaces.
 * - `D <run JSON>`: a run was deleted; its last state without input, output,
 *   error and snapshot.
 * - `d <runId>`: a run was deleted whose state did not fit (PostgreSQL caps
 *   payloads at 8000 bytes; labels alone may be larger).
 * - `s <runId>`: a commit told the run's owner to stop (a cancel request or
 *   an end: tellsOwnerToStop), after the commit's `a` payload; held
 *   heartbeats on every node wake without reading the events.
 * - `w <JSON>`: a node's watcher counts, `{"node","refreshMs","counts":[[runId,n],…]}`
 *   (WatchersAnnouncement), as many payloads as its counts need.
 * - `r <hash> <id>`: a scoped token was revoked (its SHA-256 hash, as the
 *   tokens table holds it, never its secret); `r - <id>`: a run token was,
 *   known by its id only. Sent by the revoking statement itself, so every
 *   revoke is told and only once it is committed.
 */

/** SQL text of an append payload, from SQL expressions of its parts. */
export const appendPayloadSql = (fromSeq: string, seq: string, runId: string): string =>
  `'a ' || ${fromSeq} || ' ' || ${seq} || ' ' || ${runId}`;

export const appendPayload = (fromSeq: number, seq: number, runId: string): string => `a ${fromSeq} ${seq} ${runId}`;

/** SQL text of a stop payload, from an SQL expression of the run id. */
export const stopPayloadSql = (runId: string): string => `'s ' || ${runId}`;

/** SQL text of a revoke payload, from SQL expressions of the token's hash (NULL: a run token) and id. */
export const revokedPayloadSql = (hash: string, id: string): string => `'r ' || COALESCE(${hash}, '-') || ' ' || ${id}`;

/** PostgreSQL refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7900;

export function deletedPayload(run: Run): string {
  const whole = `D ${JSON.stringify({ ...run, input: null, output: null, error: null, snapshot: undefined })}`;
  return Buffer.byteLength(whole) <= MAX_PAYLOAD_BYTES ? whole : `d ${run.id}`;
}

/** An announcement as payloads under the cap, each a whole announcement of some of its counts. */
export function watchersPayloads(announcement: WatchersAnnouncement): string[] {
  const payloads: string[] = [];
  const head = `w {"node":${JSON.stringify(announcement.node)},"refreshMs":${announcement.refreshMs},"counts":[`;
  let parts: string[] = [];
  let bytes = Buffer.byteLength(head) + 2;
  for (const [runId, count] of announcement.counts) {
    const part = JSON.stringify([runId, count]);
    const size = Buffer.byteLength(part) + 1;
    if (parts.length > 0 && bytes + size > MAX_PAYLOAD_BYTES) {
      payloads.push(`${head}${parts.join(',')}]}`);
      parts = [];
      bytes = Buffer.byteLength(head) + 2;
    }
    // A run id is at most a few hundred bytes (ids are checked on the way in): one always fits.
    parts.push(part);
    bytes += size;
  }
  if (parts.length > 0) payloads.push(`${head}${parts.join(',')}]}`);
  return payloads;
}

function parseWatchers(json: string): WatchersAnnouncement | null {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    // Not ours after all (we write it with JSON.stringify): ignored like any unknown shape.
    void err;
    return null;
  }
  const { node, refreshMs, counts } = (value ?? {}) as Partial<WatchersAnnouncement>;
  if (typeof node !== 'string' || typeof refreshMs !== 'number' || !(refreshMs > 0) || !Array.isArray(counts)) return null;
  const valid = counts.filter(
    (pair): pair is [string, number] => Array.isArray(pair) && typeof pair[0] === 'string' && Number.isInteger(pair[1]) && (pair[1] as number) >= 0,
  );
  return { node, refreshMs, counts: valid };
}

/** Hand one notification to the feed; a payload of another shape is ignored (a newer node's, say). */
export function dispatchNotification(payload: string, feed: AppendFeed): void {
  if (payload.startsWith('a ')) {
    const [, from, seq] = payload.split(' ', 3);
    const runId = payload.slice(3 + from!.length + 1 + (seq?.length ?? 0));
    const fromSeq = Number(from);
    const toSeq = Number(seq);
    if (runId.length > 0 && Number.isInteger(fromSeq) && Number.isInteger(toSeq)) feed.onAppend(runId, toSeq, fromSeq);
  } else if (payload.startsWith('s ')) {
    if (payload.length > 2) feed.onStop?.(payload.slice(2));
  } else if (payload.startsWith('D ')) {
    let run: Run;
    try {
      run = JSON.parse(payload.slice(2)) as Run;
    } catch {
      // Not ours after all (we write it with JSON.stringify): ignored like any unknown shape.
      return;
    }
    feed.onDelete(run.id, { ...run, snapshot: initialSnapshot() });
  } else if (payload.startsWith('d ')) {
    feed.onDelete(payload.slice(2), null);
  } else if (payload.startsWith('r ')) {
    const space = payload.indexOf(' ', 2);
    const hash = payload.slice(2, space);
    const id = payload.slice(space + 1);
    if (space > 2 && id.length > 0) feed.onTokenRevoked?.({ id, hash: hash === '-' ? null : hash });
  } else if (payload.startsWith('w ') && feed.onWatchers) {
    const announcement = parseWatchers(payload.slice(2));
    if (announcement) feed.onWatchers(announcement);
  }
}
