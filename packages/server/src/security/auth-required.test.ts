import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '@runtrail/store';
import { tempDir } from '@runtrail/test-support';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';
import { StartupError, startServer, type StartOptions } from '../start.js';
import { jsonLogLines } from '../log-lines.test-kit.js';
import { AUTH_REQUIRED_SECRET } from './auth-required.js';

const ADMIN = 'admin-token-for-the-cluster-0123456789';

/**
 * Nodes of one PostgreSQL database agree about auth: runs and tokens live in
 * the database, so one node with auth off served every node's runs open and
 * minted admin tokens the nodes with auth on accepted.
 */
describe('auth on a database shared by several nodes', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function schema(): Promise<string> {
    const name = await freshSchema();
    cleanups.push(() => dropSchema(name));
    return name;
  }

  async function node(schemaName: string, options: StartOptions) {
    const dir = tempDir('runtrail-auth-required-');
    cleanups.push(() => dir.remove());
    const server = await startServer({ port: 0, dataDir: dir.path, databaseUrl: TEST_DATABASE_URL, databaseSchema: schemaName, stopOnSignals: false, logLevel: 'silent', ...options });
    cleanups.push(() => server.close());
    return server;
  }

  it('refuses to start a node with auth off once a node with auth on has used the database, naming that node and what to do', async () => {
    const s = await schema();
    const a = await node(s, { node: 'node-a', adminToken: ADMIN });
    await a.close();
    // Refused with A gone as well: the requirement is the database's, not a live node's.
    const cDir = tempDir('runtrail-auth-required-c-');
    cleanups.push(() => cDir.remove());
    const refused = startServer({ port: 0, dataDir: cDir.path, databaseUrl: TEST_DATABASE_URL, databaseSchema: s, node: 'node-c', stopOnSignals: false, logLevel: 'silent' });
    const err = await refused.then(
      async (c) => {
        await c.close();
        throw new Error(`node-c started with auth off at ${c.url}, serving node-a's runs open`);
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toMatch(
      new RegExp(
        '^refusing to start with auth off: the other nodes on this database require tokens \\(since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z, first node node-a\\); ' +
          'this node would serve all their runs open and mint tokens they accept\\. ' +
          'Start it with RUNTRAIL_ADMIN_TOKEN or --admin-token-file like the others, or pass --insecure to run this database open on purpose$',
      ),
    );
    // A second node with auth on starts, and does not take over the record of who required it first.
    const b = await node(s, { node: 'node-b', adminToken: ADMIN });
    expect(JSON.parse((await b.store.findSecret(AUTH_REQUIRED_SECRET))!)).toMatchObject({ node: 'node-a' });
  });

  it('starts a node with auth off on --insecure, with a warning that the other nodes require tokens and this one does not', async () => {
    const s = await schema();
    const a = await node(s, { node: 'node-a', adminToken: ADMIN });
    const { lines, destination } = jsonLogLines();
    const c = await node(s, { node: 'node-c', insecure: true, logLevel: 'info', logFormat: 'json', logDestination: destination });
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^INSECURE: auth is off on ${c.url.replace(/[.]/g, '\\.')}, but the other nodes on this database require tokens \\(since \\S+Z, first node node-a\\): ` +
            'this node serves all their runs open and mints tokens they accept \\(--insecure\\)$',
        ),
      ),
    ]);
    // What the operator chose: C is open (A is not).
    expect((await fetch(`${c.url}/api/v1/runs`)).status).toBe(200);
    expect((await fetch(`${a.url}/api/v1/runs`)).status).toBe(401);
  });

  it('starts a node with auth off on a database no node with auth on has used, and records nothing', async () => {
    const s = await schema();
    const c = await node(s, { node: 'node-c' });
    expect((await fetch(`${c.url}/api/v1/runs`)).status).toBe(200);
    expect(await c.store.findSecret(AUTH_REQUIRED_SECRET)).toBeNull();
  });

  it('leaves SQLite alone: a data dir is one node, so auth on then off on it starts both, and no record is kept', async () => {
    const dir = tempDir('runtrail-auth-required-sqlite-');
    cleanups.push(() => dir.remove());
    const on = await startServer({ port: 0, dataDir: dir.path, node: 'solo', adminToken: ADMIN, stopOnSignals: false, logLevel: 'silent' });
    await on.close();
    const off = await startServer({ port: 0, dataDir: dir.path, node: 'solo', stopOnSignals: false, logLevel: 'silent' });
    await off.close();
    const store = openStore({ dataDir: dir.path });
    try {
      expect(await store.findSecret(AUTH_REQUIRED_SECRET)).toBeNull();
    } finally {
      await store.close();
    }
  });
});
