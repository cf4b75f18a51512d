import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPath, type Run, type RunEvent, type Snapshot } from '@runtrail/protocol';
import { tempDir } from '@runtrail/test-support';
import { startServer, type RunningServer } from '../start.js';

/**
 * Issue 11: every name a producer chooses is data. Names that are also
 * JavaScript object properties (Object.prototype members, "__proto__",
 * "prototype") go into every keyed field of every event type through the
 * real HTTP API; none may get a 5xx, each is stored as given, and the
 * server's snapshot equals a fold of the stored log in a fresh process.
 */

const RESERVED = [
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'prototype',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  '__defineGetter__',
  '__lookupGetter__',
  'length',
  'then',
];

let server: RunningServer;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  dir = tempDir('runtrail-reserved-');
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
});
afterAll(async () => {
  await server?.close();
  dir?.remove();
});

// Bodies are read as each test needs them; the tests check their shape.
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; text: string; body: any }> {
  const res = await fetch(server.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    // Built by hand: JSON.stringify of an object literal cannot carry a "__proto__" key.
    body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : null };
}

/** `{"<name>": value}` as JSON text, so that "__proto__" is a real key of the request. */
const keyed = (name: string, value: unknown) => `{${JSON.stringify(name)}:${JSON.stringify(value)}}`;

/** Every event type whose data holds a producer-chosen name, with `name` in each such field. */
function eventsNaming(name: string): string[] {
  const e = (type: string, data: string, id?: string) =>
    `{"type":${JSON.stringify(type)},"data":${data}${id === undefined ? '' : `,"id":${JSON.stringify(id)}`}}`;
  const n = JSON.stringify(name);
  return [
    e('run.started', keyed(name, 'started-extra')),
    e('phase', `{"name":${n},"status":"started"}`),
    // call.started keeps extra fields as sent: one named like the name, too.
    e('call.started', `{"callId":${n},"label":${n},${n}:${n}}`, name),
    e('call.retried', `{"callId":${n},"attempt":2}`),
    e('call.failed', `{"callId":${n},"error":${n},"willRetry":true}`),
    e('call.succeeded', `{"callId":${n}}`),
    e('call.started', `{"callId":${JSON.stringify(`${name}.open`)},"label":${n}}`),
    e('call.started', `{"callId":${JSON.stringify(`${name}`)},"label":"again"}`),
    e('metric', `{"name":${n},"value":1}`),
    e('metric', `{"name":${n},"value":3,"step":2}`),
    e('counter', `{"name":${n},"delta":1}`),
    e('counter', `{"name":${n},"delta":2}`),
    e('meta', keyed(name, { nested: name })),
    e('meta', `{${JSON.stringify(name)}:"second",${JSON.stringify(`${name}2`)}:${keyed(name, 1)}}`),
    e('progress', `{"done":1,"total":2,"message":${n}}`),
    e('log', `{"level":"info","message":${n}}`),
    e('artifact', `{"name":${n},"uri":${n},"contentType":${n}}`),
    e(`x.${name}`, keyed(name, name)),
    e('phase', `{"name":${n},"status":"completed"}`),
  ];
}

