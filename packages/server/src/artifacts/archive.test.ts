import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import tar from 'tar-stream';
import { RuntrailClient } from '@runtrail/client';
import { CLIENT_HEADER, EXPORT_ESTIMATED_BYTES_HEADER, buildPath, type Run } from '@runtrail/protocol';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import type { ServerConfigInput } from '../config.js';
import { startServer, type RunningServer } from '../start.js';
import { readArchive } from './archive.js';
import type { ArtifactService } from './artifact-service.js';

/**
 * Export from one server, import into a fresh one (issue 16): the run comes
 * back identical; bad archives are refused with 400 and change nothing.
 * Both stores, each way round: a real SQLite file, and PostgreSQL in a
 * schema of its own with the content in a configured artifacts directory.
 */

type StoreKind = 'sqlite' | 'postgres';

let dir: ReturnType<typeof tempDir>;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(() => {
  dir = tempDir('runtrail-archive-');
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  dir.remove();
});

async function serverOn(kind: StoreKind, name: string, options: ServerConfigInput = {}): Promise<RunningServer> {
  const config: ServerConfigInput = { port: 0, dataDir: join(dir.path, name), logLevel: 'silent', ...options };
  if (kind === 'postgres') {
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    Object.assign(config, { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema, artifactsDir: join(dir.path, `${name}-content`) });
  }
  const server = await startServer(config);
  cleanups.push(() => server.close());
  return server;
}

/** Every read of a run's events from `server`'s store from now on: how many events and bytes each returned. */
function recordEventReads(server: RunningServer): Array<{ count: number; bytes: number }> {
  const reads: Array<{ count: number; bytes: number }> = [];
  const store = server.store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const sizes: Record<string, (result: never) => { count: number; bytes: number }> = {
    readEvents: (events: unknown[]) => ({ count: events.length, bytes: events.reduce<number>((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0) }),
    readEventTexts: (texts: Array<{ json: string }>) => ({ count: texts.length, bytes: texts.reduce((n, t) => n + Buffer.byteLength(t.json), 0) }),
    readEventTextPage: ({ texts }: { texts: Array<{ json: string }> }) => ({ count: texts.length, bytes: texts.reduce((n, t) => n + Buffer.byteLength(t.json), 0) }),
  };
  for (const [method, size] of Object.entries(sizes)) {
    const original = store[method]!;
    store[method] = async (...args: unknown[]) => {
      const result = await original.apply(server.store, args);
      reads.push(size(result as never));
      return result;
    };
  }
  return reads;
}

async function endedRunWithArtifacts(server: RunningServer, token?: string): Promise<Run> {
  const client = new RuntrailClient({ url: server.url, token });
  const run = await client.createRun({ name: 'export-me', input: { prompt: 'p' }, labels: { team: 'a' } });
  run.phase('render');
  await run.call('doc_1', async () => 1);
  run.progress(1, 2, 'half');
  await run.artifact('01_input.txt', 'input text', { metadata: { lang: 'fr' } });
  await run.artifact('02_image.png', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(5000, 3)]));
  await run.artifact('03_same.txt', 'input text');
  run.phaseEnd('render');
  return run.succeed({ ok: true });
}

async function exportArchive(server: RunningServer, runId: string): Promise<Buffer> {
  const res = await fetch(server.url + buildPath('exportRun', { id: runId }));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/x-tar');
  return Buffer.from(await res.arrayBuffer());
}

