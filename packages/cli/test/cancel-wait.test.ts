import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { Run } from '@runtrail/protocol';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { BIN, runtrail, serve, spawnCli } from './harness.js';

/**
 * `runtrail cancel ID --wait`: the request, then the wait for the run's end,
 * however it comes (its owner stops it, the reaper ends it, it finishes first).
 */

const runIdOf = (stderr: string) => /runtrail: run (\S+) on /.exec(stderr)?.[1];

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeAll(async () => {
  dir = tempDir('runtrail-cancel-wait-');
  // A quick reaper, so a run whose owner is gone ends within a second of its lease lapsing.
  server = await startServer({ port: 0, dataDir: `${dir.path}/server`, logLevel: 'silent', reaperIntervalMs: 100 });
  client = new RuntrailClient({ url: server.url });
});
afterAll(async () => {
  await server.close();
  dir.remove();
});

/** A running run made over HTTP whose producer then says nothing more (no heartbeats): an owner that is gone. */
async function ownedRun(url: string, body: Record<string, unknown>): Promise<Run> {
  const res = await fetch(`${url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`create run: ${res.status} ${await res.text()}`);
  return (await res.json()) as Run;
}

/** `runtrail cancel ID --wait …` started, and its stderr as it comes. */
function cancelWait(args: string[]) {
  const child = spawnCli(['cancel', ...args]);
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, out, exited };
}

describe('runtrail cancel --wait', () => {
  it('waits while the owner (an exec) stops its command, says on stderr what it waits for, then prints how the run ended, exit 0', async () => {
    const exec = spawnCli(['exec', '--server', server.url, '--', 'sleep', '600']);
    onTestFinished(() => {
      if (exec.exitCode === null) exec.kill('SIGINT');
    });
    let execErr = '';
    exec.stderr!.on('data', (d: Buffer) => (execErr += d));
    const id = await waitUntil(() => runIdOf(execErr), { what: 'exec to print its run id' });
    await waitUntil(async () => (await client.getRun(id)).snapshot.meta.exec, { what: 'exec to record its command' });
    const { owner } = await client.getRun(id);

    const result = await runtrail(['cancel', id, '--wait', '--reason', 'wrong dataset', '--server', server.url]);

    expect(result.code, result.stderr).toBe(0);
    // Piped: the wait is one line, naming who ends the run.
    expect(result.stderr).toBe(
      `runtrail: cancel requested; waiting for run ${id} to end: its owner (${owner!.kind} ${owner!.id} on ${owner!.node}) stops it, ` +
        'or, if that is gone, the reaper ends it cancelled once its lease of 30s lapses unrenewed\n',
    );
    // It returned only once the run had ended: exec stopped its command and recorded why.
    expect(result.stdout).toBe(
      `run ${id} ended cancelled (cancelled: sleep 600 was stopped (cancel requested: wrong dataset): sent SIGTERM, which ended it)\n`,
    );
    expect((await client.getRun(id)).status).toBe('cancelled');
  });

  it('waits for the reaper to end a run whose owner is gone, exit 0', async () => {
    const owner = { kind: 'producer', node: 'gone-host', id: 'pid-1' };
    const run = await ownedRun(server.url, { name: 'abandoned', leaseTtlMs: 1000, owner });
    // The owner lives until the cancel is requested, then goes: otherwise a slow start of the CLI (a loaded machine)
    // let the lease lapse first, and the reaper ended the run orphaned before any cancel, which is another test.
    const heartbeat = () =>
      fetch(`${server.url}/api/v1/runs/${run.id}/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ owner }) });
    let beating = true;
    const beats = (async () => {
      while (beating) {
        await heartbeat();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const waiting = cancelWait([run.id, '--wait', '--server', server.url]);
    await waitUntil(() => waiting.out.stderr.includes('waiting for run'), { what: 'cancel --wait to say what it waits for' });
    beating = false;
    await beats;
    const code = await waiting.exited;
    // The exit can come before the pipes' last bytes.
    await waitUntil(() => waiting.out.stdout.endsWith('\n'), { what: 'the line saying how the run ended' });
    const result = { code, ...waiting.out };

    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain(`waiting for run ${run.id} to end: its owner (producer pid-1 on gone-host) stops it, or, if that is gone, the reaper ends it cancelled once its lease of 1s lapses unrenewed\n`);
    expect(result.stdout).toMatch(new RegExp(`^run ${run.id} ended cancelled \\(cancelled: cancel requested .*owner producer pid-1 on gone-host stopped heartbeating`));
    expect((await client.getRun(run.id)).status).toBe('cancelled');

    // Again, once it has ended (after a Ctrl-C, say): what it waits for is there, exit 0, not "already ended".
    const again = await runtrail(['cancel', run.id, '--wait', '--server', server.url]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(result.stdout);
  });

  it('exits 1 with the run as it ended (--json) when it finished before the cancel took effect', async () => {
    const owner = { kind: 'producer', node: 'busy-host', id: 'pid-2' };
    const run = await ownedRun(server.url, { name: 'nearly-done', leaseTtlMs: 60_000, owner });
    const waiting = cancelWait([run.id, '--wait', '--json', '--server', server.url]);
    await waitUntil(() => waiting.out.stderr.includes('waiting for run'), { what: 'cancel --wait to say what it waits for' });
    expect(waiting.child.exitCode).toBe(null);
    // The owner ignores the request and finishes its work.
    const res = await fetch(`${server.url}/api/v1/runs/${run.id}/finish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'succeeded', output: { documents: 12 }, owner }),
    });
    expect(res.status).toBe(200);

    expect(await waiting.exited).toBe(1);
    const ended = JSON.parse(waiting.out.stdout) as Run;
    expect(ended).toMatchObject({ id: run.id, status: 'succeeded', output: { documents: 12 } });
    expect(ended.cancelRequestedAt).not.toBe(null);
  });

  it('gives up as tail does (exit 2, naming --give-up-after) when the server stops answering', async () => {
    const gone = await serve(['--port', '0', '--data-dir', `${dir.path}/gone`]);
    onTestFinished(() => void gone.stop());
    const run = await ownedRun(gone.url, { name: 'held', leaseTtlMs: 60_000 });
    const waiting = cancelWait([run.id, '--wait', '--give-up-after', '1s', '--server', gone.url]);
    await waitUntil(() => waiting.out.stderr.includes('waiting for run'), { what: 'cancel --wait to say what it waits for' });
    gone.child.kill('SIGKILL');
    await once(gone.child, 'exit');

    expect(await waiting.exited).toBe(2);
    const lines = waiting.out.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(new RegExp(`^runtrail: unavailable: no answer from ${gone.url.replace(/\./g, '\\.')} for 1s \\(.+\\); gave up \\(--give-up-after\\)$`));
    expect(waiting.out.stdout).toBe('');
  });

  it('on a terminal, draws what it waits for as one status line cut to the width, then says how the run ended', async () => {
    // A tmux server of this test's own, so no other tmux session is touched; its socket goes with the temp dir.
    const socket = join(dir.path, 'tmux.sock');
    const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
    const screen = () => tmux('capture-pane', '-p', '-J', '-t', 'cancel', '-S', '-50');
    onTestFinished(() => {
      try {
        tmux('kill-server');
      } catch (err) {
        // Already gone (the session ended and the server with it): nothing to stop.
        void err;
      }
    });
    const owner = { kind: 'producer', node: 'tty-host', id: 'pid-4' };
    const run = await ownedRun(server.url, { name: 'watched-in-a-terminal', leaseTtlMs: 60_000, owner });
    const exitFile = join(dir.path, 'cancel-exit-code');
    tmux('new-session', '-d', '-s', 'cancel', '-x', '120', '-y', '30', 'bash --norc --noprofile');
    const command = [process.execPath, BIN, 'cancel', run.id, '--wait', '--server', server.url].map((arg) => `'${arg}'`).join(' ');
    tmux('send-keys', '-t', 'cancel', `${command}; echo $? > '${exitFile}'`, 'Enter');

    const drawn = `runtrail: cancel requested; waiting for run ${run.id} to end (live): its owner`;
    await waitUntil(() => screen().includes(drawn), { what: 'the status line of the wait', timeoutMs: 30_000 });
    const line = screen().split('\n').find((l) => l.startsWith(drawn))!;
    // Cut to the 120 columns, so it is redrawn in place rather than wrapped.
    expect(line.length).toBeLessThan(120);
    expect(line.endsWith('…')).toBe(true);

    const res = await fetch(`${server.url}/api/v1/runs/${run.id}/finish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ status: 'cancelled', error: { kind: 'cancelled', message: 'stopped on request' }, owner }),
    });
    expect(res.status).toBe(200);
    await waitUntil(() => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '', { what: 'cancel --wait to exit', timeoutMs: 30_000 });
    expect(readFileSync(exitFile, 'utf8').trim()).toBe('0');
    const after = screen();
    expect(after).toContain(`run ${run.id} ended cancelled (cancelled: stopped on request)`);
    // One status line, redrawn in place, not one per change.
    expect(after.split('\n').filter((l) => l.includes('waiting for run'))).toHaveLength(1);
  });

  it('refuses --give-up-after without --wait, naming both', async () => {
    const run = await ownedRun(server.url, { name: 'left-alone' });
    const result = await runtrail(['cancel', run.id, '--give-up-after', '5s', '--server', server.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('runtrail: invalid_request: --give-up-after is how long --wait waits for a silent server; give it with --wait\n');
    // Refused before anything was asked: the run was not cancelled.
    expect((await client.getRun(run.id)).cancelRequestedAt).toBe(null);
  });
});
