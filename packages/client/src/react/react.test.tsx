import { renderToString } from 'react-dom/server';
import WebSocket from 'ws';
import { afterEach, expect, test } from 'vitest';
import { progressEvents, waitFor } from '@runtrail/test-support';
import { startTestServer } from '@runtrail/test-support/server';
import type { WebSocketConstructor } from '../watch/types.js';
import { RuntrailProvider, createRunSource, createRunsSource, useRun, useRuns } from './index.js';

/**
 * The hooks are thin useSyncExternalStore bindings over these sources, so
 * the sources carry the behaviour: they connect only while subscribed,
 * hand out a stable snapshot between changes, and close when the last
 * subscriber leaves. (No DOM renderer is installed; rendering is checked on
 * the server renderer.)
 */

const WS = WebSocket as unknown as WebSocketConstructor;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

test('a run source connects on first subscribe, updates its snapshot, and disconnects when the last subscriber leaves', async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const { run } = await s.runs.create({ name: 'hooked' });
  const source = createRunSource(run.id, { url: s.url, WebSocket: WS });
  const idle = source.getSnapshot();
  expect(idle.connection).toBe('connecting');
  // Rendering alone (getSnapshot) opens nothing.
  expect((await s.runs.get(run.id)).observers).toBe(0);

  let notified = 0;
  const off1 = source.subscribe(() => notified++);
  const off2 = source.subscribe(() => undefined);
  await waitFor(() => source.getSnapshot().connection === 'live');
  expect((await s.runs.get(run.id)).observers).toBe(1);
  // Stable between changes: React would loop otherwise.
  expect(source.getSnapshot()).toBe(source.getSnapshot());

  await s.runs.appendEvents(run.id, progressEvents(3));
  await waitFor(() => source.getSnapshot().seq === 3);
  expect(source.getSnapshot().snapshot).toEqual((await s.runs.get(run.id)).snapshot);
  expect(source.getSnapshot().events.map((e) => e.seq)).toEqual([1, 2, 3]);
  expect(notified).toBeGreaterThan(0);

  off1();
  expect((await s.runs.get(run.id)).observers).toBe(1);
  off2();
  await waitFor(async () => (await s.runs.get(run.id)).observers === 0, { what: 'socket closed after the last subscriber' });
});

test('a throttled source renders a burst of changes at most once per window, and the last change always shows', async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const { run } = await s.runs.create({ name: 'busy' });
  const throttleMs = 150;
  const source = createRunSource(run.id, { url: s.url, WebSocket: WS, throttleMs });
  const shownAt: number[] = [];
  const off = source.subscribe(() => shownAt.push(performance.now()));
  cleanups.push(off);
  await waitFor(() => source.getSnapshot().connection === 'live');
  // One event per request, each its own WebSocket message.
  for (let i = 0; i < 40; i++) await s.runs.appendEvents(run.id, progressEvents(1, i));
  await waitFor(() => source.getSnapshot().seq === 40, { what: 'the last event to be shown' });
  expect(source.getSnapshot().snapshot).toEqual((await s.runs.get(run.id)).snapshot);
  expect(shownAt.length).toBeGreaterThan(1);
  const gaps = shownAt.slice(1).map((at, i) => at - shownAt[i]!);
  // Never a render per message; measured here a little after the source's own mark, so within a fraction of a ms.
  expect(Math.min(...gaps)).toBeGreaterThanOrEqual(throttleMs - 0.5);
});

test('a runs source lists runs live', async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const source = createRunsSource({ url: s.url, WebSocket: WS });
  const off = source.subscribe(() => undefined);
  cleanups.push(off);
  await waitFor(() => source.getSnapshot().connection === 'live');
  expect(source.getSnapshot().transport).toBe('ws');
  const { run } = await s.runs.create({ name: 'new' });
  await waitFor(() => source.getSnapshot().runs.some((r) => r.id === run.id));
});

test('with auth on and no token, a hook\'s source ends unauthorized with the server\'s words, then where the hooks take a token', async () => {
  const s = await startTestServer({ adminToken: 'react-test-admin-token-0123456789' });
  cleanups.push(() => s.cleanup());
  const { run } = await s.runs.create({ name: 'private' });
  const hint = '(no token was given to this watcher: give the React hooks one as <RuntrailProvider url={…} token={…}>)';
  for (const source of [createRunSource(run.id, { url: s.url, WebSocket: WS }), createRunsSource({ url: s.url, WebSocket: WS })]) {
    cleanups.push(source.subscribe(() => undefined));
    await waitFor(() => source.getSnapshot().connection === 'ended', { what: 'the source to end' });
    expect(source.getSnapshot().error?.code).toBe('unauthorized');
    expect(source.getSnapshot().error?.message).toBe(`this server needs a token: send Authorization: Bearer <token> ${hint}`);
  }
});

test('useRun and useRuns render their idle state on the server and need a provider', () => {
  function RunView({ id }: { id: string | null }) {
    const { run, snapshot, events, seq, connection, reason, transport, error, lastHeardAt } = useRun(id);
    const { runs, reason: listReason, transport: listTransport, lastHeardAt: listHeardAt } = useRuns({ status: 'running' });
    return (
      <p>{`${connection}|${reason}|${transport ?? 'no-transport'}|${seq}|${run === null ? 'no-run' : run.id}|${snapshot.seq}|${events.length}|${error === null ? 'ok' : error.code}|${runs.length}|${listReason}|${listTransport ?? 'no-transport'}|heard ${String(lastHeardAt)}|${String(listHeardAt)}`}</p>
    );
  }
  const page = (id: string | null) =>
    renderToString(
      <RuntrailProvider url="http://127.0.0.1:1">
        <RunView id={id} />
      </RuntrailProvider>,
    );
  expect(page('some-id')).toContain('connecting|start|no-transport|0|no-run|0|0|ok|0|start|no-transport|heard null|null');
  // No run selected: nothing will connect, and it says so rather than "connecting" for ever.
  expect(page(null)).toContain('idle|no_run|no-transport|0|no-run|0|0|ok|0|start|no-transport|heard null|null');
  expect(() => renderToString(<RunView id="some-id" />)).toThrow(/RuntrailProvider/);
});
