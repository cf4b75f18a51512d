import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildPath } from '@runtrail/protocol';
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
});
