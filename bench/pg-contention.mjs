// Two nodes' stores on one PostgreSQL schema: 8 appenders on each append
// one event at a time to run X (both nodes write X, so each finds the other's
// writes in its way), and 8 more on the first node append to run Y alone.
// Prints each run's appends/s and Y's latency: what a node's appends to one
// run cost its appends to another while a third party contends for the first.
//
//   node bench/pg-contention.mjs [--runs 2] [--seconds 5] [--database postgres://...]
//        [--store-dist /path/to/packages/store/dist,/path/to/another/dist]  (interleaved, A B A B ...)
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import pg from 'pg';
import { machine, median } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '5' },
    database: { type: 'string', default: process.env.RUNTRAIL_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test' },
    'store-dist': { type: 'string', default: fileURLToPath(new URL('../packages/store/dist', import.meta.url)) },
  },
});
const seconds = Number(args.seconds);
const dists = args['store-dist'].split(',');

async function once(dist) {
  const { PgRunStore } = await import(join(dist, 'index.js'));
  const schema = `bench_contention_${process.pid}_${Date.now()}`;
  const a = await PgRunStore.open({ connectionString: args.database, schema });
  const b = await PgRunStore.open({ connectionString: args.database, schema });
  try {
    const now = Date.now();
    await a.createRun({ id: 'x', name: 'contended', now, leaseTtlMs: 600_000 });
    await a.createRun({ id: 'y', name: 'alone', now, leaseTtlMs: 600_000 });
    const stopAt = performance.now() + seconds * 1000;
    const latency = { x: [], y: [] };
    let n = 0;
    const appender = (store, run) => async () => {
      while (performance.now() < stopAt) {
        const t = performance.now();
        await store.append(run, [{ type: 'x.tick', id: `e${++n}` }], { now: Date.now() });
        latency[run].push(performance.now() - t);
      }
    };
    await Promise.all([
      ...Array.from({ length: 8 }, appender(a, 'x')),
      ...Array.from({ length: 8 }, appender(b, 'x')),
      ...Array.from({ length: 8 }, appender(a, 'y')),
    ]);
    const pct = (values, p) => [...values].sort((q, r) => q - r)[Math.floor(values.length * p)];
    return { x: latency.x.length / seconds, y: latency.y.length / seconds, yP50: pct(latency.y, 0.5), yP99: pct(latency.y, 0.99) };
  } finally {
    await a.close();
    await b.close();
    const c = new pg.Client({ connectionString: args.database });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  }
}

const results = new Map(dists.map((d) => [d, []]));
for (let i = 0; i < Number(args.runs); i++) {
  for (const dist of dists) {
    const r = await once(dist);
    results.get(dist).push(r);
    console.log(`run ${i + 1} ${dist}: X ${Math.round(r.x)}/s, Y ${Math.round(r.y)}/s (p50 ${r.yP50.toFixed(1)} ms, p99 ${r.yP99.toFixed(1)} ms)`);
  }
}
console.log(`two stores on one schema, ${seconds} s per run; ${machine()}`);
for (const [dist, rs] of results) {
  const m = (k) => median(rs.map((r) => r[k]));
  console.log(`${dist}: X ${Math.round(m('x'))}/s, Y ${Math.round(m('y'))}/s, Y p50 ${m('yP50').toFixed(1)} ms, p99 ${m('yP99').toFixed(1)} ms (medians of ${rs.length})`);
}
