import WebSocket from 'ws';
import { afterEach, expect, test } from 'vitest';
import { progressEvents, waitFor } from '@runtrail/test-support';
import { startTestServer } from '@runtrail/test-support/server';
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
    // Says how it is connected, as a run watcher does (before, a list's state had no transport).
    expect(all.getState().transport).toBe(options.WebSocket ? 'ws' : 'poll');
    expect(all.getState().lastHeardAt).not.toBeNull();

    const { run } = await s.runs.create({ name: 'listed', input: { dataset: 'docs-v2', seed: 7 } });
    await s.runs.create({ name: 'unrelated' });
    await waitFor(() => all.getState().runs.length === 2, { what: 'created run listed' });
    // Newest first.
    expect(all.getState().runs.map((r) => r.id)).toEqual([run.id, existing.id]);

    const beforeUpdate = Date.now();
    await s.runs.appendEvents(run.id, progressEvents(4));
    await waitFor(() => all.getState().runs[0]!.seq === 4, { what: 'update shown' });
    // What brought the update was heard from the server.
    expect(all.getState().lastHeardAt).toBeGreaterThanOrEqual(beforeUpdate);
    // Updates leave the input out on the wire; the list keeps the one it had.
    expect(all.getState().runs[0]!.input).toEqual({ dataset: 'docs-v2', seed: 7 });

    await s.runs.finish(run.id, { status: 'succeeded' });
    await waitFor(() => all.getState().runs[0]!.status === 'succeeded', { what: 'status shown' });
    await waitFor(() => !running.getState().runs.some((r) => r.id === run.id), { what: 'left the running filter' });

    await s.runs.delete(run.id);
    await waitFor(() => all.getState().runs.length === 1, { what: 'deleted run gone' });
  });
}

for (const [name, options] of [
  ['WebSocket', { WebSocket: WebSocket as unknown as WebSocketConstructor }],
  ['polling (no WebSocket)', { WebSocket: null, pollIntervalMs: 20 }],
] as Array<[string, Partial<WatchRunsOptions>]>) {
  test(`a live runs list over ${name} applies a name search, a failure kind, top level and parents like the list route`, async () => {
    const s = await startTestServer();
    cleanups.push(() => s.cleanup());
    const parent = (await s.runs.create({ name: 'Autotune' })).run;
    const search = watchRuns({ url: s.url, filter: { nameContains: 'EVAL' }, ...options });
    const timedOut = watchRuns({ url: s.url, filter: { errorKind: 'timeout' }, ...options });
    const roots = watchRuns({ url: s.url, filter: { topLevel: 'true' }, ...options });
    const children = watchRuns({ url: s.url, filter: { parentIds: parent.id }, ...options });
    cleanups.push(() => search.close(), () => timedOut.close(), () => roots.close(), () => children.close());
    await waitFor(() => roots.getState().runs.length === 1, { what: 'initial list' });

    const evalRun = (await s.runs.create({ name: 'llm-eval-3' })).run;
    const child = (await s.runs.create({ name: 'experiment 1', parentId: parent.id })).run;
    await waitFor(() => search.getState().runs.length === 1 && children.getState().runs.length === 1 && roots.getState().runs.length === 2, {
      what: 'created runs listed where they match',
    });
    expect(search.getState().runs.map((r) => r.name)).toEqual(['llm-eval-3']);
    expect(children.getState().runs.map((r) => r.id)).toEqual([child.id]);
    expect(roots.getState().runs.map((r) => r.id)).toEqual([evalRun.id, parent.id]);
    expect(timedOut.getState().runs).toEqual([]);

    // A run enters the failure-kind list when it fails that way.
    await s.runs.finish(evalRun.id, { status: 'failed', error: { kind: 'timeout', message: 'over its limit' } });
    await waitFor(() => timedOut.getState().runs.length === 1, { what: 'timed-out run listed' });
    expect(timedOut.getState().runs[0]!.error).toEqual({ kind: 'timeout', message: 'over its limit' });
  });
}

test('a runs list cut at its limit shows the next run when one of its runs is deleted, not one fewer', async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { run } = await s.runs.create({ name: `run ${i}` });
    await s.runs.finish(run.id, { status: 'succeeded' });
    ids.push(run.id);
  }
  const list = watchRuns({ url: s.url, limit: 3, WebSocket: WebSocket as unknown as WebSocketConstructor });
  cleanups.push(() => list.close());
  await waitFor(() => list.getState().connection === 'live' && list.getState().runs.length === 3, { what: 'the newest 3 listed' });
  expect(list.getState().runs.map((r) => r.id)).toEqual([ids[4], ids[3], ids[2]]);

  await s.runs.delete(ids[4]!);
  await s.runs.delete(ids[3]!);
  await waitFor(() => !list.getState().runs.some((r) => r.id === ids[3]) && list.getState().runs.length === 3, { what: 'the list refilled to 3' });
  expect(list.getState().runs.map((r) => r.id)).toEqual([ids[2], ids[1], ids[0]]);
});
