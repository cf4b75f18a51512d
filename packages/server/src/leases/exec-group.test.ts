import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import type { ProcessIdentity } from '@runtrail/client/node';
import { LEAVES_STUBBORN_GRANDCHILD, identify, waitGroupGone } from '@runtrail/test-support/process-tree';
import { freePort, kill9, repoRoot, serverFixture, spawnFixture, tempDir, waitUntil, type SpawnedNode } from './lease.test-kit.js';

/**
 * Issue 10 item 2 with real processes: a server killed with SIGKILL while a
 * handler's ctx.exec runs a command that left a silent grandchild ignoring
 * SIGTERM. Nothing of the group may outlive the server: the group's
 * watchdog stops it (SIGTERM, SIGKILL after the 300 ms grace the fixture
 * gives). Every check is by pid AND start time, so a reused pid cannot pass
 * for a survivor or for a dead process.
 */

const ROUNDS = 4;
const RUNS_PER_ROUND = 5; // 20 groups in all

beforeAll(() => {
  for (const built of ['packages/server/dist/index.js', 'packages/client/dist/node/index.js']) {
    if (!existsSync(join(repoRoot, built))) throw new Error(`${built} is missing: build first (npx tsc -b)`);
  }
});

const spawned: SpawnedNode[] = [];
const dirs: Array<ReturnType<typeof tempDir>> = [];
afterEach(async () => {
  for (const node of spawned.splice(0)) if (node.child.exitCode === null && node.child.signalCode === null) await kill9(node);
  for (const dir of dirs.splice(0)) dir.remove();
});

async function startServerProcess(dataDir: string, port = 0): Promise<{ node: SpawnedNode; client: RuntrailClient }> {
  const node = await spawnFixture(serverFixture('serve-with-handlers.mjs'), {
    RUNTRAIL_PORT: String(port),
    RUNTRAIL_HOST: '127.0.0.1',
    RUNTRAIL_DATA_DIR: dataDir,
    RUNTRAIL_NODE: 'node-exec',
    RUNTRAIL_LOG_LEVEL: 'warn',
    RUNTRAIL_CONCURRENCY: String(RUNS_PER_ROUND),
  });
  spawned.push(node);
  return { node, client: new RuntrailClient({ url: node.hello.url as string }) };
}

interface Group {
  pgid: number;
  processes: ProcessIdentity[];
}

/** Start `n` runs whose command leaves a stubborn grandchild; their groups once all are running. */
async function startGroups(client: RuntrailClient, n: number, script = LEAVES_STUBBORN_GRANDCHILD): Promise<Group[]> {
  const runs = await Promise.all(Array.from({ length: n }, () => client.startRun({ name: 'exec', input: { script } })));
  return Promise.all(
    runs.map(async (run) => {
      const meta = await waitUntil(
        async () => {
          const m = (await client.getRun(run.id)).snapshot.meta as { grandchild?: number; exec?: { pid: number; pgid: number } };
          return m.grandchild && m.exec ? (m as Required<typeof m>) : null;
        },
        { what: `run ${run.id} to report its grandchild`, timeoutMs: 60_000 },
      );
      const processes = [identify(meta.exec.pgid), identify(meta.exec.pid), identify(meta.grandchild)];
      return { pgid: meta.exec.pgid, processes };
    }),
  );
}

describe('a server killed with SIGKILL while ctx.exec runs', () => {
  it(`leaves no process of the group behind, within 5 s (${ROUNDS * RUNS_PER_ROUND} groups, ${RUNS_PER_ROUND} per killed server)`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const dir = tempDir('runtrail-exec-group-');
      dirs.push(dir);
      const { node, client } = await startServerProcess(dir.path);
      const groups = await startGroups(client, RUNS_PER_ROUND);
      await kill9(node);
      await Promise.all(groups.map((g) => waitGroupGone(g.pgid, g.processes, 5_000)));
    }
  });

  it('a restarted server stops a group whose watchdog died with it, having checked it by pid and start time', async () => {
    const dir = tempDir('runtrail-exec-restart-');
    dirs.push(dir);
    const port = await freePort();
    const first = await startServerProcess(dir.path, port);
    // A command that stops printing, so that it does not die of SIGPIPE with the server:
    // it is the recorded process that proves the group is still the one it started.
    const [group] = await startGroups(first.client, 1, LEAVES_STUBBORN_GRANDCHILD.replace('echo tick; ', ''));
    // The leader (the watchdog) dies with the server, frozen first so that it
    // cannot act on the server's death: nothing stops the group but the restart.
    process.kill(group!.pgid, 'SIGSTOP');
    await kill9(first.node);
    process.kill(group!.pgid, 'SIGKILL');
    const [, command, grandchild] = group!.processes;
    expect(identify(command!.pid)).toEqual(command);
    expect(identify(grandchild!.pid)).toEqual(grandchild);
    await startServerProcess(dir.path, port);
    // SIGTERM at start-up, SIGKILL after the server's default grace (5 s) for the grandchild that ignores it.
    await waitGroupGone(group!.pgid, group!.processes, 10_000);
  });
});
