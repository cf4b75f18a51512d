import { spawn } from 'node:child_process';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RunEvent } from '@runtrail/protocol';
import { startServer, type RunningServer } from '@runtrail/server';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TcpProxy } from '@runtrail/test-support/tcp-proxy';
import { RuntrailClient } from '../runtrail-client.js';

/**
 * A Node producer whose process goes away with its run open: a real child
 * process (the built package, imported by name) against a real server. The
 * run must keep every event the producer queued and end with how its
 * process ended, at once, not be reaped `orphaned` a lease later without
 * them; and the process must end as it would have without runtrail.
 */

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/producer-going-away.mjs', import.meta.url));
const SLOW_WORKER_START = fileURLToPath(new URL('../../test/fixtures/slow-worker-start.cjs', import.meta.url));

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;

beforeEach(async () => {
  dir = tempDir();
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
  client = new RuntrailClient({ url: server.url });
});

afterEach(async () => {
  await server.close();
  dir.remove();
});

interface Producer {
  runId: Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }>;
  kill(signal: NodeJS.Signals): void;
  write(line: string): void;
}

/** `slowWorkerStartMs`: each worker thread of the producer starts that much later, as on a loaded machine. */
function producer(how: string, options?: object, target = server.url, slowWorkerStartMs = 0): Producer {
  const preload = slowWorkerStartMs > 0 ? ['--require', SLOW_WORKER_START] : [];
  const child = spawn(process.execPath, [...preload, FIXTURE, target, how, ...(options ? [JSON.stringify(options)] : [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, SLOW_WORKER_START_MS: String(slowWorkerStartMs) },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const runId = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
    });
    child.once('exit', () => reject(new Error(`the producer exited before creating its run: ${stderr}`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, stderr, stdout })),
  );
  return { runId, exited, kill: (signal) => child.kill(signal), write: (line) => child.stdin.write(`${line}\n`) };
}

async function allEvents(runId: string): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for (;;) {
    const page = await client.readEvents(runId, out.length ? out[out.length - 1]!.seq : 0);
    out.push(...page.events);
    if (page.events.length === 0 || out[out.length - 1]!.seq >= page.seq) return out;
  }
}

/** Every one of the 1,200 progress events the producer queued, each once, in order. */
function expectAllProgress(events: RunEvent[]): void {
  const done = events.filter((e) => e.type === 'progress').map((e) => (e.data as { done: number }).done);
  expect(done).toEqual(Array.from({ length: 1200 }, (_, i) => i + 1));
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
}

