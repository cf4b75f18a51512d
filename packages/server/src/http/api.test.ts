import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_HEADER, buildPath, foldEvents, routes, type RouteName, type RouteParams, type Run, type RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';

/**
 * The HTTP API of issue 4 through real HTTP, on a real SQLite file in a temp
 * dir. URLs are built from the shared route table, as the SDK builds them.
 */

const BODY_LIMIT = 64 * 1024;
let server: RunningServer;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'runtrail-api-'));
  server = await startServer({ port: 0, dataDir, logLevel: 'silent', bodyLimitBytes: BODY_LIMIT });
});
afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

// Response bodies are read as the test needs them; each test checks their shape.
interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

async function request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
  // As the SDK does: its client header says this is no forged cross-site form post.
  const init: RequestInit = { method, headers: { [CLIENT_HEADER]: 'test', ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const res = await fetch(server.url + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

const url = <R extends RouteName>(name: R, params: RouteParams<R>, query?: Record<string, string | number | undefined>) =>
  buildPath(name, params, query);

async function createRun(body: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Run> {
  const res = await request<Run>('POST', url('createRun', {}), { name: 'eval', ...body }, headers);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function append(id: string, events: unknown[]): Promise<{ seq: number; seqs: number[] }> {
  const res = await request('POST', url('appendEvents', { id }), { events });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

async function readAllEvents(id: string): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  for (;;) {
    const res = await request('GET', url('readEvents', { id }, { after: all.at(-1)?.seq ?? 0, limit: 5000 }));
    expect(res.status).toBe(200);
    if (res.body.events.length === 0) return all;
    all.push(...res.body.events);
  }
}

/** Everything a reader can see of a run: a rejected request must leave it exactly as it was. */
async function visibleState(id: string) {
  const run = await request('GET', url('getRun', { id }));
  const events = await request('GET', url('readEvents', { id }));
  expect([run.status, events.status]).toEqual([200, 200]);
  return { run: run.body, events: events.body };
}

function expectError(res: Reply, status: number, code: string, field?: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe('string');
  if (field !== undefined) {
    const paths = (res.body.error.details?.issues ?? []).map((i: { path: string }) => i.path);
    expect(paths, res.body.error.message).toContain(field);
    expect(res.body.error.message).toContain(field);
  }
}

describe('HTTP API: routes', () => {
  it('GET /healthz says the server and its store are up', async () => {
    const res = await request('GET', url('health', {}));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, store: 'sqlite' });
  });

  it('POST /runs creates a run: 201 with a server-minted, time-sortable id', async () => {
    const before = Date.now();
    const run = await createRun({ name: 'nightly', input: { docs: 10 }, labels: { team: 'ml' } });
    expect(run).toMatchObject({
      name: 'nightly',
      status: 'running',
      input: { docs: 10 },
      labels: { team: 'ml' },
      parentId: null,
      seq: 0,
      error: null,
      finishedAt: null,
    });
    expect(run.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(run.createdAt).toBeGreaterThanOrEqual(before);
    expect(run.snapshot.seq).toBe(0);
    const later = await createRun();
    expect(later.id > run.id).toBe(true);
  });

  it('POST /runs with the same Idempotency-Key returns the same run and creates no other', async () => {
    const key = `key-${Date.now()}`;
    const first = await request<Run>('POST', url('createRun', {}), { name: 'idem' }, { 'idempotency-key': key });
    const again = await request<Run>('POST', url('createRun', {}), { name: 'idem' }, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const list = await request('GET', url('listRuns', {}, { name: 'idem' }));
    expect(list.body.runs.map((r: Run) => r.id)).toEqual([first.body.id]);
    const other = await request('POST', url('createRun', {}), { name: 'not-idem' }, { 'idempotency-key': key });
    expectError(other, 409, 'idempotency_conflict');
  });

  it('POST /runs sent 10 times at once with one Idempotency-Key creates one run', async () => {
    const key = `burst-${Date.now()}`;
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => request<Run>('POST', url('createRun', {}), { name: 'burst' }, { 'idempotency-key': key })),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(9);
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect((await request('GET', url('listRuns', {}, { name: 'burst' }))).body.runs).toHaveLength(1);
  });

  it('GET /runs lists newest first with filters, and pages with a cursor without overlap or gap', async () => {
    const parent = await createRun({ name: 'pipeline-list' });
    const children: Run[] = [];
    for (let i = 0; i < 5; i++) {
      children.push(await createRun({ name: 'stage-list', parentId: parent.id, labels: { i: String(i), kind: i % 2 ? 'odd' : 'even' } }));
    }
    await request('POST', url('finishRun', { id: children[1]!.id }), { status: 'succeeded' });

    const ids = async (query: Record<string, string | number>) =>
      (await request('GET', url('listRuns', {}, query))).body.runs.map((r: Run) => r.id);
    const newestFirst = children.map((c) => c.id).reverse();
    expect(await ids({ parentId: parent.id })).toEqual(newestFirst);
    expect(await ids({ name: 'stage-list', status: 'succeeded' })).toEqual([children[1]!.id]);
    expect(await ids({ name: 'stage-list', label: 'kind=odd' })).toEqual([children[3]!.id, children[1]!.id]);
    expect(await ids({ name: 'pipeline-list' })).toEqual([parent.id]);

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await request('GET', url('listRuns', {}, { parentId: parent.id, limit: 2, cursor }));
      expect(res.status).toBe(200);
      seen.push(...res.body.runs.map((r: Run) => r.id));
      cursor = res.body.nextCursor ?? undefined;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(newestFirst);
  });

  it('GET /run-counts counts the runs a list filter matches, by status, over every page; a bad filter is a 400 naming it', async () => {
    const parent = await createRun({ name: 'pipeline-counts' });
    for (let i = 0; i < 3; i++) {
      const child = await createRun({ name: 'stage-counts', parentId: parent.id });
      if (i === 0) await request('POST', url('finishRun', { id: child.id }), { status: 'failed', error: { kind: 'timeout', message: 'slow' } });
    }
    const res = await request('GET', url('countRuns', {}, { nameContains: 'STAGE-COUNTS' }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ total: 3, byStatus: { queued: 0, running: 2, succeeded: 0, failed: 1, cancelled: 0 }, stalled: 0 });
    // More than one page of the list: the counts are of every match, not of a page.
    expect((await request('GET', url('listRuns', {}, { nameContains: 'stage-counts', limit: 1 }))).body.runs).toHaveLength(1);
    expect((await request('GET', url('countRuns', {}, { parentId: parent.id, errorKind: 'timeout' }))).body.total).toBe(1);
    expectError(await request('GET', url('countRuns', {}, { label: 'team' })), 400, 'invalid_request', 'label');
    expectError(await request('GET', url('countRuns', {}, { status: 'paused' })), 400, 'invalid_request', 'status');
  });

  it('GET /runs/:id returns the run with its snapshot, seq and observer count', async () => {
    const run = await createRun();
    await append(run.id, [
      { type: 'phase', data: { name: 'generate', status: 'started' } },
      { type: 'call.started', data: { callId: 'c1', label: 'Evaluating doc_123 with gpt-4' } },
      { type: 'progress', data: { done: 3, total: 12 } },
    ]);
    const res = await request('GET', url('getRun', { id: run.id }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: run.id, seq: 3, observers: 0 });
    expect(res.body.snapshot).toMatchObject({
      seq: 3,
      phase: 'generate',
      current: { c1: { label: 'Evaluating doc_123 with gpt-4' } },
      progress: { done: 3, total: 12, percent: 25 },
    });
  });

  it('POST /runs/:id/events appends a batch and answers {seq, seqs}; GET reads after/limit', async () => {
    const run = await createRun();
    const first = await request('POST', url('appendEvents', { id: run.id }), {
      events: [
        { type: 'log', data: { level: 'info', message: 'one' } },
        { type: 'x.custom', data: { free: ['form'] } },
      ],
    });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ seq: 2, seqs: [1, 2], cancelRequested: false });
    const second = await append(run.id, [
      { type: 'counter', data: { name: 'n', delta: 1 }, id: 'e3' },
      { type: 'counter', data: { name: 'n', delta: 1 }, id: 'e4' },
    ]);
    expect(second).toMatchObject({ seq: 4, seqs: [3, 4] });
    // A retried batch: same ids, same seqs, nothing new.
    expect(await append(run.id, [{ type: 'counter', data: { name: 'n', delta: 1 }, id: 'e3' }])).toMatchObject({ seq: 4, seqs: [3] });
    // The same id for a different event is refused, naming the id, and changes nothing (issue 11).
    const stored = await visibleState(run.id);
    const reused = await request('POST', url('appendEvents', { id: run.id }), {
      events: [{ type: 'log', data: { level: 'info', message: 'new' } }, { type: 'counter', data: { name: 'n', delta: 7 }, id: 'e3' }],
    });
    expectError(reused, 409, 'event_id_conflict');
    expect(reused.body.error.message).toContain('e3');
    expect(reused.body.error.details).toMatchObject({ eventId: 'e3', seq: 3 });
    expect(await visibleState(run.id)).toEqual(stored);

    const page = await request('GET', url('readEvents', { id: run.id }, { after: 1, limit: 2 }));
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({ seq: 4, status: 'running' });
    expect(page.body.events.map((e: RunEvent) => [e.seq, e.type])).toEqual([
      [2, 'x.custom'],
      [3, 'counter'],
    ]);
    expect(page.body.events[0]).toMatchObject({ runId: run.id, data: { free: ['form'] } });
    expect(page.body.events[1]).toMatchObject({ id: 'e3' });
    const all = await request('GET', url('readEvents', { id: run.id }));
    expect(all.body.events.map((e: RunEvent) => e.seq)).toEqual([1, 2, 3, 4]);
    const tail = await request('GET', url('readEvents', { id: run.id }, { after: 4 }));
    expect(tail.body).toMatchObject({ events: [], seq: 4 });
  });

  it('POST /runs/:id/finish returns the final run; a second finish is 409 with the existing end', async () => {
    const run = await createRun();
    await append(run.id, [{ type: 'call.started', data: { callId: 'c', label: 'L' } }]);
    const done = await request<Run>('POST', url('finishRun', { id: run.id }), { status: 'succeeded', output: { score: 0.9 } });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: run.id, status: 'succeeded', output: { score: 0.9 }, error: null, seq: 2 });
    expect(done.body.finishedAt).toEqual(expect.any(Number));
    expect(done.body.snapshot).toMatchObject({ current: {}, terminal: { status: 'succeeded', seq: 2 } });

    const before = await visibleState(run.id);
    const again = await request('POST', url('finishRun', { id: run.id }), { status: 'failed', error: { message: 'late' } });
    expectError(again, 409, 'run_already_terminal');
    expect(again.body.error.details).toMatchObject({ status: 'succeeded', terminal: { status: 'succeeded', output: { score: 0.9 } } });
    const late = await request('POST', url('appendEvents', { id: run.id }), { events: [{ type: 'log', data: { level: 'info', message: 'late' } }] });
    expectError(late, 409, 'run_already_terminal');
    expect(await visibleState(run.id)).toEqual(before);
  });

  it('POST /runs/:id/finish as failed records the error; a retried finish with the same id is accepted once', async () => {
    const run = await createRun();
    const body = { status: 'failed', error: { kind: 'timeout', message: 'took 61 s' }, id: 'finish-1' };
    const first = await request<Run>('POST', url('finishRun', { id: run.id }), body);
    const retried = await request<Run>('POST', url('finishRun', { id: run.id }), body);
    expect(first.body).toMatchObject({ status: 'failed', error: { kind: 'timeout', message: 'took 61 s' } });
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'failed', seq: 1 });
    expect((await readAllEvents(run.id)).map((e) => e.type)).toEqual(['run.failed']);
  });
});

