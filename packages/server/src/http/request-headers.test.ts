import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '@runtrail/test-support';
import type { RunningServer } from '../start.js';
import { testScope } from '../stream/stream.test-kit.js';

/**
 * The request headers the server honours, as the OpenAPI document it serves
 * describes them (law 6: the route table declares them once). A client made
 * from the document sends what it lists and nothing else: each test here
 * sends a header under the name, and with the example, the served document
 * gives, and checks the server does what the document says. The server is
 * watched reading request headers meanwhile: one a route reads without
 * declaring it is a header no generated client would ever send.
 */
const { server: startServer } = testScope();

interface Parameter {
  name: string;
  in: string;
  required: boolean;
  example?: string;
}
interface Operation {
  operationId: string;
  parameters?: Parameter[];
}
interface Served {
  /** Method, path template and operation of every route, by operationId. */
  operations: Map<string, { method: string; template: string; op: Operation }>;
  /** The header parameter `name` of operation `id`; fails the test if the document does not list it. */
  header(id: string, name: string): Parameter & { example: string };
  /** The optional header parameters of operation `id` (not the client header every body-less write needs). */
  declared(id: string): string[];
}

async function served(s: RunningServer): Promise<Served> {
  const doc = (await (await fetch(`${s.url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, Operation>> };
  const operations = new Map<string, { method: string; template: string; op: Operation }>();
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) operations.set(op.operationId, { method: method.toUpperCase(), template, op });
  }
  const optionalHeaders = (id: string) => (operations.get(id)?.op.parameters ?? []).filter((p) => p.in === 'header' && !p.required);
  return {
    operations,
    header(id, name) {
      const parameter = optionalHeaders(id).find((p) => p.name === name);
      expect(parameter, `the served document lists header ${name} on ${id}`).toBeDefined();
      expect(typeof parameter!.example, `${id} ${name}: example`).toBe('string');
      return parameter as Parameter & { example: string };
    },
    declared: (id) => optionalHeaders(id).map((p) => p.name),
  };
}

/**
 * Headers any route may read that are no route's parameter: what HTTP and
 * the document's other parts say (the body's length, framing and media
 * type: the request body; authorization: the security scheme; the client
 * header: its own parameter), and what every request passes through before
 * its route (the Host and Origin checks, the client address behind a
 * proxy, a caller's X-Request-Id kept for the logs, Fastify's own routing,
 * keep-alive and its 404 page for a browser).
 */
const EVERY_ROUTE = new Set([
  'host',
  'origin',
  'authorization',
  'x-runtrail-client',
  'content-type',
  'content-length',
  'content-encoding',
  'transfer-encoding',
  'x-forwarded-for',
  'x-request-id',
  'connection',
  'accept',
  'accept-version',
]);

/** Every request header the server reads while answering, by the operation the request was for. */
function recordHeaderReads(s: RunningServer, operations: Served['operations']): Map<string, Set<string>> {
  const matchers = [...operations].map(([id, { method, template }]) => ({
    id,
    method,
    path: new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }));
  const reads = new Map<string, Set<string>>();
  // Before Fastify's own listener: every read of request.headers, by the server or by Fastify, goes through the proxy.
  s.http.server.prependListener('request', (request: IncomingMessage) => {
    const path = (request.url ?? '').split('?')[0]!;
    const id = matchers.find((m) => m.method === request.method && m.path.test(path))?.id ?? `${request.method} ${path}`;
    const seen = reads.get(id) ?? new Set<string>();
    reads.set(id, seen);
    const note = (key: string | symbol) => {
      if (typeof key === 'string') seen.add(key.toLowerCase());
    };
    request.headers = new Proxy(request.headers, {
      get: (target, key, receiver) => (note(key), Reflect.get(target, key, receiver) as unknown),
      has: (target, key) => (note(key), Reflect.has(target, key)),
      getOwnPropertyDescriptor: (target, key) => (note(key), Reflect.getOwnPropertyDescriptor(target, key)),
    });
  });
  return reads;
}

/** The seqs of the events an SSE answer carried (its `id:` lines), read to its end. */
async function streamedSeqs(response: Response): Promise<number[]> {
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  return [...(await response.text()).matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
}

describe('the request headers of the served OpenAPI document', () => {
  it('each does what the document says when sent as it describes it, and the server reads no header a route does not declare', async () => {
    const s = await startServer();
    // A handler whose command writes an output log (runLog), and ends failed so it can be retried (retryRun).
    s.define('prints', async (ctx) => {
      await ctx.exec(process.execPath, ['-e', 'for (let i = 0; i < 400; i++) console.log(`line ${i} of the output`)']);
      throw new Error('printed, then failed');
    });
    const { operations, header, declared } = await served(s);
    const reads = recordHeaderReads(s, operations);
    const api = (path: string, init: RequestInit = {}) => fetch(`${s.url}/api/v1${path}`, init);
    const json = { 'content-type': 'application/json' };

    // createRun: the same Idempotency-Key twice is one run (a client retrying a create whose answer was lost).
    const idempotency = header('createRun', 'idempotency-key');
    const create = () => api('/runs', { method: 'POST', headers: { ...json, [idempotency.name]: idempotency.example }, body: JSON.stringify({ name: 'headers' }) });
    const first = await create();
    expect(first.status).toBe(201);
    const run = (await first.json()) as { id: string };
    const again = await create();
    expect(again.status).toBe(200);
    expect(((await again.json()) as { id: string }).id).toBe(run.id);
    expect(((await (await api('/runs?name=headers')).json()) as { runs: unknown[] }).runs).toHaveLength(1);

    // streamRun: Last-Event-ID resumes the stream after the seq it names.
    const events = Array.from({ length: 6 }, (_, i) => ({ type: 'x.step', data: { i } }));
    expect((await api(`/runs/${run.id}/events`, { method: 'POST', headers: json, body: JSON.stringify({ events }) })).status).toBe(200);

    // putArtifact: x-runtrail-metadata is the record's metadata.
    const metadata = header('putArtifact', 'x-runtrail-metadata');
    const content = 'a'.repeat(3000);
    const put = await api(`/runs/${run.id}/artifacts/report.txt`, {
      method: 'PUT',
      headers: { 'x-runtrail-client': '1', 'content-type': 'text/plain', [metadata.name]: metadata.example },
      body: content,
    });
    expect(put.status).toBe(201);
    const artifact = (await put.json()) as { metadata: unknown; sha256: string };
    expect(artifact.metadata).toEqual(JSON.parse(metadata.example));
    expect((await api(`/runs/${run.id}/finish`, { method: 'POST', headers: json, body: JSON.stringify({ status: 'succeeded' }) })).status).toBe(200);

    const lastEventId = header('streamRun', 'last-event-id');
    const whole = await streamedSeqs(await api(`/runs/${run.id}/stream`));
    expect(whole).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const resumed = await streamedSeqs(await api(`/runs/${run.id}/stream`, { headers: { [lastEventId.name]: '5' } }));
    expect(resumed).toEqual([6, 7, 8]);

    // getArtifact: Range gives part of it (206); If-Range holds it to the content the client has; If-None-Match spares a copy it has.
    const range = header('getArtifact', 'range');
    const etag = `"${artifact.sha256}"`;
    const part = await api(`/runs/${run.id}/artifacts/report.txt`, { headers: { [range.name]: range.example } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 0-1023/3000');
    expect(await part.text()).toBe(content.slice(0, 1024));
    const ifRange = header('getArtifact', 'if-range');
    const same = await api(`/runs/${run.id}/artifacts/report.txt`, { headers: { [range.name]: 'bytes=2990-', [ifRange.name]: etag } });
    expect(same.status).toBe(206);
    expect(await same.text()).toBe('a'.repeat(10));
    const replaced = await api(`/runs/${run.id}/artifacts/report.txt`, { headers: { [range.name]: 'bytes=2990-', [ifRange.name]: ifRange.example } });
    expect(replaced.status).toBe(200);
    expect((await replaced.text()).length).toBe(3000);
    const ifNoneMatch = header('getArtifact', 'if-none-match');
    expect((await api(`/runs/${run.id}/artifacts/report.txt`, { headers: { [ifNoneMatch.name]: etag } })).status).toBe(304);

    // runLog: Range gives part of the log (206).
    const started = await api('/runs', { method: 'POST', headers: json, body: JSON.stringify({ name: 'prints', execute: true }) });
    const handled = (await started.json()) as { id: string };
    await waitUntil(async () => ((await (await api(`/runs/${handled.id}`)).json()) as { status: string }).status === 'failed', {
      what: 'the handler run to print and fail',
      timeoutMs: 15_000,
    });
    const logRange = header('runLog', 'range');
    const log = await api(`/runs/${handled.id}/log`, { headers: { [logRange.name]: logRange.example } });
    expect(log.status).toBe(206);
    expect(log.headers.get('content-range')).toMatch(/^bytes 0-1023\/\d{4,}$/);
    expect((await log.text()).startsWith('line 0 of the output\nline 1 of the output\n')).toBe(true);

    // retryRun: the same Idempotency-Key twice is one new attempt.
    const retryKey = header('retryRun', 'idempotency-key');
    const retry = () => api(`/runs/${handled.id}/retry`, { method: 'POST', headers: { 'x-runtrail-client': '1', [retryKey.name]: retryKey.example } });
    const attempt = await retry();
    expect(attempt.status).toBe(201);
    const attemptId = ((await attempt.json()) as { id: string }).id;
    const repeated = await retry();
    expect(repeated.status).toBe(200);
    expect(((await repeated.json()) as { id: string }).id).toBe(attemptId);

    // Every other read, once with real ids, so each route's handler runs past its lookups.
    for (const [id, { method, template }] of operations) {
      if (method !== 'GET' || reads.has(id) || id === 'apiDocs') continue;
      const path = template.replace('{id}', run.id).replace('{name}', 'report.txt');
      const response = await fetch(s.url + path);
      await response.arrayBuffer();
      expect(response.status, `${id}: ${path}`).toBeLessThan(500);
    }
    // An import of the run's own export: answered as a repeated import, after reading the whole archive.
    const archive = await (await api(`/runs/${run.id}/export`)).arrayBuffer();
    const imported = await api('/import', { method: 'POST', headers: { 'x-runtrail-client': '1', 'content-type': 'application/x-tar' }, body: archive });
    expect(imported.status).toBe(200);

    const undeclared: string[] = [];
    const unread: string[] = [];
    for (const [id, names] of reads) {
      const allowed = new Set(declared(id));
      for (const name of names) if (!allowed.has(name) && !EVERY_ROUTE.has(name)) undeclared.push(`${id} reads ${name}`);
      for (const name of allowed) if (!names.has(name)) unread.push(`${id} declares ${name}`);
    }
    // A header a route reads is in the document; a header the document lists is one the route reads.
    expect(undeclared).toEqual([]);
    expect(unread).toEqual([]);
    for (const id of ['createRun', 'retryRun', 'streamRun', 'putArtifact', 'getArtifact', 'runLog']) expect(declared(id).length, id).toBeGreaterThan(0);
  });

  it('a browser page on an allowed origin may send every header the document lists (the CORS preflight allows each, on its method)', async () => {
    const origin = 'http://app.example:8080';
    const s = await startServer({ corsOrigins: [origin] });
    const { operations } = await served(s);
    const refused: string[] = [];
    let checked = 0;
    for (const [id, { method, template, op }] of operations) {
      const headers = (op.parameters ?? []).filter((p) => p.in === 'header').map((p) => p.name);
      if (headers.length === 0) continue;
      checked++;
      const path = template.replace(/\{[^}]+\}/g, 'x');
      const preflight = await fetch(s.url + path, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': [...headers, 'content-type', 'authorization'].join(', ') },
      });
      const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
      const methods = (preflight.headers.get('access-control-allow-methods') ?? '').split(',').map((m) => m.trim());
      if (preflight.status !== 204) refused.push(`${id}: preflight answered ${preflight.status}`);
      for (const name of [...headers, 'content-type', 'authorization']) if (!allowed.includes(name)) refused.push(`${id}: ${name} not allowed`);
      if (!methods.includes(method)) refused.push(`${id}: ${method} not allowed`);
    }
    expect(checked).toBeGreaterThanOrEqual(6);
    expect(refused).toEqual([]);
  });
});
