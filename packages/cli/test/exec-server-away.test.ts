import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run, RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer, type ServerConfigInput } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { LEAVES_STUBBORN_GRANDCHILD, identify, waitGroupGone } from '@runtrail/test-support/process-tree';
import { spawnCli } from './harness.js';

/**
 * `runtrail exec` while its server is gone: a real server closed mid-run
 * and a new one started later on the same data dir and port, as a restart
 * or an outage looks to exec. What exec says, what the run keeps, and what
 * becomes of the command when the run was reaped meanwhile.
 */

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];
const count = (text: string, part: string) => text.split(part).length - 1;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A server on `dataDir`, closed after the test unless the test closed it. */
async function server(dataDir: string, options: ServerConfigInput = {}): Promise<RunningServer> {
  const s = await startServer({ port: 0, dataDir, logLevel: 'silent', reaperIntervalMs: 100, ...options });
  let closed = false;
  const close = s.close.bind(s);
  s.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  cleanups.push(() => s.close());
  return s;
}

function execCli(args: string[]) {
  const cli = spawnCli(['exec', ...args]);
  cleanups.push(() => {
    // A failed wait leaves exec and its command running: Ctrl-C stops both.
    if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGINT');
  });
  let stdout = '';
  let stderr = '';
  cli.stdout!.on('data', (d: Buffer) => (stdout += d));
  cli.stderr!.on('data', (d: Buffer) => (stderr += d));
  const exited = once(cli, 'exit').then(([code]) => code as number | null);
  return { cli, exited, stdout: () => stdout, stderr: () => stderr };
}

async function events(client: RuntrailClient, id: string): Promise<RunEvent[]> {
  return (await client.readEvents(id, 0, 5000)).events;
}