describe('HTTP API: the route table is the server (field note 2)', () => {
  it('serves every route of the shared table at the method and path the SDK builds', async () => {
    const run = await createRun({ name: 'contract' });
    for (const name of Object.keys(routes) as RouteName[]) {
      const def = routes[name];
      const res = await fetch(server.url + buildPath(name, { id: run.id, name: 'contract.txt' }), {
        method: def.method,
        ...(def.method === 'POST' || def.method === 'PUT' ? { headers: { 'content-type': 'application/json' }, body: '{}' } : {}),
        // Streams stay open; the status line is all this test needs.
        signal: AbortSignal.timeout(5000),
      });
      const body = res.headers.get('content-type')?.includes('json') ? await res.json() : (await res.body?.cancel(), null);
      expect(body?.error?.code, `${name}: ${def.method} ${def.path}`).not.toBe('route_not_found');
    }
  });
});

describe('HTTP API: exactly one end per run (field note 7)', () => {
  it('lets exactly one of several concurrent finishers win; the others get 409 with the winning end', async () => {
    for (let round = 0; round < 20; round++) {
      const run = await createRun({ name: 'finish-race' });
      const answers = await Promise.all([
        request('POST', url('finishRun', { id: run.id }), { status: 'succeeded', output: { by: 'a' } }),
        request('POST', url('finishRun', { id: run.id }), { status: 'failed', error: { message: 'b gave up' } }),
        request('POST', url('finishRun', { id: run.id }), { status: 'cancelled' }),
        request('POST', url('appendEvents', { id: run.id }), { events: [{ type: 'log', data: { level: 'info', message: 'racing' } }] }),
      ]);
      const finishes = answers.slice(0, 3);
      const winners = finishes.filter((r) => r.status === 200);
      expect(winners, `round ${round}`).toHaveLength(1);
      const end = winners[0]!.body.snapshot.terminal;
      for (const loser of finishes.filter((r) => r.status !== 200)) {
        expectError(loser, 409, 'run_already_terminal');
        expect(loser.body.error.details.terminal).toEqual(end);
      }
      const events = await readAllEvents(run.id);
      expect(events.filter((e) => e.type.startsWith('run.'))).toHaveLength(1);
      expect(events.at(-1)!.type).toMatch(/^run\./);
      // The log line got in before the end, or was refused after it: never after the end.
      expect([200, 409]).toContain(answers[3]!.status);
      expect(events).toHaveLength(answers[3]!.status === 200 ? 2 : 1);
    }
  });
});

