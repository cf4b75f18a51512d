import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '@runtrail/protocol';
import { kill9, waitUntil } from '../leases/lease.test-kit.js';
import { RawWsClient, isExactRange } from '../stream/stream.test-kit.js';
import { cluster, http, stopCluster, watchOnEach, watchRunsList } from './cluster.test-kit.js';
import { terminateConnections } from '@runtrail/test-support/postgres';

/**
 * Several runtrail nodes as separate PROCESSES sharing one PostgreSQL schema:
 * what one node commits, every node serves. The fixtures run the build.
 */

afterEach(stopCluster);

describe('two nodes on one PostgreSQL', () => {
  it('a watcher on A gets, in order and once, all 20,000 events 4 producers append through A and B; a finish through B ends it; a second finish through A is 409', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'multi-node', leaseTtlMs: 3_600_000 });

    // Watchers on both nodes, subscribed before anything is appended.
    const watchers = await watchOnEach([a, b], run.id);
    try {
      // Each node counts the watchers of both: 2 on each once both are subscribed.
      for (const node of [a, b]) {
        await waitUntil(async () => (await http<{ observers: number }>('GET', `${node.url}/api/v1/runs/${run.id}`)).body.observers === 2, {
          what: `both watchers to be subscribed, as ${node === a ? 'A' : 'B'} counts them`,
        });
      }

      // 4 producers, two per node, batches of varying size, each event with an id.
      const perProducer = 5000;
      const sizes = [1, 7, 25, 50, 3, 100, 13];
      const producers = [a, b, a, b].map(async (node, p) => {
        const seqs: number[] = [];
        let i = 0;
        let k = p;
        while (i < perProducer) {
          const n = Math.min(sizes[k++ % sizes.length]!, perProducer - i);
          const events = Array.from({ length: n }, (_, j) => ({ id: `p${p}-${i + j}`, type: 'counter', data: { name: `p${p}`, delta: 1 } }));
          const res = await http<{ seqs: number[] }>('POST', `${node.url}/api/v1/runs/${run.id}/events`, { events });
          if (res.status !== 200) throw new Error(`producer ${p}: ${res.status} ${JSON.stringify(res.body)}`);
          seqs.push(...res.body.seqs);
          i += n;
        }
        return seqs;
      });
      const seqsByProducer = await Promise.all(producers);
      const total = 4 * perProducer;
      const all = seqsByProducer.flat().sort((x, y) => x - y);
      expect(isExactRange(all, 0, total)).toBe(true);

      for (const w of watchers) {
        await waitUntil(() => w.seqs(run.id).length >= total, { timeoutMs: 60_000, what: `${total} events on a watcher` });
      }
      // Every event through B reached A's watcher: exactly 1..20,000, in order, once.
      for (const w of watchers) expect(isExactRange(w.seqs(run.id), 0, total)).toBe(true);
      const onA = watchers[0]!.events.get(run.id)!;
      for (const [p, seqs] of seqsByProducer.entries()) {
        expect(onA.filter((e) => e.id!.startsWith(`p${p}-`)).map((e) => e.seq)).toEqual(seqs);
      }

      const finished = await http<Run>('POST', `${b.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' });
      expect(finished.status).toBe(200);
      await waitUntil(() => watchers[0]!.ended.has(run.id), { what: 'the watcher on A to be ended by the finish through B' });
      expect(watchers[0]!.seqs(run.id).at(-1)).toBe(total + 1);
      const again = await http<{ error: { code: string; details: { status: string } } }>('POST', `${a.url}/api/v1/runs/${run.id}/finish`, {
        status: 'failed',
        error: { kind: 'error', message: 'a late second finish' },
      });
      expect(again.status, JSON.stringify(again.body)).toBe(409);
      expect(again.body.error).toMatchObject({ code: 'run_already_terminal', details: { status: 'succeeded' } });
      const stored = await http<Run>('GET', `${a.url}/api/v1/runs/${run.id}`);
      expect(stored.body.snapshot.counters.named).toEqual({ p0: perProducer, p1: perProducer, p2: perProducer, p3: perProducer });
    } finally {
      for (const w of watchers) w.close();
    }
  }, 240_000);

  it('"N watching" on A counts the watchers on B as they come and go, and drops them when B is killed', async () => {
    // A lease TTL of 3 s: each node repeats its counts every second, and a node silent for 2.5 s is gone.
    const c = await cluster({ RUNTRAIL_LEASE_TTL_MS: '3000' });
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'watched-everywhere', leaseTtlMs: 3_600_000 });
    const page = new RawWsClient(a.wsUrl);
    const onB = [new RawWsClient(b.wsUrl), new RawWsClient(b.wsUrl)];
    const told = () => page.messages.filter((m) => m.type === 'observers').map((m) => (m as { count: number }).count);
    const observersOn = async (node: { url: string }) => (await http<Run & { observers: number }>('GET', `${node.url}/api/v1/runs/${run.id}`)).body.observers;
    try {
      await page.opened();
      page.send({ op: 'subscribe', runId: run.id, after: 0, observers: true });
      await waitUntil(() => told().at(-1) === 1, { what: 'the page on A told it alone watches' });
      for (const w of onB) {
        await w.opened();
        w.send({ op: 'subscribe', runId: run.id, after: 0 });
      }
      await waitUntil(() => told().at(-1) === 3, { what: 'the page on A told of the two watchers on B' });
      expect(await observersOn(a)).toBe(3);
      expect(await observersOn(b)).toBe(3);
      onB[0]!.close();
      await waitUntil(() => told().at(-1) === 2, { what: 'the page on A told one watcher on B left' });
      // Killed: B never says its last watcher is gone; A stops counting it once B stops repeating it.
      await kill9(b);
      await waitUntil(() => told().at(-1) === 1, { what: "the page on A told B's watcher is gone with B" });
      expect(await observersOn(a)).toBe(1);
    } finally {
      page.close();
      for (const w of onB) w.close();
    }
  });

  it('a live runs list on A shows runs created and changed through B', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const w = await watchRunsList(a);
    try {
      const { body: run } = await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'listed-elsewhere' });
      await http('POST', `${b.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' });
      await waitUntil(
        () => w.messages.some((m) => m.type === 'run' && m.run.id === run.id && m.run.status === 'succeeded'),
        { what: 'the run ended through B in the list on A' },
      );
      // A's first word of it may be 'updated', not 'created': a create and a finish read back in one go
      // are one change (a list adds a run it does not have either way; the README says they may merge).
      const first = w.messages.find((m) => m.type === 'run' && m.run.id === run.id);
      expect(first).toMatchObject({ change: expect.stringMatching(/^(created|updated)$/) });
    } finally {
      w.close();
    }
  });

  it('a heartbeat held on A answers when the run is cancelled through B', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'held-across', leaseTtlMs: 60_000 });
    let settled = false;
    const held = http<{ cancelRequested: boolean; status: string }>('POST', `${a.url}/api/v1/runs/${run.id}/heartbeat?waitMs=60000`, {}).finally(
      () => (settled = true),
    );
    // A round trip to A went by: the heartbeat is being held (up to 20 s, a third of the lease).
    await http('GET', `${a.url}/api/v1/runs/${run.id}`);
    expect(settled).toBe(false);
    await http('POST', `${b.url}/api/v1/runs/${run.id}/cancel`, { reason: 'from B' });
    expect((await held).body).toMatchObject({ status: 'running', cancelRequested: true });
  });

  it('a run deleted through B leaves the live runs list on A', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const w = await watchRunsList(a, { name: 'deleted-elsewhere' });
    try {
      const { body: run } = await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'deleted-elsewhere', labels: { team: 'search' } });
      await http('POST', `${b.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' });
      const deleted = await http('DELETE', `${b.url}/api/v1/runs/${run.id}`);
      expect(deleted.status, JSON.stringify(deleted.body)).toBeLessThan(300);
      await waitUntil(() => w.messages.some((m) => m.type === 'run' && m.run.id === run.id && m.change === 'deleted'), {
        what: 'the run deleted through B to leave the list on A',
      });
      const gone = w.messages.find((m) => m.type === 'run' && m.change === 'deleted');
      // The list's filter (name) and what a list shows came along; what it does not show did not.
      expect(gone).toMatchObject({ run: { id: run.id, name: 'deleted-elsewhere', labels: { team: 'search' }, status: 'succeeded' } });
      expect(w.messages.filter((m) => m.type === 'run' && m.change === 'deleted')).toHaveLength(1);
    } finally {
      w.close();
    }
  });

  it('after the database listener reconnects, live runs lists on every node are told to refetch, and streams go on', async () => {
    const c = await cluster();
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'through-a-reconnect', leaseTtlMs: 3_600_000 });
    const lists = [new RawWsClient(a.wsUrl), new RawWsClient(b.wsUrl)];
    const watcher = new RawWsClient(a.wsUrl);
    try {
      for (const w of [...lists, watcher]) await w.opened();
      for (const w of lists) w.send({ op: 'subscribeRuns', filter: {} });
      watcher.send({ op: 'subscribe', runId: run.id, after: 0 });
      const listStarts = (w: RawWsClient) => w.messages.filter((m) => m.type === 'subscribedRuns').length;
      await waitUntil(() => lists.every((w) => listStarts(w) === 1), { what: 'the runs subscriptions' });
      await http('POST', `${b.url}/api/v1/runs/${run.id}/events`, { events: [{ type: 'x.before' }] });
      await waitUntil(() => watcher.seqs(run.id).length === 1, { what: 'the first event on A' });
      // A heartbeat held on A (up to a minute: a third of its lease is more).
      const { body: producer } = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'held-through-a-reconnect', leaseTtlMs: 3_600_000 });
      let heldAnswer: { cancelRequested: boolean } | null = null;
      void http<{ cancelRequested: boolean }>('POST', `${a.url}/api/v1/runs/${producer.id}/heartbeat?waitMs=60000`, {}).then((r) => (heldAnswer = r.body));
      await waitUntil(async () => (await (await fetch(`${a.url}/metrics`)).text()).includes('\nruntrail_held_heartbeats 1\n'), { what: 'A to hold the heartbeat' });

      // Cut both nodes' listening connections: notifications sent until they are back are lost to them.
      expect(await terminateConnections(`LISTEN "runtrail_events.${c.schema}"`)).toBe(2);
      await http('POST', `${b.url}/api/v1/runs/${run.id}/events`, { events: [{ type: 'x.during' }] });
      // Its stop notification is lost to A: the reconnect wakes the held heartbeat, which reads the run again.
      await http('POST', `${b.url}/api/v1/runs/${producer.id}/cancel`, { reason: 'during the cut' });

      // A missed notification never means a stale list: each list starts over (the client refetches it) ...
      await waitUntil(() => lists.every((w) => listStarts(w) === 2), { what: 'subscribedRuns again on both nodes', timeoutMs: 30_000 });
      // Well before its minute is up.
      await waitUntil(() => heldAnswer, { what: 'the held heartbeat on A to answer after the reconnect', timeoutMs: 30_000 });
      expect(heldAnswer).toMatchObject({ cancelRequested: true });
      // ... and the watcher on A gets every event once, those appended around the cut too.
      await http('POST', `${b.url}/api/v1/runs/${run.id}/events`, { events: [{ type: 'x.after' }] });
      await waitUntil(() => watcher.seqs(run.id).length >= 3, { what: 'the events appended during and after the cut on A' });
      expect(watcher.seqs(run.id)).toEqual([1, 2, 3]);
    } finally {
      for (const w of [...lists, watcher]) w.close();
    }
  });
});
