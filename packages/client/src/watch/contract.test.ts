import WebSocket from 'ws';
import { afterEach, expect, test } from 'vitest';
import { routes, type RouteName } from '@runtrail/protocol';
import { progressEvents, waitFor } from '@runtrail/test-support';
import { startTestServer } from '@runtrail/test-support/server';
import { HttpApi } from '../http-api.js';
import type { WebSocketConstructor } from './types.js';
import { watchRun } from './watch-run.js';
import { watchRuns } from './watch-runs.js';

/**
 * Field note 2: the client and the server must never disagree on a URL.
 * Every route of the shared table is registered by the server, every URL
 * the SDK builds reaches a real handler, and the watcher's own traffic
 * never hits "no such route".
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function answersFromARoute(response: Response, what: string): Promise<void> {
  const type = response.headers.get('content-type') ?? '';
  if (response.status === 204) return;
  // The dashboard's catch-all answers HTML; an API route never does.
  expect(type, `${what} answered ${type}`).toMatch(/application\/json|text\/event-stream|text\/plain|application\/x-tar/);
  if (type.includes('application/json')) {
    const body = (await response.clone().json()) as { error?: { code?: string } };
    expect(body.error?.code, `${what} has no route`).not.toBe('route_not_found');
  }
}

test('every route of the shared table is registered, and every URL the SDK builds for it reaches a handler', async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const { run } = await s.runs.create({ name: 'contract' });
  await s.runs.appendEvents(run.id, progressEvents(3));
  const api = new HttpApi({ url: s.url });
  for (const name of Object.keys(routes) as RouteName[]) {
    const route = routes[name];
    expect(s.http.hasRoute({ method: route.method, url: route.path }), `${route.method} ${route.path} registered`).toBe(true);
    const url = api.url(name, { id: run.id, name: 'contract.txt' }, name === 'streamRun' ? { after: 3 } : undefined);
    const controller = new AbortController();
    const response = await fetch(url, {
      method: route.method,
      ...(route.method === 'POST' || route.method === 'PUT' ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}),
      signal: controller.signal,
    });
    // The API docs page is the one HTML route; it must be that page, not the dashboard's.
    if (name === 'apiDocs') expect(await response.text()).toContain('swagger-ui-bundle.js');
    else await answersFromARoute(response, `${route.method} ${url}`);
    controller.abort();
  }
  // The WebSocket route upgrades at the URL the SDK builds.
  const ws = new WebSocket(api.url('stream', {}).replace(/^http/, 'ws'));
  cleanups.push(() => ws.terminate());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
});

test("the watchers' own requests and sockets all reach real routes", async () => {
  const s = await startTestServer();
  cleanups.push(() => s.cleanup());
  const { run } = await s.runs.create({ name: 'contract' });
  const requests: string[] = [];
  const checks: Promise<void>[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    requests.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`);
    checks.push(answersFromARoute(response, String(input)));
    return response;
  };
  const sockets: string[] = [];
  class RecordingWebSocket extends (WebSocket as unknown as new (url: string) => WebSocket) {
    constructor(url: string) {
      super(url);
      sockets.push(new URL(url).pathname);
    }
  }
  const common = { url: s.url, fetch: recordingFetch, pollIntervalMs: 20 };
  const watchers = [
    watchRun(run.id, { ...common, WebSocket: RecordingWebSocket as unknown as WebSocketConstructor }),
    watchRun(run.id, { ...common, WebSocket: null }),
    watchRun(run.id, { ...common, transports: ['poll'] }),
  ];
  const list = watchRuns({ ...common, WebSocket: null });
  cleanups.push(() => list.close());
  await waitFor(() => watchers.every((w) => w.getState().connection !== 'connecting') && list.getState().connection === 'polling');
  await s.runs.appendEvents(run.id, progressEvents(2));
  await s.runs.finish(run.id, { status: 'succeeded' });
  for (const w of watchers) expect((await w.done).connection).toBe('ended');
  await Promise.all(checks);
  expect(sockets).toEqual([routes.stream.path]);
  const paths = new Set(requests);
  expect(paths).toContain(`GET /api/v1/runs/${run.id}`);
  expect(paths).toContain(`GET /api/v1/runs/${run.id}/events`);
  expect(paths).toContain(`GET /api/v1/runs/${run.id}/stream`);
  expect(paths).toContain('GET /api/v1/runs');
});
