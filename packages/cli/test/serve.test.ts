import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir, waitUntil } from '@runtrail/test-support';
import { join } from 'node:path';
import { recordLoads, runtrail, serve } from './harness.js';
// The store's fixture of a data file from before event bodies (schema version 6).
import { LEGACY_RUN_ID, LEGACY_VERSION, legacyEvents, writeLegacySqliteFile } from '../../store/src/legacy-events.test-kit.js';
import { compatibleFrom, migrations, type Migration } from '../../store/src/migrations.js';
// The store's own migration path, given a longer list: a data file as a newer runtrail migrates it.
import { migrateSqliteSchema } from '../../store/src/sqlite/sqlite-store.js';
import Database from 'better-sqlite3';

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** The JSON log lines a server printed on stdout (pino's), parsed. */
const logLines = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the runtrail command', () => {
  it('--version prints the version of the CLI package', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const result = await runtrail(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(version);
  });

  it('refuses a Node.js older than the engines field with one line, before loading anything', async () => {
    const result = await runtrail(['--help'], {
      nodeArgs: ['--import', 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.18.1"})'],
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('runtrail: Node.js 20.18.1 is not supported; runtrail needs Node.js >=20.19\n');
  });
});

describe('runtrail serve logs', () => {
  it('writes JSON lines when not on a terminal, with the request id and the runId on lines about a run', async () => {
    const dir = tempDir();
    const server = await serve(['--port', '0', '--data-dir', dir.path]);
    try {
      const created = await post(`${server.url}/api/v1/runs`, { name: 'logged' }, { 'x-request-id': 'req-from-caller' });
      expect(created.headers.get('x-request-id')).toBe('req-from-caller');
      const run = (await created.json()) as { id: string };
      const finished = await post(`${server.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' });
      expect(finished.headers.get('x-request-id')).toMatch(/\S{8,}/);
      expect(await server.stop()).toBe(0);
      const lines = logLines(server.stdout());
      const listening = lines.find((l) => String(l.msg).startsWith('runtrail listening on'));
      expect(listening?.level).toBe(30);
      // The settings line says the port the server listens on, not the 0 that asked for any.
      expect((listening?.config as { port?: number } | undefined)?.port).toBe(Number(new URL(server.url).port));
      expect(listening?.config).toHaveProperty('maxEventsPerBatch', 5000);
      const about = lines.filter((l) => l.runId === run.id).map((l) => l.msg);
      expect(about).toEqual(['run created', 'run ended succeeded']);
    } finally {
      await server.stop();
      dir.remove();
    }
  });

  it('says it is upgrading an older data file before serving it, and how long it took, and serves its runs after', async () => {
    const dir = tempDir();
    writeLegacySqliteFile(join(dir.path, 'runtrail.db'));
    const server = await serve(['--port', '0', '--data-dir', dir.path]);
    try {
      const events = (await (await fetch(`${server.url}/api/v1/runs/${LEGACY_RUN_ID}/events?after=0`)).json()) as { events: unknown[] };
      expect(events.events).toEqual(legacyEvents);
      expect(await server.stop()).toBe(0);
      const messages = logLines(server.stdout()).map((l) => String(l.msg));
      const upgrading = messages.findIndex((m) => m.startsWith(`upgrading the data file's schema from version ${LEGACY_VERSION} to ${migrations.length} before serving`));
      const upgraded = messages.findIndex((m) => new RegExp(`^schema upgraded to version ${migrations.length} in \\d+\\.\\d s$`).test(m));
      const listening = messages.findIndex((m) => m.startsWith('runtrail listening on'));
      expect([upgrading, upgraded, listening].every((i) => i >= 0)).toBe(true);
      expect(upgrading < upgraded && upgraded < listening).toBe(true);
    } finally {
      await server.stop();
      dir.remove();
    }
  });

  /** A data dir a newer runtrail made, whose last migration is `later`. */
  function migratedByNewer(later: Migration): ReturnType<typeof tempDir> {
    const dir = tempDir();
    const db = new Database(join(dir.path, 'runtrail.db'));
    try {
      migrateSqliteSchema(db, [...migrations, later]);
    } finally {
      db.close();
    }
    return dir;
  }

  it('serves a data file a newer runtrail migrated additively (a rolling upgrade), warning once that it should be upgraded', async () => {
    const dir = migratedByNewer({ additive: true, sql: () => 'CREATE TABLE later_notes (id TEXT PRIMARY KEY)' });
    const server = await serve(['--port', '0', '--data-dir', dir.path]);
    try {
      expect((await post(`${server.url}/api/v1/runs`, { name: 'on-a-newer-schema' })).status).toBe(201);
      expect(await server.stop()).toBe(0);
      const lines = logLines(server.stdout());
      const warned = lines.filter((l) => /schema is at version/.test(String(l.msg)));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: 40, version: migrations.length + 1, known: migrations.length, compatibleFrom: compatibleFrom(migrations.length) });
      expect(warned[0]!.msg).toBe(
        `the data file's schema is at version ${migrations.length + 1}, newer than this runtrail's ${migrations.length}; running on it without migrating, ` +
          `because migration ${migrations.length + 1} keeps older code working (code of version ${compatibleFrom(migrations.length)} or later may use it); upgrade this node to use what they add`,
      );
    } finally {
      await server.stop();
      dir.remove();
    }
  });

  it('refuses, in one line, a data file a newer runtrail migrated in a way this one cannot use, saying to upgrade this node', async () => {
    const dir = migratedByNewer({ additive: false, sql: () => 'ALTER TABLE runs ADD COLUMN later_priority INTEGER' });
    try {
      const result = await runtrail(['serve', '--port', '0', '--data-dir', dir.path]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `runtrail: unavailable: this runtrail is older than its data file (schema version ${migrations.length + 1}, known ${migrations.length}), ` +
          `and migration ${migrations.length + 1} changed the schema in a way code before it cannot use: ` +
          `upgrade runtrail on this node to a version that knows schema version ${migrations.length + 1} or later\n`,
      );
    } finally {
      dir.remove();
    }
  });

  it('says nothing about schemas when it creates a new data file', async () => {
    const dir = tempDir();
    const server = await serve(['--port', '0', '--data-dir', dir.path]);
    try {
      expect(await server.stop()).toBe(0);
      expect(server.stdout()).toContain('runtrail listening on');
      expect(server.stdout()).not.toMatch(/schema/);
    } finally {
      dir.remove();
    }
  });

  it('writes human lines with --log-format pretty (what a terminal gets by default)', async () => {
    const dir = tempDir();
    const server = await serve(['--port', '0', '--data-dir', dir.path, '--log-format', 'pretty']);
    try {
      expect(await server.stop()).toBe(0);
      expect(server.stdout()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*: runtrail listening on http/m);
      expect(server.stdout()).not.toMatch(/^\{"level"/m);
      // A person reads the settings given, not 40 lines of defaults (the JSON line, for machines, keeps them all).
      expect(server.stdout()).toContain(`"dataDir": "${dir.path}"`);
      expect(server.stdout()).toContain('"logFormat": "pretty"');
      expect(server.stdout()).toContain('"others": "defaults (runtrail config lists every setting)"');
      expect(server.stdout()).not.toContain('maxEventsPerBatch');
    } finally {
      dir.remove();
    }
  });
});

describe('runtrail serve on SQLite', () => {
  it('never loads the PostgreSQL driver: a SQLite node pays nothing at start for what it does not use', async () => {
    const dir = tempDir();
    const loads = recordLoads();
    const server = await serve(['--port', '0', '--data-dir', dir.path], loads.options);
    try {
      const run = (await (await post(`${server.url}/api/v1/runs`, { name: 'no-pg' })).json()) as { id: string };
      expect((await post(`${server.url}/api/v1/runs/${run.id}/finish`, { status: 'succeeded' })).status).toBe(200);
      expect(await server.stop()).toBe(0);
      const loaded = loads.loaded();
      // The record works: better-sqlite3, which this store does use, is in it.
      expect(loaded.some((url) => url.includes('/node_modules/better-sqlite3/'))).toBe(true);
      expect(loaded.filter((url) => /\/node_modules\/pg(-[a-z]+)?\//.test(url))).toEqual([]);
    } finally {
      await server.stop();
      loads.remove();
      dir.remove();
    }
  });
});

describe('runtrail serve --handlers', () => {
  const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/handlers/${name}`, import.meta.url));

  /** Start a run of `name` with `input` on the server and wait for its end. */
  async function execute(url: string, name: string, input: unknown) {
    const created = await post(`${url}/api/v1/runs`, { name, input, execute: true });
    expect(created.status, await created.clone().text()).toBe(201);
    const { id } = (await created.json()) as { id: string };
    return waitUntil(
      async () => {
        const run = (await (await fetch(`${url}/api/v1/runs/${id}`)).json()) as { status: string; output: unknown; snapshot: { logs: Array<{ message: string }> } };
        return run.status === 'queued' || run.status === 'running' ? null : run;
      },
      { what: `the ${name} run to end` },
    );
  }

  it("runs a team's handlers from their own modules (a function given the server, or handlers by name), beside the demo's", async () => {
    const dir = tempDir();
    const server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'silent', '--handlers', fixture('score.mjs'), '--handlers', fixture('by-name.mjs')]);
    try {
      expect(server.stdout()).toContain('handlers: demo-pipeline, echo, one-at-a-time, score\n');
      const scored = await execute(server.url, 'score', { doc: 'doc_7' });
      expect(scored).toMatchObject({ status: 'succeeded', output: { doc: 'doc_7', score: 0.9 } });
      expect(scored.snapshot.logs.map((l) => l.message)).toContain('scoring doc_7');
      expect(await execute(server.url, 'echo', [1, 2])).toMatchObject({ status: 'succeeded', output: { echoed: [1, 2] } });
      expect(await execute(server.url, 'one-at-a-time', null)).toMatchObject({ status: 'succeeded', output: { alone: true } });
    } finally {
      expect(await server.stop()).toBe(0);
      dir.remove();
    }
  });

  it('--no-demo-handler serves only the handlers given: demo-pipeline is neither listed nor started', async () => {
    const dir = tempDir();
    const server = await serve(['--port', '0', '--data-dir', dir.path, '--log-level', 'silent', '--no-demo-handler', '--handlers', fixture('score.mjs')]);
    try {
      expect(server.stdout()).toContain('handlers: score\n');
      const listed = (await (await fetch(`${server.url}/api/v1/handlers`)).json()) as { handlers: string[] };
      expect(listed.handlers).toEqual(['score']);
      const started = await fetch(`${server.url}/api/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'demo-pipeline', execute: true }),
      });
      expect(started.status).toBe(404);
      expect(((await started.json()) as { error: { code: string } }).error.code).toBe('handler_not_found');
    } finally {
      expect(await server.stop()).toBe(0);
      dir.remove();
    }
  });

  it('says in one line what is wrong with a module, before serving anything: a wrong path, a wrong export, a syntax error', async () => {
    const dir = tempDir();
    try {
      const broken = join(dir.path, 'broken.mjs');
      writeFileSync(broken, "export default (rt) => {\n  rt.define('broken', async () => {\n    return {\n  });\n};\n");
      // define's options given with a handler by name reach define, which refuses a wrong one.
      const badCap = join(dir.path, 'bad-cap.mjs');
      writeFileSync(badCap, 'export default { gpu: { handler: async () => 1, concurrency: 0 } };\n');
      // A misspelt option would otherwise leave the handler without the limit it was meant to have.
      const misspelt = join(dir.path, 'misspelt.mjs');
      writeFileSync(misspelt, 'export default { gpu: { handler: async () => 1, concurency: 1 } };\n');
      // A name with an escape sequence in it would be listed raw by GET /handlers, `runtrail handlers` and the dashboard.
      const badName = join(dir.path, 'bad-name.mjs');
      writeFileSync(badName, "export default { 'eval\\u001b[2J': async () => 1 };\n");
      // A team's handler named as the demo's, and two modules (or one) defining one name: which two places clash.
      const demoNamed = join(dir.path, 'demo-named.mjs');
      writeFileSync(demoNamed, "export default { 'demo-pipeline': async () => 1 };\n");
      const twice = join(dir.path, 'twice.mjs');
      writeFileSync(twice, "export default (rt) => {\n  rt.define('score', async () => 1);\n  rt.define('score', async () => 2);\n};\n");
      const cases: Array<[string | string[], RegExp]> = [
        [demoNamed, /: defining its handlers failed: a handler named "demo-pipeline" is already defined by the stock server's demo handler \(serve --no-demo-handler leaves it out\); one node runs one handler of a name, so rename one of them\n$/],
        [[fixture('score.mjs'), twice], /--handlers \/.*\/twice\.mjs: defining its handlers failed: a handler named "score" is already defined by --handlers \/.*\/fixtures\/handlers\/score\.mjs; one node/],
        [twice, /: defining its handlers failed: a handler named "score" is already defined earlier in this module; one node/],
        ['./no-such-handlers.mjs', /^runtrail: invalid_request: --handlers \.\/no-such-handlers\.mjs: no such file \(\/.*no-such-handlers\.mjs\)\n$/],
        [fixture('not-handlers.mjs'), /: its default export is missing; export a function that defines handlers \(export default \(rt\) => \{ rt\.define\('name', async \(ctx\) => …\) \}\) or an object of handlers by name\n$/],
        [broken, /: loading it failed: Unexpected token '\)' at \/.*\/broken\.mjs:4\n$/],
        [badCap, /: defining its handlers failed: the concurrency of "gpu" must be a whole number from 1 \(runs of it at once on this node\); got 0\n$/],
        [misspelt, /: defining its handlers failed: the options of "gpu" have no "concurency"; a handler's options are input, concurrency\n$/],
        [badName, /: defining its handlers failed: the handler name "eval\\u001b\[2J" is refused: must not contain NUL or other control characters\n$/],
      ];
      for (const [file, said] of cases) {
        const files = typeof file === 'string' ? [file] : file;
        const result = await runtrail(['serve', '--port', '0', '--data-dir', join(dir.path, 'data'), ...files.flatMap((f) => ['--handlers', f])], { cwd: dir.path });
        const what = files.join(' ');
        expect(result.code, what).toBe(2);
        expect(result.stdout, what).not.toContain('serving on');
        // Refused before it listens: no "listening" line makes it look as if it had come up.
        expect(result.stdout, what).not.toMatch(/listening/i);
        expect(result.stderr, what).toMatch(said);
        expect(result.stderr.trim().split('\n'), what).toHaveLength(1);
      }
    } finally {
      dir.remove();
    }
  });
});
