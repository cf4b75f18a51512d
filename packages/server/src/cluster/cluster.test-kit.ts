import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { kill9, freePort, repoRoot, serverFixture, spawnFixture, type SpawnedNode } from '../leases/lease.test-kit.js';
import type { RunsFilter } from '@runtrail/protocol';
import { waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { RawWsClient } from '../stream/stream.test-kit.js';

/**
 * Several runtrail nodes as separate PROCESSES (the build's fixture server)
 * sharing one fresh PostgreSQL schema; `stopCluster` (afterEach) kills
 * them, drops the schema and removes their data dirs.
 */

export type ClusterNode = SpawnedNode & { url: string; wsUrl: string };

/** A node starts in ~1 s; on a 2-core machine shared by many test runs it has taken over 15 s. */
const START_TIMEOUT_MS = 60_000;

const spawned: SpawnedNode[] = [];
const schemas: Array<{ schema: string; url: string }> = [];
/** Each node's data dir (its artifacts and logs): the same one when a node of that name starts again. */
const dataDirs = new Set<string>();

export async function stopCluster(): Promise<void> {
  for (const node of spawned.splice(0)) if (node.child.exitCode === null && node.child.signalCode === null) await kill9(node);
  for (const { schema, url } of schemas.splice(0)) await dropSchema(schema, url);
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  dataDirs.clear();
}

export async function cluster(
  extra: Record<string, string> = {},
  databaseUrl = TEST_DATABASE_URL,
): Promise<{ schema: string; start(node: string, env?: Record<string, string>): Promise<ClusterNode> }> {
  if (!existsSync(join(repoRoot, 'packages/server/dist/index.js'))) throw new Error('packages/server/dist is missing: build first (npx tsc -b)');
  const schema = await freshSchema();
  schemas.push({ schema, url: databaseUrl });
  return {
    schema,
    async start(node, env = {}) {
      const port = await freePort();
      const dataDir = join(repoRoot, 'node_modules/.cache/runtrail', `${schema}-${node}`);
      dataDirs.add(dataDir);
      const spawnedNode = await spawnFixture(serverFixture('serve-with-handlers.mjs'), {
        RUNTRAIL_PORT: String(port),
        RUNTRAIL_HOST: '127.0.0.1',
        RUNTRAIL_DATABASE_URL: databaseUrl,
        RUNTRAIL_DATABASE_SCHEMA: schema,
        RUNTRAIL_DATA_DIR: dataDir,
        RUNTRAIL_NODE: node,
        RUNTRAIL_LOG_LEVEL: 'warn',
        RUNTRAIL_DATABASE_POOL_SIZE: '6',
        ...extra,
        ...env,
      }, START_TIMEOUT_MS);
      spawned.push(spawnedNode);
      const url = spawnedNode.hello.url as string;
      return Object.assign(spawnedNode, { url, wsUrl: `${url.replace(/^http/, 'ws')}/api/v1/stream` });
    },
  };
}

export async function http<T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(url, {
    method,
    // x-runtrail-client: writes without a JSON body (DELETE) pass the CSRF guard like the SDK's.
    headers: { 'x-runtrail-client': 'cluster-tests', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  // 204 (a delete) has no body.
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T, headers: res.headers };
}

/** A raw watcher of `runId` from its first event on each node, subscribed before the test appends anything. */
export async function watchOnEach(nodes: ClusterNode[], runId: string): Promise<RawWsClient[]> {
  const watchers = nodes.map((node) => new RawWsClient(node.wsUrl));
  for (const w of watchers) {
    await w.opened();
    w.send({ op: 'subscribe', runId, after: 0 });
  }
  return watchers;
}

/** A raw watcher of the live runs list on `node`, once the node has confirmed the subscription. */
export async function watchRunsList(node: ClusterNode, filter: RunsFilter = {}): Promise<RawWsClient> {
  const w = new RawWsClient(node.wsUrl);
  await w.opened();
  w.send({ op: 'subscribeRuns', filter });
  await waitUntil(() => w.messages.some((m) => m.type === 'subscribedRuns'), { what: 'the runs subscription' });
  return w;
}
