import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, waitUntil } from '@runtrail/test-support';

/** `runtrail serve` refuses to start open on a reachable address; `runtrail tokens`, `artifacts`, `export` and `import` with RUNTRAIL_TOKEN (issue 15). */
const BIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const ADMIN = 'cli-admin-token-0123456789abcdef';
const dir = tempDir();
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
  dir.remove();
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, RUNTRAIL_ADMIN_TOKEN: '', RUNTRAIL_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

async function serve(args: string[], env: Record<string, string> = {}): Promise<{ url: string; child: ChildProcess; out: () => string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', join(dir.path, 'data'), ...args], {
    env: { ...process.env, RUNTRAIL_ADMIN_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const url = await waitUntil(() => /serving on (http:\/\/\S+)/.exec(out)?.[1], { timeoutMs: 15_000, what: 'runtrail serve to print its URL' });
  return { url, child, out: () => out };
}

// Each case starts CLI processes (a second or more each on a busy machine).
describe('runtrail serve: open only on loopback', { timeout: 180_000 }, () => {
  it('refuses --host 0.0.0.0 without an admin token: exit non-zero, one line saying why', async () => {
    const result = await run(['serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', join(dir.path, 'refused')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/refusing to serve 0\.0\.0\.0 without auth.*RUNTRAIL_ADMIN_TOKEN.*--insecure/);
  });

  it('serves 0.0.0.0 with --insecure, warning loudly; and with an admin token file, requiring tokens', async () => {
    const open = await serve(['--host', '0.0.0.0', '--insecure']);
    await waitUntil(() => /INSECURE: auth is off/.test(open.out()), { what: 'the insecure warning' });
    open.child.kill('SIGTERM');
    await once(open.child, 'exit');

    const file = join(dir.path, 'admin-token');
    writeFileSync(file, `${ADMIN}\n`);
    const { url } = await serve(['--admin-token-file', file]);
    expect((await fetch(`${url}/api/v1/runs`)).status).toBe(401);
    expect((await fetch(`${url}/api/v1/runs`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);

    // runtrail tokens create | ls | revoke, with the admin token in RUNTRAIL_TOKEN.
    const env = { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: ADMIN };
    const created = await run(['tokens', 'create', 'ci-viewer', '--scope', 'viewer', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).not.toMatch(/auth is off/);
    const token = JSON.parse(created.stdout) as { id: string; token: string };
    // A lifetime with a unit; a bare number is seconds; anything else is refused with what to give.
    const started = Date.now();
    const monthly = await run(['tokens', 'create', 'monthly', '--scope', 'producer', '--expires-in', '30d', '--json'], env);
    expect(monthly.code, monthly.stderr).toBe(0);
    const { expiresAt } = JSON.parse(monthly.stdout) as { expiresAt: number };
    expect(expiresAt - started).toBeGreaterThanOrEqual(30 * 86_400_000 - 1000);
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(30 * 86_400_000 + 1000);
    const wrong = await run(['tokens', 'create', 'never', '--scope', 'viewer', '--expires-in', 'a month'], env);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('--expires-in must be whole seconds (3600) or a number with a unit (90m, 12h, 30d), not "a month"');
    const listed = await run(['tokens', 'ls'], env);
    expect(listed.stdout).toMatch(new RegExp(`${token.id}\\s+ci-viewer\\s+viewer\\s+active`));
    expect(listed.stdout).not.toContain(token.token);
    // Every client command sends RUNTRAIL_TOKEN: artifacts ls | put | get too.
    const created2 = await fetch(`${url}/api/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', 'x-runtrail-client': 'test' },
      body: JSON.stringify({ name: 'with-artifacts' }),
    });
    const { id: runId } = (await created2.json()) as { id: string };
    const notes = join(dir.path, 'notes.txt');
    writeFileSync(notes, 'hello\n');
    const put = await run(['artifacts', 'put', runId, notes], env);
    expect(put.code, put.stderr).toBe(0);
    expect((await run(['artifacts', 'ls', runId], env)).stdout).toContain('notes.txt');
    expect((await run(['artifacts', 'get', runId, 'notes.txt', '-o', '-'], env)).stdout).toBe('hello\n');
    expect((await run(['artifacts', 'ls', runId], { RUNTRAIL_URL: url })).stderr).toMatch(/unauthorized/);
    // export and import too: the archive comes back, and its import reaches the server's own checks (the run
    // was exported while running, which import refuses with its reason), not a 401.
    const archive = join(dir.path, 'run.tar');
    const exported = await run(['export', runId, '-o', archive], env);
    expect(exported.code, exported.stderr).toBe(0);
    expect(statSync(archive).size).toBeGreaterThan(1024);
    const imported = await run(['import', archive], env);
    expect(imported.stderr).toMatch(/the run is running; export a run after it ends; nothing was imported/);
    expect(imported.stderr).not.toMatch(/unauthorized/);
    expect((await run(['import', archive], { RUNTRAIL_URL: url })).stderr).toMatch(/unauthorized/);
    expect((await run(['runs', 'ls'], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: token.token })).code).toBe(0);
    const revoked = await run(['tokens', 'revoke', token.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    // The id on stdout, as delete prints a run's; the sentence on stderr.
    expect(revoked.stdout).toBe(`${token.id}\n`);
    expect(revoked.stderr).toBe(`revoked token ${token.id}; it stops working on every node within seconds\n`);
    const monthlyId = (JSON.parse(monthly.stdout) as { id: string }).id;
    const revokedJson = await run(['tokens', 'revoke', monthlyId, '--json'], env);
    expect(revokedJson.code, revokedJson.stderr).toBe(0);
    // As delete --json prints a deleted run.
    const revokedAnswer = JSON.parse(revokedJson.stdout) as { revokedAt: number };
    expect(revokedAnswer).toEqual({ id: monthlyId, revoked: true, revokedAt: expect.any(Number), alreadyRevoked: false });
    const listedAfter = JSON.parse((await run(['tokens', 'ls', '--json'], env)).stdout) as { tokens: Array<{ id: string; revokedAt: number | null }> };
    expect(listedAfter.tokens.find((t) => t.id === monthlyId)?.revokedAt).toBe(revokedAnswer.revokedAt);
    // Again: not an error (the token is revoked, as wanted), but not "revoked" either, as it said before: done earlier, and when.
    const again = await run(['tokens', 'revoke', token.id], env);
    expect([again.code, again.stdout], again.stderr).toEqual([0, `${token.id}\n`]);
    const firstRevokedAt = listedAfter.tokens.find((t) => t.id === token.id)!.revokedAt!;
    expect(again.stderr).toBe(`token ${token.id} already revoked at ${new Date(firstRevokedAt).toISOString().replace('T', ' ').slice(0, 19)} UTC; nothing changed\n`);
    const missing = await run(['tokens', 'revoke', 'nope'], env);
    expect(missing.code).toBe(2);
    // The server's words: the CLI no longer looks the id up in the list of scoped tokens first.
    expect(missing.stderr).toBe("runtrail: token_not_found: no token with id nope; GET /api/v1/tokens lists scoped tokens, and a run token's id is the `id` it was minted with\n");
    const refused = await run(['runs', 'ls'], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: token.token });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/unauthorized: the token was revoked/);
    // Where the refused token came from: a user with several servers may have set another's.
    expect(refused.stderr).toMatch(/\(the token sent is the one in RUNTRAIL_TOKEN\)\n$/);
    const unknown = await run(['runs', 'ls'], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: 'rt_not-a-token-of-this-server' });
    expect([unknown.code, unknown.stderr.trim().split('\n').length]).toEqual([2, 1]);
    expect(unknown.stderr).toMatch(/^runtrail: unauthorized: .*\(the token sent is the one in RUNTRAIL_TOKEN\)\n$/);
    const noToken = await run(['runs', 'ls'], { RUNTRAIL_URL: url });
    expect(noToken.stderr).toMatch(/unauthorized/);
    // A command line sends no header of its own: it is told where the CLI takes the token from.
    expect(noToken.stderr, noToken.stderr).toMatch(/RUNTRAIL_TOKEN, which is not set/);
    expect(noToken.stderr.trim().split('\n')).toHaveLength(1);
    // Watching too: said once, in the CLI's terms (not the SDK's `token` option).
    const tail = await run(['tail', '01a22117-3ce3-7415-be4f-bd3e06356152', '--give-up-after', '5s'], { RUNTRAIL_URL: url });
    expect(tail.code).toBe(2);
    expect(tail.stderr.match(/RUNTRAIL_TOKEN, which is not set/g), tail.stderr).toHaveLength(1);
    expect(tail.stderr).not.toContain('watchRun');
  });
});

describe('runtrail tokens revoke: run tokens too, by whoever the server lets revoke them', { timeout: 180_000 }, () => {
  it('the admin token revokes a run token by id; a producer token the run tokens it minted, and is told not found for another producer\'s', async () => {
    const file = join(dir.path, 'admin-token-revoke');
    writeFileSync(file, `${ADMIN}\n`);
    const { url } = await serve(['--admin-token-file', file, '--data-dir', join(dir.path, 'revoke')]);
    const api = async <T>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as T };
    };
    const producer = async (name: string) => (await api<{ id: string; token: string }>('POST', '/api/v1/tokens', ADMIN, { name, scope: 'producer' })).body.token;
    const mine = await producer('mine');
    const theirs = await producer('theirs');
    const runId = (await api<{ id: string }>('POST', '/api/v1/runs', mine, { name: 'shared' })).body.id;
    const mint = async (token: string) => {
      const minted = await api<{ id: string; token: string }>('POST', `/api/v1/runs/${runId}/tokens`, token, { ttlSeconds: 600 });
      expect(minted.status).toBe(201);
      return minted.body;
    };
    const reads = async (runToken: string) => (await api<unknown>('GET', `/api/v1/runs/${runId}`, runToken)).status;
    const [admins, own, others] = [await mint(ADMIN), await mint(mine), await mint(theirs)];

    // Before: the id was looked up in the admin's list of scoped tokens, so no run token was ever found.
    const byAdmin = await run(['tokens', 'revoke', admins.id], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: ADMIN });
    expect([byAdmin.code, byAdmin.stdout], byAdmin.stderr).toEqual([0, `${admins.id}\n`]);
    expect(byAdmin.stderr).toBe(`revoked token ${admins.id}; it stops working on every node within seconds\n`);
    expect(await reads(admins.token)).toBe(401);
    // Before: a second revoke said "revoked token" too, as if it had ended something still working.
    const twiceJson = await run(['tokens', 'revoke', admins.id, '--json'], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: ADMIN });
    expect(twiceJson.code, twiceJson.stderr).toBe(0);
    const { revokedAt } = JSON.parse(twiceJson.stdout) as { revokedAt: number };
    expect(JSON.parse(twiceJson.stdout)).toEqual({ id: admins.id, revoked: true, revokedAt: expect.any(Number), alreadyRevoked: true });
    const twice = await run(['tokens', 'revoke', admins.id], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: ADMIN });
    expect([twice.code, twice.stdout], twice.stderr).toEqual([0, `${admins.id}\n`]);
    expect(twice.stderr).toBe(`token ${admins.id} already revoked at ${new Date(revokedAt).toISOString().replace('T', ' ').slice(0, 19)} UTC; nothing changed\n`);

    // Before: a producer token may not list tokens (403), so it could not revoke the ones it minted.
    const byMinter = await run(['tokens', 'revoke', own.id, '--json'], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: mine });
    expect(byMinter.code, byMinter.stderr).toBe(0);
    expect(JSON.parse(byMinter.stdout)).toEqual({ id: own.id, revoked: true, revokedAt: expect.any(Number), alreadyRevoked: false });
    expect(await reads(own.token)).toBe(401);

    const notMine = await run(['tokens', 'revoke', others.id], { RUNTRAIL_URL: url, RUNTRAIL_TOKEN: mine });
    expect([notMine.code, notMine.stdout]).toEqual([2, '']);
    expect(notMine.stderr).toBe(
      `runtrail: token_not_found: this token minted no run token with id ${others.id}; a producer token revokes only the run tokens it minted (the \`id\` it was answered with), the admin token any token\n`,
    );
    expect(await reads(others.token)).toBe(200);
  });
});
