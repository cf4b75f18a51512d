import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { request, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { buildPath } from '@runtrail/protocol';
import { startServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { freePort, spawnCli } from './harness.js';

/**
 * A stopping signal that reaches `runtrail exec` while it is still making
 * its run (waiting for a server that does not answer yet): exec stops
 * waiting and exits 128+N, the command never starts, and a run the server
 * made all the same ends cancelled naming the signal. Before, the signal
 * killed exec by default there, and such a run ended orphaned a lease later.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function execCli(args: string[]) {
  const cli = spawnCli(['exec', ...args]);
  cleanups.push(() => {
    if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
  });
  let stderr = '';
  cli.stderr!.on('data', (d: Buffer) => (stderr += d));
  const exited = once(cli, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
  return { cli, exited, stderr: () => stderr };
}

describe('runtrail exec stopped by a signal before its command started', () => {
  it('SIGTERM while no server answers yet: exec stops waiting, exits 143, makes no run and never starts the command', async () => {
    const dir = tempDir('runtrail-exec-early-');
    cleanups.push(() => dir.remove());
    const marker = join(dir.path, 'started');
    // Nothing listens on the port: exec retries the create (for up to 5 s) and says it waits.
    const url = `http://127.0.0.1:${await freePort()}`;
    const exec = execCli(['--server', url, '--', 'sh', '-c', `touch ${marker}`]);
    await waitUntil(() => exec.stderr().includes(`waiting for the server at ${url} to answer`), { what: 'exec to wait for the server', timeoutMs: 30_000 });
    exec.cli.kill('SIGTERM');
    expect(await exec.exited, exec.stderr()).toEqual({ code: 143, signal: null });
    expect(exec.stderr()).toContain('runtrail: got SIGTERM before sh started: it will not be started');
    expect(exec.stderr()).toContain(`runtrail: no run was made at ${url}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('SIGTERM while the create is answered: the run the server made ends cancelled naming the signal, exit 143, the command never started', async () => {
    const dir = tempDir('runtrail-exec-early-');
    cleanups.push(() => dir.remove());
    const marker = join(dir.path, 'started');
    const server = await startServer({ port: 0, dataDir: join(dir.path, 'data'), logLevel: 'silent' });
    cleanups.push(() => server.close());
    // A proxy in front of the server that holds the create's answer until the test lets it go:
    // the run exists on the server, and exec has not heard of it, when the signal comes.
    const target = new URL(server.url);
    const createPath = buildPath('createRun', {});
    let createAnswered: (res: IncomingMessage) => void;
    const answered = new Promise<IncomingMessage>((resolve) => (createAnswered = resolve));
    let release: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      const upstream = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, async (answer) => {
        if (req.method === 'POST' && req.url === createPath) {
          createAnswered(answer);
          await released;
        }
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    cleanups.push(() => proxy.closeAllConnections());
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;

    const exec = execCli(['--server', proxyUrl, '--', 'sh', '-c', `touch ${marker}`]);
    const created = await answered;
    expect(created.statusCode).toBe(201);
    exec.cli.kill('SIGTERM');
    // exec has taken the signal (it says so) before it hears that the run was made.
    await waitUntil(() => exec.stderr().includes('got SIGTERM before sh started'), { what: 'exec to take the signal', timeoutMs: 30_000 });
    release!();
    expect(await exec.exited, exec.stderr()).toEqual({ code: 143, signal: null });

    const { runs } = await new RuntrailClient({ url: server.url }).listRuns();
    expect(runs).toHaveLength(1);
    expect(runs[0]!.status).toBe('cancelled');
    expect(runs[0]!.error).toMatchObject({ kind: 'cancelled', message: 'runtrail exec got SIGTERM before the command started' });
    expect(exec.stderr()).toContain(`runtrail: run ${runs[0]!.id} cancelled (cancelled: runtrail exec got SIGTERM before the command started)`);
    expect(existsSync(marker)).toBe(false);
  });
});
