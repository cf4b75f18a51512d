import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { runtrail, serve, type ServeProcess } from './harness.js';

const ADMIN = 'cli-admin-token-0123456789abcdef';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/**
 * `runtrail serve` with auth off, started on a PostgreSQL database before any
 * node with auth on used it, stayed open for ever after one joined: it
 * served every node's runs open and minted tokens they accept.
 */
describe('runtrail serve with auth off when a node with auth on joins its database', { timeout: 120_000 }, () => {
  it('stops by itself with one line on stderr saying why, exit 2; started again, it is refused with the same reasons', async () => {
    const dir = tempDir('runtrail-serve-auth-agreement-');
    cleanups.push(() => dir.remove());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const env = { RUNTRAIL_DATABASE_URL: TEST_DATABASE_URL, RUNTRAIL_DATABASE_SCHEMA: schema, RUNTRAIL_LOG_LEVEL: 'warn', RUNTRAIL_ADMIN_TOKEN: '' };
    const args = (node: string) => ['--port', '0', '--node', node, '--data-dir', join(dir.path, node)];
    const a: ServeProcess = await serve(args('node-a'), { env });
    cleanups.push(() => a.stop());
    let stderr = '';
    a.child.stderr!.on('data', (d: Buffer) => (stderr += d));
    // Its streams read to their end: what it wrote last is there.
    const closed = once(a.child, 'close');
    expect((await fetch(`${a.url}/api/v1/runs`)).status).toBe(200);

    const b = await serve(args('node-b'), { env: { ...env, RUNTRAIL_ADMIN_TOKEN: ADMIN } });
    cleanups.push(() => b.stop());
    await waitUntil(() => a.child.exitCode !== null || a.child.signalCode !== null, { timeoutMs: 60_000, what: 'node-a to stop by itself' });
    const [code] = (await closed) as [number | null];

    expect(code).toBe(2);
    const reasons =
      '\\(since (\\S+Z), first node node-b\\); this node would serve all their runs open and mint tokens they accept\\. ' +
      '(Re)?[Ss]tart it with RUNTRAIL_ADMIN_TOKEN or --admin-token-file like the others, or pass --insecure to run this database open on purpose\n$';
    const stopped = new RegExp(`^runtrail: stopping with auth off: the other nodes on this database now require tokens ${reasons}`).exec(stderr);
    expect(stopped, stderr).not.toBeNull();
    // The log (stdout) says it too, at error, before the shutdown's own lines.
    expect(a.stdout()).toContain('stopping with auth off');

    // A process manager starting it again gets the start refusal, naming the same node and time.
    const again = await runtrail(['serve', ...args('node-a')], { env });
    expect(again.code).toBe(2);
    const refused = new RegExp(`^runtrail: refusing to start with auth off: the other nodes on this database require tokens ${reasons}`).exec(again.stderr);
    expect(refused, again.stderr).not.toBeNull();
    expect(refused![1]).toBe(stopped![1]);
  });
});
