import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '@runtrail/protocol';
import { waitUntil } from '../leases/lease.test-kit.js';
import { isExactRange } from '../stream/stream.test-kit.js';
import { throwawayPostgres, type ThrowawayPostgres } from '@runtrail/test-support/postgres';
import { cluster, http, stopCluster, watchOnEach } from './cluster.test-kit.js';
import { sample, scrape } from '../http/metrics.test-kit.js';

/**
 * PostgreSQL stopped and started again under two live nodes. It runs on a
 * throwaway PostgreSQL of its own (initdb in a temp dir): the shared one
 * serves everyone else's tests and must not be restarted.
 */

let pg: ThrowawayPostgres | null = null;
afterEach(async () => {
  await stopCluster();
  await pg?.remove();
  pg = null;
});

/** Appends with ids, retried on 503 or a dropped connection, as a producer SDK does. */
async function appendWithRetry(url: string, runId: string, events: Array<{ id: string; type: string; data?: unknown }>, seen: { unavailable: number; retryAfter: Set<string> }): Promise<number[]> {
  for (;;) {
    let res: Response;
    try {
      res = await fetch(`${url}/api/v1/runs/${runId}/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events }),
      });
    } catch (err) {
      void err; // the node answered nothing (its connection was cut): retry, like the SDK
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const body = (await res.json()) as { seqs?: number[]; error?: { code: string } };
    if (res.status === 200) return body.seqs!;
    if (res.status !== 503) throw new Error(`append answered ${res.status}: ${JSON.stringify(body)}`);
    expect(body.error?.code).toBe('unavailable');
    seen.unavailable++;
    seen.retryAfter.add(res.headers.get('retry-after') ?? '(none)');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('PostgreSQL restarted under two nodes', () => {
  it('requests get 503 + Retry-After, /readyz fails while /healthz stays up, /metrics stays up and says so, no node exits, and watchers on both nodes resume with every event once', async () => {
    pg = await throwawayPostgres();
    const c = await cluster({}, pg.url);
    const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
    const { body: run } = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'through-a-restart', leaseTtlMs: 3_600_000 });
    const watchers = await watchOnEach([a, b], run.id);
    const seen = { unavailable: 0, retryAfter: new Set<string>() };
    const total = 400;
    let sent = 0;
    const produce = async (upTo: number) => {
      for (; sent < upTo; sent += 5) {
        const node = (sent / 5) % 2 === 0 ? a : b;
        const events = Array.from({ length: 5 }, (_, i) => ({ id: `e-${sent + i}`, type: 'counter', data: { name: 'n', delta: 1 } }));
        await appendWithRetry(node.url, run.id, events, seen);
      }
    };
    try {
      await produce(150);
      await waitUntil(() => watchers.every((w) => w.seqs(run.id).length >= 150), { what: 'both watchers to have the first 150 events' });

      // The database goes away; a producer keeps sending meanwhile.
      await pg.stop();
      const during = produce(total);
      for (const node of [a, b]) {
        const ready = await waitUntil(async () => {
          const r = await http<{ error: { code: string } }>('GET', `${node.url}/readyz`);
          return r.status === 503 && r;
        }, { what: '/readyz to fail while the database is down' });
        expect(ready.body.error.code).toBe('unavailable');
        expect(ready.headers.get('retry-after')).toMatch(/^\d+$/);
        expect((await http('GET', `${node.url}/healthz`)).status).toBe(200);
      }
      await waitUntil(() => seen.unavailable > 0, { what: 'an append to be answered 503 while the database is down' });
      // /metrics keeps answering: the listening connection is down, the store's gauges are
      // left out (not stale), and the failed reads are counted.
      for (const node of [a, b]) {
        const down = await waitUntil(async () => {
          const text = await scrape(node.url);
          // A scrape's own failed reads are counted after its counters are written: the next one shows them.
          const counted = (sample(text, 'runtrail_store_errors_total{operation="countRuns"}') ?? 0) >= 1;
          return sample(text, 'runtrail_database_listening') === 0 && counted && text;
        }, { what: 'the listening connection to show as down in /metrics, and the failed reads counted' });
        expect(down).not.toMatch(/^runtrail_runs\{/m);
        expect(sample(down, 'runtrail_process_cpu_seconds_total')).toBeGreaterThan(0);
      }
      await pg.start();
      await during;

      for (const node of [a, b]) await waitUntil(async () => (await http('GET', `${node.url}/readyz`)).status === 200, { what: 'readiness back' });
      for (const node of [a, b]) {
        const back = await waitUntil(async () => {
          const text = await scrape(node.url);
          return sample(text, 'runtrail_database_listening') === 1 && sample(text, 'runtrail_runs{status="running"}') !== undefined && text;
        }, { what: 'the listening connection and the store gauges back in /metrics' });
        expect(sample(back, 'runtrail_database_listener_reconnects_total')).toBeGreaterThanOrEqual(1);
      }
      const finished = await http<Run>('POST', `${b.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' });
      expect(finished.status).toBe(200);
      for (const w of watchers) {
        await waitUntil(() => w.ended.has(run.id), { timeoutMs: 30_000, what: 'each watcher to resume and reach the end' });
        expect(isExactRange(w.seqs(run.id), 0, total + 1)).toBe(true);
      }
      const stored = (await http<Run>('GET', `${a.url}/api/v1/runs/${run.id}`)).body;
      expect(stored.seq).toBe(total + 1);
      expect(stored.snapshot.counters.named.n).toBe(total);
      expect([...seen.retryAfter].every((v) => /^\d+$/.test(v))).toBe(true);
      for (const node of [a, b]) expect(node.child.exitCode).toBeNull();
    } finally {
      for (const w of watchers) w.close();
    }
  }, 180_000);
});