async function importInto(server: RunningServer, body: Buffer, token?: string) {
  const res = await fetch(server.url + buildPath('importRun', {}), {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-tar', [CLIENT_HEADER]: '1', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** Every content file of the server's artifact store, and anything left in staging. */
/** Each archive is refused with 400 and a message matching its pattern, and the server is left holding no run and no content. */
async function expectEachRefused(target: RunningServer, cases: Array<[string, Buffer, RegExp]>): Promise<void> {
  for (const [what, body, message] of cases) {
    const res = await importInto(target, body);
    expect(res.status, `${what}: ${JSON.stringify(res.body).slice(0, 300)}`).toBe(400);
    expect(res.body.error.message, what).toMatch(message);
    expect(res.body.error.message, what).toMatch(/nothing was imported/);
  }
  expect((await new RuntrailClient({ url: target.url }).listRuns()).runs).toEqual([]);
  expect(blobFiles(target)).toEqual([]);
}

function blobFiles(server: RunningServer): string[] {
  const root = server.config.artifactsDir ?? join(server.config.dataDir, 'artifacts');
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((p) => /[0-9a-f]{64}$|staging\/./.test(p));
}

async function tarOf(entries: Array<{ name: string; content: string | Buffer; type?: 'file' | 'symlink' }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type === 'symlink') pack.entry({ name: e.name, type: 'symlink', linkname: '/etc/passwd' });
    else pack.entry({ name: e.name }, e.content);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

describe.each([
  ['sqlite', 'postgres'],
  ['postgres', 'sqlite'],
] as Array<[StoreKind, StoreKind]>)('export from %s, import into a fresh %s', (from, to) => {
  it('the imported run is identical: record, events, snapshot, artifacts by sha256 and bytes; importing it again answers it (200), another run under its id is 409', async () => {
    const [source, target] = [await serverOn(from, 'a'), await serverOn(to, 'b')];
    expect([source.store.kind, target.store.kind]).toEqual([from, to]);
    const run = await endedRunWithArtifacts(source);
    const archive = await exportArchive(source, run.id);
    const imported = await importInto(target, archive);
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);

    const a = new RuntrailClient({ url: source.url });
    const b = new RuntrailClient({ url: target.url });
    const [ra, rb] = [await a.getRun(run.id), await b.getRun(run.id)];
    expect(rb).toEqual(ra);
    expect(rb.snapshot.artifacts.map((x) => x.sha256)).toHaveLength(3);
    expect((await b.readEvents(run.id)).events).toEqual((await a.readEvents(run.id)).events);
    const [la, lb] = [await a.listArtifacts(run.id), await b.listArtifacts(run.id)];
    expect(lb).toEqual(la);
    for (const art of la) {
      const [ca, cb] = [await (await a.fetchArtifact(run.id, art.name)).arrayBuffer(), await (await b.fetchArtifact(run.id, art.name)).arrayBuffer()];
      expect(Buffer.from(cb).equals(Buffer.from(ca)), art.name).toBe(true);
    }
    // Identical content is in the archive, and on disk, once.
    expect(blobFiles(target)).toHaveLength(2);

    // The same archive again (a client retrying after it lost the answer): the run as it is here, nothing changed.
    // Before: 409 run_already_exists, so a retried import reported a failure for what had worked.
    const again = await importInto(target, archive);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    const { observers: _observers, ...record } = rb as Run & { observers?: unknown };
    expect(again.body).toEqual(JSON.parse(JSON.stringify(record)));
    expect(blobFiles(target)).toHaveLength(2);
    // A different run under the same id (here: another end time) is still refused, and changes nothing.
    const other = await importInto(target, await edited(archive, { run: (r) => (r.finishedAt += 1) }));
    expect(other.status, JSON.stringify(other.body)).toBe(409);
    expect(other.body.error.code).toBe('run_already_exists');
    // It says the archive differs from what is stored, and where: before, the bare "already exists" read as a plain repeat.
    expect(other.body.error.message).toBe(
      `run ${run.id} already exists on this server with other content (its record's finishedAt differs); delete it first to import this archive; nothing was imported`,
    );
    expect(other.body.error.details).toEqual({ runId: run.id, differs: { runId: run.id, what: 'record', field: 'finishedAt' } });
    expect(await b.getRun(run.id)).toEqual(rb);
    expect(blobFiles(target)).toHaveLength(2);
    // The same record (id, name, times, status, last seq) over other events, as many of them, or other artifact
    // records: not what is here. Before, only the record was compared, and these got 200 as if their content were stored.
    let progressSeq = 0;
    const otherEvents = await edited(archive, {
      run: (r) => (r.snapshot.progress.message = 'edited'),
      events: (events) => {
        const progress = events.find((e) => e.type === 'progress');
        progress.data.message = 'edited';
        progressSeq = progress.seq;
      },
    });
    let artifactName = '';
    const otherRecords = await editedEntry(archive, 'artifacts.json', (records) => {
      records[0].metadata = { lang: 'de' };
      artifactName = records[0].name;
    });
    expect(progressSeq).toBeGreaterThan(1);
    for (const [what, changed, where, differs] of [
      ['events', otherEvents, `its events differ from seq ${progressSeq}`, { what: 'events', seq: progressSeq }],
      ['artifact records', otherRecords, `artifact ${JSON.stringify(artifactName)} differs`, { what: 'artifact', artifact: artifactName }],
    ] as const) {
      const res = await importInto(target, changed);
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(409);
      expect(res.body.error.code).toBe('run_already_exists');
      expect(res.body.error.message, what).toBe(`run ${run.id} already exists on this server with other content (${where}); delete it first to import this archive; nothing was imported`);
      expect(res.body.error.details, what).toEqual({ runId: run.id, differs: { runId: run.id, ...differs } });
    }
    expect((await b.readEvents(run.id)).events).toEqual((await a.readEvents(run.id)).events);
    expect(await b.listArtifacts(run.id)).toEqual(la);
    expect(blobFiles(target)).toHaveLength(2);
  });

  it('refuses truncated, malformed and path-traversal archives with 400 and changes nothing', async () => {
    const [source, target] = [await serverOn(from, 'a'), await serverOn(to, 'b')];
    const run = await endedRunWithArtifacts(source);
    const archive = await exportArchive(source, run.id);
    const manifest = { format: 'runtrail-run', version: 1, runId: run.id };
    const bad: Array<[string, Buffer]> = [
      ['truncated', archive.subarray(0, Math.floor(archive.length * 0.6))],
      ['cut inside the first header', archive.subarray(0, 300)],
      ['not a tar', Buffer.from('hello, this is not an archive at all '.repeat(40))],
      ['path traversal', await tarOf([{ name: 'runtrail-export.json', content: JSON.stringify(manifest) }, { name: '../../escaped.txt', content: 'x' }])],
      ['absolute path', await tarOf([{ name: '/tmp/escaped.txt', content: 'x' }])],
      ['traversal inside blobs/', await tarOf([{ name: `blobs/../../${'a'.repeat(64)}`, content: 'x' }])],
      ['a symlink', await tarOf([{ name: 'run.json', content: '', type: 'symlink' }])],
      ['content that is not its hash', await tarOf([{ name: `blobs/${'a'.repeat(64)}`, content: 'not that' }])],
      ['no manifest', await tarOf([{ name: 'run.json', content: '{}' }])],
    ];
    for (const [what, body] of bad) {
      const res = await importInto(target, body);
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code).toBe('invalid_request');
      expect(res.body.error.message, what).toMatch(/nothing was imported/);
    }
    expect((await new RuntrailClient({ url: target.url }).listRuns()).runs).toEqual([]);
    expect(blobFiles(target)).toEqual([]);
    expect(existsSync(join(dir.path, 'escaped.txt'))).toBe(false);
    expect(existsSync('/tmp/escaped.txt')).toBe(false);
  });
});

describe('export and import with auth on', () => {
  it("an import needs the admin scope: a producer's or a viewer's token gets 403 and nothing is imported; the admin's imports it", async () => {
    const admin = 'admin-token-0123456789abcdef';
    const source = await serverOn('sqlite', 'a', { adminToken: admin });
    const target = await serverOn('sqlite', 'b', { adminToken: admin });
    const run = await endedRunWithArtifacts(source, admin);
    const res = await fetch(source.url + buildPath('exportRun', { id: run.id }), { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    const archive = Buffer.from(await res.arrayBuffer());

    const targetAdmin = new RuntrailClient({ url: target.url, token: admin });
    for (const scope of ['producer', 'viewer'] as const) {
      const { token } = await targetAdmin.createToken({ name: `${scope}-1`, scope });
      const refused = await importInto(target, archive, token);
      expect(refused.status, scope).toBe(403);
      expect(refused.body.error.code).toBe('forbidden');
      expect(refused.body.error.message).toMatch(/needs the admin scope/);
    }
    expect((await importInto(target, archive)).status).toBe(401);
    expect((await targetAdmin.listRuns()).runs).toEqual([]);
    expect(blobFiles(target)).toEqual([]);

    const imported = await importInto(target, archive, admin);
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);
    expect((await targetAdmin.listArtifacts(run.id)).map((a) => a.name)).toEqual(['01_input.txt', '02_image.png', '03_same.txt']);
  });
});

/** The entries of an archive, to edit and pack again with tarOf. */
async function entriesOf(archive: Buffer): Promise<Array<{ name: string; content: Buffer }>> {
  const extract = tar.extract();
  const entries: Array<{ name: string; content: Buffer }> = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(Buffer.from(chunk as Uint8Array));
      entries.push({ name: entry.header.name, content: Buffer.concat(chunks) });
    }
  })();
  extract.end(archive);
  await done;
  return entries;
}

