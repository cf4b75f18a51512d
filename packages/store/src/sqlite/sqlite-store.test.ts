import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { afterEach, describe, expect, it } from 'vitest';
import { foldEvents, type RunEvent } from '@runtrail/protocol';
import { BATCH_SIZES, produceTask, runStoreConformance } from '../conformance.js';
import { tempDir as makeTempDir } from '@runtrail/test-support';
import { openStore } from '../open.js';
import { migrations, pendingMigrations, sqliteDialect } from '../migrations.js';
import { SqliteRunStore, migrateSqliteSchema } from './sqlite-store.js';
import { builtStoreUrl as built, requireFreshBuild } from '../fresh-build.test-kit.js';
import { checkpointSuite, type CheckpointRow } from '../checkpoints.test-kit.js';
import { LEGACY_VERSION, expectLegacyRunIntact, writeLegacySqliteFile } from '../legacy-events.test-kit.js';
import { rollingUpgradeSuite } from '../rolling-upgrade.test-kit.js';

const tempDirs: Array<ReturnType<typeof makeTempDir>> = [];
function tempDir(): string {
  const dir = makeTempDir('runtrail-sqlite-');
  tempDirs.push(dir);
  return dir.path;
}
afterEach(() => {
  for (const dir of tempDirs.splice(0)) dir.remove();
});

