import WebSocket from 'ws';
import { expect, test } from 'vitest';
import { progressEvents, waitFor } from '@runtrail/test-support';
import { testScope } from '@runtrail/test-support/server';
import type { WebSocketConstructor } from './types.js';
import { watchRun } from './watch-run.js';
import { watchRuns } from './watch-runs.js';

const ADMIN = 'watch-auth-admin-token-0123456789';
const { cleanups, server } = testScope();

/** The `ws` class, counting the sockets a watcher opens (a reconnect opens another). */
function countingWebSocket(): { WS: WebSocketConstructor; opened: () => number } {
  let opened = 0;
  class Counting extends WebSocket {
    constructor(url: string) {
      super(url);
      opened++;
    }
  }
  return { WS: Counting as unknown as WebSocketConstructor, opened: () => opened };
}

test('with a good token both watchers read over WebSocket (?token=) and SSE (Authorization)', async () => {
  const s = await server({ adminToken: ADMIN });
  const { run } = await s.runs.create({ name: 'authed' });
  await s.runs.appendEvents(run.id, progressEvents(5));
  await s.runs.finish(run.id, { status: 'succeeded' });
  for (const transports of [['ws'], ['sse']] as const) {
    const w = watchRun(run.id, { url: s.url, token: ADMIN, WebSocket: WebSocket as unknown as WebSocketConstructor, transports: [...transports] });
    cleanups.push(() => w.close());
    await waitFor(() => w.getState().connection === 'ended', { what: `watcher over ${transports[0]} ended` });
    expect(w.getState().error).toBeNull();
    expect(w.getState().snapshot.progress?.done).toBeGreaterThan(0);
  }
  const list = watchRuns({ url: s.url, token: ADMIN, WebSocket: WebSocket as unknown as WebSocketConstructor });
  cleanups.push(() => list.close());
  await waitFor(() => list.getState().connection === 'live' && list.getState().runs.length === 1, { what: 'runs list live' });
});

test('a refused token ends the watchers with the reason instead of reconnecting (WS close 4401, HTTP 401)', async () => {
  const s = await server({ adminToken: ADMIN });
  const { run } = await s.runs.create({ name: 'private' });

  const counted = countingWebSocket();
  const list = watchRuns({ url: s.url, token: 'not-the-token-at-all-0000', WebSocket: counted.WS, backoff: { initialMs: 10, maxMs: 20 } });
  cleanups.push(() => list.close());
  await waitFor(() => list.getState().connection === 'ended', { what: 'runs watcher ended' });
  expect(list.getState().error?.code).toBe('unauthorized');
  expect(counted.opened()).toBe(1);

  const polled = watchRuns({ url: s.url, token: 'not-the-token-at-all-0000', WebSocket: null, backoff: { initialMs: 10, maxMs: 20 } });
  cleanups.push(() => polled.close());
  await waitFor(() => polled.getState().connection === 'ended', { what: 'polling runs watcher ended' });
  expect(polled.getState().error?.code).toBe('unauthorized');

  const one = watchRun(run.id, { url: s.url, token: 'not-the-token-at-all-0000', WebSocket: WebSocket as unknown as WebSocketConstructor, backoff: { initialMs: 10, maxMs: 20 } });
  cleanups.push(() => one.close());
  await waitFor(() => one.getState().connection === 'ended', { what: 'run watcher ended' });
  expect(one.getState().error?.code).toBe('unauthorized');
});

test('without a token the watchers end unauthorized with the server\'s words and how this SDK takes a token; a refused token keeps the server\'s words', async () => {
  const s = await server({ adminToken: ADMIN });
  const { run } = await s.runs.create({ name: 'private' });
  const WS = WebSocket as unknown as WebSocketConstructor;
  const backoff = { initialMs: 10, maxMs: 20 };
  // The run watcher first reads the run over HTTP (401), the list watcher first opens a WebSocket (4401), SSE reads a 401 too.
  const untokened = [
    watchRun(run.id, { url: s.url, WebSocket: WS, backoff }),
    watchRun(run.id, { url: s.url, WebSocket: null, transports: ['sse'], backoff }),
    watchRuns({ url: s.url, WebSocket: WS, backoff }),
    watchRuns({ url: s.url, WebSocket: null, backoff }),
  ];
  for (const [i, w] of untokened.entries()) {
    cleanups.push(() => w.close());
    await waitFor(() => w.getState().connection === 'ended', { what: `watcher ${i} ended` });
    const error = w.getState().error;
    expect(error?.code).toBe('unauthorized');
    expect(error?.message).toBe('this server needs a token: send Authorization: Bearer <token> (no token was given to this watcher: pass one as the `token` option of watchRun/watchRuns)');
  }
  const refused = watchRun(run.id, { url: s.url, token: 'not-the-token-at-all-0000', WebSocket: WS, backoff });
  cleanups.push(() => refused.close());
  await waitFor(() => refused.getState().connection === 'ended', { what: 'watcher with a refused token ended' });
  expect(refused.getState().error?.message).toBe('the token is not valid on this server');
});
