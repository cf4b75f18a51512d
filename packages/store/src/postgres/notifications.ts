import { initialSnapshot, type Run } from '@runtrail/protocol';
import type { AppendFeed } from '../store.js';

/**
 * The payloads of the store's NOTIFY channel, defined once for the writers
 * (pg-store) and the reader (pg-listener):
 * - `a <fromSeq> <seq> <runId>`: a commit took the run from fromSeq to seq
 *   (`a 0 0 <runId>`: created). The run id goes last: it may hold spaces.
 * - `D <run JSON>`: a run was deleted; its last state without input, output,
 *   error and snapshot.
 * - `d <runId>`: a run was deleted whose state did not fit (PostgreSQL caps
 *   payloads at 8000 bytes; labels alone may be larger).
 */

/** SQL text of an append payload, from SQL expressions of its parts. */
export const appendPayloadSql = (fromSeq: string, seq: string, runId: string): string =>
  `'a ' || ${fromSeq} || ' ' || ${seq} || ' ' || ${runId}`;

export const appendPayload = (fromSeq: number, seq: number, runId: string): string => `a ${fromSeq} ${seq} ${runId}`;

/** PostgreSQL refuses payloads of 8000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7900;

export function deletedPayload(run: Run): string {
  const whole = `D ${JSON.stringify({ ...run, input: null, output: null, error: null, snapshot: undefined })}`;
  return Buffer.byteLength(whole) <= MAX_PAYLOAD_BYTES ? whole : `d ${run.id}`;
}

/** Hand one notification to the feed; a payload of another shape is ignored (a newer node's, say). */
export function dispatchNotification(payload: string, feed: AppendFeed): void {
  if (payload.startsWith('a ')) {
    const [, from, seq] = payload.split(' ', 3);
    const runId = payload.slice(3 + from!.length + 1 + (seq?.length ?? 0));
    const fromSeq = Number(from);
    const toSeq = Number(seq);
    if (runId.length > 0 && Number.isInteger(fromSeq) && Number.isInteger(toSeq)) feed.onAppend(runId, toSeq, fromSeq);
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
  }
}
