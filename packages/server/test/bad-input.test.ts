import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { errorStatus, isErrorCode, routes, RuntrailError, SnapshotSchema, TEXT_RULES, type RouteName } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../src/start.js';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';

/**
 * The bad-input suite of issue 15 (item 8): table-driven cases, then a
 * seeded property-based generator (fast-check) at every route and at the
 * WebSocket and SSE endpoints. Every case must get a documented answer
 * (a status whose error code maps to it, or a documented close code); no
 * case may crash the server or get a 5xx; and the runs that existed before
 * must be byte-identical afterwards (hashed before and after). All of it
 * runs on SQLite and on PostgreSQL.
 *
 * Reproduce a failure with the seed it prints: RUNTRAIL_FUZZ_SEED=<seed>.
 */
const SEED = Number(process.env.RUNTRAIL_FUZZ_SEED ?? 15_015);
/** Cases drawn per generator; with the table they make over 10,000 inputs. */
const HTTP_CASES = Number(process.env.RUNTRAIL_FUZZ_HTTP ?? 9000);
const WS_CONNECTIONS = Number(process.env.RUNTRAIL_FUZZ_WS ?? 150);
const SSE_CASES = 500;
const ADMIN = 'bad-input-admin-token-0123456789';
let server: RunningServer;
let cases = 0;

const tokens: Record<'admin' | 'producer' | 'viewer' | 'run' | 'expired' | 'revoked', string> = {
  admin: ADMIN,
  producer: '',
  viewer: '',
  run: '',
  expired: '',
  revoked: '',
};
/** Runs that exist before the suite; none of them may change. */
const protectedIds: string[] = [];
let runningId = '';

interface Answer {
  status: number;
  text: string;
}

async function send(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Uint8Array | null } = {}): Promise<Answer> {
  cases++;
  const res = await fetch(server.url + path, { method, headers: init.headers ?? {}, body: init.body ?? null });
  return { status: res.status, text: await res.text() };
}