describe('HTTP API: a restarted server serves the same numbers (field note 4)', () => {
  it('reads back the run, its events and its snapshot after the server restarts on the same data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runtrail-api-restart-'));
    try {
      const first = await startServer({ port: 0, dataDir: dir, logLevel: 'silent' });
      const base = first.url;
      const post = (path: string, body: unknown) =>
        fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
      const run = (await post(url('createRun', {}), { name: 'survivor' })) as Run;
      await post(url('appendEvents', { id: run.id }), {
        events: [
          { type: 'call.started', data: { callId: 'c', label: 'L' } },
          { type: 'call.succeeded', data: { callId: 'c' } },
          { type: 'progress', data: { done: 7, total: 10 } },
        ],
      });
      const before = await (await fetch(base + url('getRun', { id: run.id }))).json();
      const beforeEvents = await (await fetch(base + url('readEvents', { id: run.id }))).json();
      await first.close();

      const second = await startServer({ port: 0, dataDir: dir, logLevel: 'silent' });
      try {
        const after = await (await fetch(second.url + url('getRun', { id: run.id }))).json();
        const afterEvents = await (await fetch(second.url + url('readEvents', { id: run.id }))).json();
        expect(after.snapshot).toEqual(before.snapshot);
        expect(after.snapshot).toMatchObject({ counters: { ok: 1 }, progress: { percent: 70 } });
        expect(afterEvents).toEqual(beforeEvents);
        const next = await fetch(second.url + url('appendEvents', { id: run.id }), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ events: [{ type: 'progress', data: { done: 10 } }] }),
        });
        expect(await next.json()).toMatchObject({ seq: 4, seqs: [4] });
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('HTTP API: 10,000 events from 4 concurrent clients into one run', () => {
  it('gives seq exactly 1..10,000 with no gap or duplicate, and a snapshot equal to the fold', async () => {
    const run = await createRun({ name: 'http-concurrency' });
    const clients = 4;
    const perClient = 2500;
    const sizes = [1, 10, 50, 100, 5, 37];
    const producer = async (c: number): Promise<number[]> => {
      const seqs: number[] = [];
      let i = 0;
      let b = c;
      while (i < perClient) {
        const size = Math.min(sizes[b++ % sizes.length]!, perClient - i);
        const events = Array.from({ length: size }, (_, k) => {
          const n = i + k;
          const id = `c${c}-${n}`;
          return n % 3 === 0
            ? { id, type: 'call.started', data: { callId: id, label: `client ${c} call ${n}` } }
            : n % 3 === 1
              ? { id, type: 'call.succeeded', data: { callId: `c${c}-${n - 1}` } }
              : { id, type: 'counter', data: { name: 'events', delta: 1 } };
        });
        const result = await append(run.id, events);
        if (b === c + 2) {
          // The client lost the answer and sends the same batch again.
          expect((await append(run.id, events)).seqs).toEqual(result.seqs);
        }
        seqs.push(...result.seqs);
        i += size;
      }
      return seqs;
    };
    const perClientSeqs = await Promise.all(Array.from({ length: clients }, (_, c) => producer(c)));

    const events = await readAllEvents(run.id);
    const total = clients * perClient;
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.id)).size).toBe(total);
    for (const [c, seqs] of perClientSeqs.entries()) {
      // Each client's events landed in its own order, at the seqs it was told.
      expect(events.filter((e) => e.id!.startsWith(`c${c}-`)).map((e) => e.seq)).toEqual(seqs);
    }
    const stored = (await request<Run>('GET', url('getRun', { id: run.id }))).body;
    expect(stored.seq).toBe(total);
    expect(stored.snapshot).toEqual(foldEvents(events));
    expect(stored.snapshot.counters.ok).toBe(clients * Math.floor(perClient / 3));
  });

  it('stores a batch sent twice at the same time (a retry racing the original) once', async () => {
    for (let round = 0; round < 20; round++) {
      const run = await createRun({ name: 'racing-retry' });
      const batch = Array.from({ length: 20 }, (_, i) => ({ id: `r${round}-${i}`, type: 'counter', data: { name: 'n', delta: 1 } }));
      const [a, b, c] = await Promise.all([append(run.id, batch), append(run.id, batch), append(run.id, batch.slice(5))]);
      expect(b.seqs).toEqual(a.seqs);
      expect(c.seqs).toEqual(a.seqs.slice(5));
      const events = await readAllEvents(run.id);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect((await request<Run>('GET', url('getRun', { id: run.id }))).body.snapshot.counters.named.n).toBe(20);
    }
  });
});

