import { Worker } from 'node:worker_threads';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import {
  RunStatus,
  RuntrailError,
  foldEvents,
  initialSnapshot,
  matchesFixedFilter,
  matchesStateFilter,
  type EventInput,
  type Owner,
  type Run,
  type RunEvent,
} from '@runtrail/protocol';
import type { NewRunRecord, PutArtifactInput, RunStore, RunTokenRecord, TokenRecord } from './store.js';

/**
 * The contract every RunStore adapter must keep, as vitest suites. An adapter's
 * test file calls `runStoreConformance('name', open)`; nothing here knows
 * which database is underneath.
 */

export interface OpenedStore {
  store: RunStore;
  /**
   * Where the data lives (a data dir, a database URL + schema…). Passing it
   * back to `open` opens the SAME data again: after a close, or as a second,
   * independent connection.
   */
  location: string;
  /** Close the store; when `open` created the data (no location given), remove it too. */
  cleanup(): Promise<void>;
}

export type OpenStore = (location?: string) => Promise<OpenedStore>;

export interface ConformanceOptions {
  /**
   * How a worker thread opens its own store on `location`: it imports
   * `moduleUrl` and calls `exportName(argument(location))`. Given this, the
   * concurrent-producer test runs its producers in real threads with their own
   * connections; without it they share this thread (still separate stores).
   */
  worker?: { moduleUrl: string; exportName: string; argument: (location: string) => unknown };
}

const T0 = 1_700_000_000_000;
const producerOwner: Owner = { kind: 'producer', node: 'node-a', id: 'sdk-1' };

