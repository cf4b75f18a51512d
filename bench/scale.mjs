// A year of data: what a team that has used runtrail for a year waits for. Builds a data dir
// (bench/scale-data.mjs: 50,000 runs over the past year, most with labels, 20 families of 500
// children, one LLM eval of 1,000,000 events), optionally copies it into a PostgreSQL schema, and
// for each store starts `runtrail serve` on it and measures: start-up, the reads the dashboard and
// the CLI make (median of 5), `runtrail prune --dry-run`, the big run's page in Chromium (how soon
// it shows the run's counters, how much it receives, how busy and big the tab is), and how the
// runs list answers while a watcher replays the big run's whole log (after=0).
//
//   npm run build && node bench/scale.mjs [--runs 50000] [--big 1000000] [--dir DIR (kept; reused if it holds data)]
//        [--postgres postgres://postgres@127.0.0.1:5432/test]  (into a schema of its own, dropped at the end)
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import { chromium } from 'playwright-core';
import { SqliteRunStore, PgRunStore, copySqliteToPostgres } from '../packages/store/dist/index.js';
import { buildScaleData, withFinish } from './scale-data.mjs';
import { machine, median } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '50000' },
    big: { type: 'string', default: '1000000' },
    dir: { type: 'string' },
    postgres: { type: 'string' },
  },
});
const cli = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url));
const dir = args.dir ?? mkdtempSync(join(tmpdir(), 'runtrail-bench-scale-'));
const dbFile = join(dir, 'runtrail.db');
const ms = (n) => `${n.toFixed(0)} ms`;

async function serve(extra) {
  const started = performance.now();
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--data-dir', dir, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk) => (out += chunk));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in 120 s:\n${out}`)), 120_000);
    child.stdout.on('data', () => {
      const m = /runtrail serving on (\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${out}`)));
  });
  for (;;) {
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url, startupMs: performance.now() - started, stop: () => new Promise((resolve) => (child.once('exit', resolve), child.kill())) };
}

/** Median time of 5 GETs of `path` (after one to warm up), and the size of the answer. */
async function timed(url, path) {
  const times = [];
  let bytes = 0;
  for (let i = 0; i < 6; i++) {
    const t = performance.now();
    const res = await fetch(url + path);
    bytes = (await res.arrayBuffer()).byteLength;
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    if (i > 0) times.push(performance.now() - t);
  }
  return `${ms(median(times))} (${(bytes / 1024).toFixed(0)} KB)`;
}

/** The big run's page in Chromium: until it shows the run's OK count, then until no frame came for 3 s. */
async function bigRunPage(browser, url, runId, ok) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Performance.enable');
    let wsBytes = 0;
    let httpBytes = 0;
    let lastAt = performance.now();
    cdp.on('Network.webSocketFrameReceived', (e) => {
      wsBytes += e.response.payloadData.length;
      lastAt = performance.now();
    });
    cdp.on('Network.loadingFinished', (e) => {
      httpBytes += e.encodedDataLength;
      lastAt = performance.now();
    });
    const t0 = performance.now();
    await page.goto(`${url}/runs/${runId}`);
    await page.waitForFunction((text) => document.querySelector('[data-testid=counter-ok]')?.textContent?.replace(/\D/g, '') === text, String(ok), { timeout: 600_000, polling: 50 });
    const shownMs = performance.now() - t0;
    while (performance.now() - lastAt < 3000) await new Promise((r) => setTimeout(r, 200));
    const { metrics } = await cdp.send('Performance.getMetrics');
    const metric = (name) => metrics.find((m) => m.name === name).value;
    return {
      shownMs,
      settledMs: lastAt - t0,
      receivedMB: (wsBytes + httpBytes) / 2 ** 20,
      busyS: metric('TaskDuration'),
      heapMB: metric('JSHeapUsedSize') / 2 ** 20,
    };
  } finally {
    await page.close();
  }
}

/** One raw WebSocket watcher replaying the whole log (after=0, as `tail --events` does); resolves with how many events came. */
function replay(url, runId) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/stream`);
    let n = 0;
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', runId, after: 0, compact: true })));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.type === 'events') n += m.events.length;
      if (m.type === 'error') reject(new Error(m.message));
      if (m.type !== 'end') return;
      ws.close();
      resolve(n);
    });
  });
}

/** `watchers` replays of the whole log at once while the runs list is read every 20 ms: does the server still answer others? */
async function listWhileReplaying(url, runId, watchers) {
  const latencies = [];
  let replaying = true;
  const reading = (async () => {
    while (replaying) {
      const t = performance.now();
      await fetch(`${url}/api/v1/runs?topLevel=true&limit=25`).then((r) => r.arrayBuffer());
      latencies.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: watchers }, () => replay(url, runId)));
  const replayMs = performance.now() - t0;
  replaying = false;
  await reading;
  latencies.sort((a, b) => a - b);
  return `${watchers} x ${counts[0].toLocaleString('en')} events in ${ms(replayMs)}; the runs list meanwhile: median ${ms(median(latencies))}, max ${ms(latencies.at(-1))} (${latencies.length} reads)`;
}