describe('HTTP API: bad input changes nothing and says exactly what is wrong', () => {
  let run: Run;
  let before: Awaited<ReturnType<typeof visibleState>>;

  beforeAll(async () => {
    run = await createRun({ name: 'victim', labels: { keep: 'me' } });
    await append(run.id, [
      { type: 'phase', data: { name: 'evaluate', status: 'started' } },
      { type: 'progress', data: { done: 2, total: 10 }, id: 'p-2' },
      { type: 'metric', data: { name: 'loss', value: 0.5 } },
    ]);
    before = await visibleState(run.id);
  });

  const unchanged = async () => expect(await visibleState(run.id)).toEqual(before);
  const events = (...list: unknown[]) => ({ events: list });

  it('404 run_not_found for a run that does not exist, on every run route', async () => {
    const id = '0190aaaa-0000-7000-8000-000000000000';
    for (const [method, path, body] of [
      ['GET', url('getRun', { id })],
      ['GET', url('readEvents', { id })],
      ['POST', url('appendEvents', { id }), events({ type: 'log', data: { level: 'info', message: 'x' } })],
      ['POST', url('finishRun', { id }), { status: 'succeeded' }],
      ['POST', url('heartbeat', { id }), {}],
      ['POST', url('cancelRun', { id }), {}],
      ['DELETE', url('deleteRun', { id })],
    ] as Array<[string, string, unknown?]>) {
      const res = await request(method, path, body);
      expectError(res, 404, 'run_not_found');
      expect(res.body.error.message, `${method} ${path}`).toContain(id);
    }
    const child = await request('POST', url('createRun', {}), { name: 'orphan', parentId: id });
    expectError(child, 404, 'run_not_found');
    expect((await request('GET', url('listRuns', {}, { name: 'orphan' }))).body.runs).toEqual([]);
    await unchanged();
  });

  it('400 naming the bad field of a create body', async () => {
    expectError(await request('POST', url('createRun', {}), {}), 400, 'invalid_request', 'name');
    expectError(await request('POST', url('createRun', {}), { name: '' }), 400, 'invalid_request', 'name');
    expectError(await request('POST', url('createRun', {}), { name: 'x', labels: { team: 7 } }), 400, 'invalid_request', 'labels.team');
    expectError(await request('POST', url('createRun', {}), { name: 'x', leaseTtlMs: 5 }), 400, 'invalid_request', 'leaseTtlMs');
    expectError(await request('POST', url('createRun', {}), { name: 'x' }, { 'idempotency-key': 'k'.repeat(201) }), 400, 'invalid_request');
    expect((await request('GET', url('listRuns', {}, { name: 'x' }))).body.runs).toEqual([]);
  });

  it('400 naming the exact event field, and no event of the batch is written', async () => {
    const cases: Array<[unknown, string]> = [
      [events({ type: 'progress', data: { done: 3 } }, { type: 'log', data: { level: 'info', message: 'ok' } }, { type: 'progress', data: { done: 1, total: -1 } }), 'events[2].data.total'],
      [events({ type: 'progress', data: { done: 'half' } }), 'events[0].data.done'],
      [events({ type: 'call.failed', data: { callId: 'c', error: 'e' } }), 'events[0].data.willRetry'],
      [events({ type: 'log', data: { level: 'loud', message: 'x' } }), 'events[0].data.level'],
      [events({ type: 'phase', data: { name: 'p', status: 'paused' } }), 'events[0].data.status'],
      [events({ type: 'progress', data: { done: 1 } }, { type: 'made.up' }), 'events[1].type'],
      [events({ type: 'toString' }), 'events[0].type'],
      [events({ data: {} }), 'events[0].type'],
      [events({ type: 'x.ok', ts: -5 }), 'events[0].ts'],
      [events({ type: 'x.ok', id: '' }), 'events[0].id'],
      [events(), 'events'],
      [{ events: 'nope' }, 'events'],
      [{}, 'events'],
    ];
    for (const [body, field] of cases) {
      expectError(await request('POST', url('appendEvents', { id: run.id }), body), 400, 'invalid_request', field);
    }
    const unknown = await request('POST', url('appendEvents', { id: run.id }), events({ type: 'made.up' }));
    expect(unknown.body.error.details.issues[0].message).toMatch(/unknown event type.*x\./);
    await unchanged();
  });

  it('400 naming status or error for a bad finish, and the run keeps running', async () => {
    expectError(await request('POST', url('finishRun', { id: run.id }), {}), 400, 'invalid_request', 'status');
    expectError(await request('POST', url('finishRun', { id: run.id }), { status: 'done' }), 400, 'invalid_request', 'status');
    expectError(await request('POST', url('finishRun', { id: run.id }), { status: 'failed' }), 400, 'invalid_request', 'error');
    expectError(
      await request('POST', url('finishRun', { id: run.id }), { status: 'failed', error: { kind: 'oops', message: 'm' } }),
      400,
      'invalid_request',
      'error.kind',
    );
    await unchanged();
  });

  it('400 naming the field whose JSON nests too deep (not a 500 from the store)', async () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const send = (path: string, json: string) => request('POST', path, json, { 'content-type': 'application/json' });
    expectError(await send(url('createRun', {}), `{"name":"deep","input":${deep}}`), 400, 'invalid_request', 'input');
    expectError(await send(url('appendEvents', { id: run.id }), `{"events":[{"type":"x.deep","data":${deep}}]}`), 400, 'invalid_request', 'events[0].data');
    expectError(await send(url('finishRun', { id: run.id }), `{"status":"succeeded","output":${deep}}`), 400, 'invalid_request', 'output');
    expect((await request('GET', url('listRuns', {}, { name: 'deep' }))).body.runs).toEqual([]);
    await unchanged();
  });

  it('400 for a body that is not JSON, or not sent as JSON', async () => {
    const path = url('appendEvents', { id: run.id });
    const notJson = await request('POST', path, '{"events": [', { 'content-type': 'application/json' });
    expectError(notJson, 400, 'invalid_request');
    expect(notJson.body.error.message).toMatch(/JSON/i);
    const xml = await request('POST', path, '<events/>', { 'content-type': 'application/xml' });
    expectError(xml, 400, 'invalid_request');
    expect(xml.body.error.message).toMatch(/content-type application\/json/);
    const text = await request('POST', path, JSON.stringify(events({ type: 'x.ok' })), { 'content-type': 'text/plain' });
    expectError(text, 400, 'invalid_request');
    // Without the client header, a text/plain POST is what a cross-site form sends: refused before anything else.
    const forged = await fetch(server.url + path, { method: 'POST', body: JSON.stringify(events({ type: 'x.ok' })), headers: { 'content-type': 'text/plain' } });
    expect(forged.status).toBe(403);
    const empty = await request('POST', path, '', { 'content-type': 'application/json' });
    expectError(empty, 400, 'invalid_request');
    await unchanged();
  });

  it('400 naming Content-Encoding for a compressed body (it was parsed as plain, or stored compressed), and nothing of it is written', async () => {
    const path = url('appendEvents', { id: run.id });
    const json = JSON.stringify(events({ type: 'x.ok' }));
    for (const [encoding, body] of [['gzip', gzipSync(json)], ['br', Buffer.from(json)]] as const) {
      const res = await fetch(server.url + path, { method: 'POST', body, headers: { [CLIENT_HEADER]: 'test', 'content-type': 'application/json', 'content-encoding': encoding } });
      const reply = { status: res.status, body: await res.json(), headers: res.headers };
      expectError(reply, 400, 'invalid_request', 'content-encoding');
      expect(reply.body.error.message).toBe(`content-encoding "${encoding}" is not supported: send the body uncompressed, without a Content-Encoding header`);
    }
    const upload = await fetch(server.url + url('putArtifact', { id: run.id, name: 'report.txt' }), {
      method: 'PUT',
      body: gzipSync('hello'),
      headers: { [CLIENT_HEADER]: 'test', 'content-type': 'text/plain', 'content-encoding': 'gzip' },
    });
    expect(upload.status).toBe(400);
    await unchanged();
    // Saying identity (no encoding), the same body is taken.
    const other = await createRun({ name: 'identity' });
    const plain = await fetch(server.url + url('appendEvents', { id: other.id }), {
      method: 'POST',
      body: json,
      headers: { [CLIENT_HEADER]: 'test', 'content-type': 'application/json', 'content-encoding': 'identity' },
    });
    expect(plain.status).toBe(200);
  });

  it('413 payload_too_large for a body over the limit, and nothing of it is written', async () => {
    const big = events(...Array.from({ length: 2000 }, (_, i) => ({ type: 'log', data: { level: 'info', message: `line ${i} ${'x'.repeat(40)}` } })));
    expect(JSON.stringify(big).length).toBeGreaterThan(BODY_LIMIT);
    const res = await request('POST', url('appendEvents', { id: run.id }), big);
    expectError(res, 413, 'payload_too_large');
    // The client cannot guess the limit: the answer names it and the setting.
    expect(res.body.error).toMatchObject({
      message: `request body is larger than the limit of this server, ${BODY_LIMIT} bytes (bodyLimitBytes on the server); send less in one request (smaller batches of events)`,
      details: { limit: BODY_LIMIT },
    });
    await unchanged();
  });

  it('400 naming the bad query parameter', async () => {
    expectError(await request('GET', url('listRuns', {}, { limit: 0 })), 400, 'invalid_request', 'limit');
    expectError(await request('GET', url('listRuns', {}, { limit: 'ten' })), 400, 'invalid_request', 'limit');
    expectError(await request('GET', url('listRuns', {}, { limit: 100_000 })), 400, 'invalid_request', 'limit');
    expectError(await request('GET', url('listRuns', {}, { status: 'bogus' })), 400, 'invalid_request', 'status');
    expectError(await request('GET', url('listRuns', {}, { label: 'team' })), 400, 'invalid_request', 'label');
    expectError(await request('GET', url('readEvents', { id: run.id }, { after: -1 })), 400, 'invalid_request', 'after');
    expectError(await request('GET', url('readEvents', { id: run.id }, { after: 1.5 })), 400, 'invalid_request', 'after');
    expectError(await request('GET', url('readEvents', { id: run.id }, { limit: 0 })), 400, 'invalid_request', 'limit');
    await unchanged();
  });

  it('404 route_not_found for a path the API does not serve; 405 method_not_allowed for a method a path does not take', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nope'],
      ['GET', `/api/v1/runs/${run.id}/nope`],
      ['POST', `/api/v1/run/${run.id}/events`],
      ['GET', '/api/v2/runs'],
    ]) {
      const res = await request(method!, path!);
      expectError(res, 404, 'route_not_found');
      expect(res.body.error.message).toContain(path!.split('?')[0]);
    }
    const res = await request('PUT', url('getRun', { id: run.id }));
    expectError(res, 405, 'method_not_allowed');
    expect(res.body.error.message).toContain(url('getRun', { id: run.id }));
    await unchanged();
  });

  it('a browser following a bad link outside the API gets a page with a way back; an API path stays JSON even for a browser', async () => {
    const html = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };
    const page = await fetch(`${server.url}/nope/<b>path</b>`, { headers: html });
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toContain('text/html');
    const text = await page.text();
    expect(text).toContain('No page at <code>/nope/%3Cb%3Epath%3C/b%3E</code>');
    expect(text).toContain('<a href="/">the dashboard</a>');
    const api = await fetch(`${server.url}/api/v1/nope`, { headers: html });
    expect([api.status, api.headers.get('content-type')]).toEqual([404, expect.stringContaining('application/json')]);
    const script = await fetch(`${server.url}/nope/path`);
    expect(script.headers.get('content-type')).toContain('application/json');
  });

  it('answers a malformed URL with 400 invalid_request in the API error body', async () => {
    const res = await request('GET', '/api/v1/runs/%E0%A4%A');
    expectError(res, 400, 'invalid_request');
    await unchanged();
  });

  it('refuses to delete a running run, 409, and keeps it', async () => {
    expectError(await request('DELETE', url('deleteRun', { id: run.id })), 409, 'run_not_terminal');
    await unchanged();
  });
});
