import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { RuntrailError, type Run } from '@runtrail/protocol';
import type { RunningServer } from '../start.js';
import { waitUntil } from '@runtrail/test-support';
import { testScope } from '../stream/stream.test-kit.js';
import { call } from '../security/security.test-kit.js';

/**
 * `GET /runs/:id/log` (issue 19, item 3) and the failure a subprocess's run
 * ends with (item 2): a real server, a real Python child process, the log
 * file the executor wrote, read back over HTTP.
 */
const ADMIN = 'admin-token-for-log-tests-0123456789';
const { server } = testScope();

const SCRIPT = [
  'import sys',
  'print("loading data.csv")',
  'print("  3 rows")',
  'def load(path):',
  '    raise ValueError(f"bad row in {path}")',
  'load("data.csv")',
].join('\n');

/** A server whose `py` handler runs SCRIPT through ctx.exec; returns the ended run. */
async function failedExecRun(s: RunningServer, client: RuntrailClient): Promise<Run> {
  s.define('py', async (ctx) => {
    await ctx.exec('python3', ['-c', SCRIPT]);
  });
  const { id } = await client.startRun({ name: 'py' });
  return waitUntil(
    async () => {
      const run = await client.getRun(id);
      return run.status === 'failed' ? run : null;
    },
    { what: `run ${id} to fail`, timeoutMs: 15_000 },
  );
}