/** An archive with its JSON entries changed by `edit` (run.json as an object, events as one array, ids replaced everywhere). */
async function edited(
  archive: Buffer,
  edit: { id?: string; run?: (run: any) => void; events?: (events: any[]) => void },
): Promise<Buffer> {
  const entries = await entriesOf(archive);
  const run = JSON.parse(entries.find((e) => e.name === 'run.json')!.content.toString()) as any;
  const swap = (text: string) => (edit.id ? text.split(run.id).join(edit.id) : text);
  const out: Array<{ name: string; content: string | Buffer }> = [];
  for (const e of entries) {
    if (e.name === 'run.json') {
      const changed = JSON.parse(swap(e.content.toString()));
      edit.run?.(changed);
      out.push({ name: e.name, content: JSON.stringify(changed) });
    } else if (e.name.startsWith('events/')) {
      const events = swap(e.content.toString()).split('\n').filter(Boolean).map((l) => JSON.parse(l));
      edit.events?.(events);
      out.push({ name: e.name, content: events.map((ev) => `${JSON.stringify(ev)}\n`).join('') });
    } else out.push({ name: e.name, content: e.name.endsWith('.json') ? swap(e.content.toString()) : e.content });
  }
  return tarOf(out);
}

/** `archive` with one JSON entry changed by `edit`. */
async function editedEntry(archive: Buffer, name: string, edit: (value: any) => void): Promise<Buffer> {
  const entries = await entriesOf(archive);
  return tarOf(
    entries.map((e) => {
      if (e.name !== name) return e;
      const value = JSON.parse(e.content.toString());
      edit(value);
      return { name: e.name, content: JSON.stringify(value) };
    }),
  );
}

