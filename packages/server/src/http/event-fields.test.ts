import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPath, extraFieldsOf, knownEventTypes, type KnownEventType, type Run, type RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';

/**
 * Issue 10 item 3: a field a producer sends is never lost behind a 200.
 * For every event type, through real HTTP on a real SQLite file: an extra
 * field is either stored exactly as sent or refused with 400 naming it, as
 * the API reference says for that type.
 */

/** Valid `data` of every known type; `satisfies` makes the compiler demand a row for each new type. */
const validData = {
  'run.started': {},
  phase: { name: 'load', status: 'started' },
  'call.started': { callId: 'c1', label: 'Evaluating doc_1' },
  'call.succeeded': { callId: 'c1', durationMs: 12 },
  'call.failed': { callId: 'c1', error: 'rate limited', willRetry: true },
  'call.retried': { callId: 'c1', attempt: 2 },
  progress: { done: 1, total: 10 },
  metric: { name: 'score', value: 0.5, step: 1 },
  counter: { name: 'docs', delta: 1 },
  meta: { model: 'gpt-4' },
  log: { level: 'info', message: 'hello' },
  artifact: { name: '06_output_image.png', uri: 'file:///tmp/06_output_image.png', contentType: 'image/png', size: 10 },
  'run.cancel_requested': { reason: 'enough' },
  'run.stalled': { stallTimeoutMs: 1000, lastProgressAt: null },
  'run.succeeded': { output: { score: 1 } },
  'run.failed': { error: { kind: 'error', message: 'boom' } },
  'run.cancelled': { reason: 'stop' },
} satisfies Record<KnownEventType, Record<string, unknown>>;

let server: RunningServer;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'runtrail-fields-'));
  server = await startServer({ port: 0, dataDir, logLevel: 'silent' });
});
afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// Bodies are read as each test needs them; the tests check their shape.
async function post(path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function newRun(): Promise<Run> {
  const res = await post(buildPath('createRun', {}), { name: 'fields' });
  expect(res.status).toBe(201);
  return res.body;
}

async function storedEvents(id: string): Promise<RunEvent[]> {
  const res = await fetch(server.url + buildPath('readEvents', { id }, { after: 0 }));
  return ((await res.json()) as { events: RunEvent[] }).events;
}

describe('every event type keeps an unknown field as sent or refuses it by name (never a 200 that drops it)', () => {
  it.each(knownEventTypes.map((type) => [type, extraFieldsOf(type)] as const))('%s: unknown fields are %s', async (type, policy) => {
    const run = await newRun();
    const data = { ...validData[type], metadata: { stage: 4, tags: ['a'] } };
    const res = await post(buildPath('appendEvents', { id: run.id }), { events: [{ type, data }] });
    if (policy === 'kept') {
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [stored] = await storedEvents(run.id);
      expect(stored).toMatchObject({ type, data });
      expect(stored!.data).toEqual(data);
    } else {
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.message).toContain('events[0].data.metadata');
      expect(res.body.error.details.issues).toEqual([{ path: 'events[0].data.metadata', message: expect.stringContaining('unknown field') }]);
      expect(await storedEvents(run.id)).toEqual([]);
    }
  });

  it('x.* extension events keep whatever they carry', async () => {
    const run = await newRun();
    const data = { anything: { nested: [1, 2] }, metadata: { stage: 4 } };
    expect((await post(buildPath('appendEvents', { id: run.id }), { events: [{ type: 'x.gpu', data }] })).status).toBe(200);
    expect((await storedEvents(run.id))[0]!.data).toEqual(data);
  });

  it('the artifact of the report keeps its metadata', async () => {
    const run = await newRun();
    const data = { name: '06_output_image.png', uri: 'file:///out/06.png', metadata: { stage: 4 } };
    expect((await post(buildPath('appendEvents', { id: run.id }), { events: [{ type: 'artifact', data }] })).status).toBe(200);
    expect((await storedEvents(run.id))[0]!.data).toEqual(data);
  });

  it('an unknown field nested in a refusing type is named with its full path, and a finish error with extras is refused too', async () => {
    const run = await newRun();
    const nested = await post(buildPath('appendEvents', { id: run.id }), {
      events: [{ type: 'log', data: { level: 'info', message: 'ok' } }, { type: 'run.failed', data: { error: { kind: 'error', message: 'x', stack: 'at f' } } }],
    });
    expect(nested.status).toBe(400);
    expect(nested.body.error.details.issues.map((i: { path: string }) => i.path)).toEqual(['events[1].data.error.stack']);
    expect(await storedEvents(run.id)).toEqual([]);

    const finish = await post(buildPath('finishRun', { id: run.id }), { status: 'failed', error: { message: 'x', stack: 'at f' } });
    expect(finish.status).toBe(400);
    expect(finish.body.error.message).toContain('error.stack');
  });
});