export function runStoreConformance(adapterName: string, open: OpenStore, options: ConformanceOptions = {}): void {
  describe(`RunStore conformance: ${adapterName}`, () => {
    let opened: OpenedStore;
    let store: RunStore;
    const extra: OpenedStore[] = [];

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      for (const o of extra.splice(0)) await o.cleanup();
      await opened.cleanup();
    });

    const record = (over: Partial<NewRunRecord> = {}): NewRunRecord => ({
      id: uuidv7(),
      name: 'eval',
      now: T0,
      leaseTtlMs: 30_000,
      ...over,
    });
    const create = async (over: Partial<NewRunRecord> = {}): Promise<Run> => (await store.createRun(record(over))).run;
    const readAll = async (runId: string, s: RunStore = store): Promise<RunEvent[]> => {
      const all: RunEvent[] = [];
      for (;;) {
        const page = await s.readEvents(runId, all.at(-1)?.seq ?? 0, 1000);
        if (page.length === 0) return all;
        all.push(...page);
      }
    };
    const expectError = async (promise: Promise<unknown>, code: string): Promise<RuntrailError> => {
      const err = await promise.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `expected ${code}`).toBeInstanceOf(RuntrailError);
      expect((err as RuntrailError).code).toBe(code);
      return err as RuntrailError;
    };
    /** The whole visible state of a run: what must not change when a write is refused. */
    const stateOf = async (runId: string) => ({ run: await store.getRun(runId), events: await readAll(runId) });

    describe('readiness', () => {
      it('says a store that can take writes is ready, with no reasons', async () => {
        expect(await store.readiness()).toEqual({ ready: true, reasons: [] });
        await create();
        expect(await store.readiness()).toEqual({ ready: true, reasons: [] });
      });
    });

    describe('runs', () => {
      it('creates a producer run that is running, leased, with an empty log and snapshot', async () => {
        const id = uuidv7();
        const { run, created } = await store.createRun(
          record({ id, name: 'nightly-eval', input: { docs: 3 }, labels: { team: 'ml' }, owner: producerOwner, timeoutMs: 60_000 }),
        );
        expect(created).toBe(true);
        expect(run).toMatchObject({
          id,
          name: 'nightly-eval',
          parentId: null,
          status: 'running',
          createdAt: T0,
          startedAt: T0,
          finishedAt: null,
          input: { docs: 3 },
          labels: { team: 'ml' },
          error: null,
          output: null,
          seq: 0,
          execute: false,
          owner: producerOwner,
          leaseTtlMs: 30_000,
          leaseExpiresAt: T0 + 30_000,
          heartbeatAt: T0,
          cancelRequestedAt: null,
          timeoutMs: 60_000,
          attempt: 1,
          retryOf: null,
        });
        expect(run.snapshot).toEqual(initialSnapshot());
        expect(await store.getRun(id)).toEqual(run);
      });

      it('creates an execute run queued, with no owner and no lease until claimed', async () => {
        const run = await create({ execute: true, owner: producerOwner });
        expect(run).toMatchObject({ status: 'queued', execute: true, owner: null, startedAt: null, leaseExpiresAt: null });
      });

      it('returns null for a run that does not exist', async () => {
        expect(await store.getRun(uuidv7())).toBeNull();
      });

      it('returns the same run for the same idempotency key, and creates nothing more', async () => {
        const first = await store.createRun(record({ idempotencyKey: 'key-1' }));
        const again = await store.createRun(record({ idempotencyKey: 'key-1', now: T0 + 5000 }));
        expect(first.created).toBe(true);
        expect(again.created).toBe(false);
        expect(again.run).toEqual(first.run);
        expect((await store.listRuns({})).runs.map((r) => r.id)).toEqual([first.run.id]);
      });

      it('refuses an idempotency key reused for a run of another name', async () => {
        await store.createRun(record({ idempotencyKey: 'key-2', name: 'a' }));
        await expectError(store.createRun(record({ idempotencyKey: 'key-2', name: 'b' })), 'idempotency_conflict');
        expect((await store.listRuns({})).runs).toHaveLength(1);
      });

      it('refuses a parent that does not exist and creates nothing', async () => {
        const err = await expectError(store.createRun(record({ parentId: 'no-such-run' })), 'run_not_found');
        expect(err.message).toMatch(/no-such-run/);
        expect((await store.listRuns({})).runs).toEqual([]);
      });

      it('lists runs newest first, filtered by status, name, parentId and labels', async () => {
        const parent = await create({ name: 'pipeline', labels: { team: 'ml', env: 'prod' } });
        const a = await create({ name: 'stage', parentId: parent.id, labels: { team: 'ml', env: 'dev' } });
        const b = await create({ name: 'stage', parentId: parent.id, labels: { team: 'web' } });
        const queued = await create({ name: 'job', execute: true });
        await store.append(a.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });

        const ids = async (q: Parameters<RunStore['listRuns']>[0]) => (await store.listRuns(q)).runs.map((r) => r.id);
        expect(await ids({})).toEqual([queued.id, b.id, a.id, parent.id]);
        expect(await ids({ status: 'running' })).toEqual([b.id, parent.id]);
        expect(await ids({ status: 'succeeded' })).toEqual([a.id]);
        expect(await ids({ status: 'queued' })).toEqual([queued.id]);
        expect(await ids({ name: 'stage' })).toEqual([b.id, a.id]);
        expect(await ids({ parentId: parent.id })).toEqual([b.id, a.id]);
        expect(await ids({ label: 'team=ml' })).toEqual([a.id, parent.id]);
        expect(await ids({ label: 'team=ml,env=prod' })).toEqual([parent.id]);
        expect(await ids({ label: 'team=ml', name: 'stage', status: 'succeeded' })).toEqual([a.id]);
        expect(await ids({ label: 'team=nobody' })).toEqual([]);
        await expectError(store.listRuns({ label: 'team' }), 'invalid_request');
      });

      it('filters by a part of the name, how a run failed, its parent(s), top level and creation time', async () => {
        const parent = await create({ name: 'Autotune-Sweep', now: T0 });
        const child = await create({ name: 'experiment 100%_a', parentId: parent.id, now: T0 + 1000, stallTimeoutMs: 1000 });
        const other = await create({ name: 'llm-eval', now: T0 + 2000 });
        const otherChild = await create({ name: 'EXPERIMENT b', parentId: other.id, now: T0 + 3000 });
        const failed = await create({ name: 'exec python', now: T0 + 4000 });
        const cancelled = await create({ name: 'exec python', now: T0 + 5000 });
        await store.append(failed.id, [{ type: 'run.failed', data: { error: { kind: 'timeout', message: 'too slow' } } }], { now: T0 + 6000 });
        await store.append(cancelled.id, [{ type: 'run.cancelled', data: { reason: 'by hand' } }], { now: T0 + 6000 });
        // A running run that is stalled now counts as "stalled", like one that failed on its stall.
        await store.append(child.id, [{ type: 'run.stalled', data: { stallTimeoutMs: 1000, lastProgressAt: T0 + 1000 } }], { now: T0 + 6000 });

        const ids = async (q: Parameters<RunStore['listRuns']>[0]) => (await store.listRuns(q)).runs.map((r) => r.id);
        expect(await ids({ nameContains: 'experiment' })).toEqual([otherChild.id, child.id]);
        expect(await ids({ nameContains: 'SWEEP' })).toEqual([parent.id]);
        // Wildcards of LIKE are plain text.
        expect(await ids({ nameContains: '100%_' })).toEqual([child.id]);
        expect(await ids({ nameContains: '%' })).toEqual([child.id]);
        expect(await ids({ nameContains: '_b' })).toEqual([]);
        expect(await ids({ errorKind: 'timeout' })).toEqual([failed.id]);
        expect(await ids({ errorKind: 'cancelled' })).toEqual([cancelled.id]);
        expect(await ids({ errorKind: 'stalled' })).toEqual([child.id]);
        expect(await ids({ errorKind: 'orphaned' })).toEqual([]);
        expect(await ids({ topLevel: 'true' })).toEqual([cancelled.id, failed.id, other.id, parent.id]);
        expect(await ids({ topLevel: 'false' })).toEqual([otherChild.id, child.id]);
        expect(await ids({ parentIds: `${parent.id},${other.id}` })).toEqual([otherChild.id, child.id]);
        expect(await ids({ parentIds: parent.id })).toEqual([child.id]);
        expect(await ids({ createdAfter: T0 + 2000 })).toEqual([cancelled.id, failed.id, otherChild.id, other.id]);
        expect(await ids({ createdAfter: T0 + 1000, createdBefore: T0 + 3000 })).toEqual([other.id, child.id]);
        expect(await ids({ nameContains: 'python', errorKind: 'timeout', createdAfter: T0 })).toEqual([failed.id]);
        // The same decision as the live list's (matchesFixedFilter/matchesStateFilter).
        const all = (await store.listRuns({})).runs;
        for (const q of [{ nameContains: 'Experiment' }, { errorKind: 'stalled' as const }, { topLevel: 'true' as const }, { createdAfter: T0 + 2500 }]) {
          const expected = all.filter((r) => matchesFixedFilter(r, q, []) && matchesStateFilter(r, q)).map((r) => r.id);
          expect(await ids(q), JSON.stringify(q)).toEqual(expected);
        }
      });

      it('counts the runs a filter matches by status over every page, stalled ones apart: the same runs the list pages through', async () => {
        const parent = await create({ name: 'sweep', labels: { team: 'ml' }, now: T0 });
        const children: Run[] = [];
        for (let i = 0; i < 5; i++) children.push(await create({ name: `trial-${i}`, parentId: parent.id, stallTimeoutMs: 1000, now: T0 + 1 + i }));
        await store.append(children[0]!.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 10 });
        await store.append(children[1]!.id, [{ type: 'run.failed', data: { error: { kind: 'timeout', message: 'slow' } } }], { now: T0 + 10 });
        await store.append(children[2]!.id, [{ type: 'run.stalled', data: { stallTimeoutMs: 1000, lastProgressAt: T0 } }], { now: T0 + 2000 });
        await create({ name: 'queued-trial', execute: true, now: T0 + 20 });

        expect(await store.countRuns({ nameContains: 'TRIAL' })).toEqual({
          total: 6,
          byStatus: { queued: 1, running: 3, succeeded: 1, failed: 1, cancelled: 0 },
          stalled: 1,
        });
        expect(await store.countRuns({ parentId: parent.id, status: 'running' })).toEqual({
          total: 3,
          byStatus: { queued: 0, running: 3, succeeded: 0, failed: 0, cancelled: 0 },
          stalled: 1,
        });
        expect((await store.countRuns({ errorKind: 'stalled' })).total).toBe(1);
        expect((await store.countRuns({ label: 'team=nobody' })).total).toBe(0);
        await expectError(store.countRuns({ label: 'team' }), 'invalid_request');
        // Whatever the filter, the counts are what paging through the whole list finds.
        const filters = [{}, { topLevel: 'true' as const }, { topLevel: 'false' as const }, { label: 'team=ml' }, { createdAfter: T0 + 3 }, { errorKind: 'timeout' as const }];
        for (const q of filters) {
          const listed: Run[] = [];
          let cursor: string | undefined;
          do {
            const page = await store.listRuns({ ...q, limit: 2, ...(cursor ? { cursor } : {}) });
            listed.push(...page.runs);
            cursor = page.nextCursor ?? undefined;
          } while (cursor);
          const counts = await store.countRuns(q);
          expect(counts.total, JSON.stringify(q)).toBe(listed.length);
          for (const status of RunStatus.options) expect(counts.byStatus[status], `${status} ${JSON.stringify(q)}`).toBe(listed.filter((r) => r.status === status).length);
          expect(counts.stalled, JSON.stringify(q)).toBe(listed.filter((r) => r.status === 'running' && r.snapshot.stalled !== null).length);
        }
      });

      it('filters by labels whose keys or values hold quotes, dots, brackets or spaces', async () => {
        const keys = ['we"ird', 'a.b', 'x[0]', 'sp ace', '$', "qu'ote", 'ü'];
        const ids: string[] = [];
        for (const key of keys) ids.push((await create({ labels: { [key]: `v "${key}"` } })).id);
        for (const [i, key] of keys.entries()) {
          const found = await store.listRuns({ label: `${key}=v "${key}"` });
          expect(found.runs.map((r) => r.id), key).toEqual([ids[i]]);
        }
        expect((await store.listRuns({ label: 'a.b=v' })).runs).toEqual([]);
      });

      it('matches a label filter of many pairs, repeated pairs and two values of one key the same in the list and its counts', async () => {
        const both = await create({ name: 'labelled', labels: { team: 'ml', env: 'prod', ['__proto__']: 'p', 'k"1': 'v;=' } });
        const one = await create({ name: 'labelled', labels: { team: 'ml' } });
        const ids = async (label: string) => (await store.listRuns({ name: 'labelled', label })).runs.map((r) => r.id);
        expect(await ids('team=ml')).toEqual([one.id, both.id]);
        expect(await ids(Array.from({ length: 200 }, () => 'team=ml').join(','))).toEqual([one.id, both.id]);
        expect(await ids('team=ml,env=prod,team=ml,env=prod')).toEqual([both.id]);
        expect(await ids('__proto__=p,team=ml,k"1=v;=')).toEqual([both.id]);
        // Many pairs that all match but the last: nothing (a filter a run must meet whole).
        expect(await ids([...Array.from({ length: 150 }, () => 'team=ml'), 'env=dev'].join(','))).toEqual([]);
        // One key, two values: no run has both.
        expect(await ids('team=ml,team=web')).toEqual([]);
        expect(await ids('team=ml,team=ml,env=prod,env=prod')).toEqual([both.id]);
        expect((await store.countRuns({ name: 'labelled', label: 'team=ml,team=web' })).total).toBe(0);
        expect((await store.countRuns({ name: 'labelled', label: 'team=ml,env=prod,team=ml' })).total).toBe(1);
      });

      it('cuts a page of runs short at maxBytes of their inputs and outputs, always taking the first, with a cursor to the rest', async () => {
        const ids: string[] = [];
        // Oldest first: a small input, four of about 1,000 bytes, then one of 3,000 (the newest).
        ids.push((await create({ name: 'paged-bytes', input: { t: 's' } })).id);
        for (let i = 0; i < 4; i++) ids.push((await create({ name: 'paged-bytes', input: { t: 'a'.repeat(1000) } })).id);
        ids.push((await create({ name: 'paged-bytes', input: { t: 'b'.repeat(3000) } })).id);
        const newest = [...ids].reverse();
        const page = (cursor?: string, limit = 50) => store.listRuns({ name: 'paged-bytes', limit, ...(cursor ? { cursor } : {}) }, { maxBytes: 2500 });
        const first = await page();
        // Larger than the budget alone: taken, or a reader could never get past it.
        expect(first.runs.map((r) => r.id)).toEqual(newest.slice(0, 1));
        expect(first.nextCursor).toBe(newest[0]);
        const second = await page(first.nextCursor!);
        expect(second.runs.map((r) => r.id)).toEqual(newest.slice(1, 3));
        expect(second.runs[0]!.input).toEqual({ t: 'a'.repeat(1000) });
        const seen = [...first.runs, ...second.runs].map((r) => r.id);
        for (let cursor = second.nextCursor; cursor; ) {
          const next = await page(cursor);
          seen.push(...next.runs.map((r) => r.id));
          cursor = next.nextCursor;
        }
        expect(seen).toEqual(newest);
        // The count still bounds it, with its cursor.
        const counted = await page(newest[2], 1);
        expect(counted.runs.map((r) => r.id)).toEqual([newest[3]]);
        expect(counted.nextCursor).toBe(newest[3]);
        expect((await store.listRuns({ name: 'paged-bytes' }, { maxBytes: 1_000_000 })).runs.map((r) => r.id)).toEqual(newest);
        expect((await store.listRuns({ name: 'paged-bytes' }, { maxBytes: 1_000_000 })).nextCursor).toBeNull();
      });

      it('pages through runs with a cursor, with no overlap and no gap', async () => {
        const created: string[] = [];
        for (let i = 0; i < 7; i++) created.push((await create({ name: `r${i}` })).id);
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.listRuns({ limit: 3, ...(cursor ? { cursor } : {}) });
          seen.push(...page.runs.map((r) => r.id));
          cursor = page.nextCursor ?? undefined;
          pages++;
          expect(pages).toBeLessThanOrEqual(3);
        } while (cursor);
        expect(pages).toBe(3);
        expect(seen).toEqual(created.slice().reverse());
        // A page that ends exactly at the last run says there is no next page.
        expect((await store.listRuns({ limit: 7 })).nextCursor).toBeNull();
      });

      it('pages stay correct when runs are created between page reads', async () => {
        for (let i = 0; i < 4; i++) await create();
        const first = await store.listRuns({ limit: 2 });
        const newer = await create();
        const rest = await store.listRuns({ limit: 10, cursor: first.nextCursor! });
        const ids = [...first.runs, ...rest.runs].map((r) => r.id);
        expect(new Set(ids).size).toBe(4);
        expect(ids).not.toContain(newer.id);
      });
    });

    describe('append and read', () => {
      it('assigns contiguous seq from 1 and returns each seq and the stored events', async () => {
        const run = await create();
        const first = await store.append(
          run.id,
          [
            { type: 'run.started' },
            { type: 'progress', data: { done: 1, total: 10 }, ts: T0 + 5 },
          ],
          { now: T0 + 10 },
        );
        expect(first.seq).toBe(2);
        expect(first.seqs).toEqual([1, 2]);
        expect(first.appended).toEqual([
          { runId: run.id, seq: 1, type: 'run.started', ts: T0 + 10, data: {} },
          { runId: run.id, seq: 2, type: 'progress', ts: T0 + 5, data: { done: 1, total: 10 } },
        ]);
        const second = await store.append(run.id, [{ type: 'log', data: { level: 'info', message: 'hi' }, id: 'e-3' }], { now: T0 + 20 });
        expect(second.seqs).toEqual([3]);
        expect(second.appended[0]).toMatchObject({ seq: 3, id: 'e-3' });
        expect(second.run.seq).toBe(3);
        expect(second.run.snapshot.progress).toMatchObject({ done: 1, total: 10 });
        expect(await readAll(run.id)).toEqual([...first.appended, ...second.appended]);
      });

      it('reads events after a seq, at most limit of them', async () => {
        const run = await create();
        const events: EventInput[] = Array.from({ length: 10 }, (_, i) => ({ type: 'counter', data: { name: 'n', delta: i } }));
        await store.append(run.id, events, { now: T0 });
        expect((await store.readEvents(run.id, 3, 2)).map((e) => e.seq)).toEqual([4, 5]);
        expect((await store.readEvents(run.id, 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(await store.readEvents(run.id, 10, 100)).toEqual([]);
        expect(await store.readEvents(run.id, 50, 100)).toEqual([]);
        // Any after a reader may send (the API takes safe integers), past what a seq column holds.
        expect(await store.readEvents(run.id, Number.MAX_SAFE_INTEGER, 100)).toEqual([]);
        expect(await store.readEventTexts(run.id, 2 ** 31, 100)).toEqual([]);
        expect(await store.readEvents((await create()).id, 0, 100)).toEqual([]);
      });

      it('cuts a page of event texts short at maxBytes, always taking its first event, however large', async () => {
        const run = await create();
        // Five events of about 1,050 bytes each.
        await store.append(run.id, Array.from({ length: 5 }, (_, i) => ({ type: 'x.big', data: { i, text: 'a'.repeat(1000) } })), { now: T0 });
        const seqs = async (after: number, limit: number, maxBytes: number) => (await store.readEventTexts(run.id, after, limit, { maxBytes })).map((t) => t.seq);
        expect(await seqs(0, 100, 2500)).toEqual([1, 2]);
        expect(await seqs(3, 100, 2500)).toEqual([4, 5]);
        expect(await seqs(0, 1, 2500)).toEqual([1]);
        // Larger than the budget on its own: taken, or a reader could never get past it.
        expect(await seqs(1, 100, 10)).toEqual([2]);
        expect(await seqs(0, 100, 1_000_000)).toEqual([1, 2, 3, 4, 5]);
        expect(await seqs(5, 100, 2500)).toEqual([]);
        expect(await seqs(2 ** 31, 100, 2500)).toEqual([]);
        // The texts are those of the whole page, byte for byte.
        expect((await store.readEventTexts(run.id, 0, 100, { maxBytes: 2500 })).map((t) => t.json)).toEqual(
          (await store.readEventTexts(run.id, 0, 2)).map((t) => t.json),
        );
        await expectError(store.readEventTexts(uuidv7(), 0, 10, { maxBytes: 2500 }), 'run_not_found');
      });

      it('says when maxBytes cut a page of events short, and only then: a reader that reads on after cut pages gets every event once', async () => {
        const run = await create();
        // Five events of about 1,050 bytes each.
        await store.append(run.id, Array.from({ length: 5 }, (_, i) => ({ type: 'x.big', data: { i, text: 'a'.repeat(1000) } })), { now: T0 });
        const page = async (after: number, limit: number, maxBytes?: number) => {
          const { texts, cut } = await store.readEventTextPage(run.id, after, limit, maxBytes === undefined ? {} : { maxBytes });
          return { seqs: texts.map((t) => t.seq), cut };
        };
        expect(await page(0, 100, 2500)).toEqual({ seqs: [1, 2], cut: true });
        expect(await page(0, 3, 2500)).toEqual({ seqs: [1, 2], cut: true });
        // Short because the log ends there, or full by count: not cut.
        expect(await page(3, 100, 2500)).toEqual({ seqs: [4, 5], cut: false });
        expect(await page(0, 2, 2500)).toEqual({ seqs: [1, 2], cut: false });
        // One event over the budget on its own is taken; cut when more follow it.
        expect(await page(1, 100, 10)).toEqual({ seqs: [2], cut: true });
        expect(await page(4, 100, 10)).toEqual({ seqs: [5], cut: false });
        expect(await page(0, 100, 1_000_000)).toEqual({ seqs: [1, 2, 3, 4, 5], cut: false });
        expect(await page(0, 100)).toEqual({ seqs: [1, 2, 3, 4, 5], cut: false });
        expect(await page(5, 100, 2500)).toEqual({ seqs: [], cut: false });
        // The texts are readEventTexts' own, byte for byte.
        expect((await store.readEventTextPage(run.id, 0, 100, { maxBytes: 2500 })).texts).toEqual(await store.readEventTexts(run.id, 0, 2));
        await expectError(store.readEventTextPage(uuidv7(), 0, 10, { maxBytes: 2500 }), 'run_not_found');
        // A follower that takes a short page as "at the end" unless it was cut reads the whole log, once.
        const followed: number[] = [];
        for (let after = 0; ; ) {
          const { texts, cut } = await store.readEventTextPage(run.id, after, 100, { maxBytes: 1500 });
          followed.push(...texts.map((t) => t.seq));
          if (texts.length > 0) after = texts[texts.length - 1]!.seq;
          if (!cut && texts.length < 100) break;
        }
        expect(followed).toEqual([1, 2, 3, 4, 5]);
        if (store.readJoinedEventTexts) {
          for (const compact of [false, true]) {
            const joined = await store.readJoinedEventTexts(run.id, 0, 100, { compact, maxBytes: 2500 });
            expect({ count: joined.count, last: joined.last, cut: joined.cut }).toEqual({ count: 2, last: 2, cut: true });
            const whole = await store.readJoinedEventTexts(run.id, 0, 2, { compact });
            expect(joined.json.equals(whole.json)).toBe(true);
            expect(whole.cut).toBe(false);
            const tail = await store.readJoinedEventTexts(run.id, 3, 100, { compact, maxBytes: 2500 });
            expect({ count: tail.count, last: tail.last, cut: tail.cut }).toEqual({ count: 2, last: 5, cut: false });
            const alone = await store.readJoinedEventTexts(run.id, 1, 100, { compact, maxBytes: 10 });
            expect({ count: alone.count, last: alone.last, cut: alone.cut }).toEqual({ count: 1, last: 2, cut: true });
          }
        }
      });

      it('keeps extension events and their data untouched', async () => {
        const run = await create();
        const data = { nested: { list: [1, 'two', null], flag: false }, unicode: 'héllo ✓' };
        await store.append(run.id, [{ type: 'x.gpu.sample', data }], { now: T0 });
        const [event] = await store.readEvents(run.id, 0, 10);
        expect(event).toMatchObject({ type: 'x.gpu.sample', data });
      });

      it('keeps each event\'s JSON text: the append returns it and reads give the same bytes, data unparsed', async () => {
        const run = await create();
        const data = { nested: { list: [1, 'two', null], flag: false }, unicode: 'héllo ✓ \u2028', quote: '"\n' };
        const first = await store.append(run.id, [{ type: 'x.a', data, id: 'e-1', ts: T0 + 1 }, { type: 'log', data: { level: 'info', message: 'm' } }], { now: T0 });
        const again = await store.append(run.id, [{ type: 'x.a', data, id: 'e-1', ts: T0 + 1 }, { type: 'x.b' }], { now: T0 + 2 });
        // Texts only for what this call stored (the repeated id is not), in the same order as `appended`.
        expect(first.appendedText.map((t) => t.json)).toEqual(first.appended.map((e) => JSON.stringify(e)));
        expect(again.appendedText.map((t) => t.json)).toEqual(again.appended.map((e) => JSON.stringify(e)));
        expect(again.appendedText.map((t) => [t.seq, t.type])).toEqual([[3, 'x.b']]);
        const events = await readAll(run.id);
        const texts = await store.readEventTexts(run.id, 0, 100);
        expect(texts.map((t) => t.json)).toEqual(events.map((e) => JSON.stringify(e)));
        expect(texts.map((t) => [t.seq, t.type])).toEqual(events.map((e) => [e.seq, e.type]));
        expect((await store.readEventTexts(run.id, 1, 1)).map((t) => t.seq)).toEqual([2]);
        expect(await store.readEventTexts(run.id, 3, 100)).toEqual([]);
        await expectError(store.readEventTexts(uuidv7(), 0, 10), 'run_not_found');
      });

      it('stores types, ids and data holding every escaping rule\'s characters exactly as given, and knows such an id again', async () => {
        const run = await create();
        // Quotes, backslashes, control characters (NUL only in data: PostgreSQL's text cannot hold it), non-ASCII, U+2028.
        const odd = 'q"\\ \\" \\\\ {a,b} \u0001\b\t\n\f\r\u001f\u007f é ✓ 😀 \u2028 NULL';
        const data = { s: odd, nul: 'a\u0000b', lone: 'x\ud800y', [odd]: [odd, '\\u0041'] };
        const events: EventInput[] = [
          { type: `x.${odd}`, data, id: `id-${odd}`, ts: T0 + 1 },
          { type: 'x.plain', data: { n: 1 } },
          { type: `x.${odd}`, data: { again: true }, id: `id2-${odd}` },
        ];
        const first = await store.append(run.id, events, { now: T0 });
        expect(first.seqs).toEqual([1, 2, 3]);
        const stored = await readAll(run.id);
        expect(stored.map(({ type, data: d, id }) => ({ type, data: d, id }))).toEqual(
          events.map(({ type, data: d, id }) => ({ type, data: d ?? {}, id })),
        );
        // The id is found again as it was stored: a retry gets its seq back and stores nothing.
        const retry = await store.append(run.id, [events[0]!], { now: T0 + 5 });
        expect(retry.seqs).toEqual([1]);
        expect(retry.appended).toEqual([]);
        expect((await store.getRun(run.id))!.seq).toBe(3);
      });
      it('refuses to read or append to a run that does not exist, and writes nothing', async () => {
        const other = await create();
        const before = await stateOf(other.id);
        const missing = uuidv7();
        await expectError(store.readEvents(missing, 0, 10), 'run_not_found');
        const err = await expectError(store.append(missing, [{ type: 'run.started' }], { now: T0 }), 'run_not_found');
        expect(err.message).toContain(missing);
        expect(await store.getRun(missing)).toBeNull();
        expect(await stateOf(other.id)).toEqual(before);
      });

      it('stores an event id once across batches and returns its original seq', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'log', data: { level: 'info', message: 'a' } }], { now: T0 });
        const batch: EventInput[] = [
          { type: 'counter', data: { name: 'n', delta: 1 }, id: 'b-1' },
          { type: 'counter', data: { name: 'n', delta: 1 }, id: 'b-2' },
        ];
        const first = await store.append(run.id, batch, { now: T0 });
        const retried = await store.append(run.id, batch, { now: T0 + 1000 });
        expect(first.seqs).toEqual([2, 3]);
        expect(retried.seqs).toEqual([2, 3]);
        expect(retried.seq).toBe(3);
        expect(retried.appended).toEqual([]);
        const mixed = await store.append(
          run.id,
          [batch[1]!, { type: 'counter', data: { name: 'n', delta: 1 }, id: 'b-3' }],
          { now: T0 },
        );
        expect(mixed.seqs).toEqual([3, 4]);
        expect(mixed.appended.map((e) => e.id)).toEqual(['b-3']);
        const events = await readAll(run.id);
        expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
        expect((await store.getRun(run.id))!.snapshot.counters.named.n).toBe(3);
      });

      it('stores an event id repeated inside one batch once', async () => {
        const run = await create();
        const e: EventInput = { type: 'counter', data: { name: 'n', delta: 1 }, id: 'same' };
        const result = await store.append(run.id, [e, { type: 'log', data: { level: 'info', message: 'x' } }, e], { now: T0 });
        expect(result.seqs).toEqual([1, 2, 1]);
        expect(result.appended).toHaveLength(2);
        expect((await readAll(run.id)).map((x) => x.id ?? null)).toEqual(['same', null]);
        expect((await store.getRun(run.id))!.snapshot.counters.named.n).toBe(1);
      });

      it('refuses an event id reused for a different event with event_id_conflict naming the id, and writes nothing', async () => {
        const run = await create();
        const original: EventInput = { type: 'counter', data: { name: 'n', delta: 1 }, id: 'e-1', ts: T0 + 5 };
        await store.append(run.id, [original], { now: T0 });
        const before = await stateOf(run.id);
        const variants: EventInput[] = [
          { ...original, data: { name: 'n', delta: 2 } },
          { ...original, type: 'metric', data: { name: 'n', value: 1 } },
          { ...original, ts: T0 + 6 },
          { ...original, data: undefined },
        ];
        for (const variant of variants) {
          const err = await expectError(
            store.append(run.id, [{ type: 'x.before', data: {} }, variant], { now: T0 + 1 }),
            'event_id_conflict',
          );
          expect(err.message).toContain('e-1');
          expect(err.details).toMatchObject({ eventId: 'e-1', seq: 1 });
          expect(await stateOf(run.id)).toEqual(before);
        }
        // Inside one batch too.
        await expectError(
          store.append(run.id, [{ type: 'x.a', data: { v: 1 }, id: 'in-batch' }, { type: 'x.a', data: { v: 2 }, id: 'in-batch' }], { now: T0 + 1 }),
          'event_id_conflict',
        );
        expect(await stateOf(run.id)).toEqual(before);
        // And on an ended run: a retried finish must be the same finish.
        await store.append(run.id, [{ type: 'run.succeeded', data: {}, id: 'end' }], { now: T0 + 2 });
        const ended = await stateOf(run.id);
        await expectError(
          store.append(run.id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'x' } }, id: 'end' }], { now: T0 + 3 }),
          'event_id_conflict',
        );
        expect(await stateOf(run.id)).toEqual(ended);
      });

      it('answers an event id repeated with the same payload with its original seq, whatever the key order or server time', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'x.a', data: { a: 1, b: { c: [1, 2] } }, id: 'same' }], { now: T0 });
        const retried = await store.append(
          run.id,
          [{ type: 'x.a', data: { b: { c: [1, 2] }, a: 1 }, id: 'same' }],
          { now: T0 + 500 },
        );
        expect(retried.seqs).toEqual([1]);
        expect(retried.appended).toEqual([]);
        // A retry that repeats the time the original was given matches it as well.
        const withTs = await store.append(run.id, [{ type: 'x.a', data: { a: 1, b: { c: [1, 2] } }, id: 'same', ts: T0 }], { now: T0 + 900 });
        expect(withTs.seqs).toEqual([1]);
        expect((await readAll(run.id)).map((e) => e.seq)).toEqual([1]);
      });

      it('lets two runs use the same event id independently', async () => {
        const a = await create();
        const b = await create();
        const e: EventInput = { type: 'log', data: { level: 'info', message: 'x' }, id: 'shared' };
        expect((await store.append(a.id, [e], { now: T0 })).seqs).toEqual([1]);
        expect((await store.append(b.id, [e], { now: T0 })).seqs).toEqual([1]);
      });

      it('keeps seq contiguous across many interleaved appends to several runs', async () => {
        const runs = [await create(), await create(), await create()];
        for (let i = 0; i < 60; i++) {
          const run = runs[i % 3]!;
          await store.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }, { type: 'x.tick' }], { now: T0 + i });
        }
        for (const run of runs) {
          expect((await readAll(run.id)).map((e) => e.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
        }
      });
    });

    describe('terminal events', () => {
      it('ends the run with status, finishedAt, error and output from the terminal event', async () => {
        const run = await create({ owner: producerOwner });
        const result = await store.append(
          run.id,
          [{ type: 'run.failed', data: { error: { kind: 'timeout', message: 'took too long' }, output: { partial: 3 } } }],
          { now: T0 + 500 },
        );
        const stored = await store.getRun(run.id);
        expect(stored).toMatchObject({
          status: 'failed',
          finishedAt: T0 + 500,
          error: { kind: 'timeout', message: 'took too long' },
          output: { partial: 3 },
          leaseExpiresAt: null,
          seq: 1,
        });
        expect(result.run).toEqual(stored);
      });

      it('writes exactly one terminal event; a second finish is refused with the existing end in details', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'run.succeeded', data: { output: { score: 1 } } }], { now: T0 + 100 });
        const before = await stateOf(run.id);
        const err = await expectError(
          store.append(run.id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'late' } } }], { now: T0 + 200 }),
          'run_already_terminal',
        );
        expect(err.details).toMatchObject({
          status: 'succeeded',
          terminal: { status: 'succeeded', at: T0 + 100, seq: 1, output: { score: 1 } },
        });
        expect(await stateOf(run.id)).toEqual(before);
      });

      it('accepts a retried finish with the same event id and returns the original seq', async () => {
        const run = await create();
        const finish: EventInput = { type: 'run.succeeded', data: {}, id: 'finish-1' };
        const first = await store.append(run.id, [finish], { now: T0 });
        const retried = await store.append(run.id, [finish], { now: T0 + 1 });
        expect(retried.seqs).toEqual(first.seqs);
        expect(retried.appended).toEqual([]);
        expect((await readAll(run.id)).filter((e) => e.type === 'run.succeeded')).toHaveLength(1);
      });

      it('refuses appends after the terminal event and writes nothing', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'run.cancelled', data: { reason: 'user' } }], { now: T0 });
        const before = await stateOf(run.id);
        await expectError(store.append(run.id, [{ type: 'log', data: { level: 'info', message: 'late' } }], { now: T0 + 1 }), 'run_already_terminal');
        await expectError(store.append(run.id, [{ type: 'x.late' }], { now: T0 + 1 }), 'run_already_terminal');
        expect(await stateOf(run.id)).toEqual(before);
      });

      it('writes nothing of a batch that fails midway', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'progress', data: { done: 1, total: 4 }, id: 'p-1' }], { now: T0 });
        const before = await stateOf(run.id);

        // Two terminal events in one batch: the second is refused, so the first must not stay either.
        await expectError(
          store.append(
            run.id,
            [
              { type: 'progress', data: { done: 2, total: 4 } },
              { type: 'run.succeeded', data: {} },
              { type: 'run.failed', data: { error: { kind: 'error', message: 'x' } } },
            ],
            { now: T0 + 10 },
          ),
          'run_already_terminal',
        );
        expect(await stateOf(run.id)).toEqual(before);

        // Events after a terminal event in the same batch.
        await expectError(
          store.append(run.id, [{ type: 'run.succeeded', data: {} }, { type: 'log', data: { level: 'info', message: 'after' } }], { now: T0 + 10 }),
          'run_already_terminal',
        );
        expect(await stateOf(run.id)).toEqual(before);

        // The failed batches did not poison what the store remembers: the next append continues at seq 2.
        const next = await store.append(run.id, [{ type: 'progress', data: { done: 3, total: 4 } }], { now: T0 + 20 });
        expect(next.seqs).toEqual([2]);
        expect(next.run.snapshot.progress).toMatchObject({ done: 3 });
        expect(next.run.snapshot.terminal).toBeNull();

        // On an ended run, a batch of an already-stored id plus a new event is refused as a whole.
        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 30 });
        const ended = await stateOf(run.id);
        await expectError(
          store.append(run.id, [{ type: 'progress', data: { done: 1, total: 4 }, id: 'p-1' }, { type: 'run.succeeded', data: {} }], { now: T0 + 40 }),
          'run_already_terminal',
        );
        expect(await stateOf(run.id)).toEqual(ended);
      });
    });

    describe('snapshot', () => {
      it('persists the snapshot that equals the fold of the stored events, after every append', async () => {
        const run = await create();
        const batches: EventInput[][] = [
          [{ type: 'run.started' }, { type: 'phase', data: { name: 'generate', status: 'started' } }],
          [
            { type: 'call.started', data: { callId: 'c1', label: 'Generating doc_1' } },
            { type: 'call.failed', data: { callId: 'c1', error: '429', willRetry: true } },
            { type: 'call.retried', data: { callId: 'c1', attempt: 2 } },
          ],
          [{ type: 'call.succeeded', data: { callId: 'c1' } }, { type: 'metric', data: { name: 'latency', value: 12.5 } }],
          [{ type: 'meta', data: { model: 'gpt-4' } }, { type: 'x.custom', data: { a: 1 } }, { type: 'log', data: { level: 'warn', message: 'slow' } }],
          [{ type: 'progress', data: { done: 4, total: 8, message: 'half' } }, { type: 'counter', data: { name: 'tokens', delta: 99 } }],
          [{ type: 'artifact', data: { name: 'out.json', size: 10 } }, { type: 'run.cancel_requested', data: {} }],
          [{ type: 'run.succeeded', data: { output: { ok: true } } }],
        ];
        let now = T0;
        for (const batch of batches) {
          now += 100;
          await store.append(run.id, batch, { now });
          const stored = (await store.getRun(run.id))!;
          const fold = foldEvents(await readAll(run.id));
          expect(stored.snapshot).toEqual(fold);
          expect(stored.seq).toBe(fold.seq);
        }
        const final = (await store.getRun(run.id))!;
        expect(final.snapshot).toMatchObject({ counters: { ok: 1, retries: 1, named: { tokens: 99 } }, terminal: { status: 'succeeded' } });
      });

      it('returns from append the same run a reader gets afterwards', async () => {
        // Watchers are pushed the run an append returns; it must not differ from a fresh read.
        const run = await create({ leaseTtlMs: 10_000 });
        const steps: Array<[EventInput[], Owner | undefined]> = [
          [[{ type: 'run.started', id: 's' }], undefined],
          [[{ type: 'progress', data: { done: 1 } }], producerOwner],
          [[{ type: 'run.started', id: 's' }], producerOwner],
          [[{ type: 'run.cancel_requested', data: {} }], undefined],
          [[{ type: 'run.cancelled', data: {} }], undefined],
        ];
        let now = T0;
        for (const [events, owner] of steps) {
          now += 1000;
          const result = await store.append(run.id, events, { now, owner });
          expect(result.run, JSON.stringify(events)).toEqual(await store.getRun(run.id));
        }
      });

      it('moves the run on with an append that does not renew the lease (events the server writes itself)', async () => {
        const run = await create({ leaseTtlMs: 10_000 });
        await store.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }], { now: T0 + 1 });
        const result = await store.append(run.id, [{ type: 'run.stalled', data: { stallTimeoutMs: 1000, lastProgressAt: null } }], { now: T0 + 2, renewLease: false });
        expect(result.run.seq).toBe(2);
        expect(result.run.leaseExpiresAt).toBe(T0 + 1 + 10_000);
        expect(await store.getRun(run.id)).toEqual(result.run);
        const next = await store.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }], { now: T0 + 3 });
        expect(next.seqs).toEqual([3]);
        expect(next.run.snapshot).toEqual(foldEvents(await readAll(run.id)));
      });

      it('records a cancel request on the run', async () => {
        const run = await create();
        const result = await store.append(run.id, [{ type: 'run.cancel_requested', data: { reason: 'stop' } }], { now: T0 + 42 });
        expect(result.run.cancelRequestedAt).toBe(T0 + 42);
        expect((await store.getRun(run.id))!.cancelRequestedAt).toBe(T0 + 42);
        expect((await store.getRun(run.id))!.snapshot.cancelRequested).toBe(true);
      });
    });

    describe('leases and ownership', () => {
      it('renews the lease on heartbeat and on append', async () => {
        const run = await create({ leaseTtlMs: 10_000 });
        const hb = await store.heartbeat(run.id, { now: T0 + 4000 });
        expect(hb).toMatchObject({ leaseExpiresAt: T0 + 14_000, heartbeatAt: T0 + 4000 });
        expect((await store.getRun(run.id))!.leaseExpiresAt).toBe(T0 + 14_000);
        const appended = await store.append(run.id, [{ type: 'x.tick' }], { now: T0 + 6000 });
        expect(appended.run.leaseExpiresAt).toBe(T0 + 16_000);
        expect((await store.getRun(run.id))!).toMatchObject({ leaseExpiresAt: T0 + 16_000, heartbeatAt: T0 + 6000 });
      });

      it('counts runs by status, every status present', async () => {
        expect(await store.countRuns({})).toEqual({ total: 0, byStatus: { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 }, stalled: 0 });
        await create();
        await create({ execute: true });
        const ended = await create();
        await store.append(ended.id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'x' } } }], { now: T0 + 1 });
        expect(await store.countRuns({})).toEqual({ total: 3, byStatus: { queued: 1, running: 1, succeeded: 0, failed: 1, cancelled: 0 }, stalled: 0 });
      });

      it('takes the owner given on heartbeat or append when none holds the lease; refuses another while it holds (lease_lost naming the holder)', async () => {
        const run = await create({ leaseTtlMs: 10_000 });
        await store.heartbeat(run.id, { now: T0 + 1, owner: producerOwner });
        expect((await store.getRun(run.id))!.owner).toEqual(producerOwner);
        const other: Owner = { kind: 'producer', node: 'node-b', id: 'sdk-2' };
        const before = await stateOf(run.id);
        const refused = await expectError(store.append(run.id, [{ type: 'x.tick', id: 't' }], { now: T0 + 2, owner: other }), 'lease_lost');
        expect(refused.message).toContain('held by producer sdk-1 on node-a');
        expect(refused.message).toContain('producer sdk-2 on node-b does not hold its lease');
        expect(refused.details).toMatchObject({ owner: producerOwner, leaseExpiresAt: T0 + 10_001 });
        await expectError(store.heartbeat(run.id, { now: T0 + 3, owner: other }), 'lease_lost');
        expect(await stateOf(run.id)).toEqual(before);

        // The holder renews; once its lease has lapsed another owner may take the run over, and then the old one is refused.
        await store.append(run.id, [{ type: 'x.tick' }], { now: T0 + 5000, owner: producerOwner });
        await expectError(store.heartbeat(run.id, { now: T0 + 14_999, owner: other }), 'lease_lost');
        await store.heartbeat(run.id, { now: T0 + 15_001, owner: other });
        expect((await store.getRun(run.id))!.owner).toEqual(other);
        await expectError(store.append(run.id, [{ type: 'x.tick' }], { now: T0 + 15_002, owner: producerOwner }), 'lease_lost');
        expect((await store.findOwnedBy('node-b', 'producer')).map((r) => r.id)).toEqual([run.id]);
        expect(await store.findOwnedBy('node-a', 'producer')).toEqual([]);

        // After the end, an owner's heartbeat is refused saying how it ended; one without an owner still reads the status.
        await store.append(run.id, [{ type: 'run.failed', data: { error: { kind: 'orphaned', message: 'gone' } } }], { now: T0 + 16_000 });
        const ended = await expectError(store.heartbeat(run.id, { now: T0 + 16_001, owner: other }), 'lease_lost');
        expect(ended.message).toContain('ended failed (orphaned: gone)');
        expect((await store.heartbeat(run.id, { now: T0 + 16_002 })).status).toBe('failed');
      });

      it('gives an ended run no lease, even on heartbeat', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 1 });
        const hb = await store.heartbeat(run.id, { now: T0 + 2 });
        expect(hb).toMatchObject({ status: 'succeeded', leaseExpiresAt: null });
      });

      it('refuses a heartbeat for a run that does not exist', async () => {
        await expectError(store.heartbeat(uuidv7(), { now: T0 }), 'run_not_found');
      });

      it('claims each queued execute run once, even when claimers race', async () => {
        const jobs = [];
        for (let i = 0; i < 6; i++) jobs.push(await create({ name: 'job', execute: true, leaseTtlMs: 5000 }));
        const otherName = await create({ name: 'other', execute: true });
        const producerRun = await create({ name: 'job' });
        const second = await open(opened.location);
        extra.push(second);
        const owners: Owner[] = [1, 2, 3, 4].map((n) => ({ kind: 'executor', node: `node-${n}`, id: `w${n}` }));
        const claims = await Promise.all(
          owners.map((owner, i) => (i % 2 ? second.store : store).claimQueued({ owner, names: ['job'], limit: 2, now: T0 + 100 })),
        );
        const claimed = claims.flat();
        expect(claimed.map((r) => r.id).sort()).toEqual(jobs.map((r) => r.id).sort());
        for (const [i, runs] of claims.entries()) {
          for (const r of runs) {
            expect(r).toMatchObject({ status: 'running', owner: owners[i], startedAt: T0 + 100, leaseExpiresAt: T0 + 5100, heartbeatAt: T0 + 100 });
          }
        }
        expect(await store.claimQueued({ owner: owners[0]!, names: ['job'], limit: 10, now: T0 + 200 })).toEqual([]);
        expect((await store.getRun(otherName.id))!.status).toBe('queued');
        expect((await store.getRun(producerRun.id))!.owner).toBeNull();
        expect(await store.claimQueued({ owner: owners[0]!, names: [], limit: 10, now: T0 })).toEqual([]);
        expect((await store.findOwnedBy('node-1', 'executor')).map((r) => r.id).sort()).toEqual(claims[0]!.map((r) => r.id).sort());
      });

      it('names the handlers of queued runs once each, sorted, and only while a run of theirs is queued', async () => {
        expect(await store.queuedHandlerNames(10)).toEqual([]);
        await create({ name: 'zeta', execute: true });
        await create({ name: 'alpha', execute: true });
        await create({ name: 'alpha', execute: true });
        await create({ name: 'producer-only' });
        const mu = await create({ name: 'mu', execute: true });
        expect(await store.queuedHandlerNames(10)).toEqual(['alpha', 'mu', 'zeta']);
        expect(await store.queuedHandlerNames(2)).toEqual(['alpha', 'mu']);
        await store.claimQueued({ owner: { kind: 'executor', node: 'node-1', id: 'w1' }, names: ['mu'], limit: 1, now: T0 + 100 });
        const zeta = (await store.listRuns({ name: 'zeta', limit: 10 })).runs[0]!;
        await store.append(zeta.id, [{ type: 'run.cancelled', data: {} }], { now: T0 + 200 });
        expect((await store.getRun(mu.id))!.status).toBe('running');
        expect(await store.queuedHandlerNames(10)).toEqual(['alpha']);
      });

      it('claims at most perName of a capped name, oldest first, and the runs of other names queued behind its backlog', async () => {
        const gpu = [];
        for (let i = 0; i < 5; i++) gpu.push(await create({ name: 'gpu', execute: true }));
        const cpu = [await create({ name: 'cpu', execute: true }), await create({ name: 'cpu', execute: true })];
        const owner: Owner = { kind: 'executor', node: 'node-1', id: 'w1' };
        const first = await store.claimQueued({ owner, names: ['gpu', 'cpu'], limit: 2, now: T0 + 100, perName: new Map([['gpu', 1]]) });
        expect(first.map((r) => r.id)).toEqual([gpu[0]!.id, cpu[0]!.id]);
        const none = await store.claimQueued({ owner, names: ['gpu', 'cpu'], limit: 4, now: T0 + 100, perName: new Map([['gpu', 0]]) });
        expect(none.map((r) => r.id)).toEqual([cpu[1]!.id]);
        const two = await store.claimQueued({ owner, names: ['gpu'], limit: 4, now: T0 + 100, perName: new Map([['gpu', 2]]) });
        expect(two.map((r) => r.id)).toEqual([gpu[1]!.id, gpu[2]!.id]);
      });

      it('finds running runs whose lease lapsed, that are past their timeout, or that made no progress', async () => {
        const leased = await create({ name: 'leased', leaseTtlMs: 1000 });
        const timed = await create({ name: 'timed', leaseTtlMs: 3_600_000, timeoutMs: 5000 });
        const stalling = await create({ name: 'stalling', leaseTtlMs: 3_600_000, stallTimeoutMs: 2000 });
        const ids = async (now: number) => {
          const due = await store.findDue(now, 100);
          return { expired: due.expired.map((r) => r.name), overdue: due.overdue.map((r) => r.name), stalled: due.stalled.map((r) => r.name) };
        };
        expect(await ids(T0 + 500)).toEqual({ expired: [], overdue: [], stalled: [] });
        expect(await ids(T0 + 2500)).toEqual({ expired: ['leased'], overdue: [], stalled: ['stalling'] });
        expect(await ids(T0 + 6000)).toEqual({ expired: ['leased'], overdue: ['timed'], stalled: ['stalling'] });

        // Progress moves the stall deadline; a recorded stall is not reported again.
        await store.append(stalling.id, [{ type: 'progress', data: { done: 1 }, ts: T0 + 5000 }], { now: T0 + 5000 });
        expect((await ids(T0 + 6000)).stalled).toEqual([]);
        expect((await ids(T0 + 7500)).stalled).toEqual(['stalling']);
        await store.append(stalling.id, [{ type: 'run.stalled', data: { stallTimeoutMs: 2000, lastProgressAt: T0 + 5000 } }], { now: T0 + 7500 });
        expect((await ids(T0 + 9000)).stalled).toEqual([]);
        // Progress after a stall clears it, so a new silence is a new stall.
        await store.append(stalling.id, [{ type: 'progress', data: { done: 2 }, ts: T0 + 9000 }], { now: T0 + 9000 });
        expect((await ids(T0 + 12_000)).stalled).toEqual(['stalling']);

        // A heartbeat renews the lease; ended runs are never due.
        await store.heartbeat(leased.id, { now: T0 + 6000 });
        expect((await ids(T0 + 6500)).expired).toEqual([]);
        for (const r of [leased, timed, stalling]) await store.append(r.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 13_000 });
        expect(await ids(T0 + 1e9)).toEqual({ expired: [], overdue: [], stalled: [] });
        expect((await store.findDue(T0 + 1e9, 100)).expired).toEqual([]);
      });

      it('finds due runs without their inputs, which reads of the run still give whole', async () => {
        const input = { prompt: 'p'.repeat(20_000) };
        const leased = await create({ name: 'leased-big', leaseTtlMs: 1000, timeoutMs: 2000, stallTimeoutMs: 1500, input });
        const due = await store.findDue(T0 + 5000, 100);
        for (const kind of ['expired', 'overdue', 'stalled'] as const) {
          const found = due[kind].find((r) => r.id === leased.id);
          expect(found, kind).toBeDefined();
          // Before: every sweep read and parsed each due run's input, never used (200 runs of 1 MiB: 200 MB a sweep).
          expect(found!.input, kind).toBeNull();
          expect(found!.leaseExpiresAt, kind).toBe(leased.leaseExpiresAt);
        }
        expect((await store.getRun(leased.id))!.input).toEqual(input);
      });

      it('finds the unfinished runs an owner node holds, by kind', async () => {
        const a = await create({ owner: producerOwner });
        const ended = await create({ owner: producerOwner });
        await create({ owner: { kind: 'producer', node: 'node-b', id: 'x' } });
        await store.append(ended.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        expect((await store.findOwnedBy('node-a', 'producer')).map((r) => r.id)).toEqual([a.id]);
        expect(await store.findOwnedBy('node-a', 'executor')).toEqual([]);
        expect(await store.findOwnedBy('node-z', 'producer')).toEqual([]);
      });
    });

    describe('delete', () => {
      it('refuses to delete a running run and keeps it', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'x.tick' }], { now: T0 });
        const before = await stateOf(run.id);
        await expectError(store.deleteRun(run.id), 'run_not_terminal');
        expect(await stateOf(run.id)).toEqual(before);
      });

      it('deletes an ended run with its events', async () => {
        const run = await create();
        const keep = await create();
        await store.append(keep.id, [{ type: 'x.keep' }], { now: T0 });
        await store.append(run.id, [{ type: 'x.tick' }, { type: 'run.succeeded', data: {} }], { now: T0 });
        await store.deleteRun(run.id);
        expect(await store.getRun(run.id)).toBeNull();
        await expectError(store.readEvents(run.id, 0, 10), 'run_not_found');
        expect((await store.listRuns({})).runs.map((r) => r.id)).toEqual([keep.id]);
        expect(await readAll(keep.id)).toHaveLength(1);
        await expectError(store.deleteRun(run.id), 'run_not_found');
      });

      it("drops the records of a deleted run's run tokens, and only those: its links stay dead if the run is imported again", async () => {
        const run = await create();
        const keep = await create();
        const token = (runId: string): RunTokenRecord => ({ id: uuidv7(), runId, write: false, createdAt: T0, expiresAt: T0 + 60_000, revokedAt: null, mintedBy: null });
        const gone = token(run.id);
        const kept = token(keep.id);
        await store.createRunToken(gone);
        await store.createRunToken(kept);
        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        await store.deleteRun(run.id);
        expect(await store.findRunTokenById(gone.id)).toBeNull();
        expect(await store.findRunTokenById(kept.id)).toEqual(kept);
      });

      it('refuses to delete a run that has a run under it, naming the child, and keeps both', async () => {
        const parent = await create();
        await store.append(parent.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        // Created after whoever deletes listed the family (on another node, say).
        const child = await create({ parentId: parent.id });
        const err = await expectError(store.deleteRun(parent.id), 'run_not_terminal');
        expect(err.details).toEqual({ runId: child.id, status: 'running', parentId: parent.id });
        expect(err.message).toBe(`run ${parent.id} has run ${child.id} (running) under it; delete the runs under it first`);
        expect((await store.getRun(parent.id))?.status).toBe('succeeded');
        expect((await store.getRun(child.id))?.parentId).toBe(parent.id);
        await store.append(child.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        await store.deleteRun(child.id);
        await store.deleteRun(parent.id);
        expect(await store.getRun(parent.id)).toBeNull();
      });
    });

    describe('tokens and secrets (issue 15)', () => {
      const token = (over: Partial<TokenRecord> = {}): TokenRecord => ({
        id: uuidv7(),
        name: 'ci',
        scope: 'producer',
        hash: uuidv7().replace(/-/g, '').padEnd(64, '0'),
        createdAt: T0,
        expiresAt: null,
        revokedAt: null,
        ...over,
      });

      it('finds a token by its hash, lists tokens newest first, and has no token for an unknown hash', async () => {
        const a = token({ name: 'a', scope: 'viewer', createdAt: T0 });
        const b = token({ name: 'b', scope: 'admin', createdAt: T0 + 1, expiresAt: T0 + 60_000 });
        await store.createToken(a);
        await store.createToken(b);
        expect(await store.findTokenByHash(a.hash)).toEqual(a);
        expect(await store.findTokenByHash(b.hash)).toEqual(b);
        expect(await store.findTokenByHash('0'.repeat(64))).toBeNull();
        expect(await store.findTokenById(a.id)).toEqual(a);
        expect(await store.findTokenById('no-such-token')).toBeNull();
        expect(await store.listTokens()).toEqual([b, a]);
      });

      it('refuses a second token with the same hash', async () => {
        const a = token();
        await store.createToken(a);
        await expect(store.createToken(token({ hash: a.hash }))).rejects.toThrow();
        expect(await store.listTokens()).toEqual([a]);
      });

      it('revokes once (the first time stays), seen by a second connection; unknown ids give null', async () => {
        const a = token();
        await store.createToken(a);
        expect(await store.revokeToken(a.id, T0 + 5)).toEqual({ ...a, revokedAt: T0 + 5 });
        expect(await store.revokeToken(a.id, T0 + 9)).toEqual({ ...a, revokedAt: T0 + 5 });
        expect(await store.revokeToken('no-such-token', T0)).toBeNull();
        const second = await open(opened.location);
        extra.push(second);
        expect((await second.store.findTokenByHash(a.hash))?.revokedAt).toBe(T0 + 5);
        expect((await second.store.findTokenById(a.id))?.revokedAt).toBe(T0 + 5);
      });

      it('records run tokens by id, revokes one once (the first time stays) seen by a second connection, drops expired ones; unknown ids give null', async () => {
        const run = (over: Partial<RunTokenRecord> = {}): RunTokenRecord => ({ id: uuidv7(), runId: uuidv7(), write: false, createdAt: T0, expiresAt: T0 + 60_000, revokedAt: null, mintedBy: null, ...over });
        const reader = run({ mintedBy: 'tok-producer' });
        const writer = run({ write: true, expiresAt: T0 + 1_000 });
        await store.createRunToken(reader);
        await store.createRunToken(writer);
        expect(await store.findRunTokenById(reader.id)).toEqual(reader);
        expect(await store.findRunTokenById(writer.id)).toEqual(writer);
        expect(await store.findRunTokenById('no-such-token')).toBeNull();
        expect(await store.revokeRunToken(reader.id, T0 + 5)).toEqual({ ...reader, revokedAt: T0 + 5 });
        expect(await store.revokeRunToken(reader.id, T0 + 9)).toEqual({ ...reader, revokedAt: T0 + 5 });
        expect(await store.revokeRunToken('no-such-token', T0)).toBeNull();
        const second = await open(opened.location);
        extra.push(second);
        expect((await second.store.findRunTokenById(reader.id))?.revokedAt).toBe(T0 + 5);
        // A run token minted after `writer` expired drops its record (its signature refuses it already).
        const later = run({ createdAt: T0 + 2_000 });
        await store.createRunToken(later);
        expect(await store.findRunTokenById(writer.id)).toBeNull();
        expect(await store.findRunTokenById(reader.id)).toEqual({ ...reader, revokedAt: T0 + 5 });
        expect(await store.findRunTokenById(later.id)).toEqual(later);
        // Scoped tokens and run tokens are apart: neither revoke finds the other's ids.
        expect(await store.revokeToken(later.id, T0)).toBeNull();
      });

      it("records no more than maxLive live run tokens of one run, even minted at once; expired, revoked and other runs' ones do not count, and a refusal keeps what is stored", async () => {
        const runId = uuidv7();
        const token = (over: Partial<RunTokenRecord> = {}): RunTokenRecord => ({ id: uuidv7(), runId, write: false, createdAt: T0, expiresAt: T0 + 60_000, revokedAt: null, mintedBy: null, ...over });
        const short = token({ expiresAt: T0 + 1_000 });
        const revoked = token();
        expect(await store.createRunToken(short, 3)).toBe(true);
        expect(await store.createRunToken(revoked, 3)).toBe(true);
        await store.revokeRunToken(revoked.id, T0 + 1);
        // Racing: of twelve minted at once on two connections, as many as fit are recorded.
        const second = await open(opened.location);
        extra.push(second);
        const racing = Array.from({ length: 12 }, () => token());
        const recorded = await Promise.all(racing.map((t, i) => (i % 2 === 0 ? store : second.store).createRunToken(t, 3)));
        expect(recorded.filter(Boolean)).toHaveLength(2);
        for (const [i, t] of racing.entries()) expect(await store.findRunTokenById(t.id)).toEqual(recorded[i] ? t : null);
        // The refused mints took nothing away: the revoked one is still there, revoked.
        expect((await store.findRunTokenById(revoked.id))?.revokedAt).toBe(T0 + 1);
        // Another run has its own count; without maxLive there is no cap.
        expect(await store.createRunToken(token({ runId: uuidv7() }), 1)).toBe(true);
        expect(await store.createRunToken(token())).toBe(true);
        // Once `short` has expired it no longer counts (and its record is dropped).
        const later = token({ createdAt: T0 + 2_000 });
        expect(await store.createRunToken(later, 4)).toBe(true);
        expect(await store.findRunTokenById(short.id)).toBeNull();
        expect(await store.createRunToken(token({ createdAt: T0 + 2_000 }), 4)).toBe(false);
      });

      it('keeps the first secret stored under a name, across connections', async () => {
        expect(await store.ensureSecret('run-token', 'first')).toBe('first');
        expect(await store.ensureSecret('run-token', 'second')).toBe('first');
        const second = await open(opened.location);
        extra.push(second);
        expect(await second.store.ensureSecret('run-token', 'third')).toBe('first');
        expect(await second.store.ensureSecret('other', 'x')).toBe('x');
      });

      it('reads a secret without storing one: null until some connection stores it, then the stored value', async () => {
        expect(await store.findSecret('marker')).toBeNull();
        // Reading stores nothing: the first ensureSecret after it still wins.
        expect(await store.findSecret('marker')).toBeNull();
        const second = await open(opened.location);
        extra.push(second);
        expect(await second.store.ensureSecret('marker', 'first')).toBe('first');
        expect(await store.findSecret('marker')).toBe('first');
        expect(await store.ensureSecret('marker', 'second')).toBe('first');
        expect(await second.store.findSecret('marker')).toBe('first');
        expect(await store.findSecret('other')).toBeNull();
      });
    });

    describe('executor registry (which node executes which handlers)', () => {
      it("keeps each node's last announcement, seen by a second connection, live until the time it gave; a forgotten one is gone", async () => {
        const announce = (node: string, handlers: string[], now: number, liveUntil: number, incarnation: string | null = null, url: string | null = null) =>
          store.announceHandlers({ node, handlers, now, liveUntil, incarnation, url });
        await announce('node-b', ['render', 'gpu'], T0, T0 + 1000, 'inc-b1', 'http://10.0.0.2:4310');
        // A node that announces less often says it lives longer: judged by its word, not the reader's interval.
        await announce('node-a', ['score'], T0 + 10, T0 + 30_000);
        const second = await open(opened.location);
        extra.push(second);
        expect(await second.store.nodeHandlers(T0 + 1000)).toEqual([
          { node: 'node-a', handlers: ['score'], heardAt: T0 + 10, liveUntil: T0 + 30_000, incarnation: null, url: null, slots: null },
          { node: 'node-b', handlers: ['gpu', 'render'], heardAt: T0, liveUntil: T0 + 1000, incarnation: 'inc-b1', url: 'http://10.0.0.2:4310', slots: null },
        ]);
        expect((await store.nodeHandlers(T0 + 1001)).map((n) => n.node)).toEqual(['node-a']);
        // A new announcement replaces the node's names, times and process: a handler it dropped is no longer its.
        const slots = { concurrency: 4, running: 2, handlerConcurrency: { render: 1 }, runningByHandler: { render: 1, other: 1 } };
        await second.store.announceHandlers({ node: 'node-b', handlers: ['render'], now: T0 + 2000, liveUntil: T0 + 3000, incarnation: 'inc-b2', url: 'http://10.0.0.2:4311', slots });
        expect(await store.nodeHandlers(T0 + 2500)).toEqual([
          { node: 'node-a', handlers: ['score'], heardAt: T0 + 10, liveUntil: T0 + 30_000, incarnation: null, url: null, slots: null },
          { node: 'node-b', handlers: ['render'], heardAt: T0 + 2000, liveUntil: T0 + 3000, incarnation: 'inc-b2', url: 'http://10.0.0.2:4311', slots },
        ]);
        await store.forgetHandlers('node-b');
        await store.forgetHandlers('no-such-node');
        expect((await second.store.nodeHandlers(T0)).map((n) => n.node)).toEqual(['node-a']);
      });
    });

    describe('artifacts', () => {
      const sha = (c: string) => c.repeat(64);
      const put = (runId: string, name: string, over: Partial<PutArtifactInput> = {}) =>
        store.putArtifact({
          runId,
          name,
          contentType: 'text/plain',
          size: 10,
          sha256: sha('a'),
          metadata: null,
          now: T0 + 5,
          replace: false,
          maxRunBytes: 1000,
          ...over,
        });

      it('numbers artifacts 1, 2, … per run and appends one artifact event with every field, in the same write', async () => {
        const run = await create();
        const other = await create();
        const a = await put(run.id, 'a.txt', { metadata: { step: 1 } });
        const b = await put(run.id, 'b.png', { contentType: 'image/png', sha256: sha('b'), size: 20 });
        const c = await put(other.id, 'a.txt');
        expect([a.artifact.ordinal, b.artifact.ordinal, c.artifact.ordinal]).toEqual([1, 2, 1]);
        expect(a.outcome).toBe('created');
        expect(a.artifact).toEqual({
          runId: run.id, ordinal: 1, name: 'a.txt', contentType: 'text/plain', size: 10, sha256: sha('a'), createdAt: T0 + 5, metadata: { step: 1 },
        });
        const events = await readAll(run.id);
        expect(events.map((e) => [e.type, e.data])).toEqual([
          ['artifact', { ordinal: 1, name: 'a.txt', contentType: 'text/plain', size: 10, sha256: sha('a'), createdAt: T0 + 5, metadata: { step: 1 } }],
          ['artifact', { ordinal: 2, name: 'b.png', contentType: 'image/png', size: 20, sha256: sha('b'), createdAt: T0 + 5 }],
        ]);
        expect(b.append!.appended).toEqual([events[1]]);
        expect((await store.listArtifacts(run.id)).map((x) => x.name)).toEqual(['a.txt', 'b.png']);
        expect(await store.getArtifact(run.id, 'b.png')).toEqual(b.artifact);
        expect(await store.getArtifact(run.id, 'nope')).toBeNull();
        expect((await store.getRun(run.id))!.snapshot.artifacts.map((x) => [x.ordinal, x.name, x.sha256])).toEqual([
          [1, 'a.txt', sha('a')],
          [2, 'b.png', sha('b')],
        ]);
      });

      it('answers the same content under the same name as unchanged, refuses other content unless replace, and refuses writes to ended runs', async () => {
        const run = await create();
        await put(run.id, 'a.txt');
        expect((await put(run.id, 'a.txt')).outcome).toBe('unchanged');
        const before = await stateOf(run.id);
        await expectError(put(run.id, 'a.txt', { sha256: sha('c') }), 'artifact_conflict');
        await expectError(put(run.id, 'big.bin', { size: 991 }), 'payload_too_large');
        expect(await stateOf(run.id)).toEqual(before);
        const replaced = await put(run.id, 'a.txt', { sha256: sha('c'), size: 30, replace: true });
        expect(replaced).toMatchObject({ outcome: 'replaced', displaced: sha('a'), artifact: { ordinal: 1, sha256: sha('c'), size: 30 } });
        expect(await store.blobsInUse([sha('a'), sha('c')])).toEqual(new Set([sha('c')]));
        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        const ended = await stateOf(run.id);
        await expectError(put(run.id, 'late.txt', { sha256: sha('d') }), 'run_already_terminal');
        expect(await stateOf(run.id)).toEqual(ended);
        await expectError(store.listArtifacts('no-such-run'), 'run_not_found');
      });

      it('deletes a run with its artifact records; hashes other runs use stay in use', async () => {
        const run = await create();
        const other = await create();
        await put(run.id, 'a.txt');
        await put(run.id, 'b.txt', { sha256: sha('b') });
        await put(other.id, 'same.txt');
        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 });
        await store.deleteRun(run.id);
        expect(await store.blobsInUse([sha('a'), sha('b')])).toEqual(new Set([sha('a')]));
        expect((await store.listArtifacts(other.id)).map((a) => a.name)).toEqual(['same.txt']);
      });

      it('imports a run with its events, seqs and artifacts as they were, once', async () => {
        const run = await create();
        await store.append(run.id, [{ type: 'progress', data: { done: 1, total: 2 }, id: 'e1' }], { now: T0 + 1 });
        await put(run.id, 'a.txt', { metadata: { k: 'v' } });
        await store.append(run.id, [{ type: 'run.succeeded', data: { output: 7 } }], { now: T0 + 9 });
        const source = (await store.getRun(run.id))!;
        const events = await readAll(run.id);
        const artifacts = await store.listArtifacts(run.id);
        const target = (extra[extra.push(await open()) - 1]!).store;
        const imported = await target.importRun({ run: source, events, artifacts });
        const strip = (r: Run) => ({ ...r, leaseExpiresAt: null });
        expect(strip(imported)).toEqual(strip(source));
        expect(await readAll(run.id, target)).toEqual(events);
        expect(await target.listArtifacts(run.id)).toEqual(artifacts);
        await expectError(target.importRun({ run: source, events, artifacts }), 'run_already_exists');
        await expectError(target.append(run.id, [{ type: 'x.late' }], { now: T0 }), 'run_already_terminal');
      });

      it('refuses to import a run under a parent that is not there (deleted since its archive was checked), storing nothing', async () => {
        const parent = await create();
        const child = await create({ parentId: parent.id });
        await store.append(child.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 1 });
        const source = (await store.getRun(child.id))!;
        const events = await readAll(child.id);
        const target = (extra[extra.push(await open()) - 1]!).store;
        const err = await expectError(target.importRun({ run: source, events, artifacts: [] }), 'invalid_request');
        expect(err.message).toContain(`parent run ${parent.id} does not exist here`);
        expect(await target.getRun(child.id)).toBeNull();
        await expectError(target.readEvents(child.id, 0, 10), 'run_not_found');
      });

      it('imports a family (a parent, its children, a grandchild) in one transaction, parents first, keeping ids and links', async () => {
        const parent = await create();
        const children = [await create({ parentId: parent.id }), await create({ parentId: parent.id })];
        const grandchild = await create({ parentId: children[1]!.id });
        const family = [parent, ...children, grandchild];
        await put(grandchild.id, 'g.txt', { metadata: { deep: true } });
        for (const r of [...family].reverse()) await store.append(r.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 5 });
        const bundles = [];
        for (const r of family) bundles.push({ run: (await store.getRun(r.id))!, events: await readAll(r.id), artifacts: await store.listArtifacts(r.id) });
        const target = (extra[extra.push(await open()) - 1]!).store;
        const imported = await target.importRuns(bundles);
        expect(imported.map((r) => [r.id, r.parentId])).toEqual(family.map((r) => [r.id, r.parentId]));
        expect((await target.listRuns({ parentId: parent.id, limit: 10 })).runs.map((r) => r.id).sort()).toEqual(children.map((r) => r.id).sort());
        expect(await target.listArtifacts(grandchild.id)).toEqual(await store.listArtifacts(grandchild.id));
        expect(await readAll(grandchild.id, target)).toEqual(await readAll(grandchild.id));
      });

      it('imports no run of a family when one is refused: an id taken here (every taken one named), or a parent that is neither in it nor here', async () => {
        const parent = await create();
        const child = await create({ parentId: parent.id });
        const grandchild = await create({ parentId: child.id });
        for (const r of [grandchild, child, parent]) await store.append(r.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 5 });
        const bundleOf = async (r: Run) => ({ run: (await store.getRun(r.id))!, events: await readAll(r.id), artifacts: [] });
        const bundles = [await bundleOf(parent), await bundleOf(child), await bundleOf(grandchild)];
        const target = (extra[extra.push(await open()) - 1]!).store;
        // The child and grandchild are here already (the child imported on its own, as a top-level run).
        await target.importRun({ ...bundles[1]!, run: { ...bundles[1]!.run, parentId: null } });
        await target.importRun(bundles[2]!);
        const taken = await expectError(target.importRuns(bundles), 'run_already_exists');
        expect(taken.message).toContain(child.id);
        expect(taken.message).toContain(grandchild.id);
        expect((taken.details as { runIds: string[] }).runIds).toEqual([child.id, grandchild.id]);
        expect(await target.getRun(parent.id)).toBeNull();

        const fresh = (extra[extra.push(await open()) - 1]!).store;
        // The grandchild's parent is neither in the list nor stored: the parent written before it goes too.
        const orphan = await expectError(fresh.importRuns([bundles[0]!, bundles[2]!]), 'invalid_request');
        expect(orphan.message).toContain(`run ${grandchild.id}'s parent run ${child.id} does not exist here`);
        expect(await fresh.getRun(parent.id)).toBeNull();
        expect(await fresh.getRun(grandchild.id)).toBeNull();
      });

      it('keeps a large input as it was through appends, and a run imported again under a deleted id has its new input', async () => {
        // Large inputs are parsed once and shared (ParsedInputs): none of that may show.
        const input = { rows: Array.from({ length: 400 }, (_, i) => ({ i, prompt: `question ${i} `.repeat(8) })) };
        const run = await create({ input });
        for (let i = 0; i < 3; i++) {
          const { run: after } = await store.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }], { now: T0 + i });
          expect(after.input).toEqual(input);
        }
        const read = (await store.getRun(run.id))!;
        expect(read.input).toEqual(input);
        // A reader that changes what it was given changes nobody else's.
        expect(() => ((read.input as typeof input).rows[0]!.i = 99)).toThrow(TypeError);
        expect((await store.getRun(run.id))!.input).toEqual(input);

        await store.append(run.id, [{ type: 'run.succeeded', data: {} }], { now: T0 + 9 });
        const source = (await store.getRun(run.id))!;
        const events = await readAll(run.id);
        // Another connection (another node) that has read the old input...
        const second = await open(opened.location);
        extra.push(second);
        expect((await second.store.getRun(run.id))!.input).toEqual(input);
        await store.deleteRun(run.id);
        const other = { rows: input.rows.map((row) => ({ ...row, prompt: row.prompt.toUpperCase() })) };
        await store.importRun({ run: { ...source, input: other }, events, artifacts: [] });
        expect((await store.getRun(run.id))!.input).toEqual(other);
        // ...sees the new one, though the delete happened elsewhere.
        expect((await second.store.getRun(run.id))!.input).toEqual(other);
      });
    });

    describe('durability', () => {
      it('keeps runs, events and snapshots across close and reopen, and continues the seq', async () => {
        const run = await create({ labels: { a: 'b' } });
        await store.append(run.id, [{ type: 'progress', data: { done: 1, total: 2 }, id: 'p1' }, { type: 'counter', data: { name: 'n', delta: 5 } }], { now: T0 });
        const before = await stateOf(run.id);
        await store.close();

        const again = await open(opened.location);
        extra.push(again);
        expect(await again.store.getRun(run.id)).toEqual(before.run);
        expect(await readAll(run.id, again.store)).toEqual(before.events);
        const next = await again.store.append(run.id, [{ type: 'progress', data: { done: 1, total: 2 }, id: 'p1' }, { type: 'progress', data: { done: 2 } }], { now: T0 + 1 });
        expect(next.seqs).toEqual([1, 3]);
        expect(next.run.snapshot).toEqual(foldEvents(await readAll(run.id, again.store)));
        expect(next.run.snapshot.progress).toMatchObject({ done: 2, total: 2, percent: 100 });
      });

      it('shows a second connection every append of the first, with its snapshot', async () => {
        const second = await open(opened.location);
        extra.push(second);
        const run = await create();
        for (let i = 1; i <= 5; i++) {
          // Alternate writers: each must see the other's appends (no stale cached snapshot).
          const writer = i % 2 ? store : second.store;
          const result = await writer.append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 } }], { now: T0 + i });
          expect(result.seqs).toEqual([i]);
          expect(result.run.snapshot.counters.named.n).toBe(i);
        }
        expect((await second.store.getRun(run.id))!.snapshot).toEqual(foldEvents(await readAll(run.id)));
      });
    });

    describe('snapshot checkpoints (the snapshot is persisted every so often; reads fold the events after it)', () => {
      /** Call events that keep 5 more calls in flight after each batch: the snapshot grows, as with a busy producer. */
      const callBatch = (counter: { next: number; oldest: number }): EventInput[] => [
        ...Array.from({ length: 30 }, () => ({ type: 'call.started', data: { callId: `c${counter.next}`, label: `doc_${counter.next++}` } })),
        ...Array.from({ length: 25 }, () => ({ type: 'call.succeeded', data: { callId: `c${counter.oldest++}` } })),
      ];

      it('reads the snapshot at the run\'s seq between checkpoints, never behind an acknowledged append: on either writer, a list and after a reopen', async () => {
        const second = await open(opened.location);
        extra.push(second);
        const run = await create({ leaseTtlMs: 3_600_000 });
        const counter = { next: 0, oldest: 0 };
        let last: Run | undefined;
        // One server time for every append: checkpoints come from the event count (every 1,000 or more by default), so reads fold tails.
        for (let i = 0; i < 40; i++) {
          const writer = i % 4 === 3 ? second.store : store;
          const events = callBatch(counter);
          if (i === 5) events.push({ type: 'phase', data: { name: 'score', status: 'started' } });
          const result = await writer.append(run.id, events, { now: T0 + 1 });
          last = result.run;
          expect(result.run.snapshot, `append ${i}`).toEqual(foldEvents(await readAll(run.id)));
          expect(await store.getRun(run.id), `append ${i}, first store`).toEqual(result.run);
          expect(await second.store.getRun(run.id), `append ${i}, second store`).toEqual(result.run);
        }
        expect((await second.store.listRuns({})).runs.find((r) => r.id === run.id)).toEqual(last);
        expect(Object.keys(last!.snapshot.current)).toHaveLength(200);
        await store.close();
        await second.cleanup();
        extra.splice(extra.indexOf(second), 1);

        const again = await open(opened.location);
        extra.push(again);
        expect(await again.store.getRun(run.id)).toEqual(last);
      });

      it.skipIf(options.worker === undefined)('rebuilds the snapshot from the checkpoint and the log after its writer is killed (kill -9) mid-run', async () => {
        const run = await create({ leaseTtlMs: 3_600_000 });
        const worker = options.worker!;
        // A producer process appends call batches until killed, printing each acknowledged seq.
        const source = `
          const mod = await import(process.env.STORE_URL);
          const store = await mod[process.env.EXPORT_NAME](JSON.parse(process.env.STORE_ARG));
          const callBatch = ${callBatch.toString()};
          const counter = { next: 0, oldest: 0 };
          for (;;) {
            const result = await store.append(process.env.RUN_ID, callBatch(counter), { now: ${T0 + 1} });
            process.stdout.write(result.seq + '\\n');
          }`;
        const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
          env: {
            ...process.env,
            STORE_URL: worker.moduleUrl,
            EXPORT_NAME: worker.exportName,
            STORE_ARG: JSON.stringify(worker.argument(opened.location)),
            RUN_ID: run.id,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        let acknowledged = 0;
        try {
          // Past a few checkpoints (every 1,000 events or more), then killed wherever it is.
          await new Promise<void>((resolve, reject) => {
            const lines = createInterface({ input: child.stdout });
            lines.on('line', (line) => {
              acknowledged = Number(line);
              if (acknowledged >= 2_500) resolve();
            });
            child.once('exit', (code) => reject(new Error(`the producer exited (${code}) before it was killed: ${stderr}`)));
          });
        } finally {
          child.kill('SIGKILL');
          await exited;
        }

        const again = await open(opened.location);
        extra.push(again);
        const events = await readAll(run.id, again.store);
        const rebuilt = (await again.store.getRun(run.id))!;
        expect(rebuilt.seq).toBe(events.at(-1)!.seq);
        expect(rebuilt.seq).toBeGreaterThanOrEqual(acknowledged);
        expect(rebuilt.snapshot).toEqual(foldEvents(events));
        const next = await again.store.append(run.id, [{ type: 'call.succeeded', data: { callId: 'c0' } }, { type: 'progress', data: { done: 1 } }], { now: T0 + 2 });
        expect(next.run.snapshot).toEqual(foldEvents(await readAll(run.id, again.store)));
        expect(await store.getRun(run.id)).toEqual(next.run);
      });
    });

    describe('concurrent producers (issue 4: 10,000 events, 4 producers, one run)', () => {
      it('gives seq exactly 1..10,000 with no gap or duplicate, and a snapshot equal to the fold', async () => {
        const run = await create({ leaseTtlMs: 3_600_000 });
        const producers = 4;
        const perProducer = 2500;
        const results = await runConcurrently(
          opened.location,
          produceTask,
          Array.from({ length: producers }, (_, p) => ({ runId: run.id, p, perProducer, batchSizes: BATCH_SIZES })),
          options.worker,
          open,
          extra,
        );

        const events = await readAll(run.id);
        expect(events).toHaveLength(producers * perProducer);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: producers * perProducer }, (_, i) => i + 1));
        const ids = events.map((e) => e.id);
        expect(new Set(ids).size).toBe(ids.length);
        // Each producer's events are in the order it sent them, at the seqs it was told.
        for (const [p, seqs] of results.entries()) {
          const mine = events.filter((e) => e.id!.startsWith(`p${p}-`));
          expect(mine.map((e) => e.id)).toEqual(Array.from({ length: perProducer }, (_, i) => `p${p}-${i}`));
          expect(mine.map((e) => e.seq)).toEqual(seqs);
        }
        const stored = (await store.getRun(run.id))!;
        expect(stored.seq).toBe(producers * perProducer);
        expect(stored.snapshot).toEqual(foldEvents(events));
        expect(stored.snapshot.counters.named.events).toBe(producers * perProducer);
        expect(stored.snapshot.counters.ok).toBe(producers * perProducer / 5);
      });

      it('hands each queued run to exactly one of 4 concurrent claimers', async () => {
        const queued: string[] = [];
        for (let i = 0; i < 60; i++) queued.push((await create({ name: i % 2 ? 'job-a' : 'job-b', execute: true })).id);
        const owners: Owner[] = [0, 1, 2, 3].map((n) => ({ kind: 'executor', node: `claimer-${n}`, id: `w${n}` }));
        const claimed = await runConcurrently(
          opened.location,
          claimTask,
          owners.map((owner) => ({ owner, names: ['job-a', 'job-b'], now: T0 + 1 })),
          options.worker,
          open,
          extra,
        );
        expect(claimed.flat().sort()).toEqual(queued.slice().sort());
        for (const [i, ids] of claimed.entries()) {
          for (const id of ids) expect((await store.getRun(id))!.owner).toEqual(owners[i]);
        }
        expect((await store.listRuns({ status: 'queued' })).runs).toEqual([]);
      });

      it('creates one run per idempotency key when 4 creators race with the same keys', async () => {
        const keys = Array.from({ length: 30 }, (_, i) => `race-${i}`);
        const results = await runConcurrently(
          opened.location,
          createTask,
          [0, 1, 2, 3].map(() => ({ ids: keys.map(() => uuidv7()), keys, now: T0 })),
          options.worker,
          open,
          extra,
        );
        for (const [k] of keys.entries()) {
          const answers = results.map((r) => r[k]!);
          expect(new Set(answers.map(([id]) => id)).size, keys[k]).toBe(1);
          expect(answers.filter(([, created]) => created), keys[k]).toHaveLength(1);
        }
        expect((await store.listRuns({ limit: 200 })).runs).toHaveLength(keys.length);
      });

      it('stores a retried batch once: same ids, same seqs, no duplicates', async () => {
        const run = await create();
        const batch: EventInput[] = Array.from({ length: 200 }, (_, i) => ({ id: `b-${i}`, type: 'counter', data: { name: 'n', delta: 1 } }));
        const first = await store.append(run.id, batch, { now: T0 });
        // The producer never saw the answer and sends the batch again, then again on another connection.
        const retried = await store.append(run.id, batch, { now: T0 + 1 });
        const second = await open(opened.location);
        extra.push(second);
        const again = await second.store.append(run.id, batch, { now: T0 + 2 });
        expect(retried.seqs).toEqual(first.seqs);
        expect(again.seqs).toEqual(first.seqs);
        const events = await readAll(run.id);
        expect(events).toHaveLength(200);
        expect((await store.getRun(run.id))!.snapshot).toEqual(foldEvents(events));
      });
    });
  });
}

