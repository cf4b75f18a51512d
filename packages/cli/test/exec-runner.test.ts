import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { LEAVES_STUBBORN_GRANDCHILD, identify, waitGroupGone } from '@runtrail/test-support/process-tree';
import { freePort, runtrail, serve, spawnCli } from './harness.js';

/**
 * `runtrail exec` as the runner of a command (issue 10 items 2, 4, 5): the
 * server it uses, what the command is told, and that nothing it started
 * outlives it. The "default port" is RUNTRAIL_PORT set to a free port, as
 * client commands and `serve` both read it, so these tests never touch a
 * server a user or another test has on 4310.
 */

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-exec-runner-');
  server = await startServer({ port: 0, dataDir: `${dir.path}/server`, logLevel: 'silent' });
  client = new RuntrailClient({ url: server.url });
});
afterAll(async () => {
  await server.close();
  dir.remove();
});

/** The environment of a CLI process that must resolve the server by default: nothing set but RUNTRAIL_PORT. */
const byDefault = (port: number) => ({ RUNTRAIL_URL: '', RUNTRAIL_DATA_DIR: '', RUNTRAIL_CONFIG: '', RUNTRAIL_PORT: String(port) });

describe('runtrail exec: the command knows its run', () => {
  it('a child reads RUNTRAIL_RUN_ID and RUNTRAIL_URL and appends to its own run over HTTP', async () => {
    const child = `
      const { RUNTRAIL_RUN_ID: id, RUNTRAIL_URL: url } = process.env;
      console.log('child sees run ' + id);
      const res = await fetch(url + '/api/v1/runs/' + id + '/events', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ events: [{ type: 'counter', data: { name: 'from_child', delta: 2 } }] }),
      });
      process.exit(res.ok ? 0 : 1);`;
    const result = await runtrail(['exec', '--server', server.url, '--', process.execPath, '--input-type=module', '-e', child]);
    expect(result.code, result.stderr).toBe(0);
    const id = runIdOf(result.stderr)!;
    expect(result.stdout).toContain(`child sees run ${id}\n`);
    const run = await client.getRun(id);
    expect(run.status).toBe('succeeded');
    expect(run.snapshot.counters.named).toEqual({ from_child: 2 });
  });
});

describe('runtrail exec: which server', () => {
  it('with a server on the default port, puts the run on that server', async () => {
    const port = Number(new URL(server.url).port);
    const cwd = tempDir();
    try {
      const result = await runtrail(['exec', '--', 'sh', '-c', 'echo on the default server'], { env: byDefault(port), cwd: cwd.path });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toContain('embedded');
      expect(result.stderr).toContain(` on http://127.0.0.1:${port}\n`);
      expect((await client.getRun(runIdOf(result.stderr)!)).status).toBe('succeeded');
    } finally {
      cwd.remove();
    }
  });

  it('with another web server on the default port, says that something other than runtrail answers there, not that nothing does, and runs embedded', async () => {
    const other = createServer((_req, res) => res.writeHead(404).end('not found'));
    other.listen(0, '127.0.0.1');
    await once(other, 'listening');
    onTestFinished(() => void other.close());
    const port = (other.address() as AddressInfo).port;
    const cwd = tempDir();
    onTestFinished(() => cwd.remove());
    const result = await runtrail(['exec', '--', 'sh', '-c', 'echo alone'], { env: byDefault(port), cwd: cwd.path });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr.split('\n').filter((l) => l.includes('embedded'))).toEqual([
      `runtrail: something other than runtrail answers at http://127.0.0.1:${port} (HTTP 404 for /healthz): running embedded, data in ./.runtrail ('runtrail serve' there shows this run)`,
    ]);
  });

  it('with none, says in one line that it runs embedded, and a later `runtrail serve` on the default data dir shows the run', async () => {
    const port = await freePort();
    const cwd = tempDir();
    try {
      const result = await runtrail(['exec', '--', 'sh', '-c', 'echo alone'], { env: byDefault(port), cwd: cwd.path });
      expect(result.code, result.stderr).toBe(0);
      const notes = result.stderr.split('\n').filter((l) => l.includes('embedded'));
      expect(notes).toEqual([
        `runtrail: no server answers at http://127.0.0.1:${port}: running embedded, data in ./.runtrail ('runtrail serve' there shows this run)`,
      ]);
      const id = runIdOf(result.stderr)!;

      const later = await serve([], { env: byDefault(port), cwd: cwd.path });
      try {
        expect(later.url).toBe(`http://127.0.0.1:${port}`);
        const shown = await runtrail(['runs', 'show', id, '--json'], { env: byDefault(port), cwd: cwd.path });
        expect(shown.code, shown.stderr).toBe(0);
        expect(JSON.parse(shown.stdout) as Run).toMatchObject({ id, status: 'succeeded' });
      } finally {
        await later.stop();
      }
    } finally {
      cwd.remove();
    }
  });
});