/** The stored log, folded by the built reducer in a process that has never seen this run. */
function foldInFreshProcess(events: RunEvent[]): Snapshot {
  const script = `
    import { foldEvents } from '@runtrail/protocol';
    let text = '';
    for await (const chunk of process.stdin) text += chunk;
    process.stdout.write(JSON.stringify(foldEvents(JSON.parse(text))));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    input: JSON.stringify(events),
    encoding: 'utf8',
  });
  return JSON.parse(out) as Snapshot;
}

describe('reserved names are plain data (issue 11)', () => {
  it.each(RESERVED)('%s in every keyed field of every event type: stored as given, no 5xx, snapshot = a fresh fold', async (name) => {
    const created = await call('POST', buildPath('createRun', {}), `{"name":${JSON.stringify(name)},"input":${keyed(name, name)},"labels":${keyed(name, name)}}`);
    expect(created.status, created.text).toBe(201);
    const run = created.body as Run;
    expect(run.name).toBe(name);

    const sent = eventsNaming(name);
    const appended = await call('POST', buildPath('appendEvents', { id: run.id }), `{"events":[${sent.join(',')}]}`);
    expect(appended.status, appended.text).toBe(200);
    // The event whose id is the name, sent again: its original seq, nothing new stored.
    const again = await call('POST', buildPath('appendEvents', { id: run.id }), `{"events":[${sent[2]}]}`);
    expect([again.status, again.body.seqs], again.text).toEqual([200, [appended.body.seqs[2]]]);
    // A reserved name as the event type itself is refused as invalid, not a crash.
    const badType = await call('POST', buildPath('appendEvents', { id: run.id }), `{"events":[{"type":${JSON.stringify(name)},"data":{}}]}`);
    expect(badType.status, badType.text).toBe(400);

    const finished = await call('POST', buildPath('finishRun', { id: run.id }), `{"status":"failed","error":{"kind":"error","message":${JSON.stringify(name)}},"output":${keyed(name, name)}}`);
    expect(finished.status, finished.text).toBe(200);

    const got = await call('GET', buildPath('getRun', { id: run.id }));
    expect(got.status, got.text).toBe(200);
    const read = await call('GET', buildPath('readEvents', { id: run.id }, { after: 0, limit: 1000 }));
    expect(read.status, read.text).toBe(200);
    const events = read.body.events as RunEvent[];
    const snapshot = got.body.snapshot as Snapshot;

    // Stored as sent: the key survives the round trip as an own key.
    const meta = events.find((ev) => ev.type === 'meta')!.data as Record<string, unknown>;
    expect(Object.keys(meta)).toEqual([name]);
    expect(Object.keys(got.body.input)).toEqual([name]);
    expect(Object.keys(got.body.labels)).toEqual([name]);
    expect(Object.getOwnPropertyDescriptor(got.body.labels, name)?.value).toBe(name);
    // Found by its label, like any other.
    const listed = await call('GET', buildPath('listRuns', {}, { label: `${name}=${name}` }));
    expect(listed.body.runs.map((r: Run) => r.id)).toContain(run.id);
    expect(Object.keys(events.find((ev) => ev.type === 'run.started')!.data as object)).toEqual([name]);
    expect(Object.keys(events.find((ev) => ev.type === 'call.started')!.data as object)).toEqual(['callId', 'label', name]);

    // Folded as data.
    expect(Object.keys(snapshot.counters.named)).toEqual([name]);
    expect(Object.getOwnPropertyDescriptor(snapshot.counters.named, name)?.value).toBe(3);
    expect(Object.keys(snapshot.metrics)).toEqual([name]);
    const metric = Object.getOwnPropertyDescriptor(snapshot.metrics, name)?.value;
    expect(metric).toMatchObject({ last: 3, min: 1, max: 3, count: 2 });
    expect(Object.keys(snapshot.meta)).toEqual([name, `${name}2`]);
    expect(Object.getOwnPropertyDescriptor(snapshot.meta, name)?.value).toBe('second');
    expect(snapshot.counters).toMatchObject({ ok: 1, retries: 1 });
    expect(snapshot.phases.map((p) => [p.name, p.status])).toEqual([[name, 'completed']]);
    expect(snapshot.artifacts.map((a) => a.name)).toEqual([name]);
    // The run ended: nothing in flight, the terminal error as sent.
    expect(Object.keys(snapshot.current)).toEqual([]);
    expect(snapshot.terminal?.error?.message).toBe(name);

    // The server's persisted snapshot is exactly the fold of its log, computed elsewhere.
    expect(JSON.parse(got.text).snapshot).toEqual(foldInFreshProcess(events));
  });

  it('a label named __proto__ is checked like any other: a value that is not a string is a 400 naming it', async () => {
    const res = await call('POST', buildPath('createRun', {}), '{"name":"bad-label","labels":{"__proto__":{"polluted":true}}}');
    expect(res.status, res.text).toBe(400);
    expect(res.body.error.message).toContain('__proto__');
  });

  it('a call id that is a reserved name stays in flight until it ends', async () => {
    const created = await call('POST', buildPath('createRun', {}), { name: 'in-flight' });
    const id = created.body.id as string;
    const events = RESERVED.map((name) => `{"type":"call.started","data":{"callId":${JSON.stringify(name)},"label":"l"}}`);
    const res = await call('POST', buildPath('appendEvents', { id }), `{"events":[${events.join(',')}]}`);
    expect(res.status, res.text).toBe(200);
    const got = await call('GET', buildPath('getRun', { id }));
    expect(Object.keys(got.body.snapshot.current).sort()).toEqual([...RESERVED].sort());
  });
});