/**
 * Work that runs concurrently against one store location, each copy through
 * its OWN store: in worker threads when the adapter says how to open one
 * there, else in this thread. Tasks are shipped to workers as source text, so
 * they must use nothing from this module's scope (only their arguments).
 */
type Task<A, R> = (store: RunStore, args: A) => Promise<R>;

/**
 * A producer: appends `perProducer` events with ids p{p}-{i} (calls that start
 * and succeed, progress, metrics, a counter) in batches of varying size, and
 * sends one batch twice as a producer does when it lost the answer. Returns
 * the seq of each of its events.
 */
export async function produceTask(
  store: RunStore,
  args: { runId: string; p: number; perProducer: number; batchSizes: number[] },
): Promise<number[]> {
  const { runId, p, perProducer, batchSizes } = args;
  const eventsFor = (from: number, count: number) => {
    const events: Array<{ id: string; type: string; data: unknown }> = [];
    for (let i = from; i < from + count; i++) {
      const id = `p${p}-${i}`;
      const callId = `p${p}-call-${Math.floor(i / 5)}`;
      const kind = i % 5;
      if (kind === 0) events.push({ id, type: 'call.started', data: { callId, label: `producer ${p} call ${i}` } });
      else if (kind === 1) events.push({ id, type: 'progress', data: { done: i, total: perProducer } });
      else if (kind === 2) events.push({ id, type: 'metric', data: { name: `m${p}`, value: i, step: i } });
      else if (kind === 3) events.push({ id, type: 'counter', data: { name: 'events', delta: 5 } });
      else events.push({ id, type: 'call.succeeded', data: { callId } });
    }
    return events;
  };
  const seqs: number[] = [];
  let i = 0;
  let b = p;
  while (i < perProducer) {
    const size = Math.min(batchSizes[b++ % batchSizes.length]!, perProducer - i);
    const batch = eventsFor(i, size);
    const result = await store.append(runId, batch, { now: Date.now() });
    if (b === p + 3) {
      const retried = await store.append(runId, batch, { now: Date.now() });
      if (retried.seqs.join() !== result.seqs.join()) throw new Error(`producer ${p}: a retried batch got new seqs`);
    }
    seqs.push(...result.seqs);
    i += size;
  }
  return seqs;
}