describe('an import is checked as a create and its appends would be', () => {
  it('refuses what the API refuses (ids that are no run ids, unknown event types, a missing parent, deep input, a big output), naming it, and imports nothing', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('sqlite', 'b');
    const client = new RuntrailClient({ url: source.url });
    const made = await client.createRun({ name: 'plain', labels: { team: 'a' } });
    made.progress(1, 2);
    await made.succeed({ ok: true });
    const archive = await exportArchive(source, made.id);
    const parent = (await client.createRun({ name: 'parent' })).id;
    const child = await client.createRun({ name: 'child', parentId: parent });
    await child.succeed();
    const childArchive = await exportArchive(source, child.id);
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];

    const cases: Array<[string, Promise<Buffer>, number, RegExp]> = [
      ['an id that is not a uuid', edited(archive, { id: 'zzzzzzzz-not-a-uuid' }), 400, /runId: must be a run id/],
      ['a path as the id', edited(archive, { id: '../../../etc' }), 400, /runId: must be a run id/],
      ['an id minted in the far future (it would top the list for good)', edited(archive, { id: 'ffffffff-ffff-7fff-bfff-ffffffffffff' }), 400, /id ffffffff-ffff-7fff-bfff-ffffffffffff was minted at .*later than now/],
      ['an unknown event type', edited(archive, { events: (ev) => (ev[0].type = 'bogus') }), 400, /type: unknown event type/],
      ['progress data an append refuses', edited(archive, { events: (ev) => (ev[0].data = { done: 'all' }) }), 400, /events\[0\]\.data\.done/],
      ['a parent that does not exist here', Promise.resolve(childArchive), 400, new RegExp(`parentId: parent run ${parent} does not exist here; import the parent first`)],
      ['input nested 200 levels', edited(archive, { run: (r) => (r.input = deep) }), 400, /run\.json: input: nests deeper than 64 levels/],
      ['a name with a control character', edited(archive, { run: (r) => (r.name = 'a\u0001b') }), 400, /run\.json: name: must not contain/],
      ['a status its events do not end with', edited(archive, { run: (r) => (r.status = 'cancelled') }), 400, /the run is cancelled but its events do not end with its one run\.cancelled event/],
      ['an output over the event data limit', edited(archive, { events: (ev) => (ev.at(-1).data = { output: 'o'.repeat(1024 * 1024 + 1) }) }), 413, /the data of a run\.succeeded event is \d+ bytes, over the limit of 1048576 bytes \(maxEventDataBytes on the server\); nothing was imported/],
    ];
    for (const [what, body, status, message] of cases) {
      const res = await importInto(target, await body);
      expect(res.status, `${what}: ${JSON.stringify(res.body).slice(0, 300)}`).toBe(status);
      expect(res.body.error.code, what).toBe(status === 413 ? 'payload_too_large' : 'invalid_request');
      expect(res.body.error.message, what).toMatch(message);
      expect(res.body.error.message, what).toMatch(/nothing was imported/);
    }
    expect((await new RuntrailClient({ url: target.url }).listRuns()).runs).toEqual([]);
    expect(blobFiles(target)).toEqual([]);
    // The archive as exported still imports.
    expect((await importInto(target, archive)).status).toBe(201);
  });
});

describe('the size of an export', () => {
  it('is streamed with no Content-Length, and x-runtrail-export-estimated-bytes comes within 5 % of its size: exact for the records and content, the events from a sample', async () => {
    const server = await serverOn('sqlite', 'a');
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'sized' });
    for (let i = 0; i < 3000; i++) run.event('x.step', { i, text: 'z'.repeat(300) });
    await run.artifact('weights.bin', Buffer.alloc(200_000, 7));
    await run.succeed();
    const child = await client.createRun({ name: 'sized-child', parentId: run.id });
    await child.artifact('weights.bin', Buffer.alloc(200_000, 7));
    await child.succeed();
    for (const family of [false, true]) {
      const res = await fetch(server.url + buildPath('exportRun', { id: run.id }, family ? { family: 'true' } : {}));
      expect(res.status).toBe(200);
      expect(res.headers.get('content-length')).toBeNull();
      const estimate = Number(res.headers.get(EXPORT_ESTIMATED_BYTES_HEADER));
      const actual = (await res.arrayBuffer()).byteLength;
      expect(Math.abs(estimate - actual) / actual, `family=${family}: estimated ${estimate}, got ${actual}`).toBeLessThan(0.05);
    }
  });
});

