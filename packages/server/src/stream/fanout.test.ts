import { describe, expect, test } from 'vitest';
import type { RunEvent } from '@runtrail/protocol';
import { RawWsClient, isExactRange, progressEvents, startTestServer, testScope, waitFor, wsUrl } from './stream.test-kit.js';

type TestServer = Awaited<ReturnType<typeof startTestServer>>;
const { cleanups, server } = testScope();

async function subscribed(s: TestServer, runId: string): Promise<RawWsClient> {
  const c = new RawWsClient(wsUrl(s));
  cleanups.push(() => c.close());
  await c.opened();
  c.send({ op: 'subscribe', runId, after: 0 });
  await waitFor(() => c.messages.some((m) => m.type === 'subscribed'), { what: 'subscribed' });
  return c;
}

const eventFrames = (c: RawWsClient) => c.messages.filter((m) => m.type === 'events') as Array<{ events: RunEvent[] }>;

describe('fan-out in flushes (issue 13)', () => {
  test('appends committed in one turn reach each caught-up watcher as one frame, every event once and in order', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'flush' });
    const watchers = [await subscribed(s, run.id), await subscribed(s, run.id), await subscribed(s, run.id)];
    for (let round = 0; round < 20; round++) {
      // Twenty single-event appends in one turn: one group commit, twenty publishes, one flush.
      await Promise.all(Array.from({ length: 20 }, (_, k) => s.runs.appendEvents(run.id, progressEvents(1, round * 20 + k))));
      const total = (round + 1) * 20;
      for (const c of watchers) await waitFor(() => c.seqs(run.id).length >= total, { what: `round ${round}` });
      for (const c of watchers) expect(eventFrames(c).length).toBe(round + 1);
    }
    for (const c of watchers) {
      expect(isExactRange(c.seqs(run.id), 0, 400)).toBe(true);
      // What a watcher receives is what the log holds, byte for byte the same events a read returns.
      expect(eventFrames(c).flatMap((f) => f.events)).toEqual(await s.store.readEvents(run.id, 0, 1000));
    }
  });

  test('a watcher that joins while others are live, and one that is behind, each get every event once', async () => {
    const s = await server();
    const { run } = await s.runs.create({ name: 'mixed' });
    const live = await subscribed(s, run.id);
    let appended = 0;
    const producing = (async () => {
      while (appended < 3000) {
        await Promise.all(Array.from({ length: 10 }, (_, k) => s.runs.appendEvents(run.id, progressEvents(1, appended + k))));
        appended += 10;
      }
    })();
    await waitFor(() => appended >= 1000, { what: 'a backlog' });
    const late = await subscribed(s, run.id);
    await producing;
    for (const c of [live, late]) {
      await waitFor(() => c.seqs(run.id).length >= 3000, { what: 'every event' });
      expect(isExactRange(c.seqs(run.id), 0, 3000)).toBe(true);
    }
  });
});
