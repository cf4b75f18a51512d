import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { dropSchema, freshSchema, proxiedDatabase, TEST_DATABASE_URL } from '@runtrail/test-support/postgres';
import { startServer } from '../start.js';
import { cluster, stopCluster, type ClusterNode } from '../cluster/cluster.test-kit.js';
import { jsonLogLines } from '../log-lines.test-kit.js';

const ADMIN = 'admin-token-for-the-cluster-0123456789';

const STOPPING = new RegExp(
  '^stopping with auth off: the other nodes on this database now require tokens \\(since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, first node node-b\\); ' +
    'this node would serve all their runs open and mint tokens they accept\\. ' +
    'Restart it with RUNTRAIL_ADMIN_TOKEN or --admin-token-file like the others, or pass --insecure to run this database open on purpose$',
);

/** A node's JSON log lines as it prints them (spawnFixture gives them only once its stdout has closed). */
function liveLog(node: ClusterNode): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  createInterface({ input: node.child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch (err) {
      void err; // not a log line (none is expected after the ready line): nothing to keep
    }
  });
  return lines;
}

/**
 * The start's check kept up while a node runs: a node with auth off started
 * before any node with auth on used the database found no record at start,
 * and stayed open for ever after one joined, serving every node's runs and
 * minting tokens they accept.
 */
describe('a node with auth off, when a node with auth on joins its database later', { timeout: 120_000 }, () => {
  afterEach(stopCluster);
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('stops by itself, refusing requests from when it notices: exit 1, and one ERROR line saying why and what to do', async () => {
    const c = await cluster();
    const a = await c.start('node-a');
    const log = liveLog(a);
    const created = await fetch(`${a.url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'made-open' }) });
    expect(created.status).toBe(201);

    // A client reading A's runs without a token throughout; each answer noted with whether A had said it noticed when it was asked.
    const noticed = () => log.some((l) => (l.level as number) >= 50);
    const answers: Array<{ status: number | 'no answer'; afterNotice: boolean }> = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const afterNotice = noticed();
        const status = await fetch(`${a.url}/api/v1/runs`).then(
          async (res) => (await res.arrayBuffer(), res.status),
          () => 'no answer' as const, // A closed its connections or is gone: what the test waits for
        );
        answers.push({ status, afterNotice });
        // Paced, not waiting on anything: A is asked about 50 times a second.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    cleanups.push(async () => {
      polling = false;
      await poller;
    });

    const b = await c.start('node-b', { RUNTRAIL_ADMIN_TOKEN: ADMIN });
    await waitUntil(() => a.child.exitCode !== null || a.child.signalCode !== null, { timeoutMs: 60_000, what: 'node-a to stop by itself' });
    polling = false;
    await poller;

    expect(await a.exited).toEqual({ code: 1, signal: null });
    expect(log.filter((l) => (l.level as number) >= 50).map((l) => l.msg)).toEqual([expect.stringMatching(STOPPING)]);
    // Open until B came, and never answered with runs once it had said it noticed.
    expect(answers[0]).toEqual({ status: 200, afterNotice: false });
    expect(answers.filter((x) => x.afterNotice && x.status === 200)).toEqual([]);
    // B requires tokens, as it did all along.
    expect((await fetch(`${b.url}/api/v1/runs`)).status).toBe(401);
  });

  it('keeps running on --insecure, warning once that the other nodes require tokens and it does not', async () => {
    const c = await cluster();
    const a = await c.start('node-a', { RUNTRAIL_INSECURE: 'true' });
    const log = liveLog(a);
    await c.start('node-b', { RUNTRAIL_ADMIN_TOKEN: ADMIN });
    const warning = new RegExp(
      `^INSECURE: auth is off on ${a.url.replace(/[.]/g, '\\.')}, but the other nodes on this database require tokens \\(since \\S+Z, first node node-b\\): ` +
        'this node serves all their runs open and mints tokens they accept \\(--insecure\\)$',
    );
    const warned = () => log.filter((l) => typeof l.msg === 'string' && warning.test(l.msg));
    await waitUntil(() => warned().length > 0, { timeoutMs: 30_000, what: "node-a's INSECURE warning" });
    // What the operator chose: A still serves, open.
    expect((await fetch(`${a.url}/api/v1/runs`)).status).toBe(200);
    a.child.kill('SIGTERM');
    expect(await a.exited).toEqual({ code: 0, signal: null });
    await a.stdout;
    expect(warned()).toHaveLength(1);
    expect(log.filter((l) => (l.level as number) >= 50)).toEqual([]);
  });

  it('is not stopped by the database going away: the failed reads are logged, and once it is back the record is found', async () => {
    const { proxy, url } = await proxiedDatabase();
    cleanups.push(() => proxy.close());
    const schema = await freshSchema();
    cleanups.push(() => dropSchema(schema));
    const dir = tempDir('runtrail-auth-required-later-');
    cleanups.push(() => dir.remove());
    const { lines, destination } = jsonLogLines();
    // In this process: its log is read as it is written (the database is cut under it, not under the test). Neither
    // stopOnSignals nor onStoppedItself: the server closes itself, and its log says why.
    const a = await startServer({
      port: 0,
      dataDir: `${dir.path}/a`,
      databaseUrl: url,
      databaseSchema: schema,
      node: 'node-a',
      logLevel: 'info',
      logFormat: 'json',
      logDestination: destination,
      stopOnSignals: false,
    });
    cleanups.push(() => a.close());

    proxy.cut();
    const failedRead = (l: Record<string, unknown>) => typeof l.msg === 'string' && l.msg.startsWith('could not read whether the other nodes on this database require tokens');
    await waitUntil(() => lines.some(failedRead), { timeoutMs: 30_000, what: "node-a's failed read of the record" });
    const b = await startServer({ port: 0, dataDir: `${dir.path}/b`, databaseUrl: TEST_DATABASE_URL, databaseSchema: schema, node: 'node-b', adminToken: ADMIN, stopOnSignals: false, logLevel: 'silent' });
    cleanups.push(() => b.close());
    const stopping = () => lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('stopping'));
    // Still up through the outage, and it said nothing of stopping.
    expect(stopping()).toEqual([]);
    expect((await fetch(`${a.url}/healthz`)).status).toBe(200);

    proxy.allow();
    await waitUntil(() => lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('stopped in')), { timeoutMs: 30_000, what: 'node-a to stop by itself once the database is back' });
    expect(stopping()).toEqual([expect.objectContaining({ level: 50, msg: expect.stringMatching(STOPPING) })]);
    // At warn (the outage's NOT READY line is the error), once per kind of failure, not once per look.
    expect(new Set(lines.filter(failedRead).map((l) => l.level))).toEqual(new Set([40]));
    expect(lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('reads whether the other nodes on this database require tokens again after'))).toMatchObject({ level: 30 });
    // Stopped: nothing answers at its address any more.
    await expect(fetch(`${a.url}/api/v1/runs`)).rejects.toThrow();
  });
});
