import WebSocket from 'ws';
import { afterEach, expect, test } from 'vitest';
import { progressEvents, startTestServer, waitFor } from '../../../server/src/stream/stream.test-kit.js';
import type { WebSocketConstructor } from './types.js';
import { watchRuns, type WatchRunsOptions } from './watch-runs.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

for (const [name, options] of [
  ['WebSocket', { WebSocket: WebSocket as unknown as WebSocketConstructor }],
  ['polling (no WebSocket)', { WebSocket: null, pollIntervalMs: 20 }],
] as Array<[string, Partial<WatchRunsOptions>]>) {
  test(`a live runs list over ${name} shows runs created, updated and deleted, and applies the status filter`, async () => {
    const s = await startTestServer();
    cleanups.push(() => s.cleanup());
    const existing = (await s.runs.create({ name: 'listed' })).run;
    const all = watchRuns({ url: s.url, filter: { name: 'listed' }, ...options });
    const running = watchRuns({ url: s.url, filter: { status: 'running' }, ...options });
    cleanups.push(() => all.close(), () => running.close());
    await waitFor(() => all.getState().runs.length === 1 && running.getState().runs.length === 1, { what: 'initial list' });
    expect(all.getState().connection).toBe(options.WebSocket ? 'live' : 'polling');

    const { run } = await s.runs.create({ name: 'listed' });
    await s.runs.create({ name: 'unrelated' });
    await waitFor(() => all.getState().runs.length === 2, { what: 'created run listed' });
    // Newest first.
    expect(all.getState().runs.map((r) => r.id)).toEqual([run.id, existing.id]);

    await s.runs.appendEvents(run.id, progressEvents(4));
    await waitFor(() => all.getState().runs[0]!.seq === 4, { what: 'update shown' });

    await s.runs.finish(run.id, { status: 'succeeded' });
    await waitFor(() => all.getState().runs[0]!.status === 'succeeded', { what: 'status shown' });
    await waitFor(() => !running.getState().runs.some((r) => r.id === run.id), { what: 'left the running filter' });

    await s.runs.delete(run.id);
    await waitFor(() => all.getState().runs.length === 1, { what: 'deleted run gone' });
  });
}
