import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { buildPath, type RunEvent } from '@runtrail/protocol';
import { waitUntil } from '@runtrail/test-support';
import { startServer, type RunningServer } from '../start.js';
import { jsonLogLines } from '../log-lines.test-kit.js';

/**
 * The embedded store's data dir on a disk that fills up, or an artifacts
 * folder that cannot be written, while serving: a real SQLite file on a
 * real tmpfs with a size limit, real HTTP. Mounting needs root (or
 * CAP_SYS_ADMIN); without it these tests skip and say why.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** Why a tmpfs cannot be mounted here, or null when it can (tried once, unmounted at once). */
function mountRefusal(): string | null {
  const probe = mkdtempSync(join(tmpdir(), 'runtrail-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `cannot mount a tmpfs (needs root): ${((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim()}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
const refusal = mountRefusal();
const title = (what: string) => (refusal === null ? what : `${what} (skipped: ${refusal})`);

/** A tmpfs of `size` at a fresh directory, unmounted and removed after the test. */
function smallDisk(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'rt-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  cleanups.push(() => {
    execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Write a file until the disk refuses another byte; returns its path. */
function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 16, 512, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

async function serve(dataDir: string, logLines: Array<Record<string, unknown>>): Promise<RunningServer> {
  const server = await startServer({
    port: 0,
    dataDir,
    reaperIntervalMs: 100,
    logLevel: 'info',
    logFormat: 'json',
    logDestination: jsonLogLines(logLines).destination,
  });
  cleanups.push(() => server.close());
  return server;
}

async function call(server: RunningServer, method: string, path: string, body?: unknown, contentType = 'application/json') {
  const res = await fetch(server.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType, 'x-runtrail-client': 'test' },
    body: body === undefined ? null : Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

const owner = { kind: 'producer', id: 'disk-full-test', node: 'test' } as const;

describe(title('a full disk under the data dir'), () => {
  it.skipIf(refusal !== null)(
    'every write gets 503 naming the full disk with Retry-After, reads still work, /readyz fails, the log says so once; once space is freed the server takes writes again by itself, the producer stores each event once and no run is ended orphaned for the beats the disk refused',
    async () => {
      const dataDir = join(smallDisk('8m'), 'data');
      mkdirSync(dataDir);
      const logLines: Array<Record<string, unknown>> = [];
      const server = await serve(dataDir, logLines);
      const rt = new RuntrailClient({ url: server.url });
      const run = await rt.createRun({ name: 'sdk', leaseTtlMs: 60_000 });
      cleanups.push(() => run.close());
      run.count('before');
      await run.flush();
      // A producer that beats by hand, so that nothing renews its lease behind the test's back.
      const held = (await call(server, 'POST', buildPath('createRun', {}), { name: 'held', leaseTtlMs: 2000, owner })).body.id as string;
      expect((await call(server, 'POST', buildPath('heartbeat', { id: held }), { owner })).status).toBe(200);

      const filler = fillDisk(join(dataDir, '..'));
      // Before any upload finds it, the readiness timer's artifacts probe does: not ready, naming the folder.
      const artifactsFull = `the data dir's disk is full (ENOSPC) at ${join(dataDir, 'artifacts')}`;
      await waitUntil(() => logLines.some((l) => String(l.msg).startsWith('NOT READY') && String(l.msg).includes(artifactsFull)), {
        what: 'NOT READY for the artifacts folder on the full disk',
      });

      const refusedWrites = [
        await call(server, 'POST', buildPath('appendEvents', { id: held }), { events: [{ type: 'counter', data: { name: 'n', delta: 1 } }], owner }),
        await call(server, 'POST', buildPath('heartbeat', { id: held }), { owner }),
        await call(server, 'POST', buildPath('finishRun', { id: held }), { status: 'succeeded', owner }),
        await call(server, 'POST', buildPath('createRun', {}), { name: 'later' }),
      ];
      for (const res of refusedWrites) {
        expect(res.status, JSON.stringify(res.body)).toBe(503);
        expect(res.body.error.code).toBe('unavailable');
        expect(res.body.error.message).toContain(`the data dir's disk is full (SQLITE_FULL) at ${dataDir}`);
        expect(res.body.error.details.reason).toBe('disk_full');
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }
      // An upload is refused the same way, and leaves no partial file behind.
      const upload = await call(server, 'PUT', buildPath('putArtifact', { id: held, name: 'big.bin' }), Buffer.alloc(256 * 1024, 7), 'application/octet-stream');
      expect(upload.status, JSON.stringify(upload.body)).toBe(503);
      expect(upload.body.error.message).toContain(`the data dir's disk is full (ENOSPC) at ${join(dataDir, 'artifacts')}`);
      expect(Number(upload.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(readdirSync(join(dataDir, 'artifacts', 'staging'))).toEqual([]);

      // The dashboard's reads are served from what is stored.
      expect((await call(server, 'GET', buildPath('listRuns', {}))).status).toBe(200);
      expect((await call(server, 'GET', buildPath('getRun', { id: run.id }))).body.snapshot.counters.named).toEqual({ before: 1 });
      const notReady = await call(server, 'GET', buildPath('ready', {}));
      expect(notReady.status).toBe(503);
      expect(notReady.body.error.details.reasons.join(' ')).toMatch(/disk is full \(SQLITE_FULL\)/);
      expect(notReady.body.error.details.reasons).toContainEqual(expect.stringContaining(artifactsFull));

      // The SDK producer keeps producing; its batches wait for the disk.
      const produced = 100;
      for (let i = 0; i < produced; i++) run.count('during');
      // Held's owner keeps beating, as an SDK does, and the disk refuses each beat, until its lease lapses.
      const beats: number[] = [];
      await waitUntil(
        async () => {
          beats.push((await call(server, 'POST', buildPath('heartbeat', { id: held }), { owner })).status);
          return (await call(server, 'GET', buildPath('getRun', { id: held }))).body.leaseExpiresAt < Date.now();
        },
        { what: "held's lease to lapse", intervalMs: 200 },
      );
      expect(new Set(beats)).toEqual(new Set([503]));
      // The reaper does not call an owner gone whose beats the store refused.
      const inOutage = await server.reaper.sweep();
      expect(inOutage.orphaned).toEqual([]);

      rmSync(filler);
      // The server finds out by itself: /readyz passes again, and says so in the log.
      await waitUntil(async () => (await call(server, 'GET', buildPath('ready', {}))).status === 200, { what: '/readyz after space was freed' });
      // Nor once the disk takes writes again, before the owner's next beat could land.
      const after = await server.reaper.sweep();
      expect(after.orphaned).toEqual([]);
      await run.flush();

      // Held's owner never stopped: its beats were refused. The reaper gives it a lease to beat again.
      const beat = await call(server, 'POST', buildPath('heartbeat', { id: held }), { owner });
      expect(beat.status, JSON.stringify(beat.body)).toBe(200);
      expect(beat.body.status).toBe('running');
      expect((await call(server, 'POST', buildPath('finishRun', { id: held }), { status: 'succeeded', owner })).status).toBe(200);
      const heldEvents = (await call(server, 'GET', buildPath('readEvents', { id: held }, { after: 0, limit: 100 }))).body.events as RunEvent[];
      expect(heldEvents.filter((e) => e.type.startsWith('run.')).map((e) => e.type)).toEqual(['run.succeeded']);

      const events = (await call(server, 'GET', buildPath('readEvents', { id: run.id }, { after: 0, limit: 1000 }))).body.events as RunEvent[];
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const during = events.filter((e) => (e.data as { name?: string }).name === 'during');
      expect(new Set(during.map((e) => e.id)).size).toBe(during.length);
      expect((await call(server, 'GET', buildPath('getRun', { id: run.id }))).body.snapshot.counters.named).toEqual({ before: 1, during: produced });
      expect((await call(server, 'PUT', buildPath('putArtifact', { id: run.id, name: 'big.bin' }), Buffer.alloc(256 * 1024, 7), 'application/octet-stream')).status).toBe(201);

      // Once per outage, not per request: one line for the refused writes, one for /readyz's answers, one NOT READY per cause, one recovery.
      const refusals = logLines.filter((l) => l.msg === 'answered 503: unavailable' && /SQLITE_FULL/.test((l.err as { message: string }).message));
      expect(refusals.map((l) => l.route)).toEqual(['appendEvents', '/readyz']);
      expect(logLines.filter((l) => String(l.msg).startsWith('NOT READY')).map((l) => l.msg)).toEqual([
        expect.stringContaining(artifactsFull),
        expect.stringContaining(`the data dir's disk is full (SQLITE_FULL) at ${dataDir}`),
      ]);
      expect(logLines.filter((l) => String(l.msg).startsWith('ready again'))).toHaveLength(1);
    },
    60_000,
  );
});

describe(title('an artifacts folder that cannot be written'), () => {
  it.skipIf(refusal !== null)(
    'uploads get 503 naming the folder and why, with Retry-After, not a 500; they are taken again once it can be written',
    async () => {
      const dataDir = join(smallDisk('8m'), 'data');
      mkdirSync(dataDir);
      const logLines: Array<Record<string, unknown>> = [];
      const server = await serve(dataDir, logLines);
      const id = (await call(server, 'POST', buildPath('createRun', {}), { name: 'art' })).body.id as string;
      const artifacts = join(dataDir, 'artifacts');
      mkdirSync(artifacts, { recursive: true });
      // Read-only for root too: permissions alone do not stop root.
      execFileSync('mount', ['--bind', artifacts, artifacts]);
      let mounted = true;
      const unmount = () => {
        if (mounted) execFileSync('umount', [artifacts]);
        mounted = false;
      };
      cleanups.push(unmount);
      execFileSync('mount', ['-o', 'remount,ro,bind', artifacts]);

      const put = () => call(server, 'PUT', buildPath('putArtifact', { id, name: 'a.txt' }), Buffer.from('hello'), 'text/plain');
      const refused = await put();
      expect(refused.status, JSON.stringify(refused.body)).toBe(503);
      expect(refused.body.error.code).toBe('unavailable');
      expect(refused.body.error.message).toMatch(new RegExp(`^the artifacts folder ${artifacts} cannot be written \\(EROFS`));
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await put()).status).toBe(503);
      expect(logLines.filter((l) => l.msg === 'request failed')).toEqual([]);
      expect(logLines.filter((l) => l.msg === 'answered 503: unavailable')).toHaveLength(1);

      unmount();
      expect((await put()).status).toBe(201);
    },
    60_000,
  );

  it.skipIf(refusal !== null)(
    '/readyz fails naming the folder and why before any upload is tried, so a load balancer stops sending uploads; /healthz still answers; /readyz passes again by itself once the folder can be written, with one NOT READY and one ready again line',
    async () => {
      const dataDir = join(smallDisk('8m'), 'data');
      mkdirSync(dataDir);
      const logLines: Array<Record<string, unknown>> = [];
      const server = await serve(dataDir, logLines);
      const ready = () => call(server, 'GET', buildPath('ready', {}));
      expect((await ready()).status).toBe(200);
      const artifacts = join(dataDir, 'artifacts');
      mkdirSync(artifacts, { recursive: true });
      execFileSync('mount', ['--bind', artifacts, artifacts]);
      let mounted = true;
      const unmount = () => {
        if (mounted) execFileSync('umount', [artifacts]);
        mounted = false;
      };
      cleanups.push(unmount);
      execFileSync('mount', ['-o', 'remount,ro,bind', artifacts]);

      const refused = await waitUntil(
        async () => {
          const res = await ready();
          return res.status === 503 ? res : null;
        },
        { what: '/readyz to fail with the artifacts folder read-only', timeoutMs: 5000 },
      );
      expect(refused.body.error.code).toBe('unavailable');
      expect(refused.body.error.message).toContain(`the artifacts folder ${artifacts} cannot be written (EROFS`);
      expect(refused.body.error.details.reasons).toEqual([expect.stringMatching(new RegExp(`^the artifacts folder ${artifacts} cannot be written \\(EROFS`))]);
      // Liveness is not readiness: restarting the node would not make the folder writable.
      expect((await call(server, 'GET', buildPath('health', {}))).status).toBe(200);

      unmount();
      await waitUntil(async () => (await ready()).status === 200, { what: '/readyz once the artifacts folder can be written', timeoutMs: 5000 });
      expect(logLines.filter((l) => String(l.msg).startsWith('NOT READY')).map((l) => l.msg)).toEqual([
        expect.stringContaining(`the artifacts folder ${artifacts} cannot be written (EROFS`),
      ]);
      expect(logLines.filter((l) => String(l.msg).startsWith('ready again'))).toHaveLength(1);
    },
    60_000,
  );
});
