import { existsSync, readdirSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { CLIENT_HEADER, buildPath } from '@runtrail/protocol';
import { freePort, kill9, repoRoot, serverFixture, spawnFixture, tempDir, waitUntil, type SpawnedNode } from '../leases/lease.test-kit.js';

/**
 * Issue 16 item 4: a server that crashes mid-upload leaves no visible
 * partial artifact. A real server process (the build) killed with SIGKILL
 * while a body streams in, restarted on the same data dir.
 */

beforeAll(() => {
  if (!existsSync(join(repoRoot, 'packages/server/dist/index.js'))) throw new Error('packages/server/dist is missing: build first (npm run build)');
});

let dir: ReturnType<typeof tempDir>;
const spawned: SpawnedNode[] = [];
beforeEach(() => {
  dir = tempDir('runtrail-artifact-crash-');
});
afterEach(async () => {
  for (const node of spawned.splice(0)) if (node.child.exitCode === null && node.child.signalCode === null) await kill9(node);
  dir.remove();
});

async function startNode(port: number): Promise<string> {
  const node = await spawnFixture(serverFixture('serve-with-handlers.mjs'), {
    RUNTRAIL_PORT: String(port),
    RUNTRAIL_HOST: '127.0.0.1',
    RUNTRAIL_DATA_DIR: dir.path,
    RUNTRAIL_NODE: 'node-a',
    RUNTRAIL_LOG_LEVEL: 'warn',
  });
  spawned.push(node);
  return node.hello.url as string;
}

/** Files under the artifact store: `sha256/…` is stored content, `staging/…` uploads in progress. */
function contentFiles(): string[] {
  const root = join(dir.path, 'artifacts');
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((p) => /[0-9a-f]{64}$|staging\/./.test(p));
}

describe('a crash mid-upload', () => {
  it('a server killed with SIGKILL while an artifact streams in comes back with no record, event or content of it; the run goes on and stores it whole', async () => {
    const port = await freePort();
    const url = await startNode(port);
    const client = new RuntrailClient({ url });
    const run = await client.createRun({ name: 'crash-upload', leaseTtlMs: 60_000 });
    try {
      const seqBefore = (await client.getRun(run.id)).seq;
      const req = httpRequest(`${url}${buildPath('putArtifact', { id: run.id, name: 'cut.bin' })}`, {
        method: 'PUT',
        headers: { 'content-length': String(1024 * 1024), [CLIENT_HEADER]: '1' },
      });
      // The server dies under this request: its error is what the test causes, not a failure.
      req.on('error', () => undefined);
      req.write(Buffer.alloc(64 * 1024, 7));
      await waitUntil(() => contentFiles().some((f) => f.startsWith('staging')), { what: 'the upload to be staging' });
      await kill9(spawned.at(-1)!);
      req.destroy();

      await startNode(port);
      expect(await client.listArtifacts(run.id)).toEqual([]);
      const after = await client.getRun(run.id);
      expect(after.seq).toBe(seqBefore);
      expect(after.snapshot.artifacts).toEqual([]);
      // A producer's run outlives a server restart (field note 5).
      expect(after.status).toBe('running');
      expect(contentFiles().filter((f) => f.startsWith('sha256'))).toEqual([]);

      const stored = await run.artifact('cut.bin', Buffer.alloc(1024 * 1024, 7));
      expect(stored).toMatchObject({ ordinal: 1, name: 'cut.bin', size: 1024 * 1024 });
      expect(Buffer.from(await (await client.fetchArtifact(run.id, 'cut.bin')).arrayBuffer()).equals(Buffer.alloc(1024 * 1024, 7))).toBe(true);
      await run.succeed();
    } finally {
      run.close();
    }
  });
});
