// Append throughput of the runtrail store, against a bare better-sqlite3 loop
// inserting the same rows into the same table (the limit runtrail can reach),
// and one-by-one appends through HTTP. Prints medians of several runs.
//
//   npm run build && node bench/store-append.mjs [--runs 5] [--events 200000]
import { fork } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SqliteRunStore } from '../packages/store/dist/index.js';
import { machine, median, fmt, makeEvents, httpOneByOneAppends } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    events: { type: 'string', default: '200000' },
    single: { type: 'string', default: '20000' },
    http: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    child: { type: 'string' },
  },
});

if (args.child) {
  // Server process for the HTTP figure, so client and server do not share a core.
  const { startServer } = await import('../packages/server/dist/index.js');
  const server = await startServer({ port: 0, dataDir: args.child, logLevel: 'silent' });
  process.send({ url: server.url });
  process.on('message', async () => {
    await server.close();
    process.exit(0);
  });
} else {
  await main();
}


async function withStore(fn) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function storeBatched(total, batch) {
  return withStore(async (dir) => {
    const store = new SqliteRunStore({ filename: join(dir, 'runtrail.db') });
    const { run } = await store.createRun({ id: 'bench-run', name: 'bench', now: Date.now(), leaseTtlMs: 30_000 });
    const batches = [];
    for (let i = 0; i < total; i += batch) batches.push(makeEvents(Math.min(batch, total - i), i));
    const started = process.hrtime.bigint();
    for (const events of batches) await store.append(run.id, events, { now: Date.now() });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await store.close();
    return total / seconds;
  });
}

function bareBatched(total, batch) {
  return withStore((dir) => {
    const db = new Database(join(dir, 'bare.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE events (run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, ts INTEGER NOT NULL,
      body TEXT, event_id TEXT, terminal INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
      CREATE UNIQUE INDEX events_event_id ON events (run_id, event_id) WHERE event_id IS NOT NULL;`);
    const insert = db.prepare('INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const batches = [];
    for (let i = 0; i < total; i += batch) batches.push(makeEvents(Math.min(batch, total - i), i));
    const insertBatch = db.transaction((events, first) => {
      const now = Date.now();
      for (let i = 0; i < events.length; i++) {
        const { type, data, id } = events[i];
        insert.run('bench-run', first + i, type, now, JSON.stringify({ seq: first + i, type, ts: now, data, id }), id, 0);
      }
    });
    const started = process.hrtime.bigint();
    let seq = 1;
    for (const events of batches) {
      insertBatch(events, seq);
      seq += events.length;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    db.close();
    return total / seconds;
  });
}

async function httpOneByOne(total, concurrency) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-http-'));
  const child = fork(new URL(import.meta.url).pathname, ['--child', dir], { stdio: 'inherit' });
  const { url } = await new Promise((resolve) => child.once('message', resolve));
  try {
    return await httpOneByOneAppends(url, total, concurrency);
  } finally {
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const runs = Number(args.runs);
  const total = Number(args.events);
  const single = Number(args.single);
  const results = { storeBatched: [], bareBatched: [], storeSingle: [], bareSingle: [], http: [] };
  for (let r = 0; r < runs; r++) {
    results.storeBatched.push(await storeBatched(total, 500));
    results.bareBatched.push(await bareBatched(total, 500));
    results.storeSingle.push(await storeBatched(single, 1));
    results.bareSingle.push(await bareBatched(single, 1));
    results.http.push(await httpOneByOne(Number(args.http), Number(args.concurrency)));
    process.stderr.write(`run ${r + 1}/${runs} done\n`);
  }
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  const lines = [
    `store append throughput, median of ${runs} runs; ${machine()}`,
    '',
    '| workload | runtrail store | bare better-sqlite3 | ratio |',
    '|---|---|---|---|',
    `| batched (500 events/append, ${fmt(total)} events) | ${fmt(m.storeBatched)} events/s | ${fmt(m.bareBatched)} events/s | ${(m.storeBatched / m.bareBatched).toFixed(2)} |`,
    `| one-by-one (1 event/append, ${fmt(single)} events) | ${fmt(m.storeSingle)} events/s | ${fmt(m.bareSingle)} events/s | ${(m.storeSingle / m.bareSingle).toFixed(2)} |`,
    `| one-by-one through HTTP (${args.concurrency} concurrent clients, server in its own process) | ${fmt(m.http)} events/s | | |`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
