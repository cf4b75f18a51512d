import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { LEAVES_STUBBORN_GRANDCHILD, identify, waitGroupGone } from '@runtrail/test-support/process-tree';
import { BIN } from './harness.js';

/**
 * `runtrail exec` in a real terminal (tmux): what a person sees while the
 * command runs, and what Ctrl-C does. The command is a Python script whose
 * KeyboardInterrupt handler writes a file, so the test knows the cleanup ran.
 */
const SCRIPT = `
import sys, time
print("starting the sweep", flush=True)
print('::runtrail:: {"type":"progress","data":{"done":3,"total":10,"message":"three of ten"}}', flush=True)
for i in range(8):
    print("::runtrail:: not an event %d" % i, flush=True)
try:
    # Inside the try: a Ctrl-C right after this line must reach the handler too.
    print("ready for Ctrl-C", flush=True)
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    with open(sys.argv[1], "w") as f:
        f.write("cleaned up after KeyboardInterrupt")
    print("cleanup done", flush=True)
    sys.exit(3)
`;

/** A script that shrugs off SIGINT and SIGTERM: only SIGKILL stops it. */
const STUBBORN = `
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring Ctrl-C", flush=True)
while True:
    time.sleep(0.05)
`;

describe('runtrail exec in a terminal', () => {
  const dir = tempDir('runtrail-exec-tty-');
  // A tmux server of this test's own, so no other tmux session is touched; its socket goes with the temp dir.
  const socket = join(dir.path, 'tmux.sock');
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', socket, ...args], { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-J', '-t', 'exec', '-S', '-100');
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({ port: 0, dataDir: join(dir.path, 'server'), logLevel: 'silent' });
  });

  afterAll(async () => {
    try {
      tmux('kill-server');
    } catch (err) {
      // Already gone (the session ended and the server with it): nothing to stop.
      void err;
    }
    await server.close();
    dir.remove();
  });

  it('draws the live progress line, hides ::runtrail:: lines, warns about malformed ones, links the dashboard; Ctrl-C interrupts the script and exits 130', async () => {
    const script = join(dir.path, 'sweep.py');
    const marker = join(dir.path, 'interrupted.txt');
    const exitFile = join(dir.path, 'exit-code');
    writeFileSync(script, SCRIPT);
    // A plain shell in a 160-column terminal that stays open after the command, so its screen can be read.
    tmux('new-session', '-d', '-s', 'exec', '-x', '160', '-y', '50', 'bash --norc --noprofile');
    tmux('set-option', '-t', 'exec', 'remain-on-exit', 'on');
    const command = [process.execPath, BIN, 'exec', '--server', server.url, '--kill-grace', '10000', '--', 'python3', script, marker]
      .map((arg) => `'${arg}'`)
      .join(' ');
    tmux('send-keys', '-t', 'exec', `${command}; echo $? > '${exitFile}'`, 'Enter');

    // The same line `tail` and `demo` draw: the bar at 30% (3 of 10), running.
    await waitUntil(() => /\[#{7}\.{17}\]\s+30% running/.test(screen()) && screen().includes('ready for Ctrl-C'), {
      what: 'the progress line under the script output',
      timeoutMs: 30_000,
    });
    const shown = screen();
    const runId = /runtrail: run (\S+) on /.exec(shown)![1]!;
    expect(shown).toContain(`runtrail: dashboard: ${server.url}/runs/${runId}`);
    expect(shown).toContain('starting the sweep');
    // Protocol lines are events, not output: none is echoed...
    expect(shown.split('\n').filter((line) => line.startsWith('::runtrail::'))).toEqual([]);
    // ...and the first five malformed ones are reported, then one line says the rest are in the run's log.
    const warnings = shown.split('\n').filter((line) => line.startsWith('runtrail: ignored a malformed ::runtrail:: line'));
    expect(warnings).toHaveLength(5);
    expect(warnings[0]).toContain('::runtrail:: not an event 0');
    expect(shown).toContain("runtrail: more malformed ::runtrail:: lines are only in the run's log");
    // The progress line is the last thing on the screen, once.
    const lines = shown.trimEnd().split('\n');
    // With the count and the script's words, and no row of zero counters: a script makes no calls.
    expect(lines[lines.length - 1]).toMatch(/^\[#{7}\.{17}\]\s+30% running\s+3\/10 three of ten\s+\(live\)$/);
    expect(lines.filter((line) => line.includes('30% running'))).toHaveLength(1);

    tmux('send-keys', '-t', 'exec', 'C-c');
    await waitUntil(() => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '', { what: 'runtrail exec to exit', timeoutMs: 30_000 });
    expect(readFileSync(exitFile, 'utf8').trim()).toBe('130');
    // SIGINT reached the script first: its KeyboardInterrupt cleanup ran (within the 10 s grace, so no SIGTERM was needed).
    expect(readFileSync(marker, 'utf8')).toBe('cleaned up after KeyboardInterrupt');
    const after = screen();
    expect(after).toContain('cleanup done');
    expect(after).toMatch(/runtrail: run \S+ cancelled \(cancelled: .*was interrupted \(Ctrl-C\): sent SIGINT, and it exited with code 3\)/);

    const run = await new RuntrailClient({ url: server.url }).getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.error?.message).toMatch(/ was interrupted \(Ctrl-C\): sent SIGINT, and it exited with code 3$/);
  });
  it('Ctrl-C on a command that ignores SIGINT goes on to SIGTERM and SIGKILL a grace period apart, and still exits 130', async () => {
    const script = join(dir.path, 'stubborn.py');
    const exitFile = join(dir.path, 'stubborn-exit-code');
    writeFileSync(script, STUBBORN);
    tmux('new-session', '-d', '-s', 'stubborn', '-x', '160', '-y', '50', 'bash --norc --noprofile');
    const pane = () => tmux('capture-pane', '-p', '-J', '-t', 'stubborn', '-S', '-100');
    const command = [process.execPath, BIN, 'exec', '--server', server.url, '--kill-grace', '300', '--', 'python3', script].map((arg) => `'${arg}'`).join(' ');
    tmux('send-keys', '-t', 'stubborn', `${command}; echo $? > '${exitFile}'`, 'Enter');
    await waitUntil(() => pane().includes('ignoring Ctrl-C'), { what: 'the script to start', timeoutMs: 30_000 });
    const runId = /runtrail: run (\S+) on /.exec(pane())![1]!;

    tmux('send-keys', '-t', 'stubborn', 'C-c');
    await waitUntil(() => existsSync(exitFile) && readFileSync(exitFile, 'utf8').trim() !== '', { what: 'runtrail exec to exit', timeoutMs: 30_000 });
    expect(readFileSync(exitFile, 'utf8').trim()).toBe('130');
    const run = await new RuntrailClient({ url: server.url }).getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.error?.message).toMatch(
      / was interrupted \(Ctrl-C\): sent SIGINT, then SIGTERM after a 300 ms grace, then SIGKILL after a 300 ms grace$/,
    );
  });

  it("a closed terminal (its tmux session killed) stops the command's group and ends the run cancelled naming SIGHUP, though writing to the terminal now fails", async () => {
    const script = join(dir.path, 'ticks.sh');
    writeFileSync(script, LEAVES_STUBBORN_GRANDCHILD);
    tmux('new-session', '-d', '-s', 'hangup', '-x', '160', '-y', '50', 'bash --norc --noprofile');
    const pane = () => tmux('capture-pane', '-p', '-J', '-t', 'hangup', '-S', '-100');
    // Not --quiet: the command's ticks are still echoed after the hangup, and those writes fail (EIO).
    const command = [process.execPath, BIN, 'exec', '--server', server.url, '--kill-grace', '300', '--', 'sh', script].map((arg) => `'${arg}'`).join(' ');
    tmux('send-keys', '-t', 'hangup', command, 'Enter');
    const runId = await waitUntil(() => /runtrail: run (\S+) on /.exec(pane())?.[1], { what: 'exec to print its run id', timeoutMs: 30_000 });
    const client = new RuntrailClient({ url: server.url });
    const meta = await waitUntil(
      async () => {
        const m = (await client.getRun(runId)).snapshot.meta as { grandchild?: number; exec?: { pid: number; pgid: number } };
        return m.grandchild && m.exec ? (m as Required<typeof m>) : null;
      },
      { what: `run ${runId} to report its grandchild`, timeoutMs: 30_000 },
    );
    const processes = [identify(meta.exec.pgid), identify(meta.exec.pid), identify(meta.grandchild)];

    tmux('kill-session', '-t', 'hangup');
    // Before: exec died of the hangup (or of the EIO after it), the command's group ran on, and the run waited for its lease.
    const run = await waitUntil(
      async () => {
        const r = await client.getRun(runId);
        return r.status === 'running' ? null : r;
      },
      { what: `run ${runId} to end after the hangup`, timeoutMs: 20_000 },
    );
    expect(run.status, run.error?.message).toBe('cancelled');
    expect(run.error?.message).toMatch(
      / was stopped \(runtrail exec got SIGHUP \(its terminal closed\)\): sent SIGTERM, which ended it; then SIGKILL after a 300 ms grace to what it left running$/,
    );
    await waitGroupGone(meta.exec.pgid, processes, 5_000);
  });

  it('a closed terminal that sends exec no SIGHUP (it runs in a session of its own) makes its writes fail with EIO, and exec runs its command to the end and records it', async () => {
    const flag = join(dir.path, 'may-end');
    const script = join(dir.path, 'counts.sh');
    writeFileSync(script, `i=0; while [ ! -e '${flag}' ]; do i=$((i+1)); echo "tick $i"; sleep 0.05; done; echo done`);
    tmux('new-session', '-d', '-s', 'nohup', '-x', '160', '-y', '50', 'bash --norc --noprofile');
    const pane = () => tmux('capture-pane', '-p', '-J', '-t', 'nohup', '-S', '-100');
    // setsid: the terminal is exec's stdout and stderr but not its controlling terminal, so closing it
    // sends exec no SIGHUP, and the first sign of it is a write failing with EIO (as a write in
    // flight is, before the SIGHUP, when exec's own terminal closes).
    const command = ['setsid', process.execPath, BIN, 'exec', '--server', server.url, '--', 'sh', script].map((arg) => `'${arg}'`).join(' ');
    tmux('send-keys', '-t', 'nohup', command, 'Enter');
    const runId = await waitUntil(() => /runtrail: run (\S+) on /.exec(pane())?.[1], { what: 'exec to print its run id', timeoutMs: 30_000 });
    const client = new RuntrailClient({ url: server.url });
    const ticks = async () => (await client.readEvents(runId, 0, 5000)).events.filter((e) => e.type === 'log' && /^tick \d+$/.test((e.data as { message: string }).message)).length;
    await waitUntil(async () => (await ticks()) > 0, { what: 'the first tick to be stored' });

    tmux('kill-session', '-t', 'nohup');
    const atClose = await ticks();
    // Each tick after the close is echoed to the closed terminal (EIO) and stored; a crashed exec stores no more.
    await waitUntil(async () => (await ticks()) >= atClose + 20 || (await client.getRun(runId)).status !== 'running', {
      what: 'exec to go on after the terminal closed',
      timeoutMs: 20_000,
    });
    writeFileSync(flag, '');
    const run = await waitUntil(
      async () => {
        const r = await client.getRun(runId);
        return r.status === 'running' ? null : r;
      },
      { what: `run ${runId} to end`, timeoutMs: 20_000 },
    );
    // Before: exec died of the uncaught EIO, and the run ended failed with "write EIO".
    expect(run.status, run.error?.message).toBe('succeeded');
  });
});