/** A creator: creates runs with the given idempotency keys; returns [id, created] per key. */
async function createTask(store: RunStore, args: { ids: string[]; keys: string[]; now: number }): Promise<Array<[string, boolean]>> {
  const out: Array<[string, boolean]> = [];
  for (const [i, key] of args.keys.entries()) {
    const { run, created } = await store.createRun({ id: args.ids[i]!, name: 'idem', now: args.now, leaseTtlMs: 30_000, idempotencyKey: key });
    out.push([run.id, created]);
  }
  return out;
}

/** A claimer: claims one queued run at a time until none is left; returns the ids it got. */
async function claimTask(store: RunStore, args: { owner: Owner; names: string[]; now: number }): Promise<string[]> {
  const ids: string[] = [];
  for (;;) {
    const got = await store.claimQueued({ owner: args.owner, names: args.names, limit: 1, now: args.now });
    if (got.length === 0) return ids;
    ids.push(...got.map((r) => r.id));
  }
}

/** Batch sizes cycle so producers interleave at many different points. */
export const BATCH_SIZES = [1, 7, 25, 50, 3, 100, 13];

async function runConcurrently<A, R>(
  location: string,
  task: Task<A, R>,
  argsPerCopy: A[],
  worker: ConformanceOptions['worker'],
  open: OpenStore,
  extra: OpenedStore[],
): Promise<R[]> {
  if (!worker) {
    const stores = await Promise.all(argsPerCopy.map(() => open(location)));
    extra.push(...stores);
    return Promise.all(stores.map((s, i) => task(s.store, argsPerCopy[i]!)));
  }
  const workers = argsPerCopy.map(
    (args) =>
      new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          moduleUrl: worker.moduleUrl,
          exportName: worker.exportName,
          argument: worker.argument(location),
          task: task.toString(),
          args,
        },
      }),
  );
  const message = (w: Worker) =>
    new Promise<{ ready?: true; result?: R; error?: string }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
      w.once('exit', (code) => reject(new Error(`worker exited with ${code} before answering`)));
    });
  try {
    const ready = await Promise.all(workers.map(message));
    for (const r of ready) if (r.error) throw new Error(`worker failed to open its store: ${r.error}`);
    // Start together so the copies really contend.
    const done = workers.map(message);
    for (const w of workers) w.postMessage('go');
    return (await Promise.all(done)).map((r, i) => {
      if (r.error !== undefined) throw new Error(`worker ${i} failed: ${r.error}`);
      return r.result as R;
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const mod = await import(workerData.moduleUrl);
  const store = await mod[workerData.exportName](workerData.argument);
  const task = (0, eval)('(' + workerData.task + ')');
  const go = new Promise((resolve) => parentPort.once('message', resolve));
  parentPort.postMessage({ ready: true });
  await go;
  let result;
  try {
    result = await task(store, workerData.args);
  } finally {
    await store.close();
  }
  parentPort.postMessage({ result });
})().catch((err) => parentPort.postMessage({ error: String((err && err.stack) || err) }));
`;
