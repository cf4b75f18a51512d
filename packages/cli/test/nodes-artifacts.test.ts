import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntrailClient } from '@runtrail/client';
import { CLIENT_HEADER, buildPath } from '@runtrail/protocol';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { serve, type ServeProcess } from './harness.js';

/**
 * Two `runtrail serve` nodes on one PostgreSQL schema, each with its own
 * data dir, as an operator starts them by following "Running two nodes":
 * an artifact stored through node A has its record in the database but its
 * content in A's folder. Node B must say so, and must stay up: an export
 * of that run used to kill node B's process (an unhandled stream error).
 */
const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('artifacts on several nodes', () => {
  it('a node without the content answers 503 naming the artifact for a download and an export, and keeps serving', async () => {
    const dir = tempDir('runtrail-nodes-artifacts-');
    cleanups.push(() => dir.remove());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const env = { RUNTRAIL_DATABASE_URL: TEST_DATABASE_URL, RUNTRAIL_DATABASE_SCHEMA: schema, RUNTRAIL_LOG_LEVEL: 'warn' };
    const nodes: ServeProcess[] = [];
    for (const name of ['node-a', 'node-b']) {
      const node = await serve(['--port', '0', '--node', name, '--data-dir', join(dir.path, name)], { env });
      cleanups.push(() => node.stop());
      nodes.push(node);
    }
    const [a, b] = nodes as [ServeProcess, ServeProcess];

    const run = await new RuntrailClient({ url: a.url }).createRun({ name: 'render' });
    await run.artifact('result.txt', 'made on node A');
    await run.succeed();

    const download = await fetch(b.url + buildPath('getArtifact', { id: run.id, name: 'result.txt' }));
    expect(download.status).toBe(503);
    // The answer is an error of the API, not the artifact: none of the artifact's headers (they come only with its content).
    for (const answer of [download, await fetch(b.url + buildPath('getArtifact', { id: run.id, name: 'result.txt' }), { headers: { range: 'bytes=0-3' } })]) {
      expect(answer.status).toBe(503);
      expect(answer.headers.get('etag')).toBeNull();
      expect(answer.headers.get('content-disposition')).toBeNull();
      expect(answer.headers.get('accept-ranges')).toBeNull();
      expect(answer.headers.get('content-range')).toBeNull();
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      expect(answer.headers.get('content-security-policy')).not.toContain('sandbox');
    }
    const body = (await download.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('unavailable');
    expect(body.error.message).toContain('"result.txt"');
    expect(body.error.message).toContain("not in this node's artifact store");

    const exported = await fetch(b.url + buildPath('exportRun', { id: run.id }), { headers: { [CLIENT_HEADER]: '1' } });
    expect(exported.status).toBe(503);
    expect(((await exported.json()) as { error: { message: string } }).error.message).toContain('"result.txt"');

    // Node B is alive and says in its log where it looked and what to do.
    expect(b.child.exitCode).toBeNull();
    expect((await fetch(b.url + '/healthz')).status).toBe(200);
    expect(b.stdout()).toContain(join(dir.path, 'node-b', 'artifacts'));
    expect(b.stdout()).toContain('must share one artifactsDir');
    // Node A has it.
    expect(await (await fetch(a.url + buildPath('getArtifact', { id: run.id, name: 'result.txt' }))).text()).toBe('made on node A');
  });
});
