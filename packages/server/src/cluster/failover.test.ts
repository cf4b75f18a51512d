import { afterEach, describe, expect, it } from 'vitest';
import type { Run } from '@runtrail/protocol';
import { kill9, waitUntil } from '../leases/lease.test-kit.js';
import { cluster, http, stopCluster } from './cluster.test-kit.js';

/**
 * The executor queue shared by several nodes (FOR UPDATE SKIP LOCKED) and
 * what happens when a node dies with SIGKILL: the others take over.
 */

const TTL_MS = 2000;
const REAPER_INTERVAL_MS = 200;
/** Scheduling slack on a loaded 2-core machine (the sweep itself takes time). */
const SLACK_MS = 1000;

afterEach(stopCluster);

describe('a node killed while executing runs', () => {
  it("A's reaper ends B's runs orphaned within TTL + interval, A claims the queued runs, and B's late heartbeat is refused with 409 naming the owner", async () => {
    const c = await cluster({
      RUNTRAIL_LEASE_TTL_MS: String(TTL_MS),
      RUNTRAIL_REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS),
    });
    // B alone first, so that it is B that executes these three.
    const b = await c.start('node-b', { RUNTRAIL_CONCURRENCY: '3' });
    const onB: Run[] = [];
    for (let i = 0; i < 3; i++) onB.push((await http<Run>('POST', `${b.url}/api/v1/runs`, { name: 'slow', execute: true })).body);
    const held = await waitUntil(
      async () => {
        const runs = await Promise.all(onB.map(async (r) => (await http<Run>('GET', `${b.url}/api/v1/runs/${r.id}`)).body));
        return runs.every((r) => r.status === 'running' && r.owner?.node === 'node-b' && r.seq > 3) && runs;
      },
      { what: 'B to execute its three runs' },
    );
    const a = await c.start('node-a', { RUNTRAIL_CONCURRENCY: '4' });

    await kill9(b);
    const killedAt = Date.now();
    // Queued after B died: only A can take them.
    const queued: Run[] = [];
    for (let i = 0; i < 2; i++) queued.push((await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'slow', execute: true })).body);

    for (const run of held) {
      const ended = await waitUntil(
        async () => {
          const r = (await http<Run>('GET', `${a.url}/api/v1/runs/${run.id}`)).body;
          return r.status !== 'running' && r;
        },
        { timeoutMs: 20_000, what: `run ${run.id} of B to be reaped` },
      );
      expect(ended.status).toBe('failed');
      expect(ended.error?.kind).toBe('orphaned');
      expect(ended.error?.message).toContain(`owner executor ${run.owner!.id} on node-b stopped heartbeating`);
      expect(ended.finishedAt! - killedAt).toBeLessThan(TTL_MS + REAPER_INTERVAL_MS + SLACK_MS);
    }

    for (const run of queued) {
      const claimed = await waitUntil(
        async () => {
          const r = (await http<Run>('GET', `${a.url}/api/v1/runs/${run.id}`)).body;
          return r.status === 'running' && r;
        },
        { what: `queued run ${run.id} to be claimed by A` },
      );
      expect(claimed.owner?.node).toBe('node-a');
    }

    // B's lease is gone with its run: a heartbeat or an append from B's old owner is refused.
    const late = held[0]!;
    const beat = await http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs/${late.id}/heartbeat`, { owner: late.owner });
    expect(beat.status).toBe(409);
    expect(beat.body.error.code).toBe('lease_lost');
    expect(beat.body.error.message).toContain('ended failed');

    // A run A executes now: B's owner may neither append to it, heartbeat it nor finish it.
    const taken = (await http<Run>('GET', `${a.url}/api/v1/runs/${queued[0]!.id}`)).body;
    const intruder = { kind: 'executor', node: 'node-b', id: late.owner!.id };
    const refused = await Promise.all([
      http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs/${taken.id}/events`, { events: [{ type: 'x.late' }], owner: intruder }),
      http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs/${taken.id}/heartbeat`, { owner: intruder }),
      http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs/${taken.id}/finish`, { status: 'succeeded', owner: intruder }),
    ]);
    for (const r of refused) {
      expect(r.status, JSON.stringify(r.body)).toBe(409);
      expect(r.body.error.code).toBe('lease_lost');
      expect(r.body.error.message).toContain(`executor ${taken.owner!.id} on node-a`);
    }
    const after = (await http<Run>('GET', `${a.url}/api/v1/runs/${taken.id}`)).body;
    expect(after.status).toBe('running');
    expect(after.owner).toEqual(taken.owner);
  }, 120_000);
});

describe('the handlers of a node killed with SIGKILL', () => {
  it("are accepted through the other node while it lives, and refused once its announcements lapse (2.5 × TTL / 3)", async () => {
    const c = await cluster({ RUNTRAIL_LEASE_TTL_MS: String(TTL_MS), RUNTRAIL_REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS) });
    const a = await c.start('node-a');
    const b = await c.start('node-b', { FIXTURE_OWN_HANDLER: 'only-on-b' });
    const accepted = await http<Run>('POST', `${a.url}/api/v1/runs`, { name: 'only-on-b', execute: true });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(201);
    const done = await waitUntil(
      async () => {
        const r = (await http<Run>('GET', `${a.url}/api/v1/runs/${accepted.body.id}`)).body;
        return r.status === 'succeeded' && r;
      },
      { what: 'the run of only-on-b to be executed by node-b' },
    );
    expect(done.output).toBe('node-b');

    await kill9(b);
    const killedAt = Date.now();
    const refused = await waitUntil(
      async () => {
        const r = await http<{ error: { code: string; message: string } }>('POST', `${a.url}/api/v1/runs`, { name: 'only-on-b', execute: true });
        return r.status === 404 && r;
      },
      { timeoutMs: 20_000, what: "node-b's handlers to lapse" },
    );
    // Its own interval (TTL / 3: lapsed after ~1.7 s here), not the default 10 s one (25 s); the margin is for a loaded machine.
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(refused.body.error.code).toBe('handler_not_found');
    expect(refused.body.error.message).toContain('no handler named "only-on-b" on node node-a;');
  }, 120_000);
});
