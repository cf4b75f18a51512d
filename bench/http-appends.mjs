// One workload of `npm run bench:postgres`, quick to rerun and to profile:
// one-by-one HTTP appends (one event per request) from N keep-alive clients
// to a server in its own process, on SQLite or PostgreSQL.
//
//   node bench/http-appends.mjs [--store sqlite|postgres] [--runs 3] [--http 20000] [--concurrency 32]
//        [--database postgres://postgres@127.0.0.1:5432/test] [--cpu-prof]
//        [--server-dist /path/to/packages/server/dist,/path/to/another/dist]  (interleaved, A B A B ...)
// Prints appends/s and the server's CPU time per append (the steadier figure on a shared machine).
// With --cpu-prof the server is profiled over the appends only (not its start) and the profile lands in
// bench/profiles/ (summarize with `node bench/stream/profile-top.mjs <file> 10`).
import { fork } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { fmt, httpOneByOneAppends, machine, machineSpeed, median, speedText } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    runs: { type: 'string', default: '3' },
    http: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '32' },
    database: { type: 'string', default: process.env.RUNTRAIL_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test' },
    'cpu-prof': { type: 'boolean', default: false },
    'server-dist': { type: 'string', default: fileURLToPath(new URL('../packages/server/dist', import.meta.url)) },
    child: { type: 'string' },
    schema: { type: 'string' },
  },
});
if (!['sqlite', 'postgres'].includes(args.store)) throw new Error(`--store: sqlite or postgres, not ${args.store}`);
const PROFILE_DIR = fileURLToPath(new URL('./profiles', import.meta.url));

if (args.child) {
  // The server process: SQLite in the data dir, or PostgreSQL in the given schema.
  const { startServer } = await import(join(args['server-dist'], 'index.js'));
  const server = await startServer({
    port: 0,
    dataDir: args.child,
    logLevel: 'silent',
    node: 'bench-http',
    ...(args.schema ? { databaseUrl: args.database, databaseSchema: args.schema, databasePoolSize: 10 } : {}),
  });
  process.send({ url: server.url });
  let profiler = null;
  process.on('message', async (message) => {
    if (message === 'cpu') {
      process.send({ cpu: process.cpuUsage() });
      return;
    }
    if (message === 'profile') {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
      await profiler.post('Profiler.start');
      process.send({ profiling: true });
      return;
    }
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      mkdirSync(PROFILE_DIR, { recursive: true });
      const file = join(PROFILE_DIR, `http-appends-${args.schema ? 'postgres' : 'sqlite'}-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      process.stderr.write(`profile: node bench/stream/profile-top.mjs ${file} 10\n`);
    }
    await server.close();
    process.exit(0);
  });
} else {
  // Absolute: the child imports them from its own module's folder.
  const dists = args['server-dist'].split(',').map((dist) => resolve(dist));
  const results = dists.map(() => []);
  const loads = [];
  const speed = await machineSpeed();
  for (let run = 0; run < Number(args.runs); run++) {
    for (const [k, dist] of dists.entries()) {
      loads.push(loadavg()[0]);
      const result = await oneRun(dist);
      results[k].push(result);
      process.stderr.write(`run ${run + 1} ${dist}: ${fmt(result.rate)} appends/s, server CPU ${result.cpuUs.toFixed(0)} µs/append (load ${loadavg()[0].toFixed(1)})\n`);
    }
  }
  console.log(`one-by-one HTTP appends, ${args.store}, ${args.concurrency} clients, ${args.http} events; ${machine()}; ${speedText(speed)}; load ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`);
  for (const [k, dist] of dists.entries()) {
    const rates = results[k].map((r) => r.rate);
    const cpu = results[k].map((r) => r.cpuUs);
    console.log(`${fmt(median(rates))} appends/s (${rates.map(fmt).join(', ')}); server CPU ${median(cpu).toFixed(0)} µs/append (${cpu.map((c) => c.toFixed(0)).join(', ')})  ${dist}`);
  }
}

async function oneRun(dist) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-http-'));
  const schema = args.store === 'postgres' ? `rt_bench_http_${process.pid}_${Date.now()}` : undefined;
  const child = fork(fileURLToPath(import.meta.url), ['--child', dir, '--server-dist', dist, '--database', args.database, ...(schema ? ['--schema', schema] : [])], {
    stdio: 'inherit',
  });
  try {
    const { url } = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the server exited (${code}) before it listened`)));
    });
    // Server CPU per append: what a loaded machine changes least (the rate also counts the time the server waited for a core).
    const cpuNow = async () => {
      child.send('cpu');
      const { cpu } = await new Promise((resolve) => child.once('message', resolve));
      return cpu.user + cpu.system;
    };
    if (args['cpu-prof']) {
      child.send('profile');
      await new Promise((resolve) => child.once('message', resolve));
    }
    const cpuBefore = await cpuNow();
    const rate = await httpOneByOneAppends(url, Number(args.http), Number(args.concurrency));
    return { rate, cpuUs: ((await cpuNow()) - cpuBefore) / Number(args.http) };
  } finally {
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
    if (schema) {
      const c = new pg.Client({ connectionString: args.database });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    }
  }
}
