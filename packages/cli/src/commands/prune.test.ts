import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type RunningServer } from '@runtrail/server';
import { SqliteRunStore } from '@runtrail/store';
import { tempDir } from '@runtrail/test-support';

/**
 * `runtrail prune` as a user runs it: the built binary against a real
 * server on a data dir holding runs created 40 days ago (written through the
 * store, with their old creation times) and runs of today.
 */
const BIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const DAY = 86_400_000;

function runtrail(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // stdin is not a terminal, as in a cron job or CI.
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, RUNTRAIL_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

/** A run id as the server would have minted it at `ms` (UUIDv7: the time in its first 48 bits). */
function idAt(ms: number, n: number): string {
  const t = ms.toString(16).padStart(12, '0');
  return `${t.slice(0, 8)}-${t.slice(8)}-7000-8000-${n.toString(16).padStart(12, '0')}`;
}

let dir: ReturnType<typeof tempDir>;
let server: RunningServer;
let client: RuntrailClient;
const ids = { oldOk: '', oldOkChild: '', oldFailed: '', oldRunning: '', oldWithRunningChild: '', runningChild: '', newOk: '' };

beforeAll(async () => {
  dir = tempDir('runtrail-cli-prune-');
  const store = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
  const then = Date.now() - 40 * DAY;
  let n = 0;
  const make = async (name: string, at: number, end: 'succeeded' | 'failed' | null, parentId?: string) => {
    const id = idAt(at + n, ++n);
    await store.createRun({ id, name, now: at + n, leaseTtlMs: 600_000, ...(parentId ? { parentId } : {}) });
    if (end === 'succeeded') await store.append(id, [{ type: 'run.succeeded', data: {} }], { now: at + n });
    else if (end === 'failed') await store.append(id, [{ type: 'run.failed', data: { error: { kind: 'error', message: 'bad batch' } } }], { now: at + n });
    // Still going: its owner heartbeats now, so the reaper leaves it running.
    else await store.heartbeat(id, { now: Date.now() });
    return id;
  };
  ids.oldOk = await make('nightly-eval', then, null);
  ids.oldOkChild = await make('nightly-eval/shard-1', then, 'succeeded', ids.oldOk);
  await store.append(ids.oldOk, [{ type: 'run.succeeded', data: {} }], { now: then + 100 });
  ids.oldFailed = await make('nightly-eval', then, 'failed');
  ids.oldRunning = await make('backfill', then, null);
  ids.oldWithRunningChild = await make('sweep', then, null);
  ids.runningChild = await make('sweep/trial-7', then, null, ids.oldWithRunningChild);
  await store.append(ids.oldWithRunningChild, [{ type: 'run.succeeded', data: {} }], { now: then + 100 });
  ids.newOk = await make('nightly-eval', Date.now() - 1000, 'succeeded');
  await store.close();
  server = await startServer({ port: 0, dataDir: dir.path, logLevel: 'silent' });
  client = new RuntrailClient({ url: server.url });
});

afterAll(async () => {
  await server?.close();
  dir.remove();
});

async function exists(id: string): Promise<boolean> {
  return client.getRun(id).then(
    () => true,
    (err: { code?: string }) => {
      if (err.code === 'run_not_found') return false;
      throw err;
    },
  );
}

describe('runtrail prune', () => {
  it('--dry-run lists the ended top-level runs created before the cutoff and deletes nothing', async () => {
    const result = await runtrail(['prune', '--older-than', '30d', '--dry-run', '--server', server.url]);
    expect(result.code, result.stderr).toBe(0);
    const listed = result.stdout.trim().split('\n').map((line) => line.split(/\s+/)[0]);
    expect(listed.sort()).toEqual([ids.oldOk, ids.oldFailed, ids.oldWithRunningChild].sort());
    expect(result.stderr).toMatch(/^runtrail: would delete 3 run\(s\) created before \S+, each with the runs under it; 1 running or queued run\(s\) created before then are left \(--dry-run: nothing deleted\)\n$/);
    for (const id of Object.values(ids)) expect(await exists(id), id).toBe(true);

    const succeeded = await runtrail(['prune', '--older-than', '30d', '--status', 'succeeded', '--dry-run', '--json', '--server', server.url]);
    const plan = JSON.parse(succeeded.stdout) as { runs: Array<{ id: string }> };
    expect(plan.runs.map((r) => r.id).sort()).toEqual([ids.oldOk, ids.oldWithRunningChild].sort());
  });

  it('asks before deleting, and without a terminal to ask on refuses unless told --yes', async () => {
    const result = await runtrail(['prune', '--older-than', '30d', '--server', server.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/delete 3 ended run\(s\) created before .*\? Not asked: stdin is not a terminal; pass --yes to delete, or --dry-run to list them/);
    expect(await exists(ids.oldOk)).toBe(true);
  });

  it('--yes deletes each ended family whole, leaves a family with a run still going and says why, and never touches newer or running runs', async () => {
    const result = await runtrail(['prune', '--older-than', '30d', '--yes', '--json', '--server', server.url]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { deleted: string[]; skipped: Array<{ id: string; reason: string }>; left: number };
    expect(report.deleted.sort()).toEqual([ids.oldOk, ids.oldFailed].sort());
    expect(report.skipped).toEqual([{ id: ids.oldWithRunningChild, reason: expect.stringContaining(`run ${ids.runningChild} under run ${ids.oldWithRunningChild} is running`) }]);
    expect(report.left).toBe(1);
    expect(result.stderr).toContain(`runtrail: left run ${ids.oldWithRunningChild}: `);
    expect(result.stderr).toMatch(/runtrail: deleted 2 run\(s\) created before \S+, each with the runs under it; 1 left \(above\); 1 running or queued/);
    for (const id of [ids.oldOk, ids.oldOkChild, ids.oldFailed]) expect(await exists(id), id).toBe(false);
    for (const id of [ids.oldRunning, ids.oldWithRunningChild, ids.runningChild, ids.newOk]) expect(await exists(id), id).toBe(true);

    // Again: nothing left to delete, said so, exit 0.
    const again = await runtrail(['prune', '--older-than', '30d', '--yes', '--status', 'failed', '--server', server.url]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^runtrail: no ended run created before \S+ matches; nothing to delete\n$/);
  });

  it('refuses a missing or malformed --older-than before asking the server anything', async () => {
    const missing = await runtrail(['prune', '--server', server.url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--older-than <duration>' not specified");
    const bad = await runtrail(['prune', '--older-than', 'a month', '--server', server.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than');
    // A whole number of days that reaches back past 1970: named by the flag the user typed, not the API's query field.
    const ancient = await runtrail(['prune', '--older-than', '100000d', '--dry-run', '--server', server.url]);
    expect({ code: ancient.code, stdout: ancient.stdout, stderr: ancient.stderr }).toEqual({
      code: 2,
      stdout: '',
      stderr: 'runtrail: invalid_request: --older-than 100000d reaches back before 1970, before any run was made; give a shorter time (30d, 12h)\n',
    });
  });
});