/** A documented answer: 2xx, or an error body whose code maps to exactly this status; never 5xx. */
function expectDocumented(answer: Answer, what: string): void {
  expect(answer.status, `${what}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
  if (answer.status < 400) return;
  let code: unknown;
  try {
    code = (JSON.parse(answer.text) as { error?: { code?: unknown } }).error?.code;
  } catch (err) {
    throw new Error(`${what}: ${answer.status} without a JSON error body: ${answer.text.slice(0, 200)} (${(err as Error).message})`, { cause: err });
  }
  expect(isErrorCode(code), `${what}: unknown error code ${String(code)}`).toBe(true);
  expect(errorStatus[code as keyof typeof errorStatus], `${what}: code ${String(code)} with status ${answer.status}`).toBe(answer.status);
}

const auth = (token: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});
const json = (token: string): Record<string, string> => ({ ...auth(token), 'content-type': 'application/json' });

/** A hash of everything a reader can see of the protected runs, straight from the store. */
async function fingerprint(): Promise<string> {
  const hash = createHash('sha256');
  for (const id of protectedIds) {
    hash.update(JSON.stringify(await server.store.getRun(id)));
    for (let after = 0; ; ) {
      const page = await server.store.readEvents(id, after, 1000);
      if (page.length === 0) break;
      hash.update(JSON.stringify(page));
      after = page.at(-1)!.seq;
    }
  }
  return hash.digest('hex');
}

function nested(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

let before = '';

/** Under 60 s on an idle 2-core machine; the margin is for CI boxes shared with other work. */
const BUDGET_MS = 300_000;

/** Every store: what PostgreSQL refuses or stores differently must still get a documented answer. */
const stores = ['sqlite', 'postgres'] as const;

describe.each(stores)('bad input on %s (issue 15, item 8)', { timeout: BUDGET_MS }, (kind) => {
  // Made in beforeAll, not while collecting: a run filtered to other tests leaves no folder behind.
  let dir: ReturnType<typeof tempDir> | null = null;
  let schema = '';

  beforeAll(async () => {
    if (kind === 'postgres') schema = await freshSchema();
    protectedIds.length = 0;
    server = await startServer({
      port: 0,
      dataDir: (dir = tempDir('runtrail-bad-input-')).path,
      logLevel: 'silent',
      adminToken: ADMIN,
      bodyLimitBytes: 1024 * 1024,
      ...(kind === 'postgres' ? { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema } : {}),
    });
    expect(server.store.kind).toBe(kind);
    const mint = async (scope: string, extra: object = {}) => {
      const res = await send('POST', '/api/v1/tokens', { headers: json(ADMIN), body: JSON.stringify({ name: scope, scope, ...extra }) });
      return JSON.parse(res.text) as { id: string; token: string; expiresAt: number | null };
    };
    tokens.producer = (await mint('producer')).token;
    tokens.viewer = (await mint('viewer')).token;
    const revoked = await mint('viewer');
    tokens.revoked = revoked.token;
    await send('DELETE', `/api/v1/tokens/${revoked.id}`, { headers: auth(ADMIN) });
    const expired = await mint('viewer', { expiresInSeconds: 1 });
    tokens.expired = expired.token;

    const create = async (body: object) => JSON.parse((await send('POST', '/api/v1/runs', { headers: json(tokens.producer), body: JSON.stringify(body) })).text) as { id: string };
    const append = (id: string, events: object[]) => send('POST', `/api/v1/runs/${id}/events`, { headers: json(tokens.producer), body: JSON.stringify({ events }) });
    const finish = (id: string, body: object) => send('POST', `/api/v1/runs/${id}/finish`, { headers: json(tokens.producer), body: JSON.stringify(body) });
    const parent = await create({ name: 'protected-parent', labels: { suite: 'bad-input' }, input: { prompt: 'keep me' } });
    const child = await create({ name: 'protected-child', parentId: parent.id });
    const running = await create({ name: 'protected-running', leaseTtlMs: 3_600_000 });
    for (const id of [parent.id, child.id, running.id]) {
      await append(id, [
        { type: 'phase', data: { name: 'load', status: 'started' }, id: `${id}-p1` },
        { type: 'call.started', data: { callId: 'c1', label: 'doc 1' } },
        { type: 'call.succeeded', data: { callId: 'c1', durationMs: 12 } },
        { type: 'progress', data: { done: 1, total: 4 } },
        { type: 'metric', data: { name: 'accuracy', value: 0.5 } },
        { type: 'meta', data: { model: 'm' } },
        { type: 'log', data: { level: 'info', message: 'hello' } },
      ]);
    }
    await finish(child.id, { status: 'succeeded', output: { ok: true } });
    await finish(parent.id, { status: 'failed', error: { kind: 'error', message: 'boom' } });
    protectedIds.push(parent.id, child.id, running.id);
    runningId = running.id;
    tokens.run = (JSON.parse((await send('POST', `/api/v1/runs/${parent.id}/tokens`, { headers: json(tokens.producer), body: '{"ttlSeconds":3600}' })).text) as { token: string }).token;
    await waitUntil(() => Date.now() > expired.expiresAt!, { what: 'the short token to expire' });
    before = await fingerprint();
    cases = 0;
  });

  afterAll(async () => {
    await server?.close();
    if (schema) await dropSchema(schema);
    dir?.remove();
  });

  it('table: every hostile request gets its documented status', async () => {
    const [ended, child] = protectedIds as [string, string];
    const ghost = '01900000-0000-7000-8000-000000000000';
    const table: Array<[string, string, string, { headers?: Record<string, string>; body?: string | Uint8Array }, number]> = [
      // Authentication and scope.
      ['no token', 'GET', '/api/v1/runs', {}, 401],
      ['forged scoped token', 'GET', '/api/v1/runs', { headers: auth('rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA') }, 401],
      ['forged run token', 'GET', `/api/v1/runs/${ended}`, { headers: auth(`rtr_${Buffer.from(JSON.stringify({ run: ended, exp: 9e15 })).toString('base64url')}.AAAA`) }, 401],
      ['expired token', 'GET', '/api/v1/runs', { headers: auth(tokens.expired) }, 401],
      ['revoked token', 'GET', '/api/v1/runs', { headers: auth(tokens.revoked) }, 401],
      ['huge token', 'GET', '/api/v1/runs', { headers: auth('x'.repeat(8000)) }, 401],
      ['basic auth', 'GET', '/api/v1/runs', { headers: { authorization: `Basic ${ADMIN}` } }, 401],
      ['viewer appends', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(tokens.viewer), body: '{"events":[{"type":"x.a"}]}' }, 403],
      ['viewer cancels', 'POST', `/api/v1/runs/${runningId}/cancel`, { headers: json(tokens.viewer), body: '{}' }, 403],
      ['producer deletes', 'DELETE', `/api/v1/runs/${ended}`, { headers: { ...auth(tokens.producer), 'x-runtrail-client': '1' } }, 403],
      ['producer mints tokens', 'POST', '/api/v1/tokens', { headers: json(tokens.producer), body: '{"name":"x","scope":"admin"}' }, 403],
      ['run token reads another run', 'GET', `/api/v1/runs/${runningId}`, { headers: auth(tokens.run) }, 403],
      ['run token lists runs', 'GET', '/api/v1/runs', { headers: auth(tokens.run) }, 403],
      ['run token writes its run', 'POST', `/api/v1/runs/${ended}/events`, { headers: json(tokens.run), body: '{"events":[{"type":"x.a"}]}' }, 403],
      ['run token reads a child', 'GET', `/api/v1/runs/${child}`, { headers: auth(tokens.run) }, 200],
      ['run token mints tokens', 'POST', `/api/v1/runs/${ended}/tokens`, { headers: json(tokens.run), body: '{}' }, 403],
      // Malformed bodies.
      ['invalid JSON', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events": [' }, 400],
      ['empty JSON body', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '' }, 400],
      ['JSON null', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: 'null' }, 400],
      ['wrong types', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events":"many"}' }, 400],
      ['events not objects', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events":[1,2,3]}' }, 400],
      ['unknown event type', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"nope"}]}' }, 400],
      ['terminal event sent to an ended run', 'POST', `/api/v1/runs/${ended}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"run.succeeded","data":{}}]}' }, 409],
      ['a second terminal event in one batch', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"run.succeeded","data":{}},{"type":"run.failed","data":{"error":{"message":"x"}}},{"type":"x.ok"}]}' }, 400],
      ['terminal event data as a progress', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"progress","data":{"done":"all"}}]}' }, 400],
      ['10,000-deep nesting in data', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: `{"events":[{"type":"x.deep","data":${nested(10_000)}}]}` }, 400],
      ['10,000-deep nesting in input', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: `{"name":"deep","input":${nested(10_000)}}` }, 400],
      ['10,000-deep nesting as the body', 'POST', `/api/v1/runs/${runningId}/cancel`, { headers: json(ADMIN), body: nested(10_000) }, 400],
      ['invalid UTF-8', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: new Uint8Array([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x22, 0x7d]) }, 201],
      // PostgreSQL cannot store NUL in text: refused on every store (the per-store cases are below).
      ['NUL bytes in a name', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: '{"name":"a\\u0000b"}' }, 400],
      ['huge string over the body limit', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: JSON.stringify({ name: 'x', input: 'y'.repeat(2 * 1024 * 1024) }) }, 413],
      ['event data over its limit', 'POST', `/api/v1/runs/${runningId}/events`, { headers: json(ADMIN), body: JSON.stringify({ events: [{ type: 'x.big', data: 'z'.repeat(1024 * 1024 + 10) }] }) }, 413],
      ['too many labels', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: JSON.stringify({ name: 'x', labels: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'v'])) }) }, 400],
      ['prototype keys', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: '{"name":"x","labels":{"__proto__":"a","constructor":"b"}}' }, 201],
      ['constructor as a label', 'POST', '/api/v1/runs', { headers: json(ADMIN), body: '{"name":"x","labels":{"constructor":"b","toString":"c"}}' }, 201],
      ['form content type', 'POST', `/api/v1/runs/${runningId}/cancel`, { headers: { ...auth(ADMIN), 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=b' }, 400],
      ['text/plain without the client header (CSRF shape) and no token', 'POST', `/api/v1/runs/${runningId}/cancel`, { headers: { 'content-type': 'text/plain' }, body: '{}' }, 403],
      // Ids, after and limit.
      ['unknown run id', 'GET', `/api/v1/runs/${ghost}`, { headers: auth(ADMIN) }, 404],
      ['malformed run id', 'GET', `/api/v1/runs/${encodeURIComponent('../../etc/passwd')}`, { headers: auth(ADMIN) }, 404],
      ['NUL in a run id', 'GET', '/api/v1/runs/a%00b', { headers: auth(ADMIN) }, 400],
      ['very long run id', 'GET', `/api/v1/runs/${'r'.repeat(4000)}/events`, { headers: auth(ADMIN) }, 404],
      ['bad percent-encoding', 'GET', '/api/v1/runs/%E0%A4%A', { headers: auth(ADMIN) }, 400],
      ['negative after', 'GET', `/api/v1/runs/${ended}/events?after=-1`, { headers: auth(ADMIN) }, 400],
      ['huge after', 'GET', `/api/v1/runs/${ended}/events?after=1e400`, { headers: auth(ADMIN) }, 400],
      ['after past the end', 'GET', `/api/v1/runs/${ended}/events?after=9007199254740991`, { headers: auth(ADMIN) }, 200],
      ['non-numeric after', 'GET', `/api/v1/runs/${ended}/events?after=ten`, { headers: auth(ADMIN) }, 400],
      ['repeated after', 'GET', `/api/v1/runs/${ended}/events?after=1&after=2`, { headers: auth(ADMIN) }, 400],
      ['zero limit', 'GET', `/api/v1/runs/${ended}/events?limit=0`, { headers: auth(ADMIN) }, 400],
      ['huge limit', 'GET', `/api/v1/runs/${ended}/events?limit=99999999`, { headers: auth(ADMIN) }, 400],
      ['SSE bad Last-Event-ID', 'GET', `/api/v1/runs/${ended}/stream`, { headers: { ...auth(ADMIN), 'last-event-id': '-5' } }, 400],
      ['SSE non-numeric after', 'GET', `/api/v1/runs/${ended}/stream?after=x`, { headers: auth(ADMIN) }, 400],
      ['SSE unknown run', 'GET', `/api/v1/runs/${ghost}/stream`, { headers: auth(ADMIN) }, 404],
      // Writes to ended runs.
      ['append to an ended run', 'POST', `/api/v1/runs/${ended}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"x.late"}]}' }, 409],
      ['finish an ended run again', 'POST', `/api/v1/runs/${ended}/finish`, { headers: json(ADMIN), body: '{"status":"succeeded"}' }, 409],
      ['cancel an ended run', 'POST', `/api/v1/runs/${ended}/cancel`, { headers: json(ADMIN), body: '{}' }, 409],
      ['heartbeat an ended run (answers its status, changes nothing)', 'POST', `/api/v1/runs/${ended}/heartbeat`, { headers: json(ADMIN), body: '{}' }, 200],
      ['retry a producer run', 'POST', `/api/v1/runs/${ended}/retry`, { headers: { ...auth(ADMIN), 'x-runtrail-client': '1' } }, 409],
      ['delete a running run', 'DELETE', `/api/v1/runs/${runningId}`, { headers: { ...auth(ADMIN), 'x-runtrail-client': '1' } }, 409],
      // Transport oddities.
      ['unknown method', 'PATCH', `/api/v1/runs/${ended}`, { headers: json(ADMIN), body: '{}' }, 405],
      ['plain GET of the WebSocket route', 'GET', '/api/v1/stream', { headers: auth(ADMIN) }, 400],
      ['cross-origin write', 'POST', `/api/v1/runs/${runningId}/cancel`, { headers: { ...json(ADMIN), origin: 'http://evil.example' }, body: '{}' }, 403],
    ];
    for (const [what, method, path, init, status] of table) {
      const answer = await send(method, path, init);
      expect(answer.status, `${what}: ${answer.text.slice(0, 300)}`).toBe(status);
      expectDocumented(answer, what);
    }
    // The same event id with a different payload: refused (409), the first one stands; the same event again keeps its seq.
    const scratch = JSON.parse((await send('POST', '/api/v1/runs', { headers: json(ADMIN), body: '{"name":"scratch"}' })).text) as { id: string };
    const first = await send('POST', `/api/v1/runs/${scratch.id}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"x.a","id":"e1","data":1}]}' });
    const other = await send('POST', `/api/v1/runs/${scratch.id}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"x.b","id":"e1","data":2}]}' });
    expect(other.status).toBe(409);
    expectDocumented(other, 'the same event id with a different payload');
    const same = await send('POST', `/api/v1/runs/${scratch.id}/events`, { headers: json(ADMIN), body: '{"events":[{"type":"x.a","id":"e1","data":1}]}' });
    expect(JSON.parse(same.text).seqs).toEqual(JSON.parse(first.text).seqs);
    const read = JSON.parse((await send('GET', `/api/v1/runs/${scratch.id}/events`, { headers: auth(ADMIN) })).text) as { events: Array<{ type: string; data: unknown }> };
    expect(read.events.map((e) => [e.type, e.data])).toEqual([['x.a', 1]]);
    // A foreign Host, and half-closed and truncated sockets.
    expect(await rawHttp(`GET /api/v1/runs HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`)).toMatch(/^HTTP\/1.1 421/);
    // Cut short and half-closed: a 400 (Node's parser) or a plain close, never a hang or a crash.
    expect(await rawHttp('GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n')).toMatch(/^(HTTP\/1.1 400 |$)/);
    expect(await rawHttp(`POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":`)).toMatch(/^(HTTP\/1.1 400 |$)/);
    expect(await rawHttp('\x00\x01\x02garbage\r\n\r\n')).toMatch(/^HTTP\/1.1 400|^$/);
  });

  it('properties: seeded random requests at every route get documented answers, never a 5xx', async () => {
    const routeNames = Object.keys(routes) as RouteName[];
    const ended = protectedIds.slice(0, 2);
    const tokenPool = [tokens.admin, tokens.producer, tokens.viewer, tokens.run, tokens.expired, tokens.revoked, '', 'rt_x', 'rtr_e30.e30'];
    const idArb = fc.oneof(
      fc.constantFrom(...ended),
      fc.constant('01900000-0000-7000-8000-000000000000'),
      fc.string({ maxLength: 60 }),
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.constantFrom('..', '%', '%00', '__proto__', 'constructor', ' ', 'a/b'),
    );
    const queryValue = fc.oneof(
      fc.integer({ min: -5, max: 10 }).map(String),
      fc.constantFrom('1e400', 'NaN', '-0', '0x10', '', '9'.repeat(40), '[]', 'true', '2147483648', '9007199254740991'),
      fc.string({ maxLength: 20 }),
    );
    const queryArb = fc.dictionary(
      fc.constantFrom('after', 'limit', 'cursor', 'status', 'name', 'label', 'parentId', 'parentIds', 'nameContains', 'errorKind', 'topLevel', 'createdAfter', 'createdBefore', 'token', 'x'),
      queryValue,
      { maxKeys: 3 },
    );
    const deep = fc.integer({ min: 1, max: 3000 }).map((d) => `{"events":[{"type":"x.d","data":${nested(d)}}]}`);
    const bodyArb = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.record({ events: fc.array(fc.record({ type: fc.oneof(fc.constantFrom('progress', 'metric', 'counter', 'meta', 'log', 'phase', 'call.started', 'run.succeeded', 'run.failed', 'run.cancelled', 'x.ok'), fc.string()), data: fc.jsonValue({ maxDepth: 3 }), id: fc.option(fc.string({ maxLength: 5 }), { nil: undefined }) }), { maxLength: 5 }) }).map((v) => JSON.stringify(v)),
      fc.record({ name: fc.string(), scope: fc.string(), status: fc.constantFrom('succeeded', 'failed', 'cancelled', 'x'), ttlSeconds: fc.oneof(fc.integer(), fc.double()), owner: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ maxLength: 10 }).map((s) => `{"name":"${s}\u0000"}`),
      deep,
      fc.constant(''),
    );
    const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', undefined);

    const requests = fc.tuple(
      fc.constantFrom(...routeNames),
      fc.constantFrom('GET', 'POST', 'DELETE', 'PUT'),
      idArb,
      queryArb,
      bodyArb,
      contentType,
      fc.constantFrom(...tokenPool),
      fc.boolean(),
    );
    await runSeeded(requests, HTTP_CASES, 16, async ([name, method, id, query, body, type, token, clientHeader]) => {
          const route = routes[name];
          const path = route.path.replace(':id', encodeURIComponent(id));
          const qs = new URLSearchParams(query).toString();
          const headers: Record<string, string> = { ...auth(token) };
          if (type) headers['content-type'] = type;
          if (clientHeader) headers['x-runtrail-client'] = '1';
          // Only a viewer may aim a DELETE at a protected run: an admin's would (rightly) delete it.
          if (method === 'DELETE' && ended.includes(id)) headers.authorization = `Bearer ${tokens.viewer}`;
          const hasBody = method !== 'GET' && body !== '';
          const answer = await send(method, `${path}${qs ? `?${qs}` : ''}`, { headers, body: hasBody ? body : null });
          expectDocumented(answer, `${method} ${path}?${qs}`);
    });
  });

  it('properties: seeded random WebSocket frames and SSE requests get documented answers', async () => {
    const ended = protectedIds.slice(0, 2);
    const message = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
      fc.record({ op: fc.constantFrom('subscribe', 'unsubscribe', 'subscribeRuns', 'unsubscribeRuns', 'ping', 'nope'), runId: fc.oneof(fc.constantFrom(...protectedIds), fc.string()), after: fc.oneof(fc.integer(), fc.constantFrom(2 ** 31, Number.MAX_SAFE_INTEGER), fc.double(), fc.string()), filter: fc.jsonValue({ maxDepth: 2 }), runs: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: ['op'] }).map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary', maxLength: 100 }),
      fc.uint8Array({ maxLength: 200 }),
      fc.constant(nested(5000)),
      fc.constant('x'.repeat(70 * 1024)),
    );
    const sockets = fc.tuple(fc.constantFrom(tokens.admin, tokens.viewer, tokens.run, tokens.expired, 'forged'), fc.array(message, { minLength: 1, maxLength: 25 }));
    await runSeeded(sockets, WS_CONNECTIONS, 8, async ([token, messages]) => {
        const ws = new WebSocket(`${server.url.replace('http', 'ws')}/api/v1/stream?token=${encodeURIComponent(token)}`);
        const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
        ws.on('error', () => undefined);
        const replies: string[] = [];
        ws.on('message', (data) => replies.push(data.toString()));
        const opened = await new Promise<boolean>((resolve) => {
          ws.once('open', () => resolve(true));
          void closed.then(() => resolve(false));
        });
        if (!opened) {
          cases++;
          expect([4401, 4429]).toContain(await closed);
          return;
        }
        for (const m of messages) {
          if (ws.readyState !== WebSocket.OPEN) break;
          cases++;
          ws.send(m, { binary: typeof m !== 'string' });
        }
        if (ws.readyState === WebSocket.OPEN) ws.send('{"op":"ping"}');
        const outcome = await Promise.race([
          closed.then((code) => `closed ${code}`),
          waitUntil(() => replies.some((r) => r === '{"type":"pong"}') && 'pong', { timeoutMs: 10_000, intervalMs: 2 }),
        ]);
        // Documented endings: a pong (still serving), 1009 (frame too big), 4401 (token), 4429 (too many messages).
        expect(outcome, JSON.stringify(replies.slice(-3))).toMatch(/^(pong|closed (1009|4401|4429))$/);
        for (const reply of replies) {
          const msg = JSON.parse(reply) as { type: string; code?: string };
          if (msg.type === 'error') expect(isErrorCode(msg.code), reply).toBe(true);
        }
        ws.terminate();
        await closed;
    });

    const streams = fc.tuple(
      fc.constantFrom(...ended, '01900000-0000-7000-8000-000000000000', 'x%00'),
      fc.oneof(fc.integer({ min: -3, max: 20 }).map(String), fc.constantFrom('abc', '1e999', '', '2147483648', '9007199254740991')),
      fc.option(fc.oneof(fc.integer({ min: -3, max: 20 }).map(String), fc.string({ maxLength: 8 })), { nil: undefined }),
      fc.constantFrom(tokens.admin, tokens.viewer, tokens.run, tokens.expired, ''),
      fc.boolean(),
    );
    await runSeeded(streams, SSE_CASES, 16, async ([id, after, lastEventId, token, inQuery]) => {
          cases++;
          const headers: Record<string, string> = inQuery ? {} : auth(token);
          if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
          const controller = new AbortController();
          const res = await fetch(`${server.url}/api/v1/runs/${encodeURIComponent(id)}/stream?after=${after}${inQuery ? `&token=${encodeURIComponent(token)}` : ''}`, { headers, signal: controller.signal });
          if (res.status !== 200) {
            expectDocumented({ status: res.status, text: await res.text() }, `SSE ${id} after=${after} last=${lastEventId}`);
            return;
          }
          // An ended run's stream ends by itself after its `end` event.
          const text = await res.text();
          expect(text).toMatch(/event: end\n/);
    });
  });

  it('afterwards: the server still serves, holds no stream or buffer, and every existing run is byte-identical', async () => {
    const health = await send('GET', '/healthz');
    expect(health.status).toBe(200);
    const created = await send('POST', '/api/v1/runs', { headers: json(ADMIN), body: '{"name":"after-the-storm"}' });
    expect(created.status).toBe(201);
    await waitUntil(() => server.stream.stats().connections.ws + server.stream.stats().connections.sse === 0, { what: 'every test stream to be gone' });
    expect(server.stream.stats().queuedBytes).toBe(0);
    expect(await fingerprint()).toBe(before);
    console.log(`bad-input suite: ${cases} cases (seed ${SEED}): 0 crashes, 0 5xx, existing runs byte-identical`);
    // Smaller runs (RUNTRAIL_FUZZ_HTTP / _WS, to reproduce one case quickly) are not the CI suite.
    if (process.env.RUNTRAIL_FUZZ_HTTP === undefined && process.env.RUNTRAIL_FUZZ_WS === undefined) expect(cases).toBeGreaterThanOrEqual(10_000);
  });
});

