import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Test helpers for leases, the reaper and the executor (real processes, no sleeps). */

export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const serverFixture = (name: string) => join(repoRoot, 'packages/server/test/fixtures', name);

export { tempDir, waitUntil } from '@runtrail/test-support';

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
  /** Every line of its stdout (its log lines too), once its stdout has closed. */
  stdout: Promise<string[]>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

/** Spawn a Node fixture and wait for the JSON line with `ready: true` it prints once it is ready. */
export async function spawnFixture(
  script: string,
  env: Record<string, string>,
  timeoutMs = 15_000,
  as: { uid?: number; gid?: number } = {},
): Promise<SpawnedNode> {
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...as });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout! });
  const printed: string[] = [];
  lines.on('line', (line) => printed.push(line));
  const stdout = new Promise<string[]>((resolve) => lines.once('close', () => resolve(printed)));
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
  return { child, hello, stdout, exited, stderr: () => err };
}

/** SIGKILL a process and wait until it is gone. */
export async function kill9(node: SpawnedNode): Promise<void> {
  node.child.kill('SIGKILL');
  await node.exited;
}
