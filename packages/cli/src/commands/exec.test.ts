import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '@runtrail/server';
import { SqliteRunStore } from '@runtrail/store';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { freePort } from '../../test/harness.js';

/**
 * `runtrail exec | cancel | retry | delete` as a user runs them: the built
 * binary in a real process, a real Python script, real signals.
 */
const BIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const PIPELINE = fileURLToPath(new URL('../../test/fixtures/pipeline.py', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runtrail(args: string[], env: Record<string, string> = {}): { done: Promise<Result>; stderr(): string } {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, RUNTRAIL_URL: '', RUNTRAIL_DATA_DIR: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const done = once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { done, stderr: () => stderr };
}

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-cli-exec-');
  server = await startServer({ port: 0, dataDir: join(dir.path, 'server'), logLevel: 'silent', reaperIntervalMs: 200 });
  client = new RuntrailClient({ url: server.url });
});

afterAll(async () => {
  await server.close();
  dir.remove();
});

describe('runtrail exec', () => {
  it("`runtrail exec -- python3 script.py` makes a run with the script's counters, calls, metrics and progress, and exits 0", async () => {
    const { done } = runtrail(['exec', '--server', server.url, '--name', 'py-pipeline', '--', 'python3', PIPELINE, '--docs', '6']);
    const result = await done;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('processed doc 6');
    const id = runIdOf(result.stderr)!;
    const run = await client.getRun(id);
    expect(run.status).toBe('succeeded');
    expect(run.name).toBe('py-pipeline');
    expect(run.snapshot.counters).toEqual({ ok: 4, failed: 2, retries: 0, named: { docs_ok: 4, tokens: 600 } });
    expect(run.snapshot.metrics.accuracy).toMatchObject({ last: 1, count: 6, step: 6 });
    expect(run.snapshot.progress).toMatchObject({ done: 6, total: 6, percent: 100 });
    expect(run.snapshot.phases).toEqual([expect.objectContaining({ name: 'evaluate', status: 'completed' })]);
    const messages = run.snapshot.logs.map((l) => `${l.level} ${l.message}`);
    expect(messages).toContain('info processed doc 1');
    expect(messages).toContain('warn pipeline finished');
    expect(messages.some((m) => m.startsWith('warn ignored a ::runtrail:: line (not JSON'))).toBe(true);
    expect(run.snapshot.meta.exec).toMatchObject({ exitCode: 0, signal: null, reason: 'exit' });
    expect(result.stderr).toContain(`run ${id} succeeded; calls ok=4 failed=2, docs_ok=4, tokens=600`);
  });

  it('keeps ::runtrail:: lines out of the echoed output, warns on stderr about the first five malformed ones, and prints the dashboard link there', async () => {
    const script = [
      'print("hello", flush=True)',
      'print(\'::runtrail:: {"type":"progress","data":{"done":1,"total":2}}\', flush=True)',
      'for i in range(7): print("::runtrail:: broken %d" % i, flush=True)',
      'print("bye", flush=True)',
    ].join('\n');
    const file = join(dir.path, 'chatty.py');
    writeFileSync(file, script);
    const result = await runtrail(['exec', '--server', server.url, '--', 'python3', file]).done;
    expect(result.code).toBe(0);
    // stdout is the command's output alone, without the protocol lines.
    expect(result.stdout).toBe('hello\nbye\n');
    const id = runIdOf(result.stderr)!;
    const stderr = result.stderr.split('\n');
    expect(stderr).toContain(`runtrail: dashboard: ${server.url}/runs/${id}`);
    const warnings = stderr.filter((line) => line.startsWith('runtrail: ignored a malformed ::runtrail:: line'));
    expect(warnings.map((line) => /broken \d/.exec(line)?.[0])).toEqual(['broken 0', 'broken 1', 'broken 2', 'broken 3', 'broken 4']);
    expect(stderr).toContain("runtrail: more malformed ::runtrail:: lines are only in the run's log");
    // The valid line was an event.
    expect((await client.getRun(id)).snapshot.progress).toMatchObject({ done: 1, total: 2 });
  });

  it("exits with the command's exit code and fails the run with it", async () => {
    const result = await runtrail(['exec', '--server', server.url, '--', 'python3', PIPELINE, '--docs', '2', '--exit', '3']).done;
    expect(result.code).toBe(3);
    const run = await client.getRun(runIdOf(result.stderr)!);
    expect(run.status).toBe('failed');
    expect(run.error?.kind).toBe('error');
    // The reason is on the run: how it ended, then what it last said on stderr.
    expect(run.error?.message).toMatch(/pipeline\.py --docs 2 --exit 3 exited with code 3\n\nlast line of stderr:\npipeline finished$/);
  });

  it("a Python traceback fails the run with its exception line and the last stderr lines, indentation kept and bounded", async () => {
    const script = [
      'import sys',
      'for i in range(30): print(f"noise {i}", file=sys.stderr)',
      'def load(path):',
      '    raise ValueError(f"bad input in {path}")',
      'load("data.csv")',
    ].join('\n');
    // A file, not -c: Python prints a file's source lines in the traceback.
    const file = join(dir.path, 'fails.py');
    writeFileSync(file, script);
    const result = await runtrail(['exec', '--server', server.url, '--quiet', '--', 'python3', file]).done;
    expect(result.code).toBe(1);
    const run = await client.getRun(runIdOf(result.stderr)!);
    expect(run.status).toBe('failed');
    // Named after the script, not "python3".
    expect(run.name).toBe('python3 fails.py');
    const message = run.error!.message;
    const [head, tail] = message.split('\n\nlast 20 lines of stderr:\n');
    expect(head).toMatch(/exited with code 1: ValueError: bad input in data\.csv$/);
    const lines = tail!.split('\n');
    expect(lines).toHaveLength(20);
    expect(lines.at(-1)).toBe('ValueError: bad input in data.csv');
    expect(lines).toContain('Traceback (most recent call last):');
    expect(lines).toContain('    raise ValueError(f"bad input in {path}")');
    expect(lines.some((l) => l.startsWith('noise'))).toBe(true);
    expect(lines).not.toContain('noise 0');
    // Each stderr line is also a log event that says it came from stderr.
    const { events } = await client.readEvents(run.id);
    expect(events.find((e) => e.type === 'log' && (e.data as { message: string }).message === 'noise 0')?.data).toEqual({
      level: 'warn',
      message: 'noise 0',
      stream: 'stderr',
    });
  });

  it('the stderr tail in a run error stays within 4 KiB however long its lines are', async () => {
    const script = 'import sys\nfor i in range(10): print(str(i) * 1500, file=sys.stderr)\nsys.exit(2)';
    const result = await runtrail(['exec', '--server', server.url, '--quiet', '--', 'python3', '-c', script]).done;
    expect(result.code).toBe(2);
    const run = await client.getRun(runIdOf(result.stderr)!);
    const tail = run.error!.message.split(/\n\nlast \d+ lines? of stderr:\n/)[1]!;
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(4096);
    expect(tail.split('\n')).toEqual(['8'.repeat(1500), '9'.repeat(1500)]);
  });

  it('an idle command is stopped with its whole group, exits 124, and its run fails timeout', async () => {
    const result = await runtrail([
      'exec',
      '--server',
      server.url,
      '--idle-timeout',
      '300',
      '--kill-grace',
      '300',
      '--',
      'sh',
      '-c',
      'echo working; sleep 30',
    ]).done;
    expect(result.code).toBe(124);
    const run = await client.getRun(runIdOf(result.stderr)!);
    expect(run.error?.kind).toBe('timeout');
    expect(run.error?.message).toContain('printed nothing for 300 ms (idle timeout)');
  });

  it('with a server elsewhere, the whole output is stored as the run\'s output.log when the command ends, beyond the 100 lines a second sent as events', async () => {
    const result = await runtrail(['exec', '--server', server.url, '--quiet', '--', 'python3', '-c', 'for i in range(3000): print(f"line {i}")']).done;
    expect(result.code, result.stderr).toBe(0);
    const runId = runIdOf(result.stderr)!;
    const log = await fetch(`${server.url}/api/v1/runs/${runId}/log`);
    expect(log.status).toBe(200);
    expect(await log.text()).toBe(Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join(''));
    const { events } = await client.readEvents(runId, 0, 5000);
    const warning = events.find((e) => e.type === 'log' && String((e.data as { message: string }).message).includes('not sent as events'));
    expect((warning?.data as { message: string }).message).toMatch(/; all are in the run's output\.log, stored when the command ends$/);
    // Nothing is left behind on this machine.
    expect(existsSync(join(tmpdir(), `runtrail-exec-${runId}.log`))).toBe(false);
  });

  it("with a temp dir it cannot write to, says the whole output is not kept, and the command still runs as its run", async () => {
    const missing = join(dir.path, 'no-such-tmp');
    const result = await runtrail(['exec', '--server', server.url, '--quiet', '--', 'sh', '-c', 'echo still runs'], { TMPDIR: missing }).done;
    expect(result.code, result.stderr).toBe(0);
    const runId = runIdOf(result.stderr)!;
    expect(result.stderr).toContain(`runtrail: the command's whole output is not kept (cannot make ${join(missing, `runtrail-exec-${runId}.log`)}: ENOENT`);
    expect((await client.getRun(runId)).status).toBe('succeeded');
    expect((await fetch(`${server.url}/api/v1/runs/${runId}/log`)).status).toBe(404);
  });

  it('takes durations with units: --timeout 1s stops the command after a second, exit 124, the run failed timeout', async () => {
    const result = await runtrail(['exec', '--server', server.url, '--timeout', '1s', '--kill-grace', '0.3s', '--quiet', '--', 'sleep', '30']).done;
    expect(result.code, result.stderr).toBe(124);
    const run = await client.getRun(runIdOf(result.stderr)!);
    expect(run.error?.kind).toBe('timeout');
    expect(run.error?.message).toBe('sleep 30 timed out after 1 s: sent SIGTERM, which ended it');
  });

  it('a wrong duration or --collect is refused before a run is made: exit 2, a line naming the flag, no run left "running"', async () => {
    const notAFolder = join(dir.path, 'a-file');
    writeFileSync(notAFolder, 'not a folder');
    const cases: Array<[string[], RegExp]> = [
      [['--timeout', '2x'], /option '--timeout <duration>' argument '2x' is invalid\. give milliseconds \(1500\) or a number with a unit/],
      [['--idle-timeout', '0'], /option '--idle-timeout <duration>' argument '0' is invalid/],
      [['--kill-grace', '-1'], /option '--kill-grace <duration>' argument '-1' is invalid/],
      [['--lease-ttl', 'soon'], /option '--lease-ttl <duration>' argument 'soon' is invalid/],
      // Outside the API's bounds: said in the flag's words, not as the server's leaseTtlMs in milliseconds.
      [['--lease-ttl', '99999d'], /^runtrail: invalid_request: option '--lease-ttl <duration>' argument '99999d' is invalid\. give from 1s to 1d; /m],
      [['--lease-ttl', '500ms'], /^runtrail: invalid_request: option '--lease-ttl <duration>' argument '500ms' is invalid\. give from 1s to 1d; /m],
      [['--collect', notAFolder], new RegExp(`^runtrail: invalid_request: --collect ${notAFolder}: it is not a folder$`, 'm')],
    ];
    const before = (await client.listRuns({ limit: 200 })).runs.length;
    for (const [flags, message] of cases) {
      const result = await runtrail(['exec', '--server', server.url, ...flags, '--', 'sh', '-c', 'echo should not run']).done;
      expect(result.code, flags.join(' ')).toBe(2);
      expect(result.stderr, flags.join(' ')).toMatch(message);
      expect(result.stdout + result.stderr).not.toContain('should not run');
    }
    expect((await client.listRuns({ limit: 200 })).runs.length).toBe(before);
  });

  it('with no server answering at the default URL, runs on an embedded server in the configured data dir', async () => {
    const dataDir = join(dir.path, 'embedded');
    // The default URL's port, where nothing listens (never 4310: a user's or another test's server may be there).
    const port = await freePort();
    const result = await runtrail(['exec', '--quiet', '--', 'python3', PIPELINE, '--docs', '3'], {
      RUNTRAIL_DATA_DIR: dataDir,
      RUNTRAIL_PORT: String(port),
    }).done;
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    const store = new SqliteRunStore({ filename: join(dataDir, 'runtrail.db') });
    try {
      const run = (await store.getRun(runIdOf(result.stderr)!))!;
      expect(run.status).toBe('succeeded');
      expect(run.snapshot.counters.named).toEqual({ docs_ok: 2, tokens: 300 });
      // The whole output, protocol lines included, is kept in the data dir.
      const log = readFileSync(join(dataDir, 'logs', `${run.id}.log`), 'utf8');
      expect(log).toContain('processed doc 3\n');
      expect(log).toContain('[stderr] pipeline finished\n');
      expect(run.snapshot.artifacts.map((a) => a.name)).toEqual(['output.log']);
    } finally {
      await store.close();
    }
  });

  it('a Python script printing with plain print() is seen as it prints (unbuffered), so --idle-timeout does not kill it', async () => {
    // As on a machine whose environment does not set PYTHONUNBUFFERED (this one's may).
    const env = { ...process.env, RUNTRAIL_URL: '', RUNTRAIL_DATA_DIR: '' };
    delete env.PYTHONUNBUFFERED;
    const child = spawn(
      process.execPath,
      [BIN, 'exec', '--server', server.url, '--quiet', '--idle-timeout', '2s', '--', 'python3', '-c', 'import time\nfor i in range(6):\n    print(f"scored {i}")\n    time.sleep(0.5)'],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.stdout.resume();
    const [code] = await once(child, 'exit');
    expect(code, stderr).toBe(0);
    const run = await client.getRun(runIdOf(stderr)!);
    expect(run.snapshot.logs.map((l) => l.message).filter((m) => m.startsWith('scored'))).toEqual([0, 1, 2, 3, 4, 5].map((i) => `scored ${i}`));
  });

  it('`runtrail cancel` stops a running exec: its command is killed and the run ends cancelled', async () => {
    const exec = runtrail(['exec', '--server', server.url, '--lease-ttl', '1500', '--kill-grace', '500', '--', 'sh', '-c', 'echo started; sleep 30']);
    const id = await waitUntil(() => runIdOf(exec.stderr()), { what: 'exec to create its run', timeoutMs: 30_000 });
    await waitUntil(async () => (await client.getRun(id)).snapshot.logs.some((l) => l.message === 'started'), { what: 'the command to start' });
    const cancel = await runtrail(['cancel', id, '--server', server.url, '--reason', 'wrong input']).done;
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toBe(`${id}\n`);
    expect(cancel.stderr).toContain(`cancel requested for run ${id}`);
    const result = await exec.done;
    expect(result.code).toBe(128 + 15);
    const run = await client.getRun(id);
    expect(run.status).toBe('cancelled');
  });
});

describe('runtrail retry / delete', () => {
  it('retry of a run no handler executes is refused with 409 run_not_retryable, creating nothing', async () => {
    const produced = await client.createRun({ name: 'produced-elsewhere' });
    await produced.fail(new Error('boom'));
    const refused = await runtrail(['retry', produced.id, '--server', server.url]).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('run_not_retryable');
    expect(refused.stderr).toContain('only handler runs (created with execute: true) can be retried');
    expect((await client.listRuns({ name: 'produced-elsewhere' })).runs.map((r) => r.id)).toEqual([produced.id]);
  });

  it('retry of a handler run makes a linked attempt 2', async () => {
    let attempts = 0;
    server.define('flaky', async () => {
      if (++attempts === 1) throw new Error('boom');
    });
    const first = await client.startRun({ name: 'flaky', input: { doc: 7 } });
    await waitUntil(async () => (await client.getRun(first.id)).status === 'failed', { what: 'the first attempt to fail' });

    const retried = await runtrail(['retry', first.id, '--server', server.url, '--json']).done;
    expect(retried.code).toBe(0);
    const second = JSON.parse(retried.stdout) as Run;
    expect(second).toMatchObject({ name: 'flaky', input: { doc: 7 }, retryOf: first.id, attempt: 2 });
  });

  it('delete refuses a running run and removes an ended one', async () => {
    const running = await client.createRun({ name: 'busy' });
    const refused = await runtrail(['delete', running.id, '--server', server.url]).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('run_not_terminal');
    expect((await client.getRun(running.id)).status).toBe('running');
    await running.succeed();

    const deleted = await runtrail(['delete', running.id, '--server', server.url]).done;
    expect(deleted.code).toBe(0);
    // The id on stdout, as retry and import print theirs; the sentence on stderr.
    expect(deleted.stdout).toBe(`${running.id}\n`);
    expect(deleted.stderr).toBe(`deleted run ${running.id}, with its events, output log and every run under it\n`);
    await expect(client.getRun(running.id)).rejects.toMatchObject({ code: 'run_not_found' });

    const ended = await client.createRun({ name: 'done' });
    await ended.succeed();
    const asJson = await runtrail(['delete', ended.id, '--json', '--server', server.url]).done;
    expect(asJson.code).toBe(0);
    expect(JSON.parse(asJson.stdout)).toEqual({ id: ended.id, deleted: true });
    expect(asJson.stderr).toBe('');
  });
});
