import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { tempDir, waitUntil } from '../../../test-support/index.js';

/**
 * The `runtrail` binary as a user runs it: built JS in real processes
 * against a server that is itself a `runtrail serve` process.
 */
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runtrail(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

let dir: ReturnType<typeof tempDir>;
let server: ChildProcess;
let url: string;

beforeAll(async () => {
  dir = tempDir();
  server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dir.path, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  server.stdout!.on('data', (d: Buffer) => (out += d));
  url = await waitUntil(() => /serving on (http:\/\/\S+)/.exec(out)?.[1], { timeoutMs: 15_000, what: 'runtrail serve to print its URL' });
});

afterAll(async () => {
  server.kill('SIGTERM');
  const [code] = (await once(server, 'exit')) as [number | null];
  expect(code).toBe(0);
  dir.remove();
});

describe('runtrail CLI', () => {
  it('lists runs newest first and shows one with its counters, progress and phases', async () => {
    const client = new RuntrailClient({ url });
    const older = await client.createRun({ name: 'older-run' });
    await older.succeed();
    const run = await client.createRun({ name: 'eval-gpt4', labels: { team: 'search' } });
    await run.withPhase('evaluate', async () => {
      await run.call('Evaluating doc_1 with gpt-4', async () => 1);
      run.progress(1, 4, 'evaluating');
    });
    await run.flush();

    const ls = await runtrail(['runs', 'ls', '--server', url]);
    expect(ls.code).toBe(0);
    const lines = ls.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+STATUS/);
    expect(lines[1]).toContain('eval-gpt4');
    expect(lines[1]).toContain('1/4 25%');
    expect(lines[2]).toContain('older-run');

    const filtered = await runtrail(['runs', 'ls', '--label', 'team=search', '--json'], { RUNTRAIL_URL: url });
    expect(JSON.parse(filtered.stdout).runs.map((r: { id: string }) => r.id)).toEqual([run.id]);

    const show = await runtrail(['runs', 'show', run.id, '--server', url]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('status     running');
    expect(show.stdout).toMatch(/calls\s+ok 1\s+failed 0\s+retries 0/);
    expect(show.stdout).toMatch(/phase\s+evaluate completed/);
    await run.succeed();
  });

  it('tails a run live to its end and exits 1 when it failed', async () => {
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'tailed' });
    const tail = runtrail(['tail', run.id, '--server', url]);
    for (let i = 1; i <= 5; i++) run.progress(i, 5);
    await run.fail(new Error('judge model unavailable'));
    const result = await tail;
    expect(result.stdout).toContain('100%');
    expect(result.stdout).toContain(`run ${run.id} ended failed (error: judge model unavailable)`);
    expect(result.code).toBe(1);
  });

  it('says clearly when a run does not exist or no server answers', async () => {
    const missing = await runtrail(['runs', 'show', 'no-such-run', '--server', url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('run_not_found: run no-such-run does not exist');

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const down = await runtrail(['runs', 'ls', '--server', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(2);
    expect(down.stderr).toContain('no server answers there (ECONNREFUSED)');
  });
});