runStoreConformance(
  'sqlite',
  async (location) => {
    const dataDir = location ?? mkdtempSync(join(tmpdir(), 'runtrail-conformance-'));
    const store = openStore({ dataDir });
    return {
      store,
      location: dataDir,
      cleanup: async () => {
        await store.close();
        if (location === undefined) rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
  {
    worker: {
      get moduleUrl() {
        requireFreshBuild();
        return built;
      },
      exportName: 'openStore',
      argument: (dataDir) => ({ dataDir }),
    },
  },
);

/** location = the data file. */
rollingUpgradeSuite('sqlite', {
  fresh: async () => join(mkdtempSync(join(tmpdir(), 'runtrail-upgrade-')), 'runtrail.db'),
  open: async (filename, onNewerSchema) => new SqliteRunStore({ filename, onNewerSchema }),
  migrateWith: async (filename, list) => {
    const db = new Database(filename);
    try {
      migrateSqliteSchema(db, list);
    } finally {
      db.close();
    }
  },
  versionOf: async (filename) => {
    const db = new Database(filename, { readonly: true });
    try {
      return db.pragma('user_version', { simple: true }) as number;
    } finally {
      db.close();
    }
  },
  remove: async (filename) => rmSync(dirname(filename), { recursive: true, force: true }),
});

describe('label filters in SQLite', () => {
  it("read a run's labels once for all the pairs of a filter, not once per pair", async () => {
    const store = new SqliteRunStore({ filename: join(tempDir(), 'runtrail.db') });
    const { run } = await store.createRun({ id: uuidv7(), name: 'eval', now: 1_700_000_000_000, leaseTtlMs: 30_000, labels: { team: 'ml', env: 'prod' } });
    // The statements the list prepares, as SQLite is given them.
    const db = (store as unknown as { db: Database.Database }).db;
    const prepared: string[] = [];
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => {
      prepared.push(sql);
      return prepare(sql);
    }) as typeof db.prepare;
    // Before: a json_each per pair; 250 pairs that all matched but the last, over 100,000 runs,
    // held the event loop (so every other request) for 3.8 s.
    const filter = [...Array.from({ length: 249 }, (_, i) => `k${i}=v`), 'team=ml'].join(',');
    expect((await store.listRuns({ label: filter })).runs).toEqual([]);
    expect((await store.listRuns({ label: 'env=prod,team=ml' })).runs.map((r) => r.id)).toEqual([run.id]);
    const lists = prepared.filter((sql) => sql.startsWith('SELECT * FROM runs'));
    expect(lists).toHaveLength(2);
    for (const sql of lists) expect(sql.match(/json_each/g)).toHaveLength(1);
    await store.close();
  });
});

describe('catch-up pages joined in SQLite', () => {
  const T0 = 1_700_000_000_000;
  it('reads a page as its texts joined, exactly the bytes of JSON.stringify of each event', async () => {
    const store = new SqliteRunStore({ filename: join(tempDir(), 'runtrail.db') });
    const { run } = await store.createRun({ id: uuidv7(), name: 'eval', now: T0, leaseTtlMs: 30_000 });
    // Strings every escaping rule touches: quotes, backslashes, control characters, non-ASCII, U+2028.
    const odd = 'q"\\ \u0000\u0001\b\t\n\f\r\u001f\u007f é ✓ 😀 \u2028';
    await store.append(run.id, [{ type: `x.${odd}`, data: { s: odd }, id: `id-${odd}`, ts: T0 }, { type: 'x.b' }, { type: 'run.succeeded' }], { now: T0 });
    const events = await store.readEvents(run.id, 0, 100);
    const joined = await store.readJoinedEventTexts(run.id, 0, 100);
    expect(joined.json.toString('utf8')).toBe(events.map((e) => JSON.stringify(e)).join(','));
    expect([joined.count, joined.last, joined.lastType]).toEqual([3, 3, 'run.succeeded']);
    // Compact (a compact subscription's frames): each event without its runId, the rest byte for byte.
    const compact = await store.readJoinedEventTexts(run.id, 0, 100, { compact: true });
    expect(compact.json.toString('utf8')).toBe(events.map(({ runId: _inTheFrame, ...event }) => JSON.stringify(event)).join(','));
    expect([compact.count, compact.last, compact.lastType]).toEqual([3, 3, 'run.succeeded']);
    const middle = await store.readJoinedEventTexts(run.id, 1, 1);
    expect([middle.count, middle.last, middle.lastType, middle.json.toString('utf8')]).toEqual([1, 2, 'x.b', JSON.stringify(events[1])]);
    expect((await store.readJoinedEventTexts(run.id, 3, 100)).count).toBe(0);
    await expect(store.readJoinedEventTexts(uuidv7(), 0, 10)).rejects.toMatchObject({ code: 'run_not_found' });
    await store.close();
  });

  it('joins each page in seq order, with two runs appended interleaved, at any position and page size', async () => {
    const store = new SqliteRunStore({ filename: join(tempDir(), 'runtrail.db') });
    const runs = await Promise.all(['a', 'b'].map(async (name) => (await store.createRun({ id: uuidv7(), name, now: T0, leaseTtlMs: 30_000 })).run));
    for (let k = 0; k < 200; k++) {
      for (const [r, run] of runs.entries()) {
        const events = Array.from({ length: 1 + ((k + r) % 3) }, (_, n) => ({ type: 'x.step', data: { k, n }, ts: T0 + k }));
        await store.append(run.id, events, { now: T0 + k });
      }
    }
    for (const run of runs) {
      for (const after of [0, 7, 150, 390]) {
        for (const limit of [1, 50, 1000]) {
          const joined = await store.readJoinedEventTexts(run.id, after, limit);
          const events = await store.readEvents(run.id, after, limit);
          expect(joined.json.toString('utf8')).toBe(events.map((e) => JSON.stringify(e)).join(','));
          expect([joined.count, joined.last]).toEqual([events.length, events.at(-1)!.seq]);
        }
      }
    }
    await store.close();
  });
});

checkpointSuite('sqlite', async (policy) => {
  const filename = join(tempDir(), 'runtrail.db');
  const store = new SqliteRunStore({ filename, ...policy });
  const db = new Database(filename, { readonly: true });
  const row = db.prepare(`SELECT r.seq, r.snapshot_seq, c.seq AS checkpoint_seq, c.snapshot FROM runs r
    LEFT JOIN run_checkpoints c ON c.run_id = r.id WHERE r.id = ?`);
  return {
    store,
    checkpointOf: async (runId) => row.get(runId) as CheckpointRow,
    close: async () => {
      db.close();
      await store.close();
    },
  };
});

describe('SqliteRunStore specifics', () => {
  it('runs the file in WAL mode', async () => {
    const filename = join(tempDir(), 'runtrail.db');
    const store = new SqliteRunStore({ filename });
    await store.close();
    const db = new Database(filename, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
  });

  it('records the applied migrations in user_version and does not re-run them on reopen', async () => {
    const filename = join(tempDir(), 'runtrail.db');
    const first = new SqliteRunStore({ filename });
    const { run } = await first.createRun({ id: 'r1', name: 'kept', now: 1, leaseTtlMs: 1000 });
    await first.close();
    const db = new Database(filename, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(migrations.length);
    } finally {
      db.close();
    }
    const second = new SqliteRunStore({ filename });
    try {
      expect(await second.getRun('r1')).toEqual(run);
    } finally {
      await second.close();
    }
  });

  it('reads a file written before snapshot checkpoints (its snapshots are at seq) and carries on appending', async () => {
    const filename = join(tempDir(), 'runtrail.db');
    const db = new Database(filename);
    // The schema as it was before checkpoints (migrations 1-3), with a run written then.
    for (const step of pendingMigrations(0, sqliteDialect).slice(0, 3)) {
      db.exec(step.sql);
      db.pragma(`user_version = ${step.version}`);
    }
    const events: RunEvent[] = [1, 2, 3].map((seq) => ({ runId: 'old', seq, type: 'call.started', ts: 1000 + seq, data: { callId: `c${seq}`, label: 'x' } }));
    db.prepare(`INSERT INTO runs (id, name, status, created_at, started_at, labels, seq, snapshot, lease_ttl_ms)
      VALUES ('old', 'before', 'running', 1000, 1000, '{}', 3, ?, 60000)`).run(JSON.stringify(foldEvents(events)));
    for (const e of events) db.prepare(`INSERT INTO events (run_id, seq, type, ts, data) VALUES ('old', ?, ?, ?, ?)`).run(e.seq, e.type, e.ts, JSON.stringify(e.data));
    db.close();

    const store = new SqliteRunStore({ filename });
    try {
      expect((await store.getRun('old'))!.snapshot).toEqual(foldEvents(events));
      const next = await store.append('old', [{ type: 'call.succeeded', data: { callId: 'c1' } }], { now: 2000 });
      expect(next.run.snapshot).toEqual(foldEvents(await store.readEvents('old', 0, 100)));
      expect(Object.keys(next.run.snapshot.current)).toEqual(['c2', 'c3']);
    } finally {
      await store.close();
    }
  });

  it('reads every event of a file written before event bodies back byte for byte, and carries on appending', async () => {
    const filename = join(tempDir(), 'runtrail.db');
    writeLegacySqliteFile(filename);
    const told: Array<[number, number]> = [];
    const store = new SqliteRunStore({ filename, onMigrating: (from, to) => told.push([from, to]) });
    try {
      expect(told).toEqual([[LEGACY_VERSION, migrations.length]]);
      await expectLegacyRunIntact(store);
      await store.close();
      // Reopened: nothing left to migrate, nothing said.
      const again = new SqliteRunStore({ filename, onMigrating: (from, to) => told.push([from, to]) });
      await again.close();
      expect(told).toHaveLength(1);
    } finally {
      await store.close();
    }
  });

  it('refuses to open a file written by a newer runtrail with no record of which versions may use it, saying to upgrade, and leaves it untouched', () => {
    const filename = join(tempDir(), 'runtrail.db');
    const db = new Database(filename);
    db.pragma(`user_version = ${migrations.length + 1}`);
    db.close();
    expect(() => new SqliteRunStore({ filename })).toThrow(
      new RegExp(`schema version ${migrations.length + 1}, known ${migrations.length}.*upgrade runtrail`),
    );
    const after = new Database(filename, { readonly: true });
    try {
      expect(after.pragma('user_version', { simple: true })).toBe(migrations.length + 1);
      expect(after.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'runs'`).pluck().get()).toBe(0);
    } finally {
      after.close();
    }
  });

  it('migrates a new file once when several stores open it at the same time', async () => {
    requireFreshBuild();
    const dataDir = tempDir();
    const { Worker } = await import('node:worker_threads');
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url)
        .then(async (m) => { const s = m.openStore({ dataDir: workerData.dataDir }); await s.close(); parentPort.postMessage('ok'); })
        .catch((e) => parentPort.postMessage(String(e && e.stack || e)));`;
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => {
        const w = new Worker(source, { eval: true, workerData: { url: built, dataDir } });
        return new Promise<unknown>((resolve, reject) => {
          w.once('message', (m) => void w.terminate().then(() => resolve(m)));
          w.once('error', reject);
        });
      }),
    );
    expect(answers).toEqual(['ok', 'ok', 'ok', 'ok']);
    const store = openStore({ dataDir });
    try {
      expect((await store.listRuns({})).runs).toEqual([]);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite import and a locked database', () => {
  /** An ended run with its events and no artifacts, as an archive would carry it, from a store of its own. */
  async function endedRunBundle() {
    const source = new SqliteRunStore({ filename: join(tempDir(), 'source.db') });
    try {
      const { run } = await source.createRun({ id: uuidv7(), name: 'imported', now: Date.now(), leaseTtlMs: 30_000 });
      await source.append(run.id, [{ type: 'progress', data: { done: 1, total: 1 } }, { type: 'run.succeeded', data: {} }], { now: Date.now() });
      return { run: (await source.getRun(run.id))!, events: await source.readEvents(run.id, 0, 100), artifacts: [] };
    } finally {
      await source.close();
    }
  }

  /** Another connection on the file holding its write lock until `release()`. */
  function holdWriteLock(filename: string) {
    const other = new Database(filename);
    other.exec('BEGIN EXCLUSIVE');
    return {
      release() {
        if (!other.open) return;
        other.exec('COMMIT');
        other.close();
      },
    };
  }

  it('an import made while another connection holds the write lock is retried and stored once the lock is released', async () => {
    const bundle = await endedRunBundle();
    const filename = join(tempDir(), 'runtrail.db');
    const store = new SqliteRunStore({ filename, busyWaitMs: 30_000 });
    const lock = holdWriteLock(filename);
    try {
      // Its first try has met the lock already (the call runs up to its first wait at once).
      const importing = store.importRun(bundle);
      lock.release();
      const imported = await importing;
      expect(imported.id).toBe(bundle.run.id);
      expect(await store.readEvents(bundle.run.id, 0, 100)).toEqual(bundle.events);
    } finally {
      lock.release();
      await store.close();
    }
  });

  it('an import against a lock held past busyWaitMs fails unavailable (database_locked), storing nothing, like any other write', async () => {
    const bundle = await endedRunBundle();
    const filename = join(tempDir(), 'runtrail.db');
    const store = new SqliteRunStore({ filename, busyWaitMs: 50 });
    const lock = holdWriteLock(filename);
    try {
      const err = await store.importRun(bundle).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({ code: 'unavailable', details: { reason: 'database_locked' } });
      lock.release();
      expect(await store.getRun(bundle.run.id)).toBeNull();
    } finally {
      lock.release();
      await store.close();
    }
  });
});

describe('SQLite writes besides appends and a locked database', () => {
  /** Each write, after what it needs exists, and what a reader sees once it is stored. */
  const writes: Array<[string, (store: SqliteRunStore, runId: string) => Promise<unknown>, (store: SqliteRunStore, runId: string) => Promise<void>]> = [
    [
      'createToken',
      (store) => store.createToken({ id: 'tok-2', name: 'ci', scope: 'producer', hash: 'b'.repeat(64), createdAt: 1, expiresAt: null, revokedAt: null }),
      async (store) => expect(await store.findTokenById('tok-2')).toMatchObject({ name: 'ci' }),
    ],
    ['revokeToken', (store) => store.revokeToken('tok-1', 5), async (store) => expect(await store.findTokenById('tok-1')).toMatchObject({ revokedAt: 5 })],
    [
      'createRunToken',
      (store, runId) => store.createRunToken({ id: 'rt-2', runId, write: true, createdAt: 2, expiresAt: 1_000, revokedAt: null, mintedBy: null }),
      async (store) => expect(await store.findRunTokenById('rt-2')).toMatchObject({ write: true }),
    ],
    ['revokeRunToken', (store) => store.revokeRunToken('rt-1', 5), async (store) => expect(await store.findRunTokenById('rt-1')).toMatchObject({ revokedAt: 5 })],
    ['ensureSecret', (store) => store.ensureSecret('signing', 'fresh'), async (store) => expect(await store.ensureSecret('signing', 'other')).toBe('fresh')],
    [
      'announceHandlers',
      (store) => store.announceHandlers({ node: 'n1', handlers: ['resize'], now: 10, liveUntil: 1_000, incarnation: 'i1', url: null }),
      async (store) => expect((await store.nodeHandlers(20)).find((n) => n.node === 'n1')?.handlers).toEqual(['resize']),
    ],
    ['forgetHandlers', (store) => store.forgetHandlers('n0'), async (store) => expect(await store.nodeHandlers(20)).toEqual([])],
    [
      'putArtifact',
      (store, runId) =>
        store.putArtifact({ runId, name: 'out.txt', contentType: 'text/plain', size: 3, sha256: 'c'.repeat(64), metadata: null, now: 30, replace: false, maxRunBytes: 1_000 }),
      async (store, runId) => expect((await store.listArtifacts(runId)).map((a) => a.name)).toEqual(['out.txt']),
    ],
  ];

  for (const [name, write, stored] of writes) {
    it(`${name} made while another connection holds the write lock is retried and stored once the lock is released`, async () => {
      const filename = join(tempDir(), 'runtrail.db');
      const store = new SqliteRunStore({ filename, busyWaitMs: 30_000 });
      try {
        const { run } = await store.createRun({ id: uuidv7(), name: 'job', now: 1, leaseTtlMs: 30_000 });
        await store.createToken({ id: 'tok-1', name: 'dev', scope: 'producer', hash: 'a'.repeat(64), createdAt: 1, expiresAt: null, revokedAt: null });
        await store.createRunToken({ id: 'rt-1', runId: run.id, write: false, createdAt: 1, expiresAt: 1_000, revokedAt: null, mintedBy: null });
        await store.announceHandlers({ node: 'n0', handlers: ['old'], now: 1, liveUntil: 1_000, incarnation: 'i0', url: null });
        const other = new Database(filename);
        other.exec('BEGIN EXCLUSIVE');
        // Its first try has met the lock already (the call runs up to its first wait at once).
        const writing = write(store, run.id);
        other.exec('COMMIT');
        other.close();
        await writing;
        await stored(store, run.id);
      } finally {
        await store.close();
      }
    });
  }
});

describe('SqliteRunStore across processes', () => {
  it('4 producer processes on one file append 10,000 events into one run: seq 1..10,000, snapshot == fold', async () => {
    requireFreshBuild();
    const dataDir = tempDir();
    const store = openStore({ dataDir });
    try {
      const { run } = await store.createRun({ id: 'shared-run', name: 'multi-process', now: Date.now(), leaseTtlMs: 3_600_000 });
      const perProducer = 2500;
      // Each child opens its own SqliteRunStore on the file, says "ready", waits for "go" so all
      // four contend from the start, runs the same producer as the conformance suite, prints its seqs.
      const source = `
        import { createInterface } from 'node:readline';
        const { openStore } = await import(process.env.STORE_URL);
        const store = openStore({ dataDir: process.env.DATA_DIR });
        const lines = createInterface({ input: process.stdin });
        const go = new Promise((resolve) => lines.once('line', resolve));
        process.stdout.write('ready\\n');
        await go;
        const task = ${produceTask.toString()};
        const seqs = await task(store, JSON.parse(process.env.ARGS));
        await store.close();
        process.stdout.write(JSON.stringify(seqs) + '\\n');
        lines.close();
      `;
      const children = [0, 1, 2, 3].map((p) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', source], {
          env: {
            ...process.env,
            STORE_URL: built,
            DATA_DIR: dataDir,
            ARGS: JSON.stringify({ runId: run.id, p, perProducer, batchSizes: BATCH_SIZES }),
          },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        const lines = createInterface({ input: child.stdout });
        const next = () =>
          new Promise<string>((resolve, reject) => {
            lines.once('line', resolve);
            child.once('exit', (code) => reject(new Error(`producer ${p} exited ${code}: ${stderr}`)));
          });
        return { child, next };
      });
      try {
        expect(await Promise.all(children.map((c) => c.next()))).toEqual(['ready', 'ready', 'ready', 'ready']);
        const done = children.map((c) => c.next());
        for (const c of children) c.child.stdin.write('go\n');
        const perChild = (await Promise.all(done)).map((line) => JSON.parse(line) as number[]);

        const events: RunEvent[] = [];
        for (;;) {
          const page = await store.readEvents(run.id, events.at(-1)?.seq ?? 0, 5000);
          if (page.length === 0) break;
          events.push(...page);
        }
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 4 * perProducer }, (_, i) => i + 1));
        expect(new Set(events.map((e) => e.id)).size).toBe(4 * perProducer);
        for (const [p, seqs] of perChild.entries()) {
          expect(events.filter((e) => e.id!.startsWith(`p${p}-`)).map((e) => e.seq)).toEqual(seqs);
        }
        const stored = (await store.getRun(run.id))!;
        expect(stored.seq).toBe(4 * perProducer);
        expect(stored.snapshot).toEqual(foldEvents(events));
      } finally {
        for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
      }
    } finally {
      await store.close();
    }
  });
});