describe('a Node producer going away with its run open', () => {
  it('an uncaught exception: the run keeps the queued events and the stack, ends failed with the error, the process still exits 1', async () => {
    const p = producer('crash');
    const runId = await p.runId;
    const { code, stderr } = await p.exited;
    expect(code).toBe(1);
    // Node's own report of the crash is still printed, then runtrail's line.
    expect(stderr).toContain('TypeError: judge is not a function');
    expect(stderr).toContain(`runtrail: run ${runId} ended failed: TypeError: judge is not a function (its 1201 unsent events stored first)`);
    const run = await client.getRun(runId);
    expect(run.status).toBe('failed');
    expect(run.snapshot.terminal?.error).toEqual({ kind: 'error', message: 'TypeError: judge is not a function' });
    const events = await allEvents(runId);
    expectAllProgress(events);
    const log = events.find((e) => e.type === 'log');
    expect((log?.data as { level: string; message: string }).level).toBe('error');
    expect((log?.data as { message: string }).message).toMatch(/^TypeError: judge is not a function\n\s+at /);
    expect(run.snapshot.progress).toMatchObject({ done: 1200, total: 1200 });
  });

  it('a throw at the top of an ES module (a rejection) ends the run failed with that error', async () => {
    const p = producer('top-level');
    const runId = await p.runId;
    expect((await p.exited).code).toBe(1);
    const run = await client.getRun(runId);
    expect(run.snapshot.terminal?.error).toEqual({ kind: 'error', message: 'Error: the dataset is gone' });
    expectAllProgress(await allEvents(runId));
  });

  it('process.exit() with the run open: its events are stored and it ends orphaned, saying so; the exit code stays', async () => {
    const p = producer('exit');
    const runId = await p.runId;
    expect((await p.exited).code).toBe(3);
    const run = await client.getRun(runId);
    expect(run.status).toBe('failed');
    expect(run.snapshot.terminal?.error).toEqual({ kind: 'orphaned', message: 'the producer process exited (code 3) without ending the run' });
    expectAllProgress(await allEvents(runId));
  });

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal}: the run ends failed naming it, and the process still dies of ${signal}`, async () => {
      const p = producer('idle');
      const runId = await p.runId;
      p.kill(signal);
      const exit = await p.exited;
      expect(exit.signal).toBe(signal);
      const run = await client.getRun(runId);
      expect(run.snapshot.terminal?.error).toEqual({ kind: 'interrupted', message: `the producer process was stopped by ${signal}` });
      expectAllProgress(await allEvents(runId));
    });
  }

  it('a cancel the script stops for by throwing its reason ends the run cancelled with the reason, not failed', async () => {
    const p = producer('idle', { producer: { holdHeartbeat: true } });
    const runId = await p.runId;
    await client.cancelRun(runId, 'wrong dataset');
    expect((await p.exited).code).toBe(1);
    const run = await client.getRun(runId);
    expect(run.status).toBe('cancelled');
    expect(run.snapshot.terminal?.error).toEqual({ kind: 'cancelled', message: 'cancel requested: wrong dataset' });
  });

  it('a run the script ended itself (succeed() not awaited) before process.exit() ends as asked, with its events, not orphaned', async () => {
    const p = producer('succeed-exit');
    const runId = await p.runId;
    const { code, stderr } = await p.exited;
    expect(code).toBe(0);
    expect(stderr).toContain(`runtrail: run ${runId} ended succeeded (its 1200 unsent events stored first)`);
    const run = await client.getRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ items: 1200 });
    expectAllProgress(await allEvents(runId));
  });

  it('a succeed the server stored before the process exited, unheard by the handle, is not contradicted', async () => {
    // Before, the guard sent "exited without ending the run" under the same finish id: refused as a conflicting
    // event id, and the line said the run could not be ended and the reaper would end it orphaned.
    const p = producer('succeed-stored-exit');
    const runId = await p.runId;
    const { code, stderr } = await p.exited;
    expect(code).toBe(0);
    expect(stderr).toContain(`runtrail: run ${runId} ended succeeded`);
    expect(stderr).not.toContain('could not be ended');
    const run = await client.getRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ items: 1200 });
  });

  it('a fail() not awaited before a crash ends the run with the error the script gave', async () => {
    const p = producer('fail-crash');
    const runId = await p.runId;
    expect((await p.exited).code).toBe(1);
    const run = await client.getRun(runId);
    expect(run.snapshot.terminal?.error).toEqual({ kind: 'error', message: 'bad batch' });
    expectAllProgress(await allEvents(runId));
  });

  it('a process kept alive by its held heartbeat stays alive through a network outage, and hears the cancel after it', async () => {
    // Before, the beat that failed as the connection dropped left only an unref'd timer: the process exited (code 0) and its run ended orphaned.
    await server.close();
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent', leaseTtlMs: 3000 });
    client = new RuntrailClient({ url: server.url });
    const link = await TcpProxy.start(server.url);
    try {
      const p = producer('wait-for-cancel', { producer: { holdHeartbeat: true } }, link.url);
      const runId = await p.runId;
      let exited = false;
      void p.exited.then(() => (exited = true));
      // Its events are stored, and its held beat (open since the run was made) is what keeps it alive: cut it.
      await waitUntil(async () => (await client.getRun(runId)).seq === 1200, { what: 'the events' });
      link.cut();
      await waitUntil(async () => exited || Date.now() - (await client.getRun(runId)).heartbeatAt! > 1_500, { what: 'an outage of 1.5 s' });
      link.allow();
      const backAt = Date.now();
      // Still there when the server is reachable again: it beats again (its next beat is due within lease/3).
      await waitUntil(async () => exited || ((await client.getRun(runId)).heartbeatAt ?? 0) >= backAt, { what: 'a beat after the outage' });
      expect(exited).toBe(false);
      await client.cancelRun(runId, 'after the outage');
      const { code, stdout } = await p.exited;
      expect(code).toBe(0);
      expect(stdout).toContain('ended');
      const run = await client.getRun(runId);
      expect(run.status).toBe('cancelled');
      expect(run.snapshot.terminal?.error).toEqual({ kind: 'cancelled', message: 'stopping as asked' });
    } finally {
      await link.close();
    }
  });

  it('a process that handles uncaught exceptions itself lives on, and its run is its own to end', async () => {
    const p = producer('handled');
    const runId = await p.runId;
    const exit = await p.exited;
    expect(exit.code).toBe(0);
    expect(exit.stdout).toContain('ended');
    expect(exit.stderr).not.toContain('runtrail:');
    const run = await client.getRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ recovered: true });
  });

  it('with the server gone, the process waits no longer than exitTimeoutMs and says the reaper will end the run', async () => {
    // Long enough that a loaded machine still makes its first attempt (and hears the refusal) within it.
    const p = producer('idle', { producer: { exitTimeoutMs: 5000 }, requestTimeoutMs: 200 });
    const runId = await p.runId;
    await server.close();
    p.write('stop');
    const { code, stderr } = await p.exited;
    expect(code).toBe(1);
    expect(stderr).toContain(`runtrail: run ${runId} could not be ended failed: Error: told to stop (`);
    // Why: the server refused connections (before, the last attempt's 1 ms timeout, cut by the deadline, hid that).
    expect(stderr).toMatch(/\(cannot reach the runtrail server: [^)]*\(ECONNREFUSED\)(; then no answer within 5000 ms \(producer\.exitTimeoutMs\))?\)/);
    expect(stderr).not.toContain('requestTimeoutMs');
    expect(stderr).toContain("the server's reaper ends it orphaned once its lease lapses");
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
    client = new RuntrailClient({ url: server.url });
    expect((await client.getRun(runId)).status).toBe('running');
  });

  it('a worker thread slow to start still answers within exitTimeoutMs, saying why the server did not take the end', async () => {
    // The worker that sends the last words starts 3 s late (a loaded machine). Before, its 5 s ran from its own start,
    // past the 5 s + 2 s the process waited: the line said only "no answer within 5 s" (CI caught it so).
    const p = producer('idle', { producer: { exitTimeoutMs: 5000 }, requestTimeoutMs: 200 }, server.url, 3000);
    const runId = await p.runId;
    await server.close();
    p.write('stop');
    const { code, stderr } = await p.exited;
    expect(code).toBe(1);
    expect(stderr).toMatch(new RegExp(`runtrail: run ${runId} could not be ended failed: Error: told to stop \\(cannot reach the runtrail server: [^)]*\\(ECONNREFUSED\\)`));
    server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
    client = new RuntrailClient({ url: server.url });
  });

  it('a server that takes connections but does not answer: the line names exitTimeoutMs, the bound that applied, not requestTimeoutMs', async () => {
    // A proxy that forwards the producer's connections, then holds every new one unanswered (the worker's are new).
    const held: Socket[] = [];
    let answering = true;
    const proxy = createNetServer((socket) => {
      if (!answering) return void held.push(socket);
      const upstream = connect(Number(new URL(server.url).port), '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy()); // the producer's process is gone: its connections reset
      upstream.on('error', () => socket.destroy()); // the server closed at the test's end
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const p = producer('idle', { producer: { exitTimeoutMs: 400 } }, `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
      const runId = await p.runId;
      answering = false;
      p.write('stop');
      const { code, stderr } = await p.exited;
      expect(code).toBe(1);
      expect(stderr).toContain(`runtrail: run ${runId} could not be ended failed: Error: told to stop (no answer within 400 ms (producer.exitTimeoutMs))`);
      expect(held.length).toBeGreaterThan(0);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('a run on a server of the same process is left to that server: the process exits without waiting for an answer that cannot come', async () => {
    // The server answers on the thread that would be waiting: before, the exit waited out exitTimeoutMs and said it could not end the run.
    const own = tempDir();
    try {
      const p = producer('own-server', undefined, own.path);
      await p.runId;
      const { code, stderr } = await p.exited;
      expect(code).toBe(0);
      expect(stderr).not.toContain('runtrail:');
    } finally {
      own.remove();
    }
  });

  it('endOnExit: false leaves the run to the reaper, and the events it had queued are lost (what the guard prevents)', async () => {
    const p = producer('crash', { producer: { endOnExit: false } });
    const runId = await p.runId;
    const { code, stderr } = await p.exited;
    expect(code).toBe(1);
    expect(stderr).not.toContain('runtrail:');
    const run = await client.getRun(runId);
    expect(run.status).toBe('running');
    expect(run.seq).toBe(0);
  });
});