/**
 * Text the stores keep as text, on each store. PostgreSQL cannot hold NUL
 * in text or jsonb, so the protocol's schemas refuse it (and every control character in names and ids) with 400
 * `invalid_request` naming the field, on both stores alike; NUL inside
 * free-form JSON (input, event data) keeps working on both.
 */
describe.each(stores)('text fields on %s: control characters are refused by name, alike on every store', (kind) => {
  let storeServer: RunningServer;
  let schema = '';
  let targetDir: ReturnType<typeof tempDir> | null = null;

  beforeAll(async () => {
    if (kind === 'postgres') schema = await freshSchema();
    storeServer = await startServer({
      port: 0,
      logLevel: 'silent',
      dataDir: (targetDir = tempDir('runtrail-text-fields-')).path,
      ...(kind === 'postgres' ? { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema } : {}),
    });
    expect(storeServer.store.kind).toBe(kind);
  });

  afterAll(async () => {
    await storeServer?.close();
    if (schema) await dropSchema(schema);
    targetDir?.remove();
  });

  const request = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(storeServer.url + path, {
      method,
      headers: body === undefined ? { 'x-runtrail-client': '1' } : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as Record<string, any>) : null };
  };
  const createRun = async (body: object = { name: 'text-fields' }) => {
    const res = await request('POST', '/api/v1/runs', body);
    expect(res.status, res.text).toBe(201);
    return res.json!.id as string;
  };

  it('refuses NUL and other control characters in names, ids, labels, event types and filters with 400 naming the field', async () => {
    const id = await createRun();
    const nameRule = TEXT_RULES.name;
    const table: Array<[string, string, string, unknown, string, string]> = [
      ['run name with NUL', 'POST', '/api/v1/runs', { name: 'a\u0000b' }, 'name', nameRule],
      ['run name with ESC', 'POST', '/api/v1/runs', { name: 'a\u001b[31m' }, 'name', nameRule],
      // A run's name is its handler's, which is listed on one line: the rule define() applies too (RunName).
      ['run name with a line separator', 'POST', '/api/v1/runs', { name: 'a\u2028b', execute: true }, 'name', TEXT_RULES.line],
      ['label value with NUL', 'POST', '/api/v1/runs', { name: 'a', labels: { k: 'v\u0000' } }, 'labels.k', nameRule],
      ['label key with NUL', 'POST', '/api/v1/runs', { name: 'a', labels: { 'k\u0000': 'v' } }, 'labels["k\\u0000"]', nameRule],
      ['label value with a lone surrogate', 'POST', '/api/v1/runs', { name: 'a', labels: { k: 'v\ud800' } }, 'labels.k', TEXT_RULES.surrogate],
      ['parent id with NUL', 'POST', '/api/v1/runs', { name: 'a', parentId: 'p\u0000' }, 'parentId', nameRule],
      ['owner node with NUL', 'POST', '/api/v1/runs', { name: 'a', owner: { kind: 'producer', node: 'n\u0000', id: 'x' } }, 'owner.node', nameRule],
      ['event type with NUL', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'x.a\u0000y' }] }, 'events[0].type', nameRule],
      ['event id with NUL', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'x.a', id: 'e\u0000' }] }, 'events[0].id', nameRule],
      ['phase name with NUL', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'phase', data: { name: 'p\u0000', status: 'started' } }] }, 'events[0].data.name', nameRule],
      ['run.failed event error with NUL', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'run.failed', data: { error: { kind: 'error', message: 'e\u0000' } } }] }, 'events[0].data.error.message', TEXT_RULES.free],
      ['cancel reason with NUL', 'POST', `/api/v1/runs/${id}/cancel`, { reason: 'r\u0000' }, 'reason', TEXT_RULES.free],
      ['finish error message with NUL', 'POST', `/api/v1/runs/${id}/finish`, { status: 'failed', error: { message: 'e\u0000' } }, 'error.message', TEXT_RULES.free],
      ['finish event id with NUL', 'POST', `/api/v1/runs/${id}/finish`, { status: 'succeeded', id: 'f\u0000' }, 'id', nameRule],
      ['heartbeat owner id with NUL', 'POST', `/api/v1/runs/${id}/heartbeat`, { owner: { kind: 'producer', node: 'n', id: 'x\u0000' } }, 'owner.id', nameRule],
      ['token name with NUL', 'POST', '/api/v1/tokens', { name: 't\u0000', scope: 'viewer' }, 'name', nameRule],
      ['list nameContains with NUL', 'GET', '/api/v1/runs?nameContains=a%00', undefined, 'nameContains', nameRule],
      ['list name with NUL', 'GET', '/api/v1/runs?name=a%00', undefined, 'name', nameRule],
      ['list label filter with NUL', 'GET', '/api/v1/runs?label=k%3Dv%00', undefined, 'label', nameRule],
      ['list parentIds with NUL', 'GET', '/api/v1/runs?parentIds=a%00,b', undefined, 'parentIds', nameRule],
      ['list cursor with NUL', 'GET', '/api/v1/runs?cursor=a%00', undefined, 'cursor', 'must be a run id'],
      ['run id in the path with NUL', 'GET', '/api/v1/runs/a%00b', undefined, 'id', nameRule],
      ['run id in the path of an append', 'POST', '/api/v1/runs/a%00b/events', { events: [{ type: 'x.a' }] }, 'id', nameRule],
      ['run id in the path of a stream', 'GET', '/api/v1/runs/a%00b/stream', undefined, 'id', nameRule],
      ['token id in the path with NUL', 'DELETE', '/api/v1/tokens/a%00b', undefined, 'id', nameRule],
    ];
    for (const [what, method, path, body, field, rule] of table) {
      const res = await request(method, path, body);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error.code, what).toBe('invalid_request');
      expect(res.json!.error.message, what).toContain(`${field}: ${rule}`);
    }
    // Nothing of the refused requests reached the run.
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.seq).toBe(0);
  });

  it('keeps NUL inside free-form JSON, and newlines and tabs in messages (tracebacks)', async () => {
    const id = await createRun({ name: 'free-form', input: { prompt: 'a\u0000b' } });
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.input).toEqual({ prompt: 'a\u0000b' });
    const appended = await request('POST', `/api/v1/runs/${id}/events`, {
      events: [
        { type: 'x.raw', data: { text: 'x\u0000y' } },
        { type: 'log', data: { level: 'error', message: 'bad byte \u0000 here' } },
        { type: 'phase', data: { name: 'load', status: 'started', timeoutMs: 3_600_000 } },
      ],
    });
    expect(appended.status, appended.text).toBe(200);
    const events = (await request('GET', `/api/v1/runs/${id}/events`)).json!.events as Array<{ data: unknown }>;
    expect(events[0]!.data).toEqual({ text: 'x\u0000y' });
    // The sweeper reads phases from checkpoints that hold that log line: it must still answer.
    await expect(storeServer.store.findDue(Date.now(), 10)).resolves.toBeDefined();
    const traceback = 'Traceback (most recent call last):\n\tFile "x.py", line 1\nValueError: bad';
    const finished = await request('POST', `/api/v1/runs/${id}/finish`, { status: 'failed', error: { message: traceback } });
    expect(finished.status, finished.text).toBe(200);
    expect(finished.json!.error.message).toBe(traceback);
  });

  it('still lists runs stored before the rule, with NUL in their error, by errorKind', async () => {
    // Written straight to the store, as a server before this rule accepted it.
    const run = { id: await createRun({ name: 'stored-before' }) };
    await storeServer.store.append(run.id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'old\u0000message' } } }], { now: Date.now() });
    const listed = await request('GET', '/api/v1/runs?errorKind=error');
    expect(listed.status, listed.text).toBe(200);
    const found = (listed.json!.runs as Array<{ id: string; error: { message: string } }>).find((r) => r.id === run.id);
    expect(found?.error.message).toBe('old\u0000message');
  });

  it('refuses an imported archive whose run name holds NUL, naming the field, and imports nothing', async () => {
    const id = await createRun({ name: 'import-name-13' });
    expect((await request('POST', `/api/v1/runs/${id}/finish`, { status: 'succeeded' })).status).toBe(200);
    const archive = Buffer.from(await (await fetch(`${storeServer.url}/api/v1/runs/${id}/export`)).arrayBuffer());
    expect((await request('DELETE', `/api/v1/runs/${id}`)).status).toBe(204);
    // Same length, so the tar's sizes still hold: the JSON text of the name becomes "import-\u0000x".
    const at = archive.indexOf('"name": "import-name-13"');
    expect(at).toBeGreaterThan(0);
    archive.write('"name": "import-\\u0000x"', at);
    const res = await fetch(`${storeServer.url}/api/v1/import`, { method: 'POST', headers: { 'content-type': 'application/x-tar', 'x-runtrail-client': '1' }, body: archive });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status, body.error.message).toBe(400);
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.message).toContain(`run.json: name: ${TEXT_RULES.name}`);
    expect((await request('GET', `/api/v1/runs/${id}`)).status).toBe(404);
  });

  it("the Node SDK surfaces the server's message, and a run whose error holds NUL still ends failed", async () => {
    const client = new RuntrailClient({ url: storeServer.url });
    const refused = await client.createRun({ name: 'a\u0000b' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RuntrailError);
    expect((refused as RuntrailError).code).toBe('invalid_request');
    expect((refused as RuntrailError).message).toContain(`name: ${TEXT_RULES.name}`);
    const handle = await client.createRun({ name: 'sdk-nul-error' });
    const run = await handle.fail(new Error('bad byte \u0000 in line 3'));
    expect(run.status).toBe('failed');
    expect(run.error?.message).toBe('bad byte \\0 in line 3');
  });
});

