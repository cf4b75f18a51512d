import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { startServer, type RunningServer } from '../start.js';

/** run.artifact, ctx.artifact and ctx.exec({collect}) against a real server (issue 16). */

let server: RunningServer;
let dir: ReturnType<typeof tempDir>;

beforeEach(async () => {
  dir = tempDir('runtrail-artifact-sdk-');
  server = await startServer({ port: 0, dataDir: join(dir.path, 'data'), logLevel: 'silent' });
});
afterEach(async () => {
  await server?.close();
  dir.remove();
});

const text = async (runId: string, name: string) => (await new RuntrailClient({ url: server.url }).fetchArtifact(runId, name)).text();

describe('run.artifact', () => {
  it('stores text, bytes, a Node stream, a web stream and a file, in call order, after the events queued before it', async () => {
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'sdk' });
    const file = join(dir.path, 'report.csv');
    writeFileSync(file, 'a,b\n1,2\n');
    run.progress(1, 5);
    await run.artifact('01_prompt.txt', 'hello', { metadata: { lang: 'en', note: 'ünï' } });
    await run.artifact('02_bytes.bin', new Uint8Array([0, 1, 2, 255]), { contentType: 'application/octet-stream' });
    await run.artifact('03_stream.txt', Readable.from([Buffer.from('node '), Buffer.from('stream')]));
    await run.artifact('04_web.txt', new Blob(['web stream']).stream());
    const record = await run.artifact('05_report.csv', { path: file });
    expect(record).toMatchObject({ ordinal: 5, name: '05_report.csv', contentType: 'text/csv; charset=utf-8', size: 8 });
    await run.succeed();
    const artifacts = await client.listArtifacts(run.id);
    expect(artifacts.map((a) => a.name)).toEqual(['01_prompt.txt', '02_bytes.bin', '03_stream.txt', '04_web.txt', '05_report.csv']);
    expect(artifacts[0]!.metadata).toEqual({ lang: 'en', note: 'ünï' });
    expect(await text(run.id, '03_stream.txt')).toBe('node stream');
    expect(await text(run.id, '04_web.txt')).toBe('web stream');
    const events = (await client.readEvents(run.id)).events;
    expect(events.map((e) => e.type).slice(0, 2)).toEqual(['progress', 'artifact']);
    await expect(run.artifact('late.txt', 'x')).rejects.toMatchObject({ code: 'run_already_terminal' });
    await expect(client.createRun({ name: 'n' }).then((r) => r.artifact('../x', 'y'))).rejects.toMatchObject({ code: 'invalid_request' });
  });
});

describe('run.artifact whose content cannot be read', () => {
  it('rejects at once saying so, not as an unreachable server retried for minutes; nothing is stored and the run goes on', async () => {
    // Before, fetch's "fetch failed" over the read error became "cannot reach the runtrail server", a
    // network failure: a folder given as a file was retried for retryForMs (5 min) before rejecting.
    const client = new RuntrailClient({ url: server.url });
    const run = await client.createRun({ name: 'unreadable' });
    const started = Date.now();
    await expect(run.artifact('folder', { path: dir.path })).rejects.toThrow(
      new RegExp(`^the content of artifact folder of run ${run.id} could not be read: EISDIR`),
    );
    async function* broken() {
      yield new Uint8Array([1, 2, 3]);
      throw new Error('disk read failed');
    }
    await expect(run.artifact('stream.bin', broken())).rejects.toThrow(`the content of artifact stream.bin of run ${run.id} could not be read: disk read failed`);
    const web = new ReadableStream<Uint8Array>({ pull: (controller) => controller.error(new Error('web source broke')) });
    await expect(run.artifact('web.bin', web)).rejects.toThrow('could not be read: web source broke');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await client.listArtifacts(run.id)).toEqual([]);
    await run.artifact('ok.txt', 'fine');
    expect((await run.succeed()).status).toBe('succeeded');
  });
});

describe('run.artifact of a file over the limit', () => {
  it('is refused from its declared length, before its bytes are sent, and not retried', async () => {
    const small = await startServer({ port: 0, dataDir: join(dir.path, 'small'), logLevel: 'silent', maxArtifactBytes: 1000 });
    try {
      const file = join(dir.path, 'big.bin');
      writeFileSync(file, Buffer.alloc(5000, 1));
      const run = await new RuntrailClient({ url: small.url }).createRun({ name: 'big' });
      // "(5000 bytes)": the server judged the upload by its Content-Length, not by reading past the limit.
      await expect(run.artifact('big.bin', { path: file })).rejects.toMatchObject({
        code: 'payload_too_large',
        message: 'the upload (5000 bytes) is too large: an artifact may have at most 1000 bytes; nothing was stored',
      });
      await run.succeed();
    } finally {
      await small.close();
    }
  });
});

describe('ctx.artifact and ctx.exec({collect})', () => {
  it('a handler stores artifacts directly and from the files a subprocess wrote into a folder', async () => {
    const out = join(dir.path, 'out');
    server.define('render', async (ctx) => {
      await ctx.artifact('00_input.json', JSON.stringify({ prompt: 'square' }));
      await ctx.exec('sh', ['-c', `mkdir -p ${out} && printf one > ${out}/a.txt && printf '%s' '# B' > ${out}/b.md`], { collect: out });
      return { ok: true };
    });
    const client = new RuntrailClient({ url: server.url });
    const run = await client.startRun({ name: 'render' });
    await waitUntil(async () => (await client.getRun(run.id)).status === 'succeeded', { what: 'the render run to succeed' });
    const artifacts = await client.listArtifacts(run.id);
    expect(artifacts.map((a) => [a.ordinal, a.name, a.contentType])).toEqual([
      [1, '00_input.json', 'application/json'],
      [2, 'a.txt', 'text/plain; charset=utf-8'],
      [3, 'b.md', 'text/markdown; charset=utf-8'],
    ]);
    expect(await text(run.id, 'b.md')).toBe('# B');
  });

  it('a long subprocess\'s files are stored while it runs (collectEveryMs), so they show before it ends', async () => {
    const out = join(dir.path, 'live-out');
    // The subprocess writes a file, then waits (up to 20 s) until its run lists it; it exits 7 if that never happens.
    const script = [
      'import json, os, sys, time, urllib.request',
      `os.makedirs(${JSON.stringify(out)}, exist_ok=True)`,
      `open(os.path.join(${JSON.stringify(out)}, "plot.txt"), "w").write("epoch 1")`,
      'url = os.environ["RUNTRAIL_URL"] + "/api/v1/runs/" + os.environ["RUNTRAIL_RUN_ID"] + "/artifacts"',
      'deadline = time.time() + 20',
      'while not json.load(urllib.request.urlopen(url))["artifacts"]:',
      '    if time.time() > deadline: sys.exit(7)',
      '    time.sleep(0.05)',
    ].join('\n');
    server.define('train', async (ctx) => {
      await ctx.exec('python3', ['-c', script], { collect: out, collectEveryMs: 50 });
      return { ok: true };
    });
    const client = new RuntrailClient({ url: server.url });
    const run = await client.startRun({ name: 'train' });
    await waitUntil(async () => ['succeeded', 'failed'].includes((await client.getRun(run.id)).status), { what: 'the train run to end' });
    expect((await client.getRun(run.id)).error).toBeNull();
    expect((await client.listArtifacts(run.id)).map((a) => a.name)).toEqual(['plot.txt']);
  });
});
