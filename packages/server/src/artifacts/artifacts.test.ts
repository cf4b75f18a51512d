import { createHash } from 'node:crypto';
import { readdirSync, existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { watchRun, type WebSocketConstructor } from '@runtrail/client';
import { CLIENT_HEADER, buildPath, type Artifact, type Run, type RunEvent } from '@runtrail/protocol';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { startServer, type RunningServer } from '../start.js';
import { contentDisposition, parseRange } from './artifact-routes.js';

/**
 * Artifacts end to end (issue 16): real HTTP on loopback and real content
 * files, checked on disk; on a real SQLite file (content in the data dir)
 * and on PostgreSQL in a schema of its own (content in a configured
 * artifacts directory, as a PostgreSQL deployment keeps it).
 */

const MAX_ARTIFACT = 64 * 1024;
const MAX_RUN = 160 * 1024;
let server: RunningServer;
let dir: ReturnType<typeof tempDir>;
let schema: string | null = null;

async function startOn(kind: 'sqlite' | 'postgres'): Promise<void> {
  dir = tempDir('runtrail-artifacts-');
  const limits = { maxArtifactBytes: MAX_ARTIFACT, maxRunArtifactBytes: MAX_RUN };
  if (kind === 'postgres') {
    schema = await freshSchema();
    server = await startServer({
      port: 0,
      dataDir: dir.path,
      logLevel: 'silent',
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema,
      artifactsDir: join(dir.path, 'content'),
      ...limits,
    });
  } else {
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', ...limits });
  }
  expect(server.store.kind).toBe(kind);
}

afterEach(async () => {
  await server?.close();
  if (schema) await dropSchema(schema);
  schema = null;
  dir.remove();
});

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(300, 7)]);
const WAV = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVE'), Buffer.alloc(200, 1)]);

async function createRun(): Promise<Run> {
  const res = await fetch(server.url + buildPath('createRun', {}), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'pipeline' }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Run;
}

async function put(runId: string, name: string, body: Buffer | string, headers: Record<string, string> = {}, query = '') {
  const res = await fetch(server.url + buildPath('putArtifact', { id: runId, name }) + query, { method: 'PUT', body, headers: { [CLIENT_HEADER]: '1', ...headers } });
  return { status: res.status, body: (await res.json()) as any };
}

async function list(runId: string): Promise<Artifact[]> {
  const res = await fetch(server.url + buildPath('listArtifacts', { id: runId }));
  return ((await res.json()) as { artifacts: Artifact[] }).artifacts;
}

async function finish(runId: string): Promise<void> {
  const res = await fetch(server.url + buildPath('finishRun', { id: runId }), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 'succeeded' }),
  });
  expect(res.status).toBe(200);
}

/** Every file of the server's artifact store: content and staging. */
function filesOnDisk(): string[] {
  const root = server.config.artifactsDir ?? join(dir.path, 'artifacts');
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((p) => /[0-9a-f]{64}$|staging\/.+/.test(p));
}