describe('an archive from elsewhere', () => {
  it("a single run's archive is bounded as a family's: past maxImportBytes it is refused with 413 naming the setting, importing nothing", async () => {
    const source = await serverOn('sqlite', 'a');
    const run = await endedRunWithArtifacts(source);
    const archive = await exportArchive(source, run.id);
    expect(archive.length).toBeGreaterThan(4096);
    const small = await serverOn('sqlite', 'small', { maxImportBytes: 4096 });
    const res = await importInto(small, archive);
    expect(res.status, JSON.stringify(res.body)).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
    expect(res.body.error.message).toMatch(/the archive holds more than 4096 bytes, the most this server imports in one archive \(maxImportBytes\); nothing was imported/);
    expect((await new RuntrailClient({ url: small.url }).listRuns()).runs).toEqual([]);
    expect(blobFiles(small)).toEqual([]);
  });

  it("a single run's records and events held in memory for its one transaction are bounded in total, not only per entry: past the bound, 413 naming it", async () => {
    const source = await serverOn('sqlite', 'a');
    const client = new RuntrailClient({ url: source.url });
    const run = await client.createRun({ name: 'many-events' });
    for (let i = 0; i < 50; i++) run.event('x.output', { i, text: 'y'.repeat(1000) });
    await run.succeed();
    const archive = await exportArchive(source, run.id);
    const runJson = (await entriesOf(archive)).find((e) => e.name === 'run.json')!;
    // Room for run.json and a little more: the events file (50 KiB), itself far under the 64 MiB of one entry, passes the total.
    const maxJsonBytes = runJson.content.length + 1024;
    const noBlobs = { blobs: { stage: () => Promise.reject(new Error('no content in this archive')), has: async () => false } } as unknown as ArtifactService;
    const checks = { maxBlobBytes: 1024, now: () => Date.now(), runExists: async () => false, maxRuns: 10, maxBytes: 1024 ** 3, maxJsonBytes };
    const body = async function* () {
      yield archive;
    };
    const refused = await readArchive(noBlobs, body(), checks).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({ code: 'payload_too_large' });
    expect((refused as Error).message).toMatch(
      new RegExp(`the run and its events add up to more than ${maxJsonBytes} bytes \\(at events/000001\\.ndjson\\), the most an import holds in memory to write a run in one transaction; nothing was imported`),
    );
    const read = await readArchive(noBlobs, body(), { ...checks, maxJsonBytes: undefined });
    expect(read.runs[0]!.events).toHaveLength(51);
  });

  it('a run whose events add up to more than an import reads of one entry (700 of 100 KiB) exports in pieces, read from the log a page of at most readPageBytes at a time, and imports whole', async () => {
    const readPageBytes = 4 * 1024 * 1024;
    const source = await serverOn('sqlite', 'a', { readPageBytes });
    const target = await serverOn('sqlite', 'b');
    const run = await new RuntrailClient({ url: source.url }).createRun({ name: 'big-events' });
    const text = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 700; i++) run.event('x.output', { i, text });
    await run.succeed();
    const reads = recordEventReads(source);
    const archive = await exportArchive(source, run.id);
    expect(archive.length).toBeGreaterThan(64 * 1024 * 1024);
    // Before: the export read 5,000 events a page whatever their size (here all 70 MiB at once; with
    // 1 MiB events, 5 GB), while the events file it builds is 16 MiB at most.
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((r) => r.count > 1 && r.bytes > readPageBytes)).toEqual([]);
    // Before: one events file of 70 MiB, which the import refused as larger than 64 MiB.
    const imported = await importInto(target, archive);
    expect(imported.status, JSON.stringify(imported.body).slice(0, 300)).toBe(201);
    expect(imported.body.seq).toBe(701);
    const events = (await new RuntrailClient({ url: target.url }).readEvents(run.id, 650, 100)).events;
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 51 }, (_, i) => 651 + i));
    expect(events[0]!.data).toEqual({ i: 650, text });
  });


  it('a gzip-compressed export (`gzip run.tar`) imports as the tar it holds; a cut one is refused whole', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('sqlite', 'b');
    const run = await endedRunWithArtifacts(source);
    const archive = await exportArchive(source, run.id);
    const gzipped = gzipSync(archive);
    const cut = await importInto(target, gzipped.subarray(0, Math.floor(gzipped.length / 2)));
    expect(cut.status).toBe(400);
    expect(cut.body.error.message).toMatch(/truncated or malformed.*nothing was imported/);
    expect(blobFiles(target)).toEqual([]);
    const imported = await importInto(target, gzipped);
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);
    expect(await new RuntrailClient({ url: target.url }).getRun(run.id)).toEqual(await new RuntrailClient({ url: source.url }).getRun(run.id));
  });

  it('a newer format version, another format, an entry given twice and an oversized JSON entry are each refused naming what is wrong', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('sqlite', 'b');
    const client = new RuntrailClient({ url: source.url });
    const made = await client.createRun({ name: 'plain' });
    await made.succeed({ ok: true });
    const archive = await exportArchive(source, made.id);
    const entries = await entriesOf(archive);
    const withManifest = (manifest: object) =>
      tarOf(entries.map((e) => (e.name === 'runtrail-export.json' ? { name: e.name, content: JSON.stringify(manifest) } : e)));
    const other = await client.createRun({ name: 'other' });
    await other.succeed();
    const otherRun = (await entriesOf(await exportArchive(source, other.id))).find((e) => e.name === 'run.json')!;

    const cases: Array<[string, Buffer, RegExp]> = [
      [
        'version 3',
        await withManifest({ format: 'runtrail-run', version: 3, runId: made.id }),
        /format version 3, written by a newer runtrail; this server reads versions 1 and 2: upgrade it, or import into a server as new as the one that exported the run/,
      ],
      ['another format', await withManifest({ format: 'something-else', version: 1 }), /format is "something-else", not "runtrail-run": this is not a runtrail run export/],
      // Before: the second run.json silently won, importing a run the manifest's events do not belong to.
      ['run.json twice', await tarOf([...entries, otherRun]), /entry "run\.json" appears twice/],
      // Before: imported, and its content was kept in the store for good, as no record (so no delete) names it.
      ['content no artifact names', await tarOf([...entries, { name: `blobs/${createHash('sha256').update('stray').digest('hex')}`, content: 'stray' }]), /blobs\/[0-9a-f]{64} is the content of no artifact in artifacts\.json/],
      [
        'an events file over 64 MiB',
        await tarOf(entries.map((e) => (e.name.startsWith('events/') ? { name: e.name, content: Buffer.alloc(64 * 1024 * 1024 + 1, 0x20) } : e))),
        /events\/000001\.ndjson is larger than 64 MiB/,
      ],
    ];
    await expectEachRefused(target, cases);
  });

  it("an entry name or format of half a megabyte is named by its start and end: the error does not send it all back", async () => {
    const target = await serverOn('sqlite', 'b');
    const long = 'n'.repeat(500_000);
    const archives = [
      await tarOf([{ name: long, content: '', type: 'symlink' }]),
      await tarOf([{ name: 'runtrail-export.json', content: JSON.stringify({ format: long, version: 1 }) }]),
    ];
    await expectEachRefused(target, [
      ['a long symlink name', archives[0]!, /entry "n+…\(cut from 500\d+ characters\)…n+" is a symlink, not a file/],
      ['a long format', archives[1]!, /format is "n+…\(cut from 500\d+ characters\)…n+", not "runtrail-run"/],
    ]);
    for (const body of archives) expect(JSON.stringify((await importInto(target, body)).body).length).toBeLessThan(2_000);
  });
});

