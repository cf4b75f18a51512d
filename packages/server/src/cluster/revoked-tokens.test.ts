import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { STREAM_CLOSE_CODES, type CreatedRunToken, type CreatedToken, type Run } from '@runtrail/protocol';
import { waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, terminateConnections } from '@runtrail/test-support/postgres';
import { TestSocket } from '../security/security.test-kit.js';
import { cluster, stopCluster, type ClusterNode } from './cluster.test-kit.js';

/**
 * Two server processes with auth on, sharing one PostgreSQL schema, each
 * trusting a checked token for a minute (tokenCacheMs): a revoke made through
 * one node must not wait for that minute on the other.
 */

afterEach(stopCluster);

const ADMIN = 'admin-token-for-cluster-tests-0123456789';
const CACHE_MS = 60_000;
/** Well within CACHE_MS: a node that waited for its cached check to age would miss it. */
const DEADLINE_MS = 15_000;

async function call<T = any>(node: ClusterNode, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${node.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      // Writes without a JSON body (DELETE) pass the CSRF guard like the SDK's.
      'x-runtrail-client': 'cluster-tests',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
}

async function twoNodes() {
  const c = await cluster({ RUNTRAIL_ADMIN_TOKEN: ADMIN, RUNTRAIL_TOKEN_CACHE_MS: String(CACHE_MS) });
  const [a, b] = await Promise.all([c.start('node-a'), c.start('node-b')]);
  const mint = async (scope: 'producer' | 'viewer'): Promise<CreatedToken> => {
    const res = await call<CreatedToken>(a, 'POST', '/api/v1/tokens', ADMIN, { name: `${scope}-token`, scope });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  return { schema: c.schema, a, b, mint };
}

describe('a token revoked through one node, on another node that cached it', () => {
  it('is refused on A at once and its WebSocket streams on A close as for a local revoke: a scoped token revoked by the admin, a run token by the producer that minted it', async () => {
    const { a, b, mint } = await twoNodes();
    const viewer = await mint('viewer');
    const producer = await mint('producer');
    const run = (await call<Run>(a, 'POST', '/api/v1/runs', producer.token, { name: 'shared' })).body;
    const link = (await call<CreatedRunToken>(a, 'POST', `/api/v1/runs/${run.id}/tokens`, producer.token, { ttlSeconds: 600 })).body;
    const kept = (await call<CreatedRunToken>(a, 'POST', `/api/v1/runs/${run.id}/tokens`, producer.token, { ttlSeconds: 600 })).body;
    // A checks each token once: trusted from its cache for the next minute.
    expect((await call(a, 'GET', '/api/v1/runs', viewer.token)).status).toBe(200);
    expect((await call(a, 'GET', `/api/v1/runs/${run.id}`, link.token)).status).toBe(200);
    const viewerWs = new TestSocket(a.wsUrl, { authorization: `Bearer ${viewer.token}` });
    const linkWs = new TestSocket(`${a.wsUrl}?token=${link.token}`);
    const keptWs = new TestSocket(`${a.wsUrl}?token=${kept.token}`);
    try {
      for (const ws of [viewerWs, linkWs, keptWs]) expect(await ws.opened()).toBe(true);

      expect((await call(b, 'DELETE', `/api/v1/tokens/${viewer.id}`, ADMIN)).status).toBe(200);
      expect((await call(b, 'DELETE', `/api/v1/tokens/${link.id}`, producer.token)).status).toBe(200);

      // Before: A answered 200 from its cache, and kept both streams open, until the minute was up.
      const refused = await waitUntil(
        async () => {
          const res = await call<{ error: { message: string } }>(a, 'GET', '/api/v1/runs', viewer.token);
          return res.status === 401 ? res : null;
        },
        { what: 'A to refuse the scoped token revoked through B', timeoutMs: DEADLINE_MS },
      );
      expect(refused.body.error.message).toBe('the token was revoked');
      const refusedLink = await waitUntil(
        async () => {
          const res = await call<{ error: { message: string } }>(a, 'GET', `/api/v1/runs/${run.id}`, link.token);
          return res.status === 401 ? res : null;
        },
        { what: 'A to refuse the run token revoked through B', timeoutMs: DEADLINE_MS },
      );
      expect(refusedLink.body.error.message).toBe('the run token was revoked');
      await waitUntil(() => viewerWs.closeCode !== null && linkWs.closeCode !== null, {
        what: "A to close the revoked tokens' streams",
        timeoutMs: DEADLINE_MS,
      });
      for (const ws of [viewerWs, linkWs]) {
        // What a revoke on A itself gives (security/auth.test.ts, "revoking a token closes its open streams on its node at once").
        expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
        expect(ws.closeReason).toBe('token revoked');
      }
      // Only the tokens named: the run's other run token goes on.
      expect((await call(a, 'GET', `/api/v1/runs/${run.id}`, kept.token)).status).toBe(200);
      expect(keptWs.closeCode).toBeNull();
    } finally {
      for (const ws of [viewerWs, linkWs, keptWs]) ws.close();
    }
  }, 120_000);

  it('after its listener reconnects, A forgets every token it checked: a revoke whose notification it missed is refused without waiting out tokenCacheMs', async () => {
    const { schema, a, mint } = await twoNodes();
    const viewer = await mint('viewer');
    const other = await mint('viewer');
    for (const token of [viewer.token, other.token]) expect((await call(a, 'GET', '/api/v1/runs', token)).status).toBe(200);
    // Revoked behind every node's back: as a revoke whose notification A's listener never got.
    const db = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await db.connect();
    try {
      await db.query(`UPDATE ${schema}.tokens SET revoked_at = $2 WHERE id = $1`, [viewer.id, Date.now()]);
    } finally {
      await db.end();
    }
    expect((await call(a, 'GET', '/api/v1/runs', viewer.token)).status).toBe(200);

    expect(await terminateConnections(`LISTEN "runtrail_events.${schema}"`)).toBe(2);
    // Before: A trusted its cached check until the minute was up.
    await waitUntil(async () => (await call(a, 'GET', '/api/v1/runs', viewer.token)).status === 401, {
      what: 'A to refuse the token once its listener has reconnected',
      timeoutMs: DEADLINE_MS,
    });
    expect((await call(a, 'GET', '/api/v1/runs', other.token)).status).toBe(200);
  }, 120_000);
});