describe("runtrail exec: a failed command's run error", () => {
  it('is a one-line headline (the first line of its command, how it ended, the exception), then its last stderr lines, as ctx.exec says it', async () => {
    const script = ['import sys', 'print("loading data.csv", file=sys.stderr)', 'def load(path):', '    raise ValueError(f"bad row in {path}")', 'load("data.csv")'].join('\n');
    const [failed, timedOut] = await Promise.all([
      runtrail(['exec', '--server', server.url, '--quiet', '--', 'python3', '-c', script]),
      runtrail(['exec', '--server', server.url, '--quiet', '--timeout', '1000', '--kill-grace', '300', '--', 'sh', '-c', 'echo starting >&2; sleep 30']),
    ]);
    expect(failed.code, failed.stderr).toBe(1);
    expect(timedOut.code, timedOut.stderr).toBe(124);
    const run = await client.getRun(runIdOf(failed.stderr)!);
    expect(run.error?.kind).toBe('error');
    expect(run.error!.message.split('\n')).toEqual([
      "python3 -c 'import sys … exited with code 1: ValueError: bad row in data.csv (the whole command line is in meta.exec.command)",
      '',
      'last 5 lines of stderr:',
      'loading data.csv',
      'Traceback (most recent call last):',
      '  File "<string>", line 5, in <module>',
      '  File "<string>", line 4, in load',
      'ValueError: bad row in data.csv',
    ]);
    expect((run.snapshot.meta as { exec: { command: string } }).exec.command).toBe(`python3 -c '${script}'`);
    // The closing line exec prints is the headline alone: the stderr lines were just printed above it.
    expect(failed.stderr).toContain(`run ${run.id} failed (error: python3 -c 'import sys … exited with code 1: ValueError: bad row in data.csv (the whole command line is in meta.exec.command))`);
    const timeout = await client.getRun(runIdOf(timedOut.stderr)!);
    expect(timeout.error).toEqual({
      kind: 'timeout',
      message: "sh -c 'echo starting >&2; sleep 30' timed out after 1 s: sent SIGTERM, which ended it\n\nlast line of stderr:\nstarting",
    });
  }, 60_000);
});