/**
 * Input the API once took and should not have: values over a documented
 * limit, sums that overflow, cursors that page nowhere. Each case names what
 * is wrong and leaves what was stored as it was. Checked before the store is
 * asked, so one store is enough.
 */
describe('input handling: limits, numbers, cursors', () => {
  let inputServer: RunningServer;
  let inputDir: ReturnType<typeof tempDir> | null = null;

  beforeAll(async () => {
    inputServer = await startServer({
      port: 0,
      logLevel: 'silent',
      dataDir: (inputDir = tempDir('runtrail-input-')).path,
      // Above the default (5,000): the setting can be raised, and it is what counts.
      maxEventsPerBatch: 6000,
    });
  });
  afterAll(async () => {
    await inputServer?.close();
    inputDir?.remove();
  });

  const request = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(inputServer.url + path, {
      method,
      headers: { ...(body === undefined ? { 'x-runtrail-client': '1' } : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, any>) : null };
  };
  const createRun = async (body: object = { name: 'input' }) => {
    const res = await request('POST', '/api/v1/runs', body);
    expect(res.status, res.text).toBe(201);
    return res.json!.id as string;
  };
  const expectError = (res: { status: number; text: string; json: Record<string, any> | null }, status: number, code: string, message: RegExp | string) => {
    expect(res.status, res.text.slice(0, 300)).toBe(status);
    expect(res.json!.error.code).toBe(code);
    if (typeof message === 'string') expect(res.json!.error.message).toContain(message);
    else expect(res.json!.error.message).toMatch(message);
  };

  it("a finish's output (or error and output) over one event's data limit is 413 naming maxEventDataBytes, and the run stays as it was", async () => {
    const id = await createRun();
    const big = 'o'.repeat(1024 * 1024 + 1);
    for (const body of [
      { status: 'succeeded', output: big },
      { status: 'failed', error: { message: 'boom' }, output: { text: big } },
    ]) {
      const res = await request('POST', `/api/v1/runs/${id}/finish`, body);
      expectError(res, 413, 'payload_too_large', /^the finish's output and error \(the data of its run\.(succeeded|failed) event\) is \d+ bytes, over the limit of 1048576 bytes \(maxEventDataBytes on the server\)$/);
    }
    const run = (await request('GET', `/api/v1/runs/${id}`)).json!;
    expect([run.status, run.seq, run.output]).toEqual(['running', 0, null]);
    expect((await request('POST', `/api/v1/runs/${id}/finish`, { status: 'succeeded', output: 'o'.repeat(1000) })).status).toBe(200);
  });

  it('a batch with thousands of bad events is told the first 100 issues and how many there were: a bounded error body, nothing stored', async () => {
    const id = await createRun();
    const events = Array.from({ length: 5000 }, (_, i) => ({ type: 'call.started', data: { callId: `c${i}` } }));
    const res = await request('POST', `/api/v1/runs/${id}/events`, { events });
    expectError(res, 400, 'invalid_request', 'invalid events: events[0].data.label: required: expected string (and 4999 more)');
    expect(res.json!.error.details.issues).toHaveLength(100);
    expect(res.json!.error.details.issues[99].path).toBe('events[99].data.label');
    expect(res.json!.error.details.issueCount).toBe(5000);
    expect(res.text.length).toBeLessThan(20_000);
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.seq).toBe(0);
  });

  it('fields and label keys of a megabyte are named by their first 100 characters and length: the error does not send them back', async () => {
    const long = (c: string) => c.repeat(500_000);
    for (const body of [
      { name: 'echo', [long('k')]: 1, [long('j')]: 2 },
      { name: 'echo', labels: { [long('l')]: 'v', [long('m')]: 'w' } },
    ]) {
      const res = await request('POST', '/api/v1/runs', body);
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect(res.json!.error.code).toBe('invalid_request');
      expect(res.text.length).toBeLessThan(5_000);
      expect(res.json!.error.message).toContain(`…(500000 characters)`);
    }
    const unknown = await request('POST', '/api/v1/runs', { name: 'echo', [long('k')]: 1 });
    expect(unknown.json!.error.details.issues[0].path).toBe(`[${JSON.stringify(`${'k'.repeat(100)}…(500000 characters)`)}]`);
  });

  it('a run id or token id longer than any (cancel, revoke) is 400 saying a part of the path is too long, without quoting the URL back', async () => {
    const long = 'a'.repeat(5000);
    for (const [method, path] of [['POST', `/api/v1/runs/${long}/cancel`], ['DELETE', `/api/v1/tokens/${long}`]] as const) {
      const res = await request(method, path, method === 'POST' ? {} : undefined);
      expectError(res, 400, 'invalid_request', "a part of the URL's path is too long");
      expect(res.text, path.slice(0, 30)).not.toContain(long);
    }
  });

  it('a named counter summed past the largest number stays at Number.MAX_VALUE: the snapshot stays valid', async () => {
    const id = await createRun();
    const counter = { type: 'counter', data: { name: 'c', delta: 1e308 } };
    expect((await request('POST', `/api/v1/runs/${id}/events`, { events: [counter, counter] })).status).toBe(200);
    expect((await request('POST', `/api/v1/runs/${id}/events`, { events: [counter] })).status).toBe(200);
    const run = (await request('GET', `/api/v1/runs/${id}`)).json!;
    expect(run.snapshot.counters.named).toEqual({ c: Number.MAX_VALUE });
    expect(SnapshotSchema.safeParse(run.snapshot).success).toBe(true);
  });

  it('a list cursor that is not a run id is 400 naming the cursor; a real one pages to the end', async () => {
    for (let i = 0; i < 3; i++) await createRun({ name: `page-${i}` });
    for (const cursor of ['garbage', '!!!', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '']) {
      const res = await request('GET', `/api/v1/runs?limit=2&cursor=${encodeURIComponent(cursor)}`);
      expectError(res, 400, 'invalid_request', 'invalid query: cursor: must be a run id');
    }
    const seen: string[] = [];
    for (let cursor: string | null = null, pages = 0; pages < 100; pages++) {
      const page: Record<string, any> = (await request('GET', `/api/v1/runs?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json!;
      seen.push(...(page.runs as Array<{ id: string }>).map((r) => r.id));
      cursor = page.nextCursor as string | null;
      if (!cursor) break;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe((await request('GET', '/api/v1/run-counts')).json!.total);
  });

  it('an unknown field of a request body is 400 naming it (a typo must not lose a value), and nothing is stored', async () => {
    const id = await createRun();
    const before = (await request('GET', '/api/v1/run-counts')).json!.total as number;
    const table: Array<[string, string, string, unknown, string]> = [
      ['create with a typo of labels', 'POST', '/api/v1/runs', { name: 'a', lables: { team: 'x' } }, 'lables'],
      ['create with an unknown field', 'POST', '/api/v1/runs', { name: 'a', bogus: 1 }, 'bogus'],
      ['append with an unknown field', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'x.a' }], ownr: {} }, 'ownr'],
      ['an event with a typo of data', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'x.a', dta: { v: 1 } }] }, 'events[0].dta'],
      ['finish with a typo of output', 'POST', `/api/v1/runs/${id}/finish`, { status: 'succeeded', ouput: { v: 1 } }, 'ouput'],
      ['cancel with a typo of reason', 'POST', `/api/v1/runs/${id}/cancel`, { reasn: 'stop' }, 'reasn'],
      ['heartbeat with an unknown field', 'POST', `/api/v1/runs/${id}/heartbeat`, { ttl: 5 }, 'ttl'],
      ['a token with a typo of expiresInSeconds', 'POST', '/api/v1/tokens', { name: 't', scope: 'viewer', expiresIn: 60 }, 'expiresIn'],
      ['a run token with a typo of ttlSeconds', 'POST', `/api/v1/runs/${id}/tokens`, { ttl: 60 }, 'ttl'],
    ];
    for (const [what, method, path, body, field] of table) {
      const res = await request(method, path, body);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error.code, what).toBe('invalid_request');
      expect(res.json!.error.message, what).toContain(`${field}: unknown field`);
    }
    const run = (await request('GET', `/api/v1/runs/${id}`)).json!;
    expect([run.status, run.seq, run.cancelRequestedAt]).toEqual(['running', 0, null]);
    expect((await request('GET', '/api/v1/run-counts')).json!.total).toBe(before);
    expect((await request('GET', '/api/v1/tokens')).json!.tokens).toEqual([]);
  });

  it('a field that must be one of some values says, when left out, that it is required and what it may be; when wrong, what was given', async () => {
    const id = await createRun();
    const table: Array<[string, string, string, unknown, string]> = [
      ['finish without status', 'POST', `/api/v1/runs/${id}/finish`, {}, 'invalid request body: status: required: one of succeeded, failed, cancelled'],
      ['finish with a wrong status', 'POST', `/api/v1/runs/${id}/finish`, { status: 'done' }, 'invalid request body: status: got "done", expected one of succeeded, failed, cancelled'],
      ['finish with a status of null', 'POST', `/api/v1/runs/${id}/finish`, { status: null }, 'invalid request body: status: got null, expected one of succeeded, failed, cancelled'],
      ['a token without scope', 'POST', '/api/v1/tokens', { name: 't' }, 'invalid request body: scope: required: one of admin, producer, viewer'],
      ['a list filter with a wrong topLevel', 'GET', '/api/v1/runs?topLevel=yes', undefined, 'invalid query: topLevel: got "yes", expected one of true, false'],
      ['a phase event without status', 'POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'phase', data: { name: 'p' } }] }, 'events[0].data.status: required: one of started, completed, failed'],
    ];
    for (const [what, method, path, body, message] of table) {
      const res = await request(method, path, body);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error.code, what).toBe('invalid_request');
      expect(res.json!.error.message, what).toContain(message);
    }
    // A wrong value of a megabyte is quoted by its first characters and length, not sent back.
    const long = await request('POST', `/api/v1/runs/${id}/finish`, { status: 'x'.repeat(1024 * 1024) });
    expectError(long, 400, 'invalid_request', /^invalid request body: status: got "x{49}…\(1048578 characters\), expected one of succeeded, failed, cancelled$/);
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.status).toBe('running');
  });

  it('a write sent with content-type application/json and an empty body is a write without a body', async () => {
    const json = { 'content-type': 'application/json' };
    const id = await createRun();
    const cancelled = await request('POST', `/api/v1/runs/${id}/cancel`, '', json);
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.json!.cancelRequestedAt).not.toBeNull();
    const retried = await request('POST', `/api/v1/runs/${id}/retry`, '', json);
    expectError(retried, 409, 'run_not_retryable', `run ${id}`);
    expectError(await request('DELETE', '/api/v1/tokens/01900000-0000-7000-8000-000000000000', '', json), 404, 'token_not_found', '');
    const ended = await createRun();
    expect((await request('POST', `/api/v1/runs/${ended}/finish`, { status: 'succeeded' })).status).toBe(200);
    expect((await request('DELETE', `/api/v1/runs/${ended}`, '', json)).status).toBe(204);
    // A route that needs a body still says what is missing.
    expectError(await request('POST', `/api/v1/runs/${id}/events`, '', json), 400, 'invalid_request', 'invalid request body: events:');
  });

  it('every integer in a query is decimal digits only, one rule for after, limit, createdAfter, waitMs and Last-Event-ID', async () => {
    const id = await createRun();
    expect((await request('POST', `/api/v1/runs/${id}/events`, { events: [{ type: 'x.a' }, { type: 'x.b' }] })).status).toBe(200);
    const digits = 'must be a whole number written in decimal digits (0-9)';
    const table: Array<[string, string, string]> = [
      ['hexadecimal after', `/api/v1/runs/${id}/events?after=0x10`, 'after'],
      ['empty after', `/api/v1/runs/${id}/events?after=`, 'after'],
      ['after with spaces', `/api/v1/runs/${id}/events?after=%20%201`, 'after'],
      ['after as an exponent', `/api/v1/runs/${id}/events?after=1e1`, 'after'],
      ['a fraction as limit', `/api/v1/runs/${id}/events?limit=1.5`, 'limit'],
      ['hexadecimal list limit', '/api/v1/runs?limit=0x10', 'limit'],
      ['createdAfter with a sign', '/api/v1/runs?createdAfter=%2B5', 'createdAfter'],
      ['createdBefore in a count', '/api/v1/run-counts?createdBefore=0b11', 'createdBefore'],
      ['hexadecimal SSE after', `/api/v1/runs/${id}/stream?after=0x1`, 'after'],
    ];
    for (const [what, path, field] of table) {
      const res = await request('GET', path);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error.code, what).toBe('invalid_request');
      expect(res.json!.error.message, what).toBe(`invalid query: ${field}: ${digits}`);
    }
    expectError(await request('GET', `/api/v1/runs/${id}/stream`, undefined, { 'last-event-id': '0x5' }), 400, 'invalid_request', 'Last-Event-ID must be a seq (a whole number in decimal digits), got "0x5"');
    // A heartbeat's wait: digits, and no longer than the protocol's bound.
    expectError(await request('POST', `/api/v1/runs/${id}/heartbeat?waitMs=1e3`, {}), 400, 'invalid_request', `invalid query: waitMs: ${digits}`);
    expectError(await request('POST', `/api/v1/runs/${id}/heartbeat?waitMs=60001`, {}), 400, 'invalid_request', 'invalid query: waitMs:');
    const read = (await request('GET', `/api/v1/runs/${id}/events?after=1&limit=10`)).json!;
    expect(read.events.map((e: { seq: number }) => e.seq)).toEqual([2]);
  });

  it('a query parameter given twice is refused naming it and its values, even when each value alone is valid', async () => {
    const id = await createRun();
    const table: Array<[string, string, string, string]> = [
      ['two statuses', 'GET', '/api/v1/runs?status=running&status=failed', 'status: given 2 times (running, failed); give it once'],
      ['two afters', 'GET', `/api/v1/runs/${id}/events?after=1&after=2`, 'after: given 2 times (1, 2); give it once'],
      ['two waits', 'POST', `/api/v1/runs/${id}/heartbeat?waitMs=1&waitMs=2`, 'waitMs: given 2 times (1, 2); give it once'],
      ['two SSE afters', 'GET', `/api/v1/runs/${id}/stream?after=0&after=0`, 'after: given 2 times (0, 0); give it once'],
    ];
    for (const [what, method, path, message] of table) {
      const res = await request(method, path, method === 'POST' ? {} : undefined);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error, what).toMatchObject({ code: 'invalid_request', message: `invalid query: ${message}` });
    }
  });

  it('a whole number far past its bound is told that bound alone, not also 2^53', async () => {
    // Before: "Too big: expected int to be <=9007199254740991 (and 1 more)", never naming the real bound.
    const res = await request('POST', '/api/v1/runs', { name: 'huge lease', leaseTtlMs: 1e20 });
    expectError(res, 400, 'invalid_request', 'invalid request body: leaseTtlMs: Too big: expected number to be <=86400000');
    const token = await request('POST', '/api/v1/tokens', { name: 'huge', scope: 'viewer', expiresInSeconds: 1e20 });
    expect(token.json!.error.message).not.toContain('9007199254740991');
    expect(token.json!.error.message).not.toContain('more');
  });

  it('a query parameter the route does not take is refused naming it and what the route takes: a typo never drops a filter', async () => {
    const id = await createRun();
    // Before: ?statuss=running listed every run, as if no filter had been asked for.
    const table: Array<[string, string, string, string]> = [
      ['a typo of a filter', 'GET', '/api/v1/runs?statuss=running', 'statuss: is not a parameter of this route; this route takes status, name, nameContains, parentId, parentIds, topLevel, label, errorKind, createdAfter, createdBefore, limit, cursor'],
      ['a route that takes none', 'GET', `/api/v1/runs/${id}?after=3`, 'after: is not a parameter of this route; this route takes no query parameters'],
      ['a token on a route that reads it only from a header', 'GET', `/api/v1/runs/${id}/events?token=abc`, 'token: is not a parameter of this route; this route takes after, limit'],
    ];
    for (const [what, method, path, message] of table) {
      const res = await request(method, path);
      expect(res.status, `${what}: ${res.text}`).toBe(400);
      expect(res.json!.error, what).toMatchObject({ code: 'invalid_request', message: `invalid query: ${message}` });
    }
    // The stream a browser opens without headers takes its token from the query, as the auth hook does.
    const sse = await request('HEAD', `/api/v1/runs/${id}/stream?after=0&token=${ADMIN}`);
    expect(sse.status).toBe(200);
  });

  it('a batch over maxEventsPerBatch is 413 naming the setting, which can be raised past 5,000; nothing of it is stored', async () => {
    const id = await createRun();
    const batch = (n: number) => ({ events: Array.from({ length: n }, () => ({ type: 'x.a' })) });
    expect((await request('POST', `/api/v1/runs/${id}/events`, batch(6000))).status).toBe(200);
    const res = await request('POST', `/api/v1/runs/${id}/events`, batch(6001));
    expectError(res, 413, 'payload_too_large', '6001 events in one append, over the limit of 6000 (maxEventsPerBatch on the server); send smaller batches');
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.seq).toBe(6000);
  });

  /** Raw bytes to the server, half-closed; whatever it answers before it closes. */
  const raw = (text: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const url = new URL(inputServer.url);
      const socket = connect(Number(url.port), url.hostname, () => socket.end(text));
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (answer += d));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
    });
  const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };

  it("errors of Node's HTTP parser get the documented error body: 431 headers_too_large, 400 invalid_request naming the fault", async () => {
    const big = await request('GET', '/api/v1/runs', undefined, { 'x-big': 'a'.repeat(20_000) });
    expectError(big, 431, 'headers_too_large', 'the request line and headers are larger than this server reads');
    const longUrl = await request('GET', `/api/v1/runs?name=${'n'.repeat(20_000)}`);
    expectError(longUrl, 431, 'headers_too_large', 'send a shorter URL');
    const control = await raw('POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nIdempotency-Key: a\x01b\r\nContent-Length: 12\r\n\r\n{"name":"a"}');
    expect(control).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(bodyOf(control).error.code).toBe('invalid_request');
    expect(bodyOf(control).error.message).toMatch(/^malformed HTTP request: .*a header value must not hold control characters/);
    const length = await raw('POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 12x\r\n\r\n{"name":"a"}');
    expect(length).toMatch(/^HTTP\/1.1 400 Bad Request\r\n/);
    expect(bodyOf(length).error.message).toMatch(/^malformed HTTP request: .*Content-Length/);
    // Written on the socket, past Fastify and its hooks, yet with the headers every answer carries.
    for (const answer of [control, length]) {
      const head = answer.slice(0, answer.indexOf('\r\n\r\n')).toLowerCase();
      expect(head).toContain("\r\ncontent-security-policy: default-src 'self'");
      expect(head).toContain('\r\nx-content-type-options: nosniff');
      expect(head).toContain('\r\nx-frame-options: deny');
    }
    expect((await request('GET', '/api/v1/runs?name=a')).json!.runs).toEqual([]);
  });

  it('an error quotes at most 200 characters of a path or id the client sent', async () => {
    const longId = 'r'.repeat(10_000);
    const route = await request('GET', `/api/v1/runs/${longId}`);
    expectError(route, 404, 'route_not_found', `no route GET /api/v1/runs/${'r'.repeat(187)}… (10013 characters)`);
    expect(route.text.length).toBeLessThan(400);
    const run = await request('GET', `/api/v1/runs/${'r'.repeat(4000)}`);
    expectError(run, 404, 'run_not_found', `run ${'r'.repeat(200)}… (4000 characters) does not exist`);
    expect(run.text.length).toBeLessThan(700);
  });

  it('a method a path does not take is 405 method_not_allowed with an Allow header, not 404', async () => {
    const id = await createRun();
    const res = await request('PATCH', `/api/v1/runs/${id}`, {});
    expectError(res, 405, 'method_not_allowed', `PATCH is not a method of /api/v1/runs/${id}; it takes GET, HEAD, DELETE`);
    expect(res.headers.get('allow')).toBe('GET, HEAD, DELETE');
    const put = await request('PUT', '/api/v1/runs', {});
    expect([put.status, put.headers.get('allow')]).toEqual([405, 'POST, GET, HEAD']);
    expectError(await request('GET', '/api/v1/no-such-thing'), 404, 'route_not_found', 'no route GET /api/v1/no-such-thing');
    expect((await request('GET', `/api/v1/runs/${id}`)).json!.seq).toBe(0);
  });
});

/**
 * Run `count` cases drawn from `arb` with the suite's seed, `concurrency` at
 * a time (one by one would take minutes of wall time). The same seed draws
 * the same cases in the same order; a failure names its case index.
 */
async function runSeeded<T>(arb: fc.Arbitrary<T>, count: number, concurrency: number, check: (value: T) => Promise<void>): Promise<void> {
  const values = fc.sample(arb, { seed: SEED, numRuns: count });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < values.length) {
      const index = next++;
      try {
        await check(values[index]!);
      } catch (err) {
        throw new Error(`case ${index} of seed ${SEED} (${fc.stringify(values[index]).slice(0, 500)}): ${(err as Error).message}`, { cause: err });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** Write raw bytes, half-close, and return whatever the server answers before it closes. */
function rawHttp(text: string): Promise<string> {
  const url = new URL(server.url);
  cases++;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(text));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

