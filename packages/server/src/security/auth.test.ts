import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { waitUntil } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { STREAM_CLOSE_CODES, type CreatedToken } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import { testScope, waitFor } from '../stream/stream.test-kit.js';
import { call, readSse, streamUrl, TestSocket } from './security.test-kit.js';

/** Items 1-4 of issue 15: tokens, scopes, run tokens, authenticated streams. */
const ADMIN = 'admin-token-for-tests-0123456789';
const { server, cleanups } = testScope();

async function authServer(options: Parameters<typeof server>[0] = {}) {
  const s = await server({ adminToken: ADMIN, ...options });
  const mint = async (scope: 'admin' | 'producer' | 'viewer', extra: Record<string, unknown> = {}): Promise<CreatedToken> => {
    const res = await call(s, 'POST', '/api/v1/tokens', { token: ADMIN, body: { name: `${scope}-token`, scope, ...extra } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body;
  };
  return { s, mint };
}

/** Run `id` once it has ended (a handler run, read with `token`). */
async function endOf(s: RunningServer, id: string, token: string) {
  return waitUntil(
    async () => {
      const r = (await call(s, 'GET', `/api/v1/runs/${id}`, { token })).body;
      return r.status === 'queued' || r.status === 'running' ? null : r;
    },
    { what: `run ${id} to end`, timeoutMs: 20_000 },
  );
}

/** A producer token and runs made with it: "mine" with a "child" under it, and an unrelated "other". */
async function family() {
  const { s, mint } = await authServer();
  const producer = await mint('producer');
  const make = async (body: Record<string, unknown>) => (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body })).body.id as string;
  const mine = await make({ name: 'mine' });
  const child = await make({ name: 'child', parentId: mine });
  const other = await make({ name: 'other' });
  return { s, mint, producer, make, mine, child, other };
}

describe('tokens and scopes', () => {
  it('no token is 401, a wrong token is 401; /healthz stays open', async () => {
    const { s } = await authServer();
    const none = await call(s, 'GET', '/api/v1/runs');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    for (const token of ['wrong', 'rt_forged', 'rtr_e30.AAAA', `${ADMIN}x`, 'x'.repeat(5000)]) {
      expect((await call(s, 'GET', '/api/v1/runs', { token })).status, token.slice(0, 20)).toBe(401);
    }
    expect((await call(s, 'GET', '/api/v1/runs', { headers: { authorization: `Basic ${ADMIN}` } })).status).toBe(401);
    expect((await call(s, 'GET', '/healthz')).status).toBe(200);
    expect((await call(s, 'GET', '/api/v1/runs', { token: ADMIN })).status).toBe(200);
  });

  it('admin mints tokens (secret shown once, listed without it); viewer cannot append (403); producer cannot mint tokens (403)', async () => {
    const { s, mint } = await authServer();
    const viewer = await mint('viewer');
    const producer = await mint('producer', { expiresInSeconds: 3600 });
    expect(producer.token).toMatch(/^rt_/);
    expect(producer.expiresAt).toBeGreaterThan(Date.now());
    const list = await call(s, 'GET', '/api/v1/tokens', { token: ADMIN });
    expect(list.status).toBe(200);
    expect(list.body.tokens.map((t: { name: string }) => t.name).sort()).toEqual(['producer-token', 'viewer-token']);
    expect(JSON.stringify(list.body)).not.toContain(producer.token);
    expect(JSON.stringify(list.body)).not.toContain(viewer.token);

    const created = await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'eval' } });
    expect(created.status).toBe(201);
    const runId = created.body.id;
    const append = (token: string) => call(s, 'POST', `/api/v1/runs/${runId}/events`, { token, body: { events: [{ type: 'x.tick' }] } });
    expect((await append(viewer.token)).status).toBe(403);
    expect((await append(viewer.token)).body.error.code).toBe('forbidden');
    expect((await append(producer.token)).status).toBe(200);
    expect((await call(s, 'GET', `/api/v1/runs/${runId}`, { token: viewer.token })).status).toBe(200);
    expect((await call(s, 'POST', `/api/v1/runs/${runId}/cancel`, { token: viewer.token, body: {} })).status).toBe(403);

    const byProducer = await call(s, 'POST', '/api/v1/tokens', { token: producer.token, body: { name: 'x', scope: 'viewer' } });
    expect(byProducer.status).toBe(403);
    expect((await call(s, 'GET', '/api/v1/tokens', { token: producer.token })).status).toBe(403);
    // A producer revokes only the run tokens it minted; any other id is "not found", existing or not.
    expect((await call(s, 'DELETE', `/api/v1/tokens/${viewer.id}`, { token: producer.token })).status).toBe(404);
    expect((await call(s, 'GET', '/api/v1/runs', { token: viewer.token })).status).toBe(200);
    // Deleting runs is the admin's.
    await call(s, 'POST', `/api/v1/runs/${runId}/finish`, { token: producer.token, body: { status: 'succeeded' } });
    expect((await call(s, 'DELETE', `/api/v1/runs/${runId}`, { token: producer.token })).status).toBe(403);
    expect((await call(s, 'DELETE', `/api/v1/runs/${runId}`, { token: ADMIN })).status).toBe(204);
  });

  it('a revoked token is refused at once on its node; an expired one too; revoking an unknown id is 404', async () => {
    const { s, mint } = await authServer();
    const viewer = await mint('viewer');
    expect((await call(s, 'GET', '/api/v1/runs', { token: viewer.token })).status).toBe(200);
    const first = await call(s, 'DELETE', `/api/v1/tokens/${viewer.id}`, { token: ADMIN });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ id: viewer.id, revokedAt: expect.any(Number), alreadyRevoked: false });
    expect((await call(s, 'GET', '/api/v1/runs', { token: viewer.token })).status).toBe(401);
    const listed = (await call(s, 'GET', '/api/v1/tokens', { token: ADMIN })).body.tokens[0];
    expect(listed.revokedAt).toBe(first.body.revokedAt);
    // Again (a retry, or someone else who wanted it gone): not an error, but told it was done before, and when.
    await waitFor(() => Date.now() > first.body.revokedAt);
    const again = await call(s, 'DELETE', `/api/v1/tokens/${viewer.id}`, { token: ADMIN });
    expect([again.status, again.body]).toEqual([200, { id: viewer.id, revokedAt: first.body.revokedAt, alreadyRevoked: true }]);
    expect((await call(s, 'DELETE', '/api/v1/tokens/no-such-id', { token: ADMIN })).status).toBe(404);

    const short = await mint('viewer', { expiresInSeconds: 1 });
    await waitFor(() => Date.now() > short.expiresAt!);
    const expired = await call(s, 'GET', '/api/v1/runs', { token: short.token });
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toMatch(/expired/);
  });
});

