import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Test helpers for leases, the reaper and the executor (real processes, no sleeps). */

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const serverFixture = (name: string) => join(repoRoot, 'packages/server/test/fixtures', name);

export function tempDir(prefix = 'runtrail-lease-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Poll `probe` until it returns something other than undefined/null/false, or fail at the deadline. */
export async function waitUntil<T>(
  probe: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      // A probe may fail while the thing it probes is coming up (a server
      // restarting); keep the error for the timeout message.
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${options.what ?? 'a condition'}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 20));
  }
}

/** A free TCP port on 127.0.0.1 (so a restarted server can come back on the same URL). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface SpawnedNode {
  child: ChildProcess;
  /** The JSON line with `ready: true` the process printed. */
  hello: Record<string, unknown>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Spawn a Node fixture and wait for the JSON line with `ready: true` it prints once it is ready. */
export async function spawnFixture(script: string, env: Record<string, string>, timeoutMs = 15_000): Promise<SpawnedNode> {
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout! });
  const hello = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} printed nothing in ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    // The server's own log lines share stdout; the fixture marks its line with `ready`.
    lines.on('line', (line) => {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch (err) {
        void err; // not JSON: ordinary output, not the ready line
        return;
      }
      if (parsed.ready !== true) return;
      clearTimeout(timer);
      resolve(parsed);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? signal}) before it was ready; stderr: ${err}`));
    });
  });
  return { child, hello, exited, stderr: () => err };
}

/** SIGKILL a process and wait until it is gone. */
export async function kill9(node: SpawnedNode): Promise<void> {
  node.child.kill('SIGKILL');
  await node.exited;
}