/** A parent (an autotune run, say) with three children, the second with a child of its own; artifacts on several, one content shared. */
async function endedFamily(server: RunningServer) {
  const client = new RuntrailClient({ url: server.url });
  const parent = await client.createRun({ name: 'autotune' });
  const children = [];
  for (let i = 0; i < 3; i++) {
    const child = await client.createRun({ name: `trial-${i}`, parentId: parent.id, input: { lr: i } });
    await child.artifact(`trial-${i}.json`, JSON.stringify({ score: i / 10 }));
    children.push(child);
  }
  const grandchild = await client.createRun({ name: 'eval', parentId: children[1]!.id });
  await grandchild.artifact('same.txt', 'shared content');
  await children[2]!.artifact('same.txt', 'shared content');
  await grandchild.succeed({ ok: true });
  for (const child of children) await child.succeed();
  await parent.artifact('summary.txt', 'best: trial-1');
  await parent.succeed();
  return { parent, children, grandchild, ids: [parent.id, ...children.map((c) => c.id), grandchild.id] };
}

async function exportFamily(server: RunningServer, runId: string): Promise<Response> {
  return fetch(server.url + buildPath('exportRun', { id: runId }, { family: 'true' }));
}

/** A family archive with its manifest and entries changed by `edit`. */
async function editedFamily(archive: Buffer, edit: (manifest: any, entries: Array<{ name: string; content: string | Buffer }>) => Array<{ name: string; content: string | Buffer }>): Promise<Buffer> {
  const entries = await entriesOf(archive);
  const manifest = JSON.parse(entries.find((e) => e.name === 'runtrail-export.json')!.content.toString());
  const rest = edit(manifest, entries.filter((e) => e.name !== 'runtrail-export.json'));
  return tarOf([{ name: 'runtrail-export.json', content: JSON.stringify(manifest) }, ...rest]);
}

