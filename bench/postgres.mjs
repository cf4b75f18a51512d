// runtrail on PostgreSQL next to SQLite, in one run:
//  - batched appends (500 events/append) through the store, against a bare `pg`
//    loop inserting the same rows as multi-row INSERTs into the same table;
//  - one-by-one appends through HTTP with 32 concurrent clients (server in its own process);
//  - cross-node delivery: 1,000 WebSocket observers on node A, a producer
//    appending one event per request at 500 ev/s through node B; latency from
//    the append on B to receipt on A, p50/p99 over every (event, observer), with
//    B's acknowledgement of the append and node A's own share (its delivery
//    histogram, from its read of the notified events to the socket write) beside it,
//    and the same p50/p99 without the first second's events (the stream bench's
//    warm-up: the nodes' connections and code are cold when the producer starts),
//    and each process group's share of the cores while the producer runs;
//    in the same run, the same workload with a hand-built relay as node A
//    (bench/postgres-relay.mjs: pg LISTEN, read, one ws.send per read and
//    observer): what a fan-out node without runtrail's machinery reaches here;
//    and both again with the SDK's producer (RunHandle.event, batched) in place
//    of one event per request.
// Prints medians of several runs, with the machine and the 1-minute load
// average sampled through the runs, and writes them to bench/postgres-results.md.
//
//   npm run bench:postgres        # build, then 3 runs with the defaults below (about 6 min on a quiet 2-core machine)
//   node bench/postgres.mjs [--runs 3] [--database postgres://postgres@127.0.0.1:5432/test]
//        [--events 200000] [--http 20000] [--observers 1000] [--rate 500] [--seconds 10] [--no-write]
//        [--only batched,http,cross] (some workloads only: prints them, writes nothing)
//        [--server-dist /path/to/packages/server/dist] (the nodes of http and cross run another build, e.g. main before a change)
//        [--systems runtrail,relay] (node A in the cross-node workload: runtrail, the hand-built relay, or both, alternating)
//        [--producers request,sdk] (its producer: one event per HTTP request, the SDK's batching RunHandle, or both)
//        [--frames compact|full] (the observers subscribe compact, as the SDK does, or for whole events)
//        [--observers 250,500,1000] (several counts: each variant at each, e.g. to find how many observers one node
//        holds under a latency target on this machine)
import { fork } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import { PgRunStore, SqliteRunStore } from '../packages/store/dist/index.js';
import { RuntrailClient } from '../packages/client/dist/index.js';
import { machine, machineSpeed, speedText, median, fmt, makeEvents, httpOneByOneAppends, deliveryBuckets, bucketQuantiles } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    database: { type: 'string', default: process.env.RUNTRAIL_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test' },
    events: { type: 'string', default: '200000' },
    http: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    observers: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    child: { type: 'string' },
    observe: { type: 'string' },
    'run-id': { type: 'string' },
    count: { type: 'string' },
    'warm-up-events': { type: 'string', default: '0' },
    schema: { type: 'string' },
    node: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    only: { type: 'string', default: 'batched,http,cross' },
    'server-dist': { type: 'string' },
    systems: { type: 'string', default: 'runtrail,relay' },
    producers: { type: 'string', default: 'request,sdk' },
    frames: { type: 'string', default: 'compact' },
  },
});
const ONLY = new Set(args.only.split(','));
if (!['compact', 'full'].includes(args.frames)) throw new Error(`--frames: ${args.frames} is not compact or full`);
for (const w of ONLY) if (!['batched', 'http', 'cross'].includes(w)) throw new Error(`--only: unknown workload ${w} (batched, http, cross)`);
const SYSTEMS = args.systems.split(',');
for (const s of SYSTEMS) if (!['runtrail', 'relay'].includes(s)) throw new Error(`--systems: unknown system ${s} (runtrail, relay)`);
const PRODUCERS = args.producers.split(',');
for (const p of PRODUCERS) if (!['request', 'sdk'].includes(p)) throw new Error(`--producers: unknown producer ${p} (request, sdk)`);
/** The cross-node workload's variants: node A's system and the producer's kind, runtrail's first. */
const OBSERVER_COUNTS = args.observers.split(',').map(Number);
for (const n of OBSERVER_COUNTS) if (!Number.isInteger(n) || n < 1) throw new Error(`--observers: ${args.observers} is not a list of positive whole numbers`);
/** The cross-node workload's variants: the observer count, the producer's kind and node A's system, runtrail's first. */
const CROSS = OBSERVER_COUNTS.flatMap((observers) =>
  PRODUCERS.flatMap((producer) => SYSTEMS.map((system) => ({ system, producer, observers, key: `${system}/${producer}/${observers}` }))),
);
const ALL = ONLY.size === 3 && SYSTEMS.length === 2 && PRODUCERS.length === 2 && OBSERVER_COUNTS.length === 1;



