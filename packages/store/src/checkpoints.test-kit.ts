import { afterEach, describe, expect, it } from 'vitest';
import { foldEvents, initialSnapshot, type EventInput, type RunEvent, type Snapshot } from '@runtrail/protocol';
import type { RunStore } from './store.js';
import type { CheckpointOptions } from './checkpoints.js';

/** A run's row (seq, snapshot_seq) joined with its checkpoint row (none while snapshot_seq is 0). */
export interface CheckpointRow {
  seq: number;
  snapshot_seq: number;
  checkpoint_seq: number | null;
  snapshot: string | null;
}

/** A store opened with a checkpoint policy, and a look at a run's rows underneath it. */
export interface CheckpointedStore {
  store: RunStore;
  /** Read from the database, not through the store. */
  checkpointOf(runId: string): Promise<CheckpointRow>;
  close(): Promise<void>;
}

const T0 = 1_700_000_000_000;

/**
 * When each adapter writes a run's snapshot checkpoint (../checkpoints.ts),
 * seen in its rows: both adapters run these through their own test file.
 */
export function checkpointSuite(
  adapter: string,
  open: (policy: CheckpointOptions) => Promise<CheckpointedStore>,
): void {
  describe(`snapshot checkpoints: ${adapter}`, () => {
    const opened: CheckpointedStore[] = [];
    afterEach(async () => {
      for (const o of opened.splice(0)) await o.close();
    });
    const start = async (policy: CheckpointOptions) => {
      const o = await open(policy);
      opened.push(o);
      const { run } = await o.store.createRun({ id: `run-${Math.random().toString(36).slice(2)}`, name: 'ckpt', now: T0, leaseTtlMs: 3_600_000 });
      const events: RunEvent[] = [];
      const append = async (batch: EventInput[], now: number) => {
        const result = await o.store.append(run.id, batch, { now });
        events.push(...result.appended);
        const row = await o.checkpointOf(run.id);
        // The checkpoint row is the one at the run's snapshot_seq, or none at 0.
        expect(row.checkpoint_seq).toBe(row.snapshot_seq === 0 ? null : row.snapshot_seq);
        const snapshot: Snapshot = row.snapshot === null ? initialSnapshot() : JSON.parse(row.snapshot);
        return { seq: row.seq, snapshotSeq: row.snapshot_seq, snapshot, bytes: row.snapshot?.length ?? 0 };
      };
      return { runId: run.id, events, append };
    };

    it('keeps the checkpoint fewer than checkpointMaxEvents behind the run, equal to the fold of the events up to it', async () => {
      const { events, append } = await start({ checkpointEveryEvents: 10, checkpointMaxEvents: 10, checkpointEveryMs: 60_000 });
      let tails = 0;
      for (const [i, size] of [1, 7, 25, 3, 13, 1, 1, 9, 2, 50, 4].entries()) {
        const batch = Array.from({ length: size }, (_, k) => ({ type: 'counter', data: { name: 'n', delta: i * 100 + k } }));
        // One server time: only the event count writes checkpoints.
        const row = await append(batch, T0 + 1);
        expect(row.seq).toBe(events.length);
        expect(row.seq - row.snapshotSeq).toBeLessThan(10);
        expect(row.snapshot).toEqual(foldEvents(events.slice(0, row.snapshotSeq)));
        if (row.snapshotSeq < row.seq) tails++;
      }
      // Most appends leave a tail: the checkpoint is not written every time.
      expect(tails).toBeGreaterThan(5);
    });

    for (const maxEvents of [100_000, 50]) {
      it(`writes a larger snapshot's checkpoint less often, one per 20 bytes of it in events, at most ${maxEvents} apart`, async () => {
        const { append } = await start({ checkpointEveryEvents: 10, checkpointMaxEvents: maxEvents, checkpointEveryMs: 60_000 });
        // 30 calls in flight: a checkpoint of a few KB.
        const calls = Array.from({ length: 30 }, (_, i) => ({ type: 'call.started', data: { callId: `c${i}`, label: `Evaluating doc_${i}` } }));
        const first = await append(calls, T0);
        expect(first.snapshotSeq).toBe(30);
        const interval = Math.min(maxEvents, Math.max(10, Math.ceil(first.bytes / 20)));
        expect(interval).toBeGreaterThan(10);
        let row = first;
        while (row.snapshotSeq === 30) row = await append([{ type: 'counter', data: { name: 'n', delta: 1 } }], T0 + 1);
        expect(row.snapshotSeq - 30).toBe(interval);
      });
    }

    it('writes the checkpoint on the first append it sees, when a phase changes, checkpointEveryMs later and when the run ends', async () => {
      const { append } = await start({ checkpointEveryEvents: 1000, checkpointEveryMs: 5000 });
      const counter = (delta: number): EventInput => ({ type: 'counter', data: { name: 'n', delta } });
      expect(await append([counter(1)], T0)).toMatchObject({ seq: 1, snapshotSeq: 1 });
      expect(await append([counter(1)], T0 + 1)).toMatchObject({ seq: 2, snapshotSeq: 1 });
      expect(await append([{ type: 'phase', data: { name: 'a', status: 'started', timeoutMs: 10 } }], T0 + 2)).toMatchObject({ seq: 3, snapshotSeq: 3 });
      expect(await append([counter(1)], T0 + 3)).toMatchObject({ seq: 4, snapshotSeq: 3 });
      expect(await append([counter(1)], T0 + 5001)).toMatchObject({ seq: 5, snapshotSeq: 3 });
      expect(await append([counter(1)], T0 + 5002)).toMatchObject({ seq: 6, snapshotSeq: 6 });
      expect(await append([counter(1)], T0 + 5003)).toMatchObject({ seq: 7, snapshotSeq: 6 });
      const ended = await append([{ type: 'run.succeeded', data: {} }], T0 + 5004);
      expect(ended).toMatchObject({ seq: 8, snapshotSeq: 8 });
      expect(ended.snapshot.terminal).toMatchObject({ status: 'succeeded', seq: 8 });
    });

    it('lets the reaper find an overdue phase that started between two checkpoints', async () => {
      const o = await open({ checkpointEveryEvents: 1000, checkpointEveryMs: 60_000 });
      opened.push(o);
      const { run } = await o.store.createRun({ id: 'run-phase', name: 'ckpt', now: T0, leaseTtlMs: 3_600_000 });
      await o.store.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }], { now: T0 });
      await o.store.append(run.id, [{ type: 'phase', data: { name: 'a', status: 'started', timeoutMs: 10 } }], { now: T0 + 1, renewLease: false });
      expect((await o.store.findDue(T0 + 100, 10)).phaseOverdue.map((r) => r.id)).toEqual([run.id]);
    });
  });
}