describe('a whole family in one archive (?family=true)', () => {
  it('holds the run and every run under it, parents first (format version 2); the single-run export of the same run is version 1 as before', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('sqlite', 'b');
    const { parent, children, grandchild, ids } = await endedFamily(source);
    const res = await exportFamily(source, parent.id);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-runtrail-export-runs')).toBe('5');
    const archive = Buffer.from(await res.arrayBuffer());
    const entries = await entriesOf(archive);
    const manifest = JSON.parse(entries[0]!.content.toString());
    expect(manifest).toMatchObject({ format: 'runtrail-run', version: 2, runId: parent.id });
    expect([...manifest.runs].sort()).toEqual([...ids].sort());
    expect(manifest.runs[0]).toBe(parent.id);
    expect(manifest.runs.indexOf(grandchild.id)).toBeGreaterThan(manifest.runs.indexOf(children[1]!.id));
    // Six artifacts, five contents: the one two runs share is in the archive once.
    expect(entries.filter((e) => e.name.startsWith('blobs/'))).toHaveLength(5);
    const single = await entriesOf(await exportArchive(source, parent.id));
    expect(JSON.parse(single[0]!.content.toString())).toEqual({ format: 'runtrail-run', version: 1, runId: parent.id });
    expect(single.map((e) => e.name)).not.toContain(`runs/${ids[1]}/run.json`);

    const imported = await importInto(target, archive);
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);
    expect(imported.body.id).toBe(parent.id);
    const a = new RuntrailClient({ url: source.url });
    const b = new RuntrailClient({ url: target.url });
    for (const id of ids) {
      expect(await b.getRun(id)).toEqual(await a.getRun(id));
      expect(await b.listArtifacts(id)).toEqual(await a.listArtifacts(id));
    }
  });

  it('a family with a run still going is refused naming it: the export with 409, an archive of it made otherwise by the import with 400, importing nothing', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('postgres', 'b');
    const { parent, children, grandchild } = await endedFamily(source);
    const client = new RuntrailClient({ url: source.url });
    const late = await client.createRun({ name: 'late-trial', parentId: children[0]!.id });
    const refused = await exportFamily(source, parent.id);
    expect(refused.status).toBe(409);
    const error = ((await refused.json()) as any).error;
    expect(error.code).toBe('run_not_terminal');
    expect(error.message).toContain(`run ${late.id} (late-trial) under run ${parent.id} is running`);
    // The single-run export is as it was: the run so far, its status in a header.
    expect((await fetch(source.url + buildPath('exportRun', { id: late.id }))).headers.get('x-runtrail-run-status')).toBe('running');
    await late.succeed();

    const archive = Buffer.from(await (await exportFamily(source, parent.id)).arrayBuffer());
    const running = await editedFamily(archive, (_m, entries) =>
      entries.map((e) => (e.name === `runs/${grandchild.id}/run.json` ? { ...e, content: JSON.stringify({ ...JSON.parse(e.content.toString()), status: 'running' }) } : e)),
    );
    const res = await importInto(target, running);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(new RegExp(`run ${grandchild.id} \\(eval\\) is running: a family is imported only when every run in it has ended.*nothing was imported`));
    expect((await new RuntrailClient({ url: target.url }).listRuns()).runs).toEqual([]);
    expect(blobFiles(target)).toEqual([]);
  });

  it('a family archive imported again answers its runs (200); one a run of which exists here is 409 naming it, none of the others imported, nor their content kept', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('sqlite', 'b');
    const { parent, ids } = await endedFamily(source);
    const archive = Buffer.from(await (await exportFamily(source, parent.id)).arrayBuffer());
    // The parent alone, imported earlier.
    expect((await importInto(target, await exportArchive(source, parent.id))).status).toBe(201);
    const kept = blobFiles(target);
    const res = await importInto(target, archive);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('run_already_exists');
    expect(res.body.error.message).toContain(`run ${parent.id} already exists on this server`);
    const b = new RuntrailClient({ url: target.url });
    expect((await b.listRuns({ parentId: parent.id })).runs).toEqual([]);
    for (const id of ids.slice(1)) await expect(b.getRun(id)).rejects.toMatchObject({ code: 'run_not_found' });
    expect(blobFiles(target).sort()).toEqual(kept.sort());

    // Into a server that holds none of it, twice: the second answers the same runs, with the same count.
    const fresh = await serverOn('sqlite', 'c');
    const first = await fetch(fresh.url + buildPath('importRun', {}), { method: 'POST', body: archive, headers: { 'content-type': 'application/x-tar', [CLIENT_HEADER]: '1' } });
    expect(first.status).toBe(201);
    const repeated = await fetch(fresh.url + buildPath('importRun', {}), { method: 'POST', body: archive, headers: { 'content-type': 'application/x-tar', [CLIENT_HEADER]: '1' } });
    expect(repeated.status).toBe(200);
    expect(repeated.headers.get('x-runtrail-imported-runs')).toBe(first.headers.get('x-runtrail-imported-runs'));
    expect(((await repeated.json()) as Run).id).toBe(parent.id);

    // The same family with one run ended later (a newer export): refused naming that run and what differs, with every run taken.
    const grandchild = ids.at(-1)!;
    const newer = await editedFamily(archive, (_m, entries) =>
      entries.map((e) => (e.name === `runs/${grandchild}/run.json` ? { ...e, content: JSON.stringify({ ...JSON.parse(e.content.toString()), finishedAt: 1 + JSON.parse(e.content.toString()).finishedAt }) } : e)),
    );
    const refused = await importInto(fresh, newer);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('run_already_exists');
    // Every run named, in the archive's order (parents first).
    const taken = refused.body.error.details.runIds as string[];
    expect([...taken].sort()).toEqual([...ids].sort());
    expect(refused.body.error.message).toBe(
      `run ${grandchild} already exists on this server with other content (its record's finishedAt differs) (${ids.length} runs of the archive exist here: ${taken.join(', ')}); delete them first to import this archive; nothing was imported`,
    );
    expect(refused.body.error.details).toEqual({ runId: taken[0], runIds: taken, differs: { runId: grandchild, what: 'record', field: 'finishedAt' } });
  });

  it('a damaged family archive is refused with 400 naming what is wrong (a run whose parent is nowhere, a run the manifest does not name, a missing run), importing nothing', async () => {
    const source = await serverOn('sqlite', 'a');
    const target = await serverOn('postgres', 'b');
    const { parent, children, grandchild } = await endedFamily(source);
    const archive = Buffer.from(await (await exportFamily(source, parent.id)).arrayBuffer());
    const middle = children[1]!.id;
    const withoutMiddle = (manifest: any, entries: Array<{ name: string; content: string | Buffer }>) => {
      manifest.runs = manifest.runs.filter((id: string) => id !== middle);
      return entries.filter((e) => !e.name.startsWith(`runs/${middle}/`));
    };
    const cases: Array<[string, Buffer, RegExp]> = [
      [
        'a grandchild whose parent is not in the archive nor here',
        await editedFamily(archive, withoutMiddle),
        new RegExp(`run ${grandchild.id} \\(runs/${grandchild.id}/run\\.json\\): parentId: its parent run ${middle} is neither in the archive nor here`),
      ],
      [
        'a run the manifest does not name',
        await editedFamily(archive, (manifest, entries) => {
          manifest.runs = manifest.runs.filter((id: string) => id !== grandchild.id);
          return entries;
        }),
        new RegExp(`runs/${grandchild.id}/ is not a run runtrail-export\\.json names`),
      ],
      [
        'a run the manifest names with no run.json',
        await editedFamily(archive, (_m, entries) => entries.filter((e) => e.name !== `runs/${grandchild.id}/run.json`)),
        new RegExp(`runs/${grandchild.id}/run\\.json is missing`),
      ],
      [
        'parents in a loop (a child made the child of its own child)',
        await editedFamily(archive, (_m, entries) =>
          entries.map((e) => (e.name === `runs/${middle}/run.json` ? { ...e, content: JSON.stringify({ ...JSON.parse(e.content.toString()), parentId: grandchild.id }) } : e)),
        ),
        /is its own ancestor through parentId: the runs' parents form a loop/,
      ],
      [
        'a top run whose parent is in the archive',
        await editedFamily(archive, (_m, entries) =>
          entries.map((e) => (e.name === `runs/${parent.id}/run.json` ? { ...e, content: JSON.stringify({ ...JSON.parse(e.content.toString()), parentId: grandchild.id }) } : e)),
        ),
        new RegExp(`runId ${parent.id} is not the top of the family: its parent run ${grandchild.id} is in the archive too`),
      ],
      [
        'a run filed under another run',
        await editedFamily(archive, (_m, entries) =>
          entries.map((e) => (e.name === `runs/${grandchild.id}/run.json` ? { ...e, content: entries.find((x) => x.name === `runs/${middle}/run.json`)!.content } : e)),
        ),
        new RegExp(`runs/${grandchild.id}/run\\.json is run ${middle}, not the run its folder names`),
      ],
    ];
    await expectEachRefused(target, cases);
    expect((await importInto(target, archive)).status).toBe(201);
  });

  it("a family over the server's limits is refused with 413 naming the limit: more runs than maxImportRuns (export and import), more bytes than maxImportBytes", async () => {
    const source = await serverOn('sqlite', 'a');
    const { parent } = await endedFamily(source);
    const archive = Buffer.from(await (await exportFamily(source, parent.id)).arrayBuffer());
    const few = await serverOn('sqlite', 'few', { maxImportRuns: 4 });
    const small = await serverOn('sqlite', 'small', { maxImportBytes: 4096 });
    for (const [server, message] of [
      [few, /the archive holds 5 runs; this server imports at most 4 in one archive \(maxImportRuns\); nothing was imported/],
      [small, /the archive holds more than 4096 bytes, the most this server imports in one archive \(maxImportBytes\); nothing was imported/],
    ] as const) {
      const res = await importInto(server, archive);
      expect(res.status, JSON.stringify(res.body)).toBe(413);
      expect(res.body.error.code).toBe('payload_too_large');
      expect(res.body.error.message).toMatch(message);
      expect((await new RuntrailClient({ url: server.url }).listRuns()).runs).toEqual([]);
      expect(blobFiles(server)).toEqual([]);
    }
    expect((await importInto(few, archive)).status).toBe(413);
    const { parent: theirs } = await endedFamily(few);
    const refused = await exportFamily(few, theirs.id);
    expect(refused.status).toBe(413);
    expect(((await refused.json()) as any).error.message).toMatch(/are more than 4 runs, the most one archive may hold here \(maxImportRuns\)/);
  });
});