describe('a run whose subprocess failed', () => {
  it("ends with a one-line headline (the command's first line, how it ended, the exception), then the traceback indented as printed; the output log holds it and the whole command", async () => {
    const s = await server({ node: 'log-node' });
    const client = new RuntrailClient({ url: s.url });
    const run = await failedExecRun(s, client);
    expect(run.error?.kind).toBe('error');
    expect(run.error!.message.split('\n')).toEqual([
      "python3 -c 'import sys … exited with code 1: ValueError: bad row in data.csv (the whole command line is in meta.exec.command and the output log)",
      '',
      'last 4 lines of stderr:',
      'Traceback (most recent call last):',
      '  File "<string>", line 6, in <module>',
      '  File "<string>", line 5, in load',
      'ValueError: bad row in data.csv',
    ]);
    const log = await (await client.fetchLog(run.id)).text();
    expect(log.split('\n').slice(2)).toEqual([
      '[stderr] Traceback (most recent call last):',
      '[stderr]   File "<string>", line 6, in <module>',
      '[stderr]   File "<string>", line 5, in load',
      '[stderr] ValueError: bad row in data.csv',
      ...`[runtrail] python3 -c '${SCRIPT.replace(/'/g, `'\\''`)}' exited with code 1`.split('\n'),
      '',
    ]);
    // What it was run as, and how it ended, are on the run for the page's context panel.
    expect(run.snapshot.meta.exec).toMatchObject({ exitCode: 1, signal: null, reason: 'exit', host: expect.any(String) });
  });
});

describe('GET /api/v1/runs/:id/log', () => {
  it('serves the whole output log as written, stderr lines marked, and byte ranges of it (206, suffix, 416)', async () => {
    const s = await server({ node: 'log-node' });
    const client = new RuntrailClient({ url: s.url });
    const run = await failedExecRun(s, client);
    const onDisk = readFileSync(join(s.config.dataDir, 'logs', `${run.id}.log`));

    const whole = await client.fetchLog(run.id);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(whole.headers.get('content-length')).toBe(String(onDisk.length));
    expect(whole.headers.get('content-disposition')).toContain(`attachment; filename="py-${run.id}.log"`);
    const text = await whole.text();
    expect(Buffer.from(text)).toEqual(onDisk);
    expect(text).toMatch(/^loading data\.csv\n {2}3 rows\n\[stderr\] Traceback \(most recent call last\):\n/);
    expect(text).toContain('[stderr]   File "<string>", line 5, in load\n[stderr] ValueError: bad row in data.csv\n');

    const first = await client.fetchLog(run.id, { range: 'bytes=0-16' });
    expect(first.status).toBe(206);
    expect(first.headers.get('content-range')).toBe(`bytes 0-16/${onDisk.length}`);
    expect(await first.text()).toBe('loading data.csv\n');
    const last = await client.fetchLog(run.id, { range: 'bytes=-32' });
    expect(last.status).toBe(206);
    expect(Buffer.from(await last.arrayBuffer())).toEqual(onDisk.subarray(onDisk.length - 32));

    const beyond = await call(s, 'GET', `/api/v1/runs/${run.id}/log`, { headers: { range: `bytes=${onDisk.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${onDisk.length}`);
    expect(beyond.body.error.code).toBe('range_not_satisfiable');
  });

  it('404: an unknown run; a run without a log file (its output is in its events); a log file on another host, named', async () => {
    const s = await server({ node: 'log-node' });
    const client = new RuntrailClient({ url: s.url });
    const unknown = await call(s, 'GET', '/api/v1/runs/no-such-run/log');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('run_not_found');

    const plain = await client.createRun({ name: 'sdk' });
    plain.log('hello');
    await plain.flush();
    const none = await call(s, 'GET', `/api/v1/runs/${plain.id}/log`);
    expect(none.status).toBe(404);
    expect(none.body.error).toMatchObject({ code: 'log_not_found', message: `run ${plain.id} has no output log file; what it printed is in its log events (/api/v1/runs/${plain.id}/events)` });

    // What `runtrail exec --log-file` on a laptop against this server records.
    const remote = await client.createRun({ name: 'remote-exec' });
    remote.event('artifact', { name: 'output.log', uri: 'file:///home/ana/job/out.log', contentType: 'text/plain' });
    remote.meta({ exec: { command: 'python3 job.py', host: 'ana-laptop' } });
    await remote.flush();
    const elsewhere = await call(s, 'GET', `/api/v1/runs/${remote.id}/log`);
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body.error.code).toBe('log_not_found');
    expect(elsewhere.body.error.message).toBe(
      `the output of run ${remote.id} went to the log file /home/ana/job/out.log on another host, ana-laptop; this server (node log-node) has no copy of it. What it printed is also in its log events.`,
    );
    expect(elsewhere.body.error.details).toEqual({ runId: remote.id, file: '/home/ana/job/out.log', host: 'ana-laptop' });
    // A log this server would write, not there yet (a command that has printed nothing so far).
    const early = await client.createRun({ name: 'early' });
    const ownFile = join(s.config.dataDir, 'logs', `${early.id}.log`);
    early.event('artifact', { name: 'output.log', uri: pathToFileURL(ownFile).href, contentType: 'text/plain' });
    await early.flush();
    const notYet = await call(s, 'GET', `/api/v1/runs/${early.id}/log`);
    expect(notYet.status).toBe(404);
    expect(notYet.body.error.message).toBe(
      `the output log of run ${early.id} (${ownFile}) has not been written yet, or was removed; what it printed is also in its log events.`,
    );
    early.close();
    // The SDK raises the same error with its code.
    await expect(client.fetchLog(remote.id)).rejects.toSatisfy((err) => RuntrailError.isCode(err, 'log_not_found'));
  });

  it('a log stored as the run\'s output.log artifact (`runtrail exec` against a server elsewhere) is a 307 to that artifact', async () => {
    const s = await server({ node: 'log-node' });
    const client = new RuntrailClient({ url: s.url });
    const run = await client.createRun({ name: 'exec-elsewhere' });
    await run.artifact('output.log', 'loading data.csv\n[stderr] done\n', { contentType: 'text/plain' });
    const path = `/api/v1/runs/${run.id}/log`;
    const redirect = await fetch(s.url + path, { redirect: 'manual' });
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('location')).toBe(`/api/v1/runs/${run.id}/artifacts/output.log`);
    // What curl -L and the page's "Download full log" get.
    const followed = await fetch(s.url + path);
    expect(followed.status).toBe(200);
    expect(await followed.text()).toBe('loading data.csv\n[stderr] done\n');
    run.close();
  });

  it('follows the access rules of reading a run: no token 401, viewer 200, a token of another run 403, of this run 200', async () => {
    const s = await server({ node: 'log-node', adminToken: ADMIN });
    const admin = new RuntrailClient({ url: s.url, token: ADMIN });
    const run = await failedExecRun(s, admin);
    const other = await admin.createRun({ name: 'other' });
    const viewer = await admin.createToken({ name: 'viewer', scope: 'viewer' });
    const ownToken = await admin.createRunToken(run.id);
    const otherToken = await admin.createRunToken(other.id);
    const path = `/api/v1/runs/${run.id}/log`;

    const anonymous = await call(s, 'GET', path);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe('unauthorized');
    const byViewer = await call(s, 'GET', path, { token: viewer.token });
    expect(byViewer.status).toBe(200);
    expect(byViewer.body).toContain('loading data.csv');
    const byOtherRun = await call(s, 'GET', path, { token: otherToken.token });
    expect(byOtherRun.status).toBe(403);
    expect(byOtherRun.body.error.code).toBe('forbidden');
    expect((await call(s, 'GET', path, { token: ownToken.token })).status).toBe(200);
    // A token in the query string is for streams only, not for this route.
    expect((await call(s, 'GET', `${path}?token=${encodeURIComponent(viewer.token)}`)).status).toBe(401);
    other.close();
  });
});
