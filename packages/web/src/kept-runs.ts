import type { Run } from '@runtrail/protocol';

/**
 * `next` with each run that is as it was in `before` kept as the object it
 * was there (and `before` itself when nothing changed), so a row memoised
 * on its run renders again only when that run changed. A live update
 * replaces only the run it is about, but a list read whole (a poll, an
 * older page, the re-read after a reconnect) brings a new object for every
 * run, changed or not. Same means the same JSON: a run is plain data from
 * the API, and a heartbeat or lease change is a change.
 */
export function keepUnchanged(next: readonly Run[], before: readonly Run[]): readonly Run[] {
  if (before.length === 0) return next;
  const known = new Map(before.map((run) => [run.id, run]));
  let changed = next.length !== before.length;
  const kept = next.map((run, i) => {
    const old = known.get(run.id);
    const same = old !== undefined && (old === run || JSON.stringify(old) === JSON.stringify(run));
    if (!same || before[i] !== old) changed = true;
    return same ? old : run;
  });
  return changed ? kept : before;
}