describe('runtrail exec while its server is away', () => {
  it('says once that the server does not answer and once that it is back, and the output of the outage is in the run once', async () => {
    const dir = tempDir('runtrail-exec-away-');
    cleanups.push(() => dir.remove());
    const dataDir = join(dir.path, 'data');
    const first = await server(dataDir);
    const port = Number(new URL(first.url).port);
    const outage = join(dir.path, 'server-gone');
    const back = join(dir.path, 'server-back');
    const command = [
      'echo before the outage',
      `while [ ! -e ${outage} ]; do sleep 0.05; done`,
      'echo during the outage 1',
      `echo '::runtrail:: {"type":"counter","data":{"name":"outage_lines","delta":1}}'`,
      'echo during the outage 2',
      `while [ ! -e ${back} ]; do sleep 0.05; done`,
      'echo after the outage',
    ].join('\n');
    const exec = execCli(['--server', first.url, '--', 'sh', '-c', command]);
    const id = await waitUntil(() => runIdOf(exec.stderr()), { what: 'exec to create its run', timeoutMs: 30_000 });
    const client = new RuntrailClient({ url: first.url });
    await waitUntil(async () => (await events(client, id)).some((e) => e.type === 'log' && e.data.message === 'before the outage'), {
      what: 'the first line to be stored',
    });

    await first.close();
    // The held heartbeat is dropped as the server shuts down: exec knows at once.
    await waitUntil(() => exec.stderr().includes(`runtrail: server ${first.url} not answering since `), { what: 'exec to say the server does not answer' });
    writeFileSync(outage, '');
    await waitUntil(() => exec.stdout().includes('during the outage 2\n'), { what: 'the command to print during the outage' });
    const away = exec.stderr();
    // Before: nothing at all was said until the command ended.
    expect(away).toMatch(
      new RegExp(
        `runtrail: server ${first.url} not answering since \\d\\d:\\d\\d:\\d\\dZ \\([^)]+\\); retrying; the run ends orphaned if no heartbeat reaches it by \\d\\d:\\d\\d:\\d\\dZ \\(lease 30 s\\)\\n`,
      ),
    );

    await server(dataDir, { port });
    await waitUntil(() => /runtrail: server \S+ answering again after [\d.]+ s; nothing lost\n/.test(exec.stderr()), {
      what: 'exec to say the server answers again',
      timeoutMs: 20_000,
    });
    writeFileSync(back, '');
    const code = await exec.exited;
    expect(code, exec.stderr()).toBe(0);
    // Once each, however many times the appends and heartbeats were retried meanwhile.
    expect(count(exec.stderr(), 'not answering since'), exec.stderr()).toBe(1);
    expect(count(exec.stderr(), 'answering again after'), exec.stderr()).toBe(1);

    const run: Run = await client.getRun(id);
    expect(run.status).toBe('succeeded');
    // The counter is reduced from the events: stored twice, it would say 2.
    expect(run.snapshot.counters.named).toEqual({ outage_lines: 1 });
    const lines = (await events(client, id)).filter((e) => e.type === 'log').map((e) => e.data.message as string);
    for (const line of ['before the outage', 'during the outage 1', 'during the outage 2', 'after the outage']) {
      expect(lines.filter((l) => l === line), line).toHaveLength(1);
    }
  }, 60_000);

  it('stops the command and says how the run ended when it was reaped orphaned while the server was away longer than the lease', async () => {
    const dir = tempDir('runtrail-exec-orphaned-');
    cleanups.push(() => dir.remove());
    const dataDir = join(dir.path, 'data');
    const first = await server(dataDir);
    const port = Number(new URL(first.url).port);
    const exec = execCli(['--server', first.url, '--lease-ttl', '1s', '--kill-grace', '300', '--quiet', '--', 'sh', '-c', LEAVES_STUBBORN_GRANDCHILD]);
    const id = await waitUntil(() => runIdOf(exec.stderr()), { what: 'exec to create its run', timeoutMs: 30_000 });
    const client = new RuntrailClient({ url: first.url });
    const meta = await waitUntil(
      async () => {
        const m = (await client.getRun(id)).snapshot.meta as { grandchild?: number; exec?: { pid: number; pgid: number } };
        return m.grandchild && m.exec ? (m as Required<typeof m>) : null;
      },
      { what: `run ${id} to report its command's group`, timeoutMs: 30_000 },
    );
    const processes = [identify(meta.exec.pgid), identify(meta.exec.pid), identify(meta.grandchild)];

    await first.close();
    await waitUntil(() => exec.stderr().includes('not answering since'), { what: 'exec to say the server does not answer' });
    expect(exec.stderr()).toContain('the run ends orphaned if no heartbeat reaches it by ');
    expect(exec.stderr()).toContain('(lease 1 s)');
    // A server restarted on the same port gives every run a full lease to reconnect, which exec
    // would: the reaper that ends the run is one exec cannot reach, as another node's on the same
    // store would be (here the same data dir on another port).
    const other = await server(dataDir);
    const otherClient = new RuntrailClient({ url: other.url });
    const reaped = await waitUntil(
      async () => {
        const r = await otherClient.getRun(id);
        return r.status === 'running' ? null : r;
      },
      { what: `the reaper to end run ${id}`, timeoutMs: 20_000 },
    );
    expect(reaped.error?.kind).toBe('orphaned');
    await other.close();

    await server(dataDir, { port });
    // Promptly: at exec's next heartbeat, a third of the lease.
    await waitUntil(() => exec.stderr().includes(`runtrail: run ${id} was ended on the server while sh ran: failed (orphaned: `), {
      what: 'exec to say its run was reaped',
      timeoutMs: 5_000,
    });
    expect(exec.stderr()).toMatch(/stopping sh \(SIGTERM to its process group, SIGKILL after 300 ms\): its output can no longer be recorded in the run\n/);
    expect(exec.stderr()).toContain('stopped heartbeating');
    // Before: the command ran on, with nowhere to report, until it ended on its own.
    await waitGroupGone(meta.exec.pgid, processes, 5_000);
    const code = await exec.exited;
    // sh died of the SIGTERM (its grandchild needed the SIGKILL): as for a cancel, 128 + 15.
    expect(code, exec.stderr()).toBe(143);
    expect(exec.stderr()).toContain(`runtrail: run ${id} was already ended on the server: failed (orphaned: `);
    expect((await client.getRun(id)).status).toBe('failed');
  }, 60_000);
});