describe('runtrail exec cancelled from elsewhere', () => {
  it('stops a command that prints nothing as the cancel is made, not at its next heartbeat, and the run says why', async () => {
    // A lease of 10 minutes: the next plain heartbeat would come 200 s after the start.
    const child = spawnCli(['exec', '--server', server.url, '--lease-ttl', '10m', '--', 'sleep', '600']);
    onTestFinished(() => {
      // A failed wait leaves exec and its command running: stop both (the command is in exec's group only while exec lives).
      if (child.exitCode === null) child.kill('SIGINT');
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const id = await waitUntil(() => runIdOf(stderr), { what: 'exec to print its run id' });
    // The command is running and exec has said so (its process group, in a meta event): exec
    // sends nothing more, so only a heartbeat can tell it of the cancel.
    await waitUntil(async () => (await client.getRun(id)).snapshot.meta.exec, { what: 'exec to record its command' });
    await client.cancelRun(id, 'wrong dataset');
    await waitUntil(() => child.exitCode !== null, { timeoutMs: 20_000, what: 'exec to stop the command after the cancel' });
    // sleep stops on SIGTERM: 128 + 15.
    expect(child.exitCode, stderr).toBe(143);
    const run = await client.getRun(id);
    expect(run.status).toBe('cancelled');
    expect(run.error?.kind).toBe('cancelled');
    // The requester's reason, in the run's end and in what exec prints.
    expect(run.error?.message).toBe('sleep 600 was stopped (cancel requested: wrong dataset): sent SIGTERM, which ended it');
    expect(stderr).toContain(`run ${id} cancelled (cancelled: sleep 600 was stopped (cancel requested: wrong dataset): sent SIGTERM, which ended it)`);
  });
});

describe('runtrail exec when its server does not answer', () => {
  it('says once, while it still retries, which server it waits for and for how long; then that none answers, exit 2', async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const child = spawnCli(['exec', '--server', down, '--', 'true']);
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const exited = once(child, 'exit');
    const notice = `runtrail: waiting for the server at ${down} to answer, for up to 5 s (the run is made there before the command starts)\n`;
    // Before: nothing at all for the 5 s of retries, then only the last line.
    await waitUntil(() => stderr.includes(notice), { timeoutMs: 4_000, what: 'exec to say what it waits for, before it gives up' });
    expect(child.exitCode).toBe(null);
    const [code] = (await exited) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toBe(`${notice}runtrail: no server answers at ${down} (ECONNREFUSED); start one with 'runtrail serve' or pass --server\n`);
  });
});

describe('runtrail exec when its server goes away before the end', () => {
  it('says what it waits for once the command ended, and Ctrl-C stops the wait with the command\'s exit code', async () => {
    const gone = await serve(['--port', '0', '--data-dir', `${dir.path}/gone`]);
    onTestFinished(() => void gone.stop());
    const flag = `${dir.path}/command-may-end`;
    const child = spawnCli(['exec', '--server', gone.url, '--', 'sh', '-c', `echo working; while [ ! -e ${flag} ]; do sleep 0.05; done; exit 3`]);
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const id = await waitUntil(() => runIdOf(stderr), { what: 'exec to print its run id' });
    const watching = new RuntrailClient({ url: gone.url });
    await waitUntil(async () => (await watching.getRun(id)).snapshot.meta.exec, { what: 'exec to record its command' });
    gone.child.kill('SIGKILL');
    await once(gone.child, 'exit');
    writeFileSync(flag, '');
    // Before: silence for up to 5 minutes while its output log and end were retried, and Ctrl-C did nothing.
    await waitUntil(() => stderr.includes(`runtrail: waiting for the server at ${gone.url} to record how run ${id} ended`), {
      timeoutMs: 20_000,
      what: 'exec to say what it waits for',
    });
    child.kill('SIGINT');
    await waitUntil(() => child.exitCode !== null, { timeoutMs: 10_000, what: 'exec to stop waiting on Ctrl-C' });
    expect(child.exitCode, stderr).toBe(3);
    expect(stderr).toContain(`runtrail: stopped waiting: the server has not recorded how run ${id} ended; it ends it orphaned once its lease lapses`);
  });
});

/** The temporary copy of exec's output that it stores on the server when the command ends. */
const outputLogCopy = (id: string) => join(tmpdir(), `runtrail-exec-${id}.log`);

/** Exec running a command with a stubborn grandchild, once the run has said who they are. */
async function execMidRun(): Promise<{ cli: ReturnType<typeof spawnCli>; id: string; meta: { grandchild: number; exec: { pid: number; pgid: number } }; stderr: () => string }> {
  const cli = spawnCli(['exec', '--server', server.url, '--kill-grace', '300', '--quiet', '--', 'sh', '-c', LEAVES_STUBBORN_GRANDCHILD]);
  onTestFinished(() => {
    // A failed wait leaves exec running: stop it and, through it, its command.
    if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGINT');
  });
  let stderr = '';
  cli.stderr!.on('data', (d: Buffer) => (stderr += d));
  const id = await waitUntil(() => runIdOf(stderr), { what: 'exec to create its run', timeoutMs: 60_000 });
  const meta = await waitUntil(
    async () => {
      const m = (await client.getRun(id)).snapshot.meta as { grandchild?: number; exec?: { pid: number; pgid: number } };
      return m.grandchild && m.exec ? (m as Required<typeof m>) : null;
    },
    { what: `run ${id} to report its grandchild`, timeoutMs: 60_000 },
  );
  return { cli, id, meta, stderr: () => stderr };
}

/** A killed exec runs none of its own cleanup: what it leaves is what the product guarantees. */
async function killExecMidRun(signal: NodeJS.Signals): Promise<void> {
  const { cli, id, meta } = await execMidRun();
  const exited = once(cli, 'exit');
  const processes = [identify(meta.exec.pgid), identify(meta.exec.pid), identify(meta.grandchild)];
  cli.kill(signal);
  const [code, killedBy] = await exited;
  expect({ code, killedBy }).toEqual({ code: null, killedBy: signal });
  await waitGroupGone(meta.exec.pgid, processes, 5_000);
  await waitUntil(() => !existsSync(outputLogCopy(id)), { what: `${outputLogCopy(id)} to be gone`, timeoutMs: 5_000 });
}

describe('runtrail exec killed (SIGKILL)', () => {
  const ROUNDS = 4;
  const PER_ROUND = 5; // 20 in all

  it(`leaves no process of its command's group behind, within 5 s, nor the temporary copy of its output (${ROUNDS * PER_ROUND} times)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(Array.from({ length: PER_ROUND }, () => killExecMidRun('SIGKILL')));
    }
  }, 240_000); // 20 CLI processes start on 2 shared cores
});

describe('runtrail exec stopped by a signal (SIGHUP, SIGTERM)', () => {
  it("on a closed terminal's SIGHUP, stops its command's group as a timeout does, ends the run cancelled naming SIGHUP, and exits 129", async () => {
    const { cli, id, meta, stderr } = await execMidRun();
    const exited = once(cli, 'exit');
    const processes = [identify(meta.exec.pgid), identify(meta.exec.pid), identify(meta.grandchild)];
    cli.kill('SIGHUP');
    // Before: exec died of the SIGHUP at once and the run stayed running until its lease lapsed (then orphaned).
    const run = await waitUntil(
      async () => {
        const r = await client.getRun(id);
        return r.status === 'running' ? null : r;
      },
      { what: `run ${id} to end after SIGHUP`, timeoutMs: 20_000 },
    );
    expect(run.status).toBe('cancelled');
    expect(run.error?.kind).toBe('cancelled');
    // The grandchild ignores SIGTERM: only the SIGKILL after --kill-grace stops the group.
    // One line: the command by its first line, then each signal once, in order, and which ended what.
    expect(run.error?.message).toBe(
      `sh -c 'sh -c '\\''trap "" TERM; exec sleep 300'\\'' & … was stopped (runtrail exec got SIGHUP (its terminal closed)): ` +
        'sent SIGTERM, which ended it; then SIGKILL after a 300 ms grace to what it left running (the whole command line is in meta.exec.command)',
    );
    const [code, killedBy] = await exited;
    // As a shell reports a process SIGHUP ended: what the caller saw before exec caught it.
    expect({ code, killedBy }, stderr()).toEqual({ code: 129, killedBy: null });
    await waitGroupGone(meta.exec.pgid, processes, 5_000);
    expect(existsSync(outputLogCopy(id))).toBe(false);
  }, 120_000);

  it("on SIGTERM exits 143 even when its command's own SIGTERM handler exits 0, and the run ends cancelled naming SIGTERM", async () => {
    const cli = spawnCli(['exec', '--server', server.url, '--', 'sh', '-c', 'trap "exit 0" TERM; echo ready; while :; do sleep 0.05; done']);
    onTestFinished(() => {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGINT');
    });
    const exited = once(cli, 'exit');
    let stderr = '';
    cli.stderr!.on('data', (d: Buffer) => (stderr += d));
    const id = await waitUntil(() => runIdOf(stderr), { what: 'exec to create its run', timeoutMs: 60_000 });
    await waitUntil(async () => (await client.getRun(id)).snapshot.meta.exec, { what: 'exec to record its command', timeoutMs: 60_000 });
    cli.kill('SIGTERM');
    const [code] = await exited;
    // Before: 0, the command's own code, for a run that ended cancelled; now as SIGINT's 130 and SIGHUP's 129: 128 + 15.
    expect(code, stderr).toBe(143);
    const run = await client.getRun(id);
    expect(run.status).toBe('cancelled');
    expect(run.error?.message).toMatch(/ was stopped \(runtrail exec got SIGTERM\): sent SIGTERM, and it exited with code 0$/);
  }, 120_000);
});