describe('run tokens', () => {
  it('read and watch their run and its children over HTTP, WS and SSE, and nothing else', async () => {
    const { s, mint, producer, mine, child, other } = await family();
    await call(s, 'POST', `/api/v1/runs/${mine}/events`, { token: producer.token, body: { events: [{ type: 'x.one' }] } });

    const minted = await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: producer.token, body: { ttlSeconds: 600 } });
    expect(minted.status).toBe(201);
    const token = minted.body.token as string;
    expect(minted.body.expiresAt).toBeGreaterThan(Date.now());
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: (await mint('viewer')).token, body: {} })).status).toBe(403);
    expect((await call(s, 'POST', '/api/v1/runs/no-such-run/tokens', { token: producer.token, body: {} })).status).toBe(404);

    // HTTP: its run and its child; not another run, not the list, no write.
    expect((await call(s, 'GET', `/api/v1/runs/${mine}`, { token })).status).toBe(200);
    expect((await call(s, 'GET', `/api/v1/runs/${mine}/events`, { token })).body.events).toHaveLength(1);
    expect((await call(s, 'GET', `/api/v1/runs/${child}`, { token })).status).toBe(200);
    expect((await call(s, 'GET', `/api/v1/runs/${other}`, { token })).status).toBe(403);
    expect((await call(s, 'GET', `/api/v1/runs/${other}/events`, { token })).status).toBe(403);
    expect((await call(s, 'GET', '/api/v1/runs/no-such-run', { token })).status).toBe(403);
    expect((await call(s, 'GET', '/api/v1/runs', { token })).status).toBe(403);
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/events`, { token, body: { events: [{ type: 'x.two' }] } })).status).toBe(403);
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/cancel`, { token, body: {} })).status).toBe(403);
    expect((await call(s, 'POST', '/api/v1/runs', { token, body: { name: 'x' } })).status).toBe(403);
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token, body: {} })).status).toBe(403);
    // A forged signature is no token.
    expect((await call(s, 'GET', `/api/v1/runs/${mine}`, { token: `${token.slice(0, -4)}AAAA` })).status).toBe(401);

    // WebSocket with ?token=: its run streams; another run and the runs list get error frames, not data.
    const ws = new TestSocket(streamUrl(s, `?token=${encodeURIComponent(token)}`));
    cleanups.push(() => ws.close());
    expect(await ws.opened()).toBe(true);
    ws.send({ op: 'subscribe', runId: other, after: 0 });
    ws.send({ op: 'subscribeRuns', filter: {} });
    ws.send({ op: 'subscribe', runId: mine, after: 0 });
    await waitFor(() => ws.messages.some((m) => m.type === 'events' && m.runId === mine));
    await waitFor(() => ws.messages.filter((m) => m.type === 'error').length === 2);
    const errors = ws.messages.filter((m) => m.type === 'error');
    expect(errors.map((m) => m.type === 'error' && m.code)).toEqual(['forbidden', 'forbidden']);
    expect(ws.messages.some((m) => (m.type === 'events' || m.type === 'subscribed') && m.runId === other)).toBe(false);
    expect(ws.messages.some((m) => m.type === 'subscribedRuns' || m.type === 'run')).toBe(false);

    // WebSocket with the header works the same; SSE with the header and with ?token=.
    const viaHeader = new TestSocket(streamUrl(s), { authorization: `Bearer ${token}` });
    cleanups.push(() => viaHeader.close());
    expect(await viaHeader.opened()).toBe(true);
    for (const [path, headers] of [
      [`/api/v1/runs/${mine}/stream`, { authorization: `Bearer ${token}` }],
      [`/api/v1/runs/${mine}/stream?token=${encodeURIComponent(token)}`, {}],
    ] as const) {
      const sse = await readSse(s, path, headers, (text) => text.includes('x.one'));
      expect(sse.status).toBe(200);
    }
    expect((await readSse(s, `/api/v1/runs/${other}/stream?token=${encodeURIComponent(token)}`, {}, () => true)).status).toBe(403);
    expect((await readSse(s, `/api/v1/runs/${mine}/stream`, {}, () => true)).status).toBe(401);
  });

  it('end when the token that minted them is revoked: refused at once, their WebSocket and SSE streams closed; run tokens of other minters stay', async () => {
    const { s, mint } = await authServer();
    const producer = await mint('producer');
    const otherProducer = await mint('producer');
    const runId = (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'shared' } })).body.id as string;
    const runToken = async (by: string, write = false) =>
      (await call(s, 'POST', `/api/v1/runs/${runId}/tokens`, { token: by, body: { ttlSeconds: 600, write } })).body.token as string;
    const shared = await runToken(producer.token);
    const writer = await runToken(producer.token, true);
    const fromOther = await runToken(otherProducer.token);
    const fromAdmin = await runToken(ADMIN);
    const ws = new TestSocket(streamUrl(s, `?token=${shared}`));
    expect(await ws.opened()).toBe(true);
    ws.send({ op: 'subscribe', runId, after: 0 });
    const keep = new TestSocket(streamUrl(s, `?token=${fromOther}`));
    cleanups.push(() => keep.close());
    expect(await keep.opened()).toBe(true);
    const sse = readSse(s, `/api/v1/runs/${runId}/stream?token=${writer}`, {}, () => false);
    for (const token of [shared, writer]) expect((await call(s, 'GET', `/api/v1/runs/${runId}`, { token })).status).toBe(200);

    expect((await call(s, 'DELETE', `/api/v1/tokens/${producer.id}`, { token: ADMIN })).status).toBe(200);
    // Before: a leaked shared link kept working for its whole ttl after its producer token was revoked.
    for (const token of [shared, writer]) {
      const refused = await call(s, 'GET', `/api/v1/runs/${runId}`, { token });
      expect(refused.status).toBe(401);
      expect(refused.body.error.message).toBe('the token that minted this run token was revoked');
    }
    const append = await call(s, 'POST', `/api/v1/runs/${runId}/events`, { token: writer, body: { events: [{ type: 'x.late' }] } });
    expect(append.status).toBe(401);
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
    expect(ws.closeReason).toMatch(/revoked/);
    const ended = await sse;
    expect(ended.ended).toBe(true);
    expect(ended.text).toContain('"message":"the token that minted this run token was revoked"');
    // Tokens minted by another producer or by the admin token do not depend on the revoked one.
    for (const token of [fromOther, fromAdmin]) expect((await call(s, 'GET', `/api/v1/runs/${runId}`, { token })).status).toBe(200);
    expect(keep.closeCode).toBeNull();
  });

  it('end with their run: a run deleted and imported again under its id does not let the links shared before back in', async () => {
    // Every check asks the store, as a node does once its cached answer is tokenCacheMs old.
    const { s, mint } = await authServer({ tokenCacheMs: 0 });
    const producer = await mint('producer');
    const id = (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'shared' } })).body.id as string;
    const link = (await call(s, 'POST', `/api/v1/runs/${id}/tokens`, { token: producer.token, body: { ttlSeconds: 3600 } })).body.token as string;
    expect((await call(s, 'GET', `/api/v1/runs/${id}`, { token: link })).status).toBe(200);
    await call(s, 'POST', `/api/v1/runs/${id}/finish`, { token: producer.token, body: { status: 'succeeded' } });
    const archive = await (await fetch(`${s.url}/api/v1/runs/${id}/export`, { headers: { authorization: `Bearer ${ADMIN}` } })).arrayBuffer();
    expect((await call(s, 'DELETE', `/api/v1/runs/${id}`, { token: ADMIN })).status).toBe(204);
    const imported = await fetch(`${s.url}/api/v1/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/x-tar' },
      body: archive,
    });
    expect(imported.status, await imported.text()).toBe(201);
    expect((await call(s, 'GET', `/api/v1/runs/${id}`, { token: ADMIN })).status).toBe(200);
    // Before: the link read the run again, as if it had never been deleted.
    const refused = await call(s, 'GET', `/api/v1/runs/${id}`, { token: link });
    expect([refused.status, refused.body.error.message]).toEqual([401, 'the run token was revoked']);
  });

  it('never outlive the token that minted them: a producer token expiring in 1 s mints none for longer', async () => {
    const { s, mint } = await authServer();
    const producer = await mint('producer', { expiresInSeconds: 1 });
    const runId = (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'shared' } })).body.id as string;
    const minted = await call(s, 'POST', `/api/v1/runs/${runId}/tokens`, { token: producer.token, body: { ttlSeconds: 30 * 24 * 3600, write: true } });
    expect(minted.status).toBe(201);
    // Before: 30 days from now, for a token that was to stop working within the second.
    expect(minted.body.expiresAt).toBe(producer.expiresAt);
    const token = minted.body.token as string;
    expect((await call(s, 'GET', `/api/v1/runs/${runId}`, { token })).status).toBe(200);
    await waitFor(() => Date.now() > producer.expiresAt!);
    const refused = await call(s, 'GET', `/api/v1/runs/${runId}`, { token });
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toBe('the token has expired');
    // A token that never expires (the admin's, a producer's without expiresInSeconds) mints what was asked.
    const long = await call(s, 'POST', `/api/v1/runs/${runId}/tokens`, { token: ADMIN, body: { ttlSeconds: 600 } });
    expect(long.body.expiresAt).toBeGreaterThan(Date.now() + 590_000);
  });
});

describe('revoking run tokens', () => {
  it("a producer token revokes the run tokens it minted by id, its streams closed; another producer's, the admin's, scoped tokens and unknown ids get one 404 alike; viewers and run tokens 403", async () => {
    const { s, mint, producer, mine } = await family();
    const otherProducer = await mint('producer');
    const viewer = await mint('viewer');
    const runToken = async (token: string): Promise<{ id: string; token: string }> => {
      const minted = await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token, body: { ttlSeconds: 600 } });
      expect(minted.status, JSON.stringify(minted.body)).toBe(201);
      return minted.body;
    };
    const own = await runToken(producer.token);
    const theirs = await runToken(otherProducer.token);
    const admins = await runToken(ADMIN);
    const revoke = (id: string, token: string) => call(s, 'DELETE', `/api/v1/tokens/${id}`, { token });
    const reads = async (token: string) => (await call(s, 'GET', `/api/v1/runs/${mine}`, { token })).status;
    const ws = new TestSocket(streamUrl(s, `?token=${own.token}`));
    expect(await ws.opened()).toBe(true);

    // Before: only the admin could revoke, so a producer could not take back a link it had handed out (403).
    const byMinter = await revoke(own.id, producer.token);
    expect([byMinter.status, byMinter.body.alreadyRevoked]).toEqual([200, false]);
    const refused = await call(s, 'GET', `/api/v1/runs/${mine}`, { token: own.token });
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toBe('the run token was revoked');
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
    await waitFor(() => Date.now() > byMinter.body.revokedAt);
    const again = await revoke(own.id, producer.token);
    expect([again.status, again.body]).toEqual([200, { id: own.id, revokedAt: byMinter.body.revokedAt, alreadyRevoked: true }]);

    // Whether the id exists, and whose it is, is not told: one answer, the id aside.
    const answers = new Set<string>();
    for (const id of [theirs.id, admins.id, otherProducer.id, viewer.id, producer.id, 'no-such-token']) {
      const res = await revoke(id, producer.token);
      expect(res.status, id).toBe(404);
      expect(res.body.error.code).toBe('token_not_found');
      answers.add(res.body.error.message.replace(id, 'ID'));
    }
    expect([...answers]).toEqual(['this token minted no run token with id ID; a producer token revokes only the run tokens it minted (the `id` it was answered with), the admin token any token']);
    expect((await revoke(theirs.id, viewer.token)).status).toBe(403);
    expect((await revoke(admins.id, theirs.token)).status).toBe(403);
    // None of those was touched.
    for (const token of [theirs.token, admins.token, otherProducer.token, viewer.token, producer.token]) expect(await reads(token)).toBe(200);

    expect((await revoke(theirs.id, otherProducer.token)).status).toBe(200);
    expect(await reads(theirs.token)).toBe(401);
    expect((await revoke(admins.id, ADMIN)).status).toBe(200);
    expect(await reads(admins.token)).toBe(401);
  });
});

describe('run tokens and the runs under their run', () => {
  it("list and watch their run's children (a shared page shows them), and no other list", async () => {
    const { s, producer, make, mine, child, other } = await family();
    const grandchild = await make({ name: 'grandchild', parentId: child });
    const otherChild = await make({ name: 'other child', parentId: other });
    const token = (await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: producer.token, body: {} })).body.token as string;

    // Before: 403 for any list, so a shared link's page showed none of the children it may read.
    const listed = await call(s, 'GET', `/api/v1/runs?parentId=${mine}`, { token });
    expect(listed.status).toBe(200);
    expect(listed.body.runs.map((r: { id: string }) => r.id)).toEqual([child]);
    expect((await call(s, 'GET', `/api/v1/runs?parentId=${child}`, { token })).body.runs.map((r: { id: string }) => r.id)).toEqual([grandchild]);
    expect((await call(s, 'GET', `/api/v1/runs?parentIds=${mine},${child}`, { token })).body.runs).toHaveLength(2);
    expect((await call(s, 'GET', `/api/v1/run-counts?parentId=${mine}`, { token })).status).toBe(200);
    for (const path of ['/api/v1/runs', `/api/v1/runs?parentId=${other}`, `/api/v1/runs?parentIds=${mine},${other}`, '/api/v1/run-counts', `/api/v1/runs?name=other`]) {
      const refused = await call(s, 'GET', path, { token });
      expect(refused.status, path).toBe(403);
      expect(refused.body.error.message).toBe(`a run token lists only the runs under its run: ask with parentId=${mine} (or a run under it)`);
    }

    // The live list of its children over WebSocket; another parent's is refused.
    const ws = new TestSocket(streamUrl(s, `?token=${encodeURIComponent(token)}`));
    cleanups.push(() => ws.close());
    expect(await ws.opened()).toBe(true);
    ws.send({ op: 'subscribeRuns', filter: { parentId: other } });
    await waitFor(() => ws.messages.some((m) => m.type === 'error' && m.code === 'forbidden'));
    ws.send({ op: 'subscribeRuns', filter: { parentId: mine } });
    await waitFor(() => ws.messages.some((m) => m.type === 'subscribedRuns'));
    const late = await make({ name: 'late child', parentId: mine });
    await call(s, 'POST', `/api/v1/runs/${otherChild}/events`, { token: producer.token, body: { events: [{ type: 'x.one' }] } });
    await waitFor(() => ws.messages.some((m) => m.type === 'run' && m.run.id === late));
    expect(ws.messages.some((m) => m.type === 'run' && m.run.id === otherChild)).toBe(false);
  });
});

describe('write run tokens', () => {
  it('add events and artifacts to their run and its children, and do nothing else', async () => {
    const { s, producer, mine, child, other } = await family();
    const minted = await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: producer.token, body: { ttlSeconds: 600, write: true } });
    expect(minted.status).toBe(201);
    expect(minted.body.write).toBe(true);
    const token = minted.body.token as string;
    expect((await call(s, 'GET', '/api/v1/whoami', { token })).body.principal).toMatchObject({ kind: 'run', runId: mine, write: true });

    const append = (id: string, t = token) => call(s, 'POST', `/api/v1/runs/${id}/events`, { token: t, body: { events: [{ type: 'metric', data: { name: 'loss', value: 0.5 } }] } });
    expect((await append(mine)).status).toBe(200);
    expect((await append(child)).status).toBe(200);
    const elsewhere = await append(other);
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body.error.message).toBe("a run token adds events and artifacts only to its own run and that run's children");
    const put = await fetch(`${s.url}/api/v1/runs/${mine}/artifacts/notes.txt`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain', 'x-runtrail-client': '1' },
      body: 'hello',
    });
    expect(put.status).toBe(201);
    // Nothing beyond adding to its run: no ends, cancels, new runs, tokens or deletes.
    for (const [method, path, body] of [
      ['POST', `/api/v1/runs/${mine}/finish`, { status: 'succeeded' }],
      ['POST', `/api/v1/runs/${mine}/heartbeat`, { owner: { kind: 'producer', node: 'n', id: 'x' } }],
      ['POST', `/api/v1/runs/${mine}/cancel`, {}],
      ['POST', '/api/v1/runs', { name: 'x', parentId: mine }],
      ['POST', `/api/v1/runs/${mine}/tokens`, { write: true }],
      ['DELETE', `/api/v1/runs/${child}`, undefined],
    ] as const) {
      const res = await call(s, method, path, { token, ...(body ? { body } : {}) });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error.message).toBe('a run token can only read its run and add events and artifacts to it');
    }
    // A reading run token still only reads, and says how to get one that writes.
    const reading = (await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: producer.token, body: {} })).body;
    expect(reading.write).toBe(false);
    const refused = await append(mine, reading.token);
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toBe('this run token only reads; one minted with write: true also adds events and artifacts to its run');
    expect((await call(s, 'GET', `/api/v1/runs/${mine}/events`, { token: producer.token })).body.events).toHaveLength(2);
  });

  it("cannot end, cancel or stall its run by sending the lifecycle's events: 403, and nothing of the batch is stored", async () => {
    const { s, producer, mine, child } = await family();
    const token = (await call(s, 'POST', `/api/v1/runs/${mine}/tokens`, { token: producer.token, body: { write: true } })).body.token as string;
    const seqOf = async (id: string) => (await call(s, 'GET', `/api/v1/runs/${id}`, { token: producer.token })).body.seq as number;
    const before = [await seqOf(mine), await seqOf(child)];
    for (const id of [mine, child]) {
      for (const event of [
        { type: 'run.succeeded', data: {} },
        { type: 'run.failed', data: { error: { message: 'x' } } },
        { type: 'run.cancelled', data: {} },
        { type: 'run.cancel_requested', data: {} },
        { type: 'run.stalled', data: { stallTimeoutMs: 1000, lastProgressAt: 0 } },
        { type: 'run.started', data: {} },
      ]) {
        const res = await call(s, 'POST', `/api/v1/runs/${id}/events`, { token, body: { events: [{ type: 'x.before', data: {} }, event] } });
        expect(res.status, `${event.type}: ${JSON.stringify(res.body)}`).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
        expect(res.body.error.message).toContain(`events[1].type: a run token cannot send ${event.type}`);
      }
    }
    // Before the fix the first of these ended the run "succeeded" while its owner was still at work.
    for (const id of [mine, child]) {
      const run = (await call(s, 'GET', `/api/v1/runs/${id}`, { token: producer.token })).body;
      expect(run.status).toBe('running');
      expect(run.snapshot.cancelRequested).toBe(false);
    }
    expect([await seqOf(mine), await seqOf(child)]).toEqual(before);
    // Its work still goes in, and the producer still ends the run with the same events.
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/events`, { token, body: { events: [{ type: 'progress', data: { done: 1, total: 2 } }] } })).status).toBe(200);
    expect((await call(s, 'POST', `/api/v1/runs/${mine}/events`, { token: producer.token, body: { events: [{ type: 'run.succeeded', data: {} }] } })).status).toBe(200);
  });

  it("a handler's subprocess gets one in RUNTRAIL_TOKEN: the Python client's current_run() reports into its run with auth on", async () => {
    const { s, mint } = await authServer();
    const producer = await mint('producer');
    const python = ['-c', ['import runtrail', 'run = runtrail.current_run()', 'run.metric("loss", 0.25, step=1)', 'run.log("from the subprocess")', 'run.flush()'].join('\n')];
    s.define('train', async (ctx) => {
      await ctx.exec('python3', python, { env: { PYTHONPATH: fileURLToPath(new URL('../../../../clients/python', import.meta.url)) } });
    });
    const started = await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'train', execute: true } });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const id = started.body.id as string;
    const run = await endOf(s, id, producer.token);
    // Before: the subprocess had no token, every append was 401, and its metric never reached the run.
    expect(run.status, JSON.stringify(run.snapshot.terminal)).toBe('succeeded');
    expect(run.snapshot.metrics.loss).toMatchObject({ last: 0.25 });
    const events = (await call(s, 'GET', `/api/v1/runs/${id}/events`, { token: producer.token })).body.events as Array<{ type: string; data: { message?: string } }>;
    expect(events.some((e) => e.type === 'log' && e.data.message === 'from the subprocess')).toBe(true);
  });

  /** A handler run that execs `times` commands, each writing the RUNTRAIL_TOKEN it got: the run, once it succeeded, and those tokens. */
  async function execTokens(times: number) {
    const { s, mint } = await authServer();
    const producer = await mint('producer');
    const dir = mkdtempSync(join(tmpdir(), 'runtrail-exec-token-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    s.define('execs', async (ctx) => {
      for (let n = 0; n < times; n++) await ctx.exec('sh', ['-c', `printf %s "$RUNTRAIL_TOKEN" > ${join(dir, String(n))}`]);
    });
    const id = (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'execs', execute: true } })).body.id as string;
    const run = await endOf(s, id, producer.token);
    expect(run.status, JSON.stringify(run.snapshot.terminal)).toBe('succeeded');
    return { s, id, tokens: Array.from({ length: times }, (_, n) => readFileSync(join(dir, String(n)), 'utf8')) };
  }

  it("a handler's subprocesses share one run token: three execs of a run get the same RUNTRAIL_TOKEN, and it reads that run", async () => {
    const { s, id, tokens } = await execTokens(3);
    // Before: a token (and a store record living 30 days) per exec.
    expect(tokens[0]).toMatch(/^rtr_/);
    expect(new Set(tokens).size).toBe(1);
    expect((await call(s, 'GET', `/api/v1/runs/${id}`, { token: tokens[0] })).status).toBe(200);
  });

  it("whoami names a run token's id, so one that leaked (a subprocess's, shown nowhere else) can be revoked", async () => {
    const { s, id, tokens: [leaked] } = await execTokens(1);
    const who = (await call(s, 'GET', '/api/v1/whoami', { token: leaked })).body.principal;
    expect(who).toMatchObject({ kind: 'run', runId: id, write: true });
    // Before: no id here, and none anywhere else: the token lived its 30 days.
    expect(typeof who.id).toBe('string');
    expect((await call(s, 'DELETE', `/api/v1/tokens/${who.id}`, { token: ADMIN })).status).toBe(200);
    const refused = await call(s, 'GET', `/api/v1/runs/${id}`, { token: leaked });
    expect([refused.status, refused.body.error.message]).toEqual([401, 'the run token was revoked']);
  });
});