async function measure(label, extra, bigRunId, ok) {
  const server = await serve(extra);
  const lines = [`${label}: server up and ready in ${ms(server.startupMs)}`];
  try {
    const { url } = server;
    const api = `${url}/api/v1`;
    const dayAgo = Date.now() - 86_400_000;
    for (const [what, path] of [
      ['runs list, first page (the dashboard: top level, 25)', '/runs?topLevel=true&limit=25'],
      ['its totals (every run)', '/run-counts'],
      ['totals, label team=search', '/run-counts?label=team%3Dsearch'],
      ['totals, name contains "eval"', '/run-counts?nameContains=eval'],
      ['list, last 24 h', `/runs?topLevel=true&limit=25&createdAfter=${dayAgo}`],
      ['a deep page (cursor 40,000 runs back)', `/runs?topLevel=true&limit=25&cursor=${await cursorBack(api, 40_000)}`],
      ['GET /runs/:id of the big run', `/runs/${bigRunId}`],
      ['its latest 5,000 events', `/runs/${bigRunId}/events?after=${ok * 5 - 4999}&limit=5000`],
    ]) lines.push(`  ${what}: ${await timed(api, path)}`);
    const prune = performance.now();
    const { stderr } = await promisify(execFile)(process.execPath, [cli, 'prune', '--older-than', '30d', '--dry-run', '--server', url], { maxBuffer: 64 * 2 ** 20 });
    lines.push(`  runtrail prune --older-than 30d --dry-run: ${ms(performance.now() - prune)} (${/would delete (\d+)/.exec(stderr)?.[1]} runs)`);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    try {
      const p = await bigRunPage(browser, url, bigRunId, ok);
      lines.push(
        `  the big run's page: its counters shown after ${ms(p.shownMs)}, last byte after ${ms(p.settledMs)}, ` +
          `${p.receivedMB.toFixed(1)} MB received, main thread busy ${p.busyS.toFixed(1)} s, JS heap ${p.heapMB.toFixed(0)} MB`,
      );
    } finally {
      await browser.close();
    }
    lines.push(`  whole-log replays (after=0) of the big run: ${await listWhileReplaying(url, bigRunId, 3)}`);
  } finally {
    await server.stop();
  }
  return lines;
}

/** The id `back` runs down the list, as a cursor: what paging that deep asks for. */
async function cursorBack(api, back) {
  const db = new SqliteRunStore({ filename: dbFile });
  try {
    let cursor;
    for (let seen = 0; seen < back; seen += 200) cursor = (await db.listRuns({ topLevel: 'true', limit: 200, cursor })).nextCursor;
    return cursor;
  } finally {
    await db.close();
  }
}

let schema = null;
try {
  let data;
  if (existsSync(dbFile)) {
    const db = new SqliteRunStore({ filename: dbFile });
    const big = (await db.listRuns({ name: 'llm-eval-1m', limit: 1 })).runs[0];
    data = { bigRunId: big.id, runs: (await db.countRuns({})).total };
    await db.close();
  } else {
    const store = withFinish(new SqliteRunStore({ filename: dbFile }));
    const started = performance.now();
    data = await buildScaleData(store, { runs: Number(args.runs), bigEvents: Number(args.big) });
    await store.close();
    console.log(`built ${data.runs.toLocaleString('en')} runs and a ${Number(args.big).toLocaleString('en')}-event run through the store in ${ms(performance.now() - started)}`);
  }
  const ok = Math.ceil(Number(args.big) / 5);
  const results = [`${machine()}; ${data.runs.toLocaleString('en')} runs, a ${Number(args.big).toLocaleString('en')}-event run`];
  results.push(...(await measure('SQLite', [], data.bigRunId, ok)));
  if (args.postgres) {
    schema = `rt_bench_scale_${process.pid}`;
    const target = await PgRunStore.open({ connectionString: args.postgres, schema });
    await copySqliteToPostgres(dbFile, target);
    await target.close();
    // As autovacuum would: a schema just filled has no statistics, and the planner guesses badly without them.
    const client = new pg.Client({ connectionString: args.postgres });
    await client.connect();
    await client.query(`ANALYZE ${schema}.runs; ANALYZE ${schema}.events; ANALYZE ${schema}.run_checkpoints`);
    await client.end();
    results.push(...(await measure('PostgreSQL', ['--database', args.postgres, '--database-schema', schema], data.bigRunId, ok)));
  }
  console.log(results.join('\n'));
} finally {
  if (schema) {
    const client = new pg.Client({ connectionString: args.postgres });
    await client.connect();
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  }
  if (!args.dir) rmSync(dir, { recursive: true, force: true });
}