let schemaNo = 0;
async function withSchema(fn) {
  const schema = `rt_bench_${process.pid}_${schemaNo++}`;
  try {
    return await fn(schema);
  } finally {
    const c = new pg.Client({ connectionString: args.database });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

async function batchedAppends(store, total, batch) {
  const { run } = await store.createRun({ id: `bench-${Date.now()}`, name: 'bench', now: Date.now(), leaseTtlMs: 30_000 });
  const batches = [];
  for (let i = 0; i < total; i += batch) batches.push(makeEvents(Math.min(batch, total - i), i));
  const started = process.hrtime.bigint();
  for (const events of batches) await store.append(run.id, events, { now: Date.now() });
  return total / (Number(process.hrtime.bigint() - started) / 1e9);
}

const pgBatched = (total) =>
  withSchema(async (schema) => {
    const store = await PgRunStore.open({ connectionString: args.database, schema });
    try {
      return await batchedAppends(store, total, 500);
    } finally {
      await store.close();
    }
  });

async function sqliteBatched(total) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-'));
  const store = new SqliteRunStore({ filename: join(dir, 'runtrail.db') });
  try {
    return await batchedAppends(store, total, 500);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The limit: the same rows into the same table with the same indexes, one multi-row INSERT per transaction of 500. */
const bareBatched = (total) =>
  withSchema(async (schema) => {
    // The store creates the real table; the bare loop then writes to it directly.
    const store = await PgRunStore.open({ connectionString: args.database, schema });
    await store.close();
    const c = new pg.Client({ connectionString: args.database, options: `-c search_path=${schema}` });
    await c.connect();
    try {
      const batches = [];
      for (let i = 0; i < total; i += 500) batches.push(makeEvents(Math.min(500, total - i), i));
      const started = process.hrtime.bigint();
      let seq = 1;
      for (const events of batches) {
        const now = Date.now();
        await c.query('BEGIN');
        await c.query(
          `INSERT INTO events (run_id, seq, type, ts, body, event_id, terminal)
           SELECT 'bench-run', * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bool[])`,
          [
            events.map((_, i) => seq + i),
            events.map((e) => e.type),
            events.map(() => now),
            events.map((e, i) => JSON.stringify({ seq: seq + i, type: e.type, ts: now, data: e.data, id: e.id })),
            events.map((e) => e.id),
            events.map(() => false),
          ],
        );
        await c.query('COMMIT');
        seq += events.length;
      }
      return total / (Number(process.hrtime.bigint() - started) / 1e9);
    } finally {
      await c.end();
    }
  });

/** CPU time (user + system) a process has used so far, ms (Linux /proc; clock ticks of 10 ms); 0 once it is gone. */
function cpuMsOf(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // Exited between the listing and the read (a PostgreSQL backend closing): it uses no CPU now.
    return 0;
  }
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU time of every PostgreSQL process on this machine (server and backends), ms. */
function postgresCpuMs() {
  let sum = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let comm;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8');
    } catch {
      // Exited while listing.
      continue;
    }
    if (comm.trim() === 'postgres') sum += cpuMsOf(pid);
  }
  return sum;
}

/** A child process that sends `{ url }` once it listens and exits on any message: a node or the relay. */
async function startListening(script, argv, name) {
  const child = fork(script, argv, { stdio: 'inherit' });
  const { url } = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`${name} exited ${code} before listening`)));
  });
  return {
    url,
    /** CPU time (user + system) the process has used so far, ms. */
    cpuMs: () => cpuMsOf(child.pid),
    stop: async () => {
      child.send('stop');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

const startNode = (dir, schema, node) =>
  startListening(
    new URL(import.meta.url).pathname,
    ['--child', dir, '--database', args.database, ...(schema ? ['--schema', schema] : []), '--node', node, ...(args['server-dist'] ? ['--server-dist', args['server-dist']] : [])],
    `node ${node}`,
  );

/** The hand-built relay (bench/postgres-relay.mjs) on a schema's channel and rows, in place of a node. */
const startRelay = (schema) =>
  startListening(new URL('./postgres-relay.mjs', import.meta.url).pathname, ['--database', args.database, '--schema', schema], 'postgres-relay');

async function httpOneByOne(schema, total, concurrency) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-http-'));
  const node = await startNode(dir, schema, 'bench-http');
  try {
    return await httpOneByOneAppends(node.url, total, concurrency);
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `observerCount` observers on A (1,000 by default), 500 ev/s appended through B: append-to-receipt latency.
 * `system`: node A is a runtrail node, or the hand-built relay (B is runtrail either way: it creates the schema).
 * `producer`: 'request' sends one event per HTTP request (16 keep-alive sockets); 'sdk' calls the SDK's
 * RunHandle.event, which sends batches.
 */
const crossNode = (system, producer, observerCount) =>
  withSchema(async (schema) => {
    const dirs = [mkdtempSync(join(tmpdir(), 'rt-bench-a-')), mkdtempSync(join(tmpdir(), 'rt-bench-b-'))];
    const b = await startNode(dirs[1], schema, 'node-b');
    const a = system === 'relay' ? await startRelay(schema) : await startNode(dirs[0], schema, 'node-a');
    const children = [];
    let handle = null;
    try {
      const createRun = { name: 'bench-cross-node', leaseTtlMs: 3_600_000 };
      let run;
      if (producer === 'sdk') {
        // The SDK's producer: events queued and sent in batches (20 ms after a batch's first event).
        handle = await new RuntrailClient({ url: b.url }).createRun(createRun);
        run = { id: handle.id };
      } else {
        run = await fetch(`${b.url}/api/v1/runs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(createRun),
        }).then((r) => r.json());
      }
      // Observers live in two processes of their own (as in bench/stream), so parsing their frames never
      // delays the producer's sends in this one.
      const wsUrl = `${a.url.replace(/^http/, 'ws')}/api/v1/stream`;
      const observerProcs = [Math.ceil(observerCount / 2), Math.floor(observerCount / 2)]
        .filter((n) => n > 0)
        .map((n) =>
          fork(new URL(import.meta.url).pathname, ['--observe', wsUrl, '--run-id', run.id, '--count', String(n), '--warm-up-events', String(Number(args.rate)), '--frames', args.frames], {
            stdio: 'inherit',
          }),
        );
      children.push(...observerProcs);
      const answer = (proc) => new Promise((resolve, reject) => {
        proc.once('message', resolve);
        proc.once('exit', (code) => reject(new Error(`observer process exited ${code}`)));
      });
      await Promise.all(observerProcs.map(answer));
      const total = Number(args.rate) * Number(args.seconds);
      const interval = 1000 / Number(args.rate);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const { hostname, port } = new URL(b.url);
      const delivery0 = system === 'relay' ? null : await deliveryBuckets(a.url);
      // Where the two cores go while the producer runs: node A, node B, PostgreSQL, the observers, this process.
      const cpuNow = () => ({
        a: a.cpuMs(),
        b: b.cpuMs(),
        postgres: postgresCpuMs(),
        observers: observerProcs.reduce((sum, proc) => sum + cpuMsOf(proc.pid), 0),
        producer: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      });
      const cpuBefore = cpuNow();
      const start = Date.now();
      const pending = [];
      const acks = [];
      for (let i = 0; i < total; i++) {
        const due = start + i * interval;
        const wait = due - Date.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const sentAt = Date.now();
        if (handle) {
          // Latency counts from here, so the SDK's batching wait is part of it.
          handle.event('x.tick', { sentAt, i });
          continue;
        }
        const body = JSON.stringify({ events: [{ id: `e${i}`, type: 'x.tick', data: { sentAt, i } }] });
        pending.push(
          new Promise((resolve, reject) => {
            const req = http.request(
              { hostname, port, path: `/api/v1/runs/${run.id}/events`, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
              (res) => {
                res.resume();
                res.on('end', () => {
                  acks.push(Date.now() - sentAt);
                  if (res.statusCode === 200) resolve();
                  else reject(new Error(`append answered ${res.statusCode}`));
                });
              },
            );
            req.on('error', reject);
            req.end(body);
          }),
        );
      }
      await Promise.all(pending);
      // Once everything queued is stored (the SDK producer); its batches' acknowledgements are not timed.
      await handle?.flush();
      const cpuAfter = cpuNow();
      const producingMs = Date.now() - start;
      const cpuShare = Object.fromEntries(Object.keys(cpuBefore).map((k) => [k, (100 * (cpuAfter[k] - cpuBefore[k])) / producingMs]));
      agent.destroy();
      const received = observerProcs.map(answer);
      for (const proc of observerProcs) proc.send({ expectedPerObserver: total });
      const reports = await Promise.all(received);
      // After the first second: what the nodes do once warm (the first second's events are in `latencies` too).
      const warm = reports.flatMap((m) => m.warm);
      const latencies = warm.concat(reports.flatMap((m) => m.warmUp));
      // Node A's CPU per event delivered to one observer: its share of the work, which a busy machine
      // (appends acknowledged late by B) changes far less than the latencies.
      const aCpuUsPerDelivery = ((a.cpuMs() - cpuBefore.a) * 1000) / Math.max(1, latencies.length);
      // Node A's own share: from its read of the notified events to the frame written to each socket
      // (runtrail_delivery_latency_seconds: one observation per frame, timed from its oldest event).
      const onA = delivery0 && bucketQuantiles(delivery0, await deliveryBuckets(a.url));
      const expected = total * observerCount;
      if (latencies.length < expected) {
        process.stderr.write(`cross-node: observers received ${latencies.length} of ${expected} events within 60 s of the last append; the rest count as never\n`);
        // Which events went missing is unknown, so both figures count them.
        for (let missing = expected - latencies.length; missing > 0; missing--) {
          latencies.push(Infinity);
          warm.push(Infinity);
        }
      }
      return {
        p50: percentile(latencies, 0.5),
        p99: percentile(latencies, 0.99),
        warmP50: percentile(warm, 0.5),
        warmP99: percentile(warm, 0.99),
        ackP50: percentile(acks, 0.5),
        ackP99: percentile(acks, 0.99),
        aCpuUsPerDelivery,
        cpuShare,
        aP50: onA?.p50,
        aP99: onA?.p99,
      };
    } finally {
      handle?.close();
      for (const proc of children.splice(0)) proc.kill();
      await a.stop();
      await b.stop();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

const ms = (x) => (Number.isFinite(x) ? `${Math.round(x)} ms` : 'over 60 s (not all delivered)');

function percentile(values, p) {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function main() {
  const runs = Number(args.runs);
  const total = Number(args.events);
  const r = { pgBatched: [], bare: [], sqliteBatched: [], pgHttp: [], sqliteHttp: [] };
  const CROSS_FIGURES = ['p50', 'p99', 'warmP50', 'warmP99', 'ackP50', 'ackP99', 'aP50', 'aP99', 'aCpuUsPerDelivery'];
  /** Per cross-node variant (node A's system, the producer), each figure's runs, and each process group's CPU shares. */
  const cross = Object.fromEntries(CROSS.map(({ key }) => [key, { ...Object.fromEntries(CROSS_FIGURES.map((k) => [k, []])), cpu: {} }]));
  const speed = await machineSpeed();
  process.stderr.write(`${speedText(speed)}\n`);
  const loads = [];
  const sampler = setInterval(() => loads.push(loadavg()[0]), 5000);
  loads.push(loadavg()[0]);
  const started = Date.now();
  for (let i = 0; i < runs; i++) {
    if (ONLY.has('batched')) {
      r.pgBatched.push(await pgBatched(total));
      r.bare.push(await bareBatched(total));
      r.sqliteBatched.push(await sqliteBatched(total));
    }
    if (ONLY.has('http')) {
      r.pgHttp.push(await withSchema((schema) => httpOneByOne(schema, Number(args.http), Number(args.concurrency))));
      r.sqliteHttp.push(await httpOneByOne(undefined, Number(args.http), Number(args.concurrency)));
    }
    // Only the workloads this run measured (--only leaves the others out).
    const parts = [];
    if (ONLY.has('batched')) parts.push(`pg ${fmt(r.pgBatched[i])}/s (bare ${fmt(r.bare[i])}/s), sqlite ${fmt(r.sqliteBatched[i])}/s`);
    if (ONLY.has('http')) parts.push(`http pg ${fmt(r.pgHttp[i])}/s sqlite ${fmt(r.sqliteHttp[i])}/s`);
    // Alternating the order, so no variant always meets the machine as another left it.
    const order = i % 2 === 0 ? CROSS : [...CROSS].reverse();
    for (const { system, producer, observers, key } of ONLY.has('cross') ? order : []) {
      const latency = await crossNode(system, producer, observers);
      for (const k of CROSS_FIGURES) cross[key][k].push(latency[k]);
      for (const [k, share] of Object.entries(latency.cpuShare)) (cross[key].cpu[k] ??= []).push(share);
      parts.push(
        `cross-node (node A: ${system}, producer: ${producer}, ${observers} observers) p50 ${ms(latency.p50)} p99 ${ms(latency.p99)} (after the first second: p50 ${ms(latency.warmP50)} p99 ${ms(latency.warmP99)}) ` +
          (producer === 'request' ? `(append acked p50 ${latency.ackP50} ms; ` : '(') +
          (system === 'runtrail' ? `node A read → socket p50 ${ms(latency.aP50)} p99 ${ms(latency.aP99)}; ` : '') +
          `node A CPU ${latency.aCpuUsPerDelivery?.toFixed(2)} µs per delivery; ${cpuSharesText(latency.cpuShare)})`,
      );
    }
    process.stderr.write(`run ${i + 1}/${runs}: ${parts.join('; ')}; load ${loadavg()[0].toFixed(1)}\n`);
  }
  clearInterval(sampler);
  loads.push(loadavg()[0]);
  const m = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, median(v)]));
  const crossMedians = Object.fromEntries(
    Object.entries(cross).map(([key, figures]) => [
      key,
      {
        ...Object.fromEntries(CROSS_FIGURES.map((k) => [k, median(figures[k])])),
        cpu: Object.fromEntries(Object.entries(figures.cpu).map(([k, v]) => [k, median(v)])),
      },
    ]),
  );
  const crossWorkload = (observers) => `append on B → receipt on A (${fmt(observers)} observers on A, ${args.rate} ev/s for ${args.seconds} s)`;
  const PRODUCER_TEXT = {
    request: 'one event per request',
    sdk: "the SDK's producer (`RunHandle.event`, sent in batches 20 ms after each batch's first event; latency from the `event` call)",
  };
  const crossLine = ({ system, producer, observers, key }) => {
    const c = crossMedians[key];
    const latencies = `p50 ${ms(c.p50)}, p99 ${ms(c.p99)}; after the first second: p50 ${ms(c.warmP50)}, p99 ${ms(c.warmP99)}`;
    const acks = producer === 'request' ? `append acknowledged by B: p50 ${c.ackP50} ms, p99 ${c.ackP99} ms; ` : '';
    const cpu = `node A's CPU per event delivered to an observer: ${c.aCpuUsPerDelivery?.toFixed(2)} µs; ${cpuSharesText(c.cpu)}`;
    return system === 'runtrail'
      ? `| cross-node delivery, ${crossWorkload(observers)}, ${PRODUCER_TEXT[producer]} | ${latencies} | (one node) | ${acks}on node A from its read of the notified events to the socket write (per frame, its oldest event): p50 ${ms(c.aP50)}, p99 ${ms(c.aP99)}; ${cpu} |`
      : `| the same with a hand-built relay as node A (\`bench/postgres-relay.mjs\`: pg LISTEN, read, one \`ws.send\` per read and observer) | ${latencies} | | ${acks}${cpu} |`;
  };
  const lines = [
    `runtrail on PostgreSQL next to SQLite, median of ${runs} runs (${((Date.now() - started) / 60_000).toFixed(1)} min); ${machine()}; ${speedText(speed)}; ` +
      `1-min load average during the runs ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} (median ${median(loads).toFixed(1)})`,
    '',
    '| workload | PostgreSQL | SQLite | |',
    '|---|---|---|---|',
    ONLY.has('batched') &&
      `| batched appends (500 events/append, ${fmt(total)} events) | ${fmt(m.pgBatched)} events/s | ${fmt(m.sqliteBatched)} events/s | bare \`pg\` multi-row INSERT loop: ${fmt(m.bare)} events/s (runtrail ${(m.pgBatched / m.bare).toFixed(2)}×) |`,
    ONLY.has('http') && `| one-by-one appends through HTTP (${args.concurrency} clients, server in its own process) | ${fmt(m.pgHttp)} events/s | ${fmt(m.sqliteHttp)} events/s | |`,
    ...(ONLY.has('cross') ? CROSS.map(crossLine) : []),
  ];
  const table = `${lines.filter((line) => line !== false).join('\n')}\n`;
  process.stdout.write(table);
  if (!args['no-write'] && ALL) {
    const file = new URL('./postgres-results.md', import.meta.url);
    writeFileSync(file, `<!-- written by node bench/postgres.mjs ${process.argv.slice(2).join(' ')} at ${new Date().toISOString()} -->\n${table}`);
    process.stderr.write(`wrote bench/postgres-results.md\n`);
  }
}

/** Each process group's share of a core while the producer ran (2 cores: 200 % in all). */
function cpuSharesText(shares) {
  if (!shares) return '';
  const pct = (k) => `${Math.round(shares[k])} %`;
  return `CPU while producing, % of a core: node A ${pct('a')}, node B ${pct('b')}, PostgreSQL ${pct('postgres')}, observers ${pct('observers')}, producer ${pct('producer')}`;
}

/** An observer process: `count` WebSockets on one run; reports when all are subscribed, then every latency seen. */
async function observe() {
  const count = Number(args.count);
  const warmUpEvents = Number(args['warm-up-events']);
  /** Latencies (ms) of the events after the warm-up, and of the warm-up's. */
  const warm = [];
  const warmUp = [];
  let subscribed = 0;
  const sockets = [];
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(args.observe);
    sockets.push(ws);
    // Compact frames by default, as the SDK (and so the dashboard) subscribes: no runId repeated in each event.
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', runId: args['run-id'], after: 0, compact: args.frames === 'compact' })));
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString());
      if (msg.type === 'subscribed' && ++subscribed === count) process.send({ subscribed });
      if (msg.type !== 'events') return;
      const now = Date.now();
      for (const e of msg.events) {
        if (!e.data || typeof e.data.sentAt !== 'number') continue;
        (e.data.i < warmUpEvents ? warmUp : warm).push(now - e.data.sentAt);
      }
    });
  }
  process.once('message', async ({ expectedPerObserver }) => {
    const until = Date.now() + 60_000;
    while (warm.length + warmUp.length < expectedPerObserver * count && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const ws of sockets) ws.terminate();
    process.send({ warm, warmUp }, () => process.exit(0));
  });
}

// Last: the helpers above are consts, defined only once the module has run to here.
if (args.observe) {
  await observe();
} else if (args.child) {
  // A server process: SQLite in the data dir, or PostgreSQL when a schema is given.
  const { startServer } = await import(args['server-dist'] ? join(args['server-dist'], 'index.js') : '../packages/server/dist/index.js');
  const server = await startServer({
    port: 0,
    dataDir: args.child,
    logLevel: 'silent',
    node: args.node ?? 'bench',
    ...(args.schema ? { databaseUrl: args.database, databaseSchema: args.schema, databasePoolSize: 10 } : {}),
  });
  process.send({ url: server.url });
  process.on('message', async () => {
    await server.close();
    process.exit(0);
  });
} else {
  await main();
}