describe('stream auth', () => {
  it('a WebSocket with no or a bad token is closed with 4401 (a browser can read why)', async () => {
    const { s } = await authServer();
    for (const query of ['', '?token=nope']) {
      const ws = new TestSocket(streamUrl(s, query));
      await ws.settled;
      expect(ws.closeCode, query).toBe(STREAM_CLOSE_CODES.unauthorized);
    }
  });

  it("an expired token's WebSocket is closed with 4401 and its SSE stream ends with event: error", async () => {
    const { s, mint } = await authServer();
    const producer = await mint('producer');
    const runId = (await call(s, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'x' } })).body.id;
    const { token } = (await call(s, 'POST', `/api/v1/runs/${runId}/tokens`, { token: producer.token, body: { ttlSeconds: 2 } })).body;
    const ws = new TestSocket(streamUrl(s, `?token=${token}`));
    expect(await ws.opened()).toBe(true);
    ws.send({ op: 'subscribe', runId, after: 0 });
    const sse = readSse(s, `/api/v1/runs/${runId}/stream?token=${token}`, {}, () => false);
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
    expect(ws.closeReason).toMatch(/expired/);
    const ended = await sse;
    expect(ended.ended).toBe(true);
    expect(ended.text).toMatch(/event: error\ndata: \{"code":"unauthorized","message":"the token has expired"\}/);
  });

  it('a ?token= given twice is refused without quoting the secret back', async () => {
    const { s, mint } = await authServer();
    const viewer = await mint('viewer');
    const runId = (await call(s, 'POST', '/api/v1/runs', { token: ADMIN, body: { name: 'r' } })).body.id as string;
    const secret = encodeURIComponent(viewer.token);
    const res = await call(s, 'GET', `/api/v1/runs/${runId}/stream?token=${secret}&token=${secret}`);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('invalid query: token: given 2 times; give it once');
    // Before: the first 50 characters of each, the whole of a scoped token.
    expect(JSON.stringify(res.body)).not.toContain(viewer.token.slice(0, 20));
  });

  it('revoking a token closes its open streams on its node at once', async () => {
    const { s, mint } = await authServer();
    const viewer = await mint('viewer');
    const other = await mint('viewer');
    const ws = new TestSocket(streamUrl(s), { authorization: `Bearer ${viewer.token}` });
    const keep = new TestSocket(streamUrl(s), { authorization: `Bearer ${other.token}` });
    cleanups.push(() => keep.close());
    expect(await ws.opened()).toBe(true);
    expect(await keep.opened()).toBe(true);
    await call(s, 'DELETE', `/api/v1/tokens/${viewer.id}`, { token: ADMIN });
    await ws.settled;
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
    expect(ws.closeReason).toMatch(/revoked/);
    expect(keep.closeCode).toBeNull();
  });

  it('a token revoked on one node stops working on a second node sharing the database within seconds (with the run tokens it minted), and its streams there close', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-two-nodes-'));
    const nodes: RunningServer[] = [];
    cleanups.push(async () => {
      for (const n of nodes) await n.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
    for (const node of ['node-a', 'node-b']) {
      nodes.push(await startServer({ port: 0, dataDir, node, logLevel: 'silent', adminToken: ADMIN }));
    }
    const [a, b] = nodes as [RunningServer, RunningServer];
    const viewer = (await call(a, 'POST', '/api/v1/tokens', { token: ADMIN, body: { name: 'v', scope: 'viewer' } })).body as CreatedToken;
    expect((await call(b, 'GET', '/api/v1/runs', { token: viewer.token })).status).toBe(200);
    const ws = new TestSocket(streamUrl(b), { authorization: `Bearer ${viewer.token}` });
    expect(await ws.opened()).toBe(true);
    // A run token minted on node a by a producer token revoked there.
    const producer = (await call(a, 'POST', '/api/v1/tokens', { token: ADMIN, body: { name: 'p', scope: 'producer' } })).body as CreatedToken;
    const runId = (await call(a, 'POST', '/api/v1/runs', { token: producer.token, body: { name: 'shared' } })).body.id as string;
    const runToken = (await call(a, 'POST', `/api/v1/runs/${runId}/tokens`, { token: producer.token, body: { ttlSeconds: 600 } })).body.token as string;
    expect((await call(b, 'GET', `/api/v1/runs/${runId}`, { token: runToken })).status).toBe(200);
    const runWs = new TestSocket(streamUrl(b, `?token=${runToken}`));
    expect(await runWs.opened()).toBe(true);

    expect((await call(a, 'DELETE', `/api/v1/tokens/${viewer.id}`, { token: ADMIN })).status).toBe(200);
    expect((await call(a, 'DELETE', `/api/v1/tokens/${producer.id}`, { token: ADMIN })).status).toBe(200);
    await waitFor(async () => (await call(b, 'GET', '/api/v1/runs', { token: viewer.token })).status === 401, {
      timeoutMs: 5000,
      what: 'node b to refuse the revoked token',
    });
    await waitFor(async () => (await call(b, 'GET', `/api/v1/runs/${runId}`, { token: runToken })).status === 401, {
      timeoutMs: 5000,
      what: 'node b to refuse the run token of the revoked producer token',
    });
    // The open streams on node b are closed for the revoked tokens, without the clients doing anything.
    await waitFor(() => ws.closeCode !== null && runWs.closeCode !== null, { timeoutMs: 5000, what: "node b to close the revoked tokens' streams" });
    expect(ws.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
    expect(runWs.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
  });

  for (const kind of ['sqlite', 'postgres'] as const) {
    it(`a run token minted with the admin token is revoked by its id: refused at once on its node and within seconds on another (${kind}), its streams on both closed; other run tokens stay`, async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-run-token-revoke-'));
      const schema = kind === 'postgres' ? await freshSchema() : null;
      const nodes: RunningServer[] = [];
      cleanups.push(async () => {
        for (const n of nodes) await n.close();
        if (schema) await dropSchema(schema);
        rmSync(dataDir, { recursive: true, force: true });
      });
      for (const node of ['node-a', 'node-b']) {
        const store = schema ? { databaseUrl: TEST_DATABASE_URL, databaseSchema: schema } : {};
        nodes.push(await startServer({ port: 0, dataDir: join(dataDir, schema ? node : ''), node, logLevel: 'silent', adminToken: ADMIN, stopOnSignals: false, ...store }));
      }
      const [a, b] = nodes as [RunningServer, RunningServer];
      const runId = (await call(a, 'POST', '/api/v1/runs', { token: ADMIN, body: { name: 'shared' } })).body.id as string;
      const mint = async (write: boolean) => {
        const minted = await call(a, 'POST', `/api/v1/runs/${runId}/tokens`, { token: ADMIN, body: { ttlSeconds: 600, write } });
        expect(minted.status).toBe(201);
        return minted.body as { id: string; token: string };
      };
      const link = await mint(false);
      const writer = await mint(true);
      const kept = await mint(false);
      const wsA = new TestSocket(streamUrl(a, `?token=${link.token}`));
      const wsB = new TestSocket(streamUrl(b, `?token=${link.token}`));
      const keep = new TestSocket(streamUrl(b, `?token=${kept.token}`));
      cleanups.push(() => keep.close());
      for (const ws of [wsA, wsB, keep]) expect(await ws.opened()).toBe(true);
      const sseB = readSse(b, `/api/v1/runs/${runId}/stream?token=${writer.token}`, {}, () => false);
      const append = (node: RunningServer) => call(node, 'POST', `/api/v1/runs/${runId}/events`, { token: writer.token, body: { events: [{ type: 'x.step' }] } });
      expect((await append(b)).status).toBe(200);
      expect((await call(b, 'GET', `/api/v1/runs/${runId}`, { token: link.token })).status).toBe(200);

      for (const { id } of [link, writer]) expect((await call(a, 'DELETE', `/api/v1/tokens/${id}`, { token: ADMIN })).status).toBe(200);
      // Before: a run token minted with the admin token could not be revoked at all, only wait for its expiry.
      const refused = await call(a, 'GET', `/api/v1/runs/${runId}`, { token: link.token });
      expect(refused.status).toBe(401);
      expect(refused.body.error.message).toBe('the run token was revoked');
      expect((await append(a)).status).toBe(401);
      await wsA.settled;
      expect(wsA.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
      expect(wsA.closeReason).toMatch(/revoked/);
      // Node b asks the store again once its cached check of each token is older than tokenCacheMs.
      await waitFor(async () => (await call(b, 'GET', `/api/v1/runs/${runId}`, { token: link.token })).status === 401, {
        timeoutMs: 5000,
        what: 'node b to refuse the revoked run token',
      });
      await waitFor(async () => (await append(b)).status === 401, { timeoutMs: 5000, what: 'node b to refuse appends with the revoked write token' });
      // The streams open on node b end at their next check, without the clients doing anything.
      await waitFor(() => wsB.closeCode !== null, { timeoutMs: 5000, what: "node b to close the revoked run token's WebSocket" });
      expect(wsB.closeCode).toBe(STREAM_CLOSE_CODES.unauthorized);
      const ended = await sseB;
      expect(ended.ended).toBe(true);
      expect(ended.text).toContain('"message":"the run token was revoked"');
      // The run's other run token is not touched; a revoked id is not a token to revoke twice silently.
      expect((await call(b, 'GET', `/api/v1/runs/${runId}`, { token: kept.token })).status).toBe(200);
      expect(keep.closeCode).toBeNull();
      const unknown = await call(a, 'DELETE', '/api/v1/tokens/no-such-token', { token: ADMIN });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('token_not_found');
    });
  }
});