describe.each(['sqlite', 'postgres'] as const)('on %s', (kind) => {
  beforeEach(() => startOn(kind));

  describe('artifacts: a pipeline stores six of them', () => {
    it('lists them in order with their metadata, serves each byte-identical with its type and a range, and a watcher sees six artifact events live', async () => {
      const run = await createRun();
      const seen: RunEvent[] = [];
      const watch = watchRun(run.id, { url: server.url, WebSocket: WebSocket as unknown as WebSocketConstructor });
      watch.subscribe(() => {
        seen.splice(0, seen.length, ...watch.getState().events.filter((e) => e.type === 'artifact'));
      });
      await waitUntil(() => watch.getState().connection === 'live', { what: 'the watcher to be live' });

      const six: Array<{ name: string; body: Buffer; type?: string; expectType: string; metadata?: unknown }> = [
        { name: '01_input.txt', body: Buffer.from('Translate: bonjour le monde\n'), type: 'text/plain; charset=utf-8', expectType: 'text/plain; charset=utf-8', metadata: { lang: 'fr' } },
        { name: '02_translation.json', body: Buffer.from(JSON.stringify({ text: 'hello world', model: 'm1' })), type: 'application/json', expectType: 'application/json', metadata: { step: 2, ok: true } },
        { name: '03_verdict.md', body: Buffer.from('# Safe\n\n*no issues* — ünïcode\n'), expectType: 'text/markdown; charset=utf-8' },
        { name: '04_scores.csv', body: Buffer.from('doc,score\n1,0.9\n2,0.7\n'), type: 'text/csv', expectType: 'text/csv' },
        { name: '05_audio.wav', body: WAV, expectType: 'audio/wav' },
        { name: '06_output_image.png', body: PNG, expectType: 'image/png', metadata: { width: 1, height: 1 } },
      ];
      for (const a of six) {
        const headers: Record<string, string> = {};
        if (a.type) headers['content-type'] = a.type;
        if (a.metadata) headers['x-runtrail-metadata'] = JSON.stringify(a.metadata);
        const res = await put(run.id, a.name, a.body, headers);
        expect(res.status, JSON.stringify(res.body)).toBe(201);
      }

      const listed = await list(run.id);
      expect(listed.map((a) => [a.ordinal, a.name, a.contentType, a.size, a.metadata])).toEqual(
        six.map((a, i) => [i + 1, a.name, a.expectType, a.body.length, a.metadata ?? null]),
      );
      for (const [i, a] of six.entries()) {
        const res = await fetch(server.url + buildPath('getArtifact', { id: run.id, name: a.name }));
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(a.body), a.name).toBe(true);
        expect(res.headers.get('content-type')).toBe(a.expectType);
        expect(res.headers.get('content-length')).toBe(String(a.body.length));
        expect(res.headers.get('etag')).toBe(`"${listed[i]!.sha256}"`);
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('content-disposition')).toBe(contentDisposition('inline', a.name));
      }

      const ranged = await fetch(server.url + buildPath('getArtifact', { id: run.id, name: '06_output_image.png' }), { headers: { range: 'bytes=4-11' } });
      expect(ranged.status).toBe(206);
      expect(ranged.headers.get('content-range')).toBe(`bytes 4-11/${PNG.length}`);
      expect(Buffer.from(await ranged.arrayBuffer()).equals(PNG.subarray(4, 12))).toBe(true);
      const unchanged = await fetch(server.url + buildPath('getArtifact', { id: run.id, name: '01_input.txt' }), { headers: { 'if-none-match': `"${listed[0]!.sha256}"` } });
      expect(unchanged.status).toBe(304);

      await waitUntil(() => seen.length === 6, { what: 'six artifact events at the watcher' });
      expect(seen.map((e) => (e.data as { name: string }).name)).toEqual(six.map((a) => a.name));
      expect(seen[1]!.data).toEqual({ ...listed[1], runId: undefined, metadata: { step: 2, ok: true } });
      watch.close();
      const snapshot = (await server.runs.get(run.id)).snapshot;
      expect(snapshot.artifacts.map((a) => [a.ordinal, a.name, a.sha256])).toEqual(listed.map((a) => [a.ordinal, a.name, a.sha256]));
    });

    it('answers the same content again with 200 and no new event, refuses other content with 409 unless ?replace=true', async () => {
      const run = await createRun();
      expect((await put(run.id, 'a.txt', 'one')).status).toBe(201);
      const again = await put(run.id, 'a.txt', 'one');
      expect(again.status).toBe(200);
      const conflict = await put(run.id, 'a.txt', 'two');
      expect(conflict.status).toBe(409);
      expect(conflict.body.error.code).toBe('artifact_conflict');
      const replaced = await put(run.id, 'a.txt', 'two', {}, '?replace=true');
      expect(replaced.status).toBe(201);
      expect(replaced.body).toMatchObject({ ordinal: 1, size: 3 });
      const text = await (await fetch(server.url + buildPath('getArtifact', { id: run.id, name: 'a.txt' }))).text();
      expect(text).toBe('two');
      // A download resumed with the ETag of the old content gets the new one whole, not a piece to join to the old.
      const url = server.url + buildPath('getArtifact', { id: run.id, name: 'a.txt' });
      const oldTag = `"${createHash('sha256').update('one').digest('hex')}"`;
      const resumedOld = await fetch(url, { headers: { range: 'bytes=1-', 'if-range': oldTag } });
      expect([resumedOld.status, await resumedOld.text()]).toEqual([200, 'two']);
      const resumedNew = await fetch(url, { headers: { range: 'bytes=1-', 'if-range': `"${replaced.body.sha256}"` } });
      expect([resumedNew.status, await resumedNew.text()]).toEqual([206, 'wo']);
      // The replaced content ("one") is referenced by nothing and gone.
      expect(filesOnDisk()).toHaveLength(1);
      const events = (await server.store.readEvents(run.id, 0, 100)).filter((e) => e.type === 'artifact');
      expect(events).toHaveLength(2);
    });

    it('serves HTML and SVG as attachments with nosniff and a sandbox, so they cannot run script in the dashboard origin', async () => {
      const run = await createRun();
      await put(run.id, 'page.html', '<script>alert(1)</script>', { 'content-type': 'text/html' });
      // A Buffer body carries no Content-Type: the type is sniffed from the name.
      await put(run.id, 'pic.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'));
      await put(run.id, 'clip.xml', '<x:video xmlns:x="urn:x"/>', { 'content-type': 'video/x-clip+xml' });
      for (const name of ['page.html', 'pic.svg', 'clip.xml']) {
        const res = await fetch(server.url + buildPath('getArtifact', { id: run.id, name }));
        expect(res.headers.get('content-disposition')).toMatch(/^attachment;/);
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('content-security-policy')).toMatch(/sandbox/);
      }
      expect((await list(run.id)).map((a) => a.contentType)).toEqual(['text/html', 'image/svg+xml', 'video/x-clip+xml']);
    });
  });

  describe('artifacts: refused uploads leave nothing behind', () => {
    it('refuses path-traversal, control-character and bidi-override names with 400', async () => {
      const run = await createRun();
      for (const name of ['../escape.txt', 'a/b.txt', 'a\\b.txt', 'x\u0000y', 'bell\u0007', 'n'.repeat(401), 'evil\u202egnp.exe', 'x\u2066y.txt']) {
        const res = await put(run.id, name, 'data');
        expect(res.status, name).toBe(400);
        expect(res.body.error.code).toBe('invalid_request');
      }
      expect((await put(run.id, 'evil\u202egnp.exe', 'data')).body.error.message).toMatch(/bidirectional control character/);
      // Raw requests whose paths decode to traversal names (fetch would normalise them away).
      for (const raw of ['..', '%2E%2E', '..%2F..%2Fpasswd', '%2e%2e%5cwin.ini']) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpRequest(`${server.url}/api/v1/runs/${run.id}/artifacts/${raw}`, { method: 'PUT', headers: { [CLIENT_HEADER]: '1' } }, (res) => {
            res.resume();
            resolve(res.statusCode!);
          });
          req.on('error', reject);
          req.end('data');
        });
        // Fastify resolves a literal dot segment before routing (404, no route); encoded ones reach the name check (400).
        expect([400, 404], raw).toContain(status);
      }
      expect(await list(run.id)).toEqual([]);
      expect(filesOnDisk()).toEqual([]);
      // Right-to-left text itself is a name like any other.
      expect((await put((await createRun()).id, '\u05d3\u05d5\u05f4\u05d7.txt', 'data')).status).toBe(201);
    });

    it('refuses a Content-Type that is no media type with 400 naming the header, not "send JSON"', async () => {
      const run = await createRun();
      for (const type of ['garbage', 'text', '/plain']) {
        const res = await put(run.id, 'notes.txt', 'hello', { 'content-type': type });
        expect(res.status, type).toBe(400);
        expect(res.body.error.code).toBe('invalid_request');
        // Before: "send JSON with content-type application/json: Unsupported Media Type", to an upload that takes any type.
        expect(res.body.error.message).toBe(
          `content-type "${type}" is not a media type (type/subtype, such as text/plain or image/png); send one, or none to have the type sniffed`,
        );
      }
      expect(await list(run.id)).toEqual([]);
      expect(filesOnDisk()).toEqual([]);
      expect((await put(run.id, 'notes.txt', 'hello', { 'content-type': 'text/plain' })).status).toBe(201);
    });

    it('stores names as long as the limit allows, in any script, and names the limit past it', async () => {
      const run = await createRun();
      const names = ['n'.repeat(400), '😀'.repeat(200), 'é'.repeat(400)];
      for (const name of names) {
        const res = await put(run.id, name, `content of ${name.slice(0, 4)}`);
        expect(res.status, name.slice(0, 4)).toBe(201);
        const back = await fetch(server.url + buildPath('getArtifact', { id: run.id, name }));
        expect(await back.text()).toBe(`content of ${name.slice(0, 4)}`);
      }
      expect((await list(run.id)).map((a) => a.name)).toEqual(names);
      const tooLong = await put(run.id, 'n'.repeat(401), 'data');
      expect(tooLong.status).toBe(400);
      expect(tooLong.body.error.message).toContain('is longer than 400 characters');
    });

    it('refuses an artifact over the per-artifact limit and a run over its total with 413, storing nothing', async () => {
      const run = await createRun();
      const big = await put(run.id, 'big.bin', Buffer.alloc(MAX_ARTIFACT + 1, 1));
      expect(big.status).toBe(413);
      expect(big.body.error.code).toBe('payload_too_large');
      // Without a Content-Length, the limit is found while streaming.
      const chunks = (async function* () {
        for (let i = 0; i < 5; i++) yield Buffer.alloc(MAX_ARTIFACT / 4, i);
      })();
      const streamed = await fetch(server.url + buildPath('putArtifact', { id: run.id, name: 'streamed.bin' }), {
        method: 'PUT',
        headers: { [CLIENT_HEADER]: '1' },
        body: ReadableStreamFrom(chunks),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
      expect(await list(run.id)).toEqual([]);
      expect(filesOnDisk()).toEqual([]);

      expect((await put(run.id, 'one.bin', Buffer.alloc(MAX_ARTIFACT, 1))).status).toBe(201);
      expect((await put(run.id, 'two.bin', Buffer.alloc(MAX_ARTIFACT, 2))).status).toBe(201);
      const over = await put(run.id, 'three.bin', Buffer.alloc(MAX_RUN - 2 * MAX_ARTIFACT + 1, 3));
      expect(over.status).toBe(413);
      expect(over.body.error.message).toMatch(/may hold/);
      expect((await list(run.id)).map((a) => a.name)).toEqual(['one.bin', 'two.bin']);
      expect(filesOnDisk()).toHaveLength(2);
    });

    it('answers an upload far over the limit with its 413 too, not a reset connection, whether it declared its length or not', async () => {
      const run = await createRun();
      // Far more than the server reads of a refused body before it hangs up (16 MiB).
      const SIZE = 48 * 1024 * 1024;
      const chunk = Buffer.alloc(1024 * 1024, 5);
      const body = () =>
        ReadableStreamFrom(
          (async function* () {
            for (let sent = 0; sent < SIZE; sent += chunk.length) yield chunk;
          })(),
        );
      const streamed = await fetch(server.url + buildPath('putArtifact', { id: run.id, name: 'huge.bin' }), {
        method: 'PUT',
        headers: { [CLIENT_HEADER]: '1' },
        body: body(),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).toBe(413);
      expect(((await streamed.json()) as any).error.message).toMatch(/at most 65536 bytes; nothing was stored/);

      // As curl -T sends a file: its length declared, and Expect: 100-continue.
      const declared = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${server.url}${buildPath('putArtifact', { id: run.id, name: 'huge.bin' })}`, {
          method: 'PUT',
          headers: { 'content-length': String(SIZE), expect: '100-continue', [CLIENT_HEADER]: '1' },
        });
        req.on('response', (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: text }));
        });
        req.on('error', reject);
        void (async () => {
          for (let sent = 0; sent < SIZE && !req.destroyed; sent += chunk.length) {
            if (!req.write(chunk)) await new Promise((r) => req.once('drain', r).once('close', r));
          }
          req.end();
        })();
      });
      expect(declared.status).toBe(413);
      expect(JSON.parse(declared.body).error.message).toMatch(/the upload \(50331648 bytes\) is too large/);
      expect(await list(run.id)).toEqual([]);
      await waitUntil(() => filesOnDisk().length === 0, { what: 'no content or staging file left' });
    });

    it('refuses uploads to an ended run with 409 (a retried one of what it stored is 200) and to a missing run with 404', async () => {
      const run = await createRun();
      expect((await put(run.id, 'kept.txt', 'final')).status).toBe(201);
      await finish(run.id);
      const late = await put(run.id, 'late.txt', 'too late');
      expect(late.status).toBe(409);
      expect(late.body.error.code).toBe('run_already_terminal');
      // A PUT retried after the run ended (its answer was lost) is answered as stored; a change is refused, replace or not.
      expect((await put(run.id, 'kept.txt', 'final')).status).toBe(200);
      for (const query of ['', '?replace=true']) {
        const changed = await put(run.id, 'kept.txt', 'changed', {}, query);
        expect(changed.status, query).toBe(409);
        expect(changed.body.error.code).toBe('run_already_terminal');
      }
      expect(await (await fetch(server.url + buildPath('getArtifact', { id: run.id, name: 'kept.txt' }))).text()).toBe('final');
      expect((await put('no-such-run', 'a.txt', 'x')).status).toBe(404);
      expect((await list(run.id)).map((a) => a.name)).toEqual(['kept.txt']);
      expect(filesOnDisk()).toHaveLength(1);
      const missing = await fetch(server.url + buildPath('getArtifact', { id: run.id, name: 'nope.txt' }));
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as any).error.code).toBe('artifact_not_found');
    });

    it('rolls back an upload cut off midway: no record, no event, no content, no staging file', async () => {
      const run = await createRun();
      const seqBefore = (await server.runs.get(run.id)).seq;
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${server.url}${buildPath('putArtifact', { id: run.id, name: 'cut.bin' })}`, {
          method: 'PUT',
          headers: { 'content-length': String(MAX_ARTIFACT), [CLIENT_HEADER]: '1' },
        });
        req.on('error', () => resolve());
        req.write(Buffer.alloc(4096, 9), () => {
          // Wait until the server holds a staging file for it, then drop the connection.
          void waitUntil(() => filesOnDisk().some((f) => f.startsWith('staging')), { what: 'the upload to be staging' }).then(() => {
            req.destroy();
            resolve();
          });
        });
      });
      await waitUntil(() => filesOnDisk().length === 0, { what: 'the staging file to be removed' });
      expect(await list(run.id)).toEqual([]);
      expect((await server.runs.get(run.id)).seq).toBe(seqBefore);
    });

    it('deleting a run deletes its artifacts; content another run shares stays', async () => {
      const a = await createRun();
      const b = await createRun();
      await put(a.id, 'shared.txt', 'same bytes');
      await put(a.id, 'own.txt', 'only in a');
      await put(b.id, 'copy.txt', 'same bytes');
      expect(filesOnDisk()).toHaveLength(2);
      await finish(a.id);
      expect((await fetch(server.url + buildPath('deleteRun', { id: a.id }), { method: 'DELETE', headers: { [CLIENT_HEADER]: '1' } })).status).toBe(204);
      expect(filesOnDisk()).toHaveLength(1);
      const shared = await fetch(server.url + buildPath('getArtifact', { id: b.id, name: 'copy.txt' }));
      expect(await shared.text()).toBe('same bytes');
      expect((await fetch(server.url + buildPath('listArtifacts', { id: a.id }))).status).toBe(404);
    });

    it('refuses artifact events that claim to be stored ones from producers', async () => {
      const run = await createRun();
      const res = await fetch(server.url + buildPath('appendEvents', { id: run.id }), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events: [{ type: 'artifact', data: { name: 'x', ordinal: 1, sha256: 'a'.repeat(64) } }] }),
      });
      expect(res.status).toBe(400);
    });

    it('refuses an artifact event from a producer that neither links content (uri) nor was stored, naming uri, and stores nothing', async () => {
      const run = await createRun();
      const append = (events: unknown[]) =>
        fetch(server.url + buildPath('appendEvents', { id: run.id }), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ events }),
        });
      const res = await append([{ type: 'log', data: { level: 'info', message: 'before' } }, { type: 'artifact', data: { name: 'report.pdf', size: 10 } }]);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { message: string } };
      expect(body.error.message).toContain('events[1].data.uri');
      expect(body.error.message).toContain('PUT /api/v1/runs/:id/artifacts/:name');
      const linked = await append([{ type: 'artifact', data: { name: 'report.pdf', uri: 's3://bucket/report.pdf' } }]);
      expect(linked.status).toBe(200);
      const events = (await (await fetch(server.url + buildPath('readEvents', { id: run.id }))).json()) as { events: Array<{ type: string; data: { uri?: string } }> };
      expect(events.events.filter((e) => e.type !== 'run.started').map((e) => [e.type, e.data.uri])).toEqual([['artifact', 's3://bucket/report.pdf']]);
    });
  });
});

describe('artifacts: ranges and names', () => {
  it('parses single byte ranges and refuses unsatisfiable ones', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange(undefined, 100)).toBeNull();
  });

  it('quotes a non-ASCII name for Content-Disposition without breaking the header', () => {
    expect(contentDisposition('attachment', 'résumé "final".html')).toBe(
      `attachment; filename="r_sum_ _final_.html"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.html`,
    );
  });
});

function ReadableStreamFrom(source: AsyncIterable<Buffer>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
}
