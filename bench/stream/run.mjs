// Live-delivery benchmark (issues 5 and 13): runtrail vs a plain `ws` broadcaster vs
// Socket.IO 4.8 with connectionStateRecovery, same workloads, same run.
// Producer, server and observers are separate processes on this machine.
//
//   flock /tmp/build.lock npx tsc -b      # runtrail is loaded from packages/*/dist
//   node bench/stream/run.mjs             # full run (about 11 min), writes results.md
//   node bench/stream/run.mjs --quick     # small sizes, for development
//   options: --systems runtrail,ws,wsbatch,socketio  --only a,b,c,d,e,f,g,h,i  --runs 3
//            --cpu-prof (profile each server over the producing window of (a), (b), (h), (i); .cpuprofile files in
//            bench/stream/profiles, summarized by profile-top.mjs)
//            --set a.observers=300,a.durationMs=3000 (override sizes)  --obs-procs 2
//            --runtrail-dist /path/to/packages/server/dist (measure another server build)
//            --variant name=/path/to/packages/server/dist (repeatable: one more system, "runtrail:name", that
//            runs that build interleaved with the others, so a proposed change and main see the same load)
//            --no-write (do not overwrite results.md)
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, Histogram, median, startChild, waitUntil } from './lib.mjs';
import { bucketQuantiles, machineSpeed, speedText } from '../lib.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => {
  const k = argv.indexOf(`--${name}`);
  return k >= 0 ? argv[k + 1] : dflt;
};

/** Workloads with 1,000 observers and a producer at a rate or flat out. */
const FANOUT = ['a', 'b', 'h', 'i'];
const quick = flag('quick');
// (a)/(b)/(h)/(i) are "fan-out" workloads: 1,000 observers in two processes (with 1,000 sockets in one
// process the observers' own loop sets the p99 for every system), a producer, and a drain allowance: a
// broadcaster that cannot keep up gets drainMs after the producer stops; what has not arrived by then is
// reported as not drained (late, not lost), and its latency is a lower bound.
const fanout = (over) => ({ observers: 1_000, durationMs: 5_000, warmupMs: 1_000, obsProcs: 2, drainMs: 10_000, ...over });
const P = quick
  ? {
      runs: 1,
      a: fanout({ observers: 200, rate: 500, clients: 1, perRequest: 1, durationMs: 2_000, warmupMs: 500, obsProcs: 1, drainMs: 5_000 }),
      b: fanout({ observers: 200, rate: 500, clients: 1, perRequest: 5, durationMs: 2_000, warmupMs: 500, obsProcs: 1, drainMs: 5_000 }),
      c: { observers: 10, durationMs: 1_500 },
      d: { events: 10_000 },
      e: { observers: 500 },
      f: { rate: 200, shortGapMs: 2_000, recoveryMs: 3_000, longGapMs: 4_000 },
      g: { before: 2_000, rate: 500, liveMs: 1_000 },
      h: fanout({ observers: 200, rate: 0, clients: 8, perRequest: 1, durationMs: 2_000, warmupMs: 500, obsProcs: 1, drainMs: 5_000 }),
      i: fanout({ observers: 200, rate: 0, clients: 32, perRequest: 1, durationMs: 2_000, warmupMs: 500, obsProcs: 1, drainMs: 5_000 }),
    }
  : {
      runs: 3,
      // One event per HTTP request at 500 ev/s, one client: the pipeline of field-notes.md.
      a: fanout({ rate: 500, clients: 1, perRequest: 1 }),
      // 5 events every 10 ms: small batches at the same rate.
      b: fanout({ rate: 500, clients: 1, perRequest: 5 }),
      c: { observers: 10, durationMs: 3_000 },
      d: { events: 100_000 },
      e: { observers: 5_000 },
      f: { rate: 200, shortGapMs: 2_000, recoveryMs: 10_000, longGapMs: 12_000 },
      g: { before: 10_000, rate: 500, liveMs: 3_000 },
      // One event per request from 8 and 32 concurrent clients, each sending its next as soon as the last is answered.
      h: fanout({ rate: 0, clients: 8, perRequest: 1, durationMs: 3_000, drainMs: 6_000 }),
      i: fanout({ rate: 0, clients: 32, perRequest: 1, durationMs: 3_000, drainMs: 6_000 }),
    };
P.runs = Number(opt('runs', P.runs));
// --set a.observers=300,e.longGapMs=5000: override single sizes (development, profiling).
for (const pair of (opt('set', '') || '').split(',').filter(Boolean)) {
  const [path, value] = pair.split('=');
  const [w, key] = path.split('.');
  if (!P[w] || !(key in P[w])) throw new Error(`--set: unknown size ${path}`);
  P[w][key] = Number(value);
}
for (const w of FANOUT) P[w].obsProcs = Number(opt('obs-procs', P[w].obsProcs));
/** --variant name=dist: another build of runtrail's server, measured as its own system "runtrail:name". */
const VARIANTS = new Map(
  argv.flatMap((a, k) => (argv[k - 1] === '--variant' ? [a] : [])).map((pair) => {
    const [name, dist] = pair.split('=');
    if (!name || !dist) throw new Error(`--variant wants name=/path/to/packages/server/dist, got ${pair}`);
    return [`runtrail:${name}`, dist];
  }),
);
const SYSTEMS = [...opt('systems', 'runtrail,ws,wsbatch,socketio').split(','), ...VARIANTS.keys()];
const ONLY = new Set(opt('only', 'a,b,c,d,e,f,g,h,i').split(','));
const CPU_PROF = flag('cpu-prof');
const PROFILE_DIR = join(BENCH_DIR, 'profiles');
/** Workloads repeated P.runs times (the others run once). */
const REPEATED = ['a', 'b', 'c', 'd', 'h', 'i'];
const LABEL = { runtrail: 'runtrail', ws: 'plain ws', wsbatch: 'plain ws, frame/batch', socketio: 'Socket.IO 4.8' };
for (const name of VARIANTS.keys()) LABEL[name] = name;
/**
 * Workloads each system runs: the frame-per-batch broadcaster only where a request carries several
 * events (with one event per request it is plain ws).
 */
const RUNS_WORKLOAD = (system, w) => system !== 'wsbatch' || w === 'b' || w === 'c';
/** The default run (3 repetitions of 4 systems) fits these; more repetitions or systems get proportionally longer. */
const LIMIT_SCALE = Math.max(1, (P.runs / 3) * (SYSTEMS.length / 4));
const HARD_LIMIT_MS = 15 * 60_000 * LIMIT_SCALE;
/** Past this, remaining workloads are skipped (and marked so) to leave time for the report. */
const SOFT_LIMIT_MS = 13 * 60_000 * LIMIT_SCALE;

const startedAt = Date.now();
const guard = setTimeout(() => {
  console.error(`bench: over ${HARD_LIMIT_MS / 60_000} minutes, giving up`);
  process.exit(2);
}, HARD_LIMIT_MS);
guard.unref();

const log = (...a) => console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)}s]`, ...a);

/** One fresh server, producer and observer process(es) for one workload of one system. */
async function withSystem(system, { obsProcs = 1, tag }, fn) {
  const nodeArgs = ['--expose-gc'];
  const dist = VARIANTS.get(system) ?? opt('runtrail-dist');
  const env = dist ? { BENCH_RUNTRAIL_DIST: dist } : {};
  const server = startChild('server.mjs', { args: [system, String(P.f.recoveryMs)], nodeArgs, env });
  const children = [server];
  try {
    const url = await server.call('url', {}, 30_000);
    const producer = startChild('producer.mjs', { args: [url] });
    children.push(producer);
    const observers = [];
    for (let k = 0; k < obsProcs; k++) {
      const o = startChild('observers.mjs');
      observers.push(o);
      children.push(o);
    }
    return await fn({ server, producer, observers, url, profiled: profiler(server, system, tag) });
  } finally {
    await server.call('close', {}, 15_000).catch((err) => log(`${system}: close failed: ${err.message}`));
    await Promise.all(children.map((c) => c.stop()));
  }
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, k) => Math.floor(total / parts) + (k < total % parts ? 1 : 0));
}

/**
 * With --cpu-prof, `profiled(promise)` records a V8 CPU profile of the server over the promise's
 * lifetime (the producing window, not start-up or shutdown) into bench/stream/profiles.
 */
function profiler(server, system, tag) {
  if (!CPU_PROF) return (start) => start();
  return async (start) => {
    mkdirSync(PROFILE_DIR, { recursive: true });
    await server.call('profileStart');
    try {
      return await start();
    } finally {
      const file = join(PROFILE_DIR, `${system}-${tag}-${Date.now()}.cpuprofile`);
      await server.call('profileStop', { file }, 60_000);
      log(`profile: node bench/stream/profile-top.mjs ${file} 10`);
    }
  };
}

/** A fan-out workload (a, b, h, i): P[w].observers watchers of one run while the producer sends per P[w]. */
async function workloadFanout(w, system, rep) {
  const { observers: n, rate, clients, perRequest, durationMs, warmupMs, obsProcs, drainMs } = P[w];
  return withSystem(system, { obsProcs, tag: `${w}${rep}` }, async ({ server, producer, observers, url, profiled }) => {
    const { runId } = await producer.call('createRun');
    // Flat-out producers have no schedule: size the observers' tables for what a fast server may take.
    const total = rate ? Math.round((rate * durationMs) / 1000) : 40 * durationMs;
    const counts = split(n, observers.length);
    await Promise.all(
      observers.map((o, k) =>
        o.call('connect', {
          system, url, runId, count: counts[k], maxI: total + 2, measure: true, concurrency: 50,
        }),
      ),
    );
    // Latency counts events sent after the first warmupMs of producing.
    await Promise.all(observers.map((o) => o.call('measureFrom', { warmupMs })));
    const procs = [server, producer, ...observers];
    const load = loadavg()[0];
    const cpu0 = await Promise.all(procs.map((p) => p.call('cpu')));
    const delivery0 = await server.call('deliveryBuckets');
    const { r, sums } = await profiled(async () => {
      const r = await producer.call('paced', { rate, durationMs, clients, perRequest }, durationMs * 2 + 120_000);
      const sums = await Promise.all(
        observers.map((o) => o.call('settle', { firstI: r.firstI, lastI: r.lastI, timeoutMs: drainMs, exact: true }, drainMs + 30_000)),
      );
      return { r, sums };
    });
    const cpu1 = await Promise.all(procs.map((p) => p.call('cpu')));
    const serverSide = bucketQuantiles(delivery0, await server.call('deliveryBuckets'));
    const cpuS = cpu1.map((c, k) => (c.user + c.system - cpu0[k].user - cpu0[k].system) / 1e6);
    const hist = Histogram.merge(sums.map((s) => s.hist));
    const received = sums.reduce((s, x) => s + x.received, 0);
    const lastRecvUs = Math.max(...sums.map((s) => s.lastRecvUs));
    const windowS = (lastRecvUs - r.startUs) / 1e6;
    const produced = r.lastI - r.firstI + 1;
    return {
      p50: hist.quantileUs(0.5) / 1000,
      p99: hist.quantileUs(0.99) / 1000,
      max: hist.maxUs / 1000,
      serverP50: serverSide?.p50,
      serverP99: serverSide?.p99,
      produced,
      producedPerS: produced / ((r.endUs - r.startUs) / 1e6),
      unsent: r.unsent,
      deliveredPerObsPerS: received / n / windowS,
      deliveredPerS: received / windowS,
      // CPU share of one core while producing and draining: server, producer, observer process(es).
      cpuPct: cpuS.map((c) => Math.round((100 * c) / windowS)),
      // Server CPU per event delivered to one observer.
      serverCpuUsPerDelivery: (1e6 * cpuS[0]) / received,
      load,
      lost: sums.reduce((s, x) => s + x.lost, 0),
      dup: sums.reduce((s, x) => s + x.dup, 0),
      settled: sums.every((s) => s.settled),
      unexpectedCloses: sums.reduce((s, x) => s + x.unexpectedCloses, 0),
      errors: sums.flatMap((s) => s.errors).slice(0, 5),
    };
  });
}

async function workloadC(system, rep) {
  const { observers: n, durationMs } = P.c;
  return withSystem(system, { tag: `c${rep}` }, async ({ server, producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    await obs.call('connect', { system, url, runId, count: n, maxI: 1 << 20 });
    const procs = [server, producer, obs];
    const load = loadavg()[0];
    const cpu0 = await Promise.all(procs.map((p) => p.call('cpu')));
    const r = await producer.call('burst', { durationMs }, durationMs + 120_000);
    const s = await obs.call('settle', { firstI: r.firstI, lastI: r.lastI, timeoutMs: 20_000 }, 40_000);
    const cpu1 = await Promise.all(procs.map((p) => p.call('cpu')));
    const windowS = (s.lastRecvUs - r.startUs) / 1e6;
    const produced = r.lastI - r.firstI + 1;
    return {
      produced,
      acceptedPerS: produced / ((r.endUs - r.startUs) / 1e6),
      deliveredPerObsPerS: s.received / n / windowS,
      cpuPct: cpu1.map((c, k) => Math.round((100 * (c.user + c.system - cpu0[k].user - cpu0[k].system)) / 1e6 / windowS)),
      serverCpuUsPerDelivery: (cpu1[0].user + cpu1[0].system - cpu0[0].user - cpu0[0].system) / s.received,
      load,
      lost: s.lost,
      dup: s.dup,
      settled: s.settled,
      unexpectedCloses: s.unexpectedCloses,
      errors: s.errors.slice(0, 5),
    };
  });
}

async function workloadD(system) {
  const { events } = P.d;
  return withSystem(system, { tag: 'd' }, async ({ producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    const pre = await producer.call('burst', { count: events }, 300_000);
    await obs.call('connect', { system, url, runId, count: 1, after: 0, target: events, maxI: events + 2 });
    // One live event after the joiner is registered: when it arrives, the
    // joiner has everything it will ever get of the first `events`.
    const marker = await producer.call('burst', { count: 1 });
    const s = await obs.call('settle', { firstI: 1, lastI: marker.lastI, timeoutMs: 30_000 }, 60_000);
    const w = s.per[0];
    return {
      appendS: (pre.endUs - pre.startUs) / 1e6,
      appendPerS: events / ((pre.endUs - pre.startUs) / 1e6),
      catchUpS: w.completeUs ? (w.completeUs - w.startUs) / 1e6 : null,
      lost: s.lost,
      dup: s.dup,
      settled: s.settled,
      errors: s.errors,
    };
  });
}

async function workloadE(system) {
  const { observers: n } = P.e;
  return withSystem(system, { tag: 'e' }, async ({ server, producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    await producer.call('burst', { count: 10 });
    // Warm the server's connection path so lazily loaded code and JIT output
    // are not charged to the observers.
    await obs.call('connect', { system, url, runId, count: 20, maxI: 20 });
    await obs.call('closeAll');
    const before = await server.call('memory');
    // Measured again after the first fifth: (after - mid) / (4/5 n) is the marginal cost of one more
    // observer, free of one-off growth (V8's young generation, malloc arenas) the first ones trigger.
    const first = Math.round(n / 5);
    const c1 = await obs.call('connect', { system, url, runId, count: first, maxI: 20, concurrency: 100 }, 300_000);
    const mid = await server.call('memory');
    const c2 = await obs.call('connect', { system, url, runId, count: n - first, maxI: 20, concurrency: 100 }, 300_000);
    const c = { ms: c1.ms + c2.ms };
    const after = await server.call('memory');
    const s = await obs.call('summary', { firstI: 1, lastI: 10 });
    return {
      connectS: c.ms / 1000,
      rssBefore: before.rss,
      rssAfter: after.rss,
      perObserverKiB: (after.rss - before.rss) / n / 1024,
      marginalPerObserverKiB: (after.rss - mid.rss) / (n - first) / 1024,
      heapPerObserverKiB: (after.heapUsed - before.heapUsed) / n / 1024,
      heapTotalDeltaMiB: (after.heapTotal - before.heapTotal) / 2 ** 20,
      newSpaceDeltaMiB: (after.spaces.new_space - before.spaces.new_space) / 2 ** 20,
      externalDeltaMiB: (after.external - before.external) / 2 ** 20,
      lost: s.lost,
      dup: s.dup,
      errors: s.errors,
    };
  });
}

async function workloadF(system) {
  const { rate, shortGapMs, longGapMs } = P.f;
  return withSystem(system, { tag: 'f' }, async ({ producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    const maxI = Math.ceil((rate * (longGapMs + 5_000)) / 1000);
    await obs.call('connect', { system, url, runId, count: 1, gapMs: shortGapMs, maxI });
    await obs.call('connect', { system, url, runId, count: 1, gapMs: longGapMs, maxI });
    const durationMs = 1_000 + longGapMs + 2_000;
    const running = producer.call('rate', { rate, durationMs }, durationMs + 60_000);
    // The drop is part of the scenario: 1 s into the stream, both watchers lose their TCP connection.
    await new Promise((r) => setTimeout(r, 1_000));
    await obs.call('cut', { indexes: [0, 1] });
    const r = await running;
    const s = await obs.call('settle', { firstI: r.firstI, lastI: r.lastI, timeoutMs: 20_000 }, 40_000);
    return {
      produced: r.lastI - r.firstI + 1,
      short: { lost: s.per[0].lost, dup: s.per[0].dup, recovered: s.per[0].recovered, reconnects: s.per[0].reconnects },
      long: { lost: s.per[1].lost, dup: s.per[1].dup, recovered: s.per[1].recovered, reconnects: s.per[1].reconnects },
      settled: s.settled,
      errors: s.errors,
    };
  });
}

async function workloadG(system) {
  const { before, rate, liveMs } = P.g;
  return withSystem(system, { tag: 'g' }, async ({ producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    await producer.call('burst', { count: before });
    // The producer keeps appending while the watcher joins: the hand-over
    // from backlog to live happens under load.
    const running = producer.call('rate', { rate, durationMs: liveMs }, liveMs + 60_000);
    await obs.call('connect', { system, url, runId, count: 1, after: 0, maxI: before + (rate * liveMs) / 1000 + 2 });
    const r = await running;
    const s = await obs.call('settle', { firstI: 1, lastI: r.lastI, timeoutMs: 20_000 }, 40_000);
    return { produced: r.lastI, lost: s.lost, dup: s.dup, settled: s.settled, errors: s.errors };
  });
}

// ---------------------------------------------------------------- run it

const results = Object.fromEntries(SYSTEMS.map((s) => [s, Object.fromEntries(REPEATED.map((w) => [w, []]))]));
// Systems interleaved within each step so drift in the machine's load hits all of them alike; every
// workload once before the repetitions, so running out of time costs only repetitions.
const plan = [];
const step = (w, rep) => {
  // The broadcasters cannot replay at all: one late joiner shows it, repeating it measures nothing.
  const again = (s) => rep === 1 || w !== 'd' || s.startsWith('runtrail');
  if (ONLY.has(w)) for (const s of SYSTEMS) if (RUNS_WORKLOAD(s, w) && again(s)) plan.push([w, s, rep]);
};
for (const w of ['a', 'b', 'h', 'i', 'c', 'd', 'e', 'f', 'g']) step(w, 1);
for (let rep = 2; rep <= P.runs; rep++) for (const w of REPEATED) step(w, rep);

const fns = {
  a: (s, rep) => workloadFanout('a', s, rep),
  b: (s, rep) => workloadFanout('b', s, rep),
  h: (s, rep) => workloadFanout('h', s, rep),
  i: (s, rep) => workloadFanout('i', s, rep),
  c: workloadC, d: workloadD, e: workloadE, f: workloadF, g: workloadG,
};
const repeated = (w) => REPEATED.includes(w);
// Before the runs, on the machine as quiet as they find it (machines of one kind differ; see bench/lib.mjs).
const speed = await machineSpeed();
log(speedText(speed));
for (const [w, system, rep] of plan) {
  const t0 = Date.now();
  if (t0 - startedAt > SOFT_LIMIT_MS) {
    log(`(${w}) ${LABEL[system]}: skipped, the run is over ${Math.round(SOFT_LIMIT_MS / 60_000)} minutes`);
    const skipped = { failed: 'skipped: out of time' };
    if (repeated(w)) results[system][w].push(skipped);
    else results[system][w] = skipped;
    continue;
  }
  try {
    const res = await fns[w](system, rep);
    if (repeated(w)) results[system][w].push(res);
    else results[system][w] = res;
    log(`(${w}) ${LABEL[system]}${P.runs > 1 && repeated(w) ? ` run ${rep}` : ''}: ${JSON.stringify(res)} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  } catch (err) {
    log(`(${w}) ${LABEL[system]} FAILED: ${err.stack ?? err}`);
    if (repeated(w)) results[system][w].push({ failed: String(err.message ?? err) });
    else results[system][w] = { failed: String(err.message ?? err) };
  }
}

// ---------------------------------------------------------------- report

const fmt = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const ok = (list) => (Array.isArray(list) ? list : []).filter((r) => !r.failed);
const med = (list, key) => median(ok(list).map((r) => r[key]));
const sum = (list, key) => ok(list).reduce((s, r) => s + r[key], 0);
const ld = (lost, dup) => (Number.isFinite(lost) ? `${fmtInt(lost)} / ${fmtInt(dup)}` : 'n/a');
const get = (s, w) => results[s][w] ?? {};
const ran = (s, w) => RUNS_WORKLOAD(s, w) && results[s][w] !== undefined && (!repeated(w) || results[s][w].length > 0);
const cell = (s, w, f) => (!ran(s, w) ? '-' : get(s, w).failed ? (get(s, w).failed.startsWith('skipped') ? 'skipped' : 'failed') : f(get(s, w)));
const rcell = (s, w, f) => (!ran(s, w) ? '-' : ok(results[s][w]).length === 0 ? 'failed' : f(results[s][w]));
const cpuCell = (list) => {
  const good = ok(list);
  return good.length ? good[0].cpuPct.map((_, k) => fmt(median(good.map((r) => r.cpuPct[k])), 0)).join(' / ') : 'n/a';
};
const undrained = (list) => ok(list).some((r) => !r.settled);
/** runtrail's median over plain ws's median of the same run, the issue's measure. */
const ratio = (w, key, digits = 2) => {
  if (!SYSTEMS.includes('runtrail') || !SYSTEMS.includes('ws') || !ran('runtrail', w) || !ran('ws', w)) return '';
  const r = med(results.runtrail[w], key) / med(results.ws[w], key);
  return Number.isFinite(r) ? `runtrail/ws ${r.toFixed(digits)}x` : '';
};
const loads = (w) => {
  const all = SYSTEMS.flatMap((s) => (repeated(w) ? ok(results[s][w]) : [])).map((r) => r.load).filter(Number.isFinite);
  return all.length ? `${fmt(Math.min(...all), 2)}-${fmt(Math.max(...all), 2)}` : 'n/a';
};

const rows = [];
const row = (label, target, f, note = '') => rows.push([label, ...SYSTEMS.map((s) => f(s)), target, note]);
const fanoutRows = (w, title, target) => {
  if (!ONLY.has(w)) return;
  const p = P[w];
  row(`(${w}) ${title}: rate the producer achieved, ev/s`, target.rate ?? '', (s) => rcell(s, w, (l) => fmtInt(med(l, 'producedPerS'))), ratio(w, 'producedPerS'));
  row(`(${w}) latency p50, ms`, '', (s) => rcell(s, w, (l) => fmt(med(l, 'p50'), 2)), ratio(w, 'p50'));
  row(`(${w}) latency p99, ms`, target.p99 ?? '', (s) => rcell(s, w, (l) => `${undrained(l) ? '>= ' : ''}${fmt(med(l, 'p99'), 2)}`), ratio(w, 'p99'));
  row(`(${w}) of which in the server (commit → socket write) p50 / p99, ms`, '', (s) =>
    rcell(s, w, (l) => (!Number.isFinite(med(l, 'serverP50')) ? '-' : `${fmt(med(l, 'serverP50'), 1)} / ${fmt(med(l, 'serverP99'), 1)}`)));
  row(`(${w}) delivered ev/s per observer`, '', (s) => rcell(s, w, (l) => fmtInt(med(l, 'deliveredPerObsPerS'))), ratio(w, 'deliveredPerObsPerS'));
  row(`(${w}) server CPU per delivered event, µs`, '', (s) => rcell(s, w, (l) => fmt(med(l, 'serverCpuUsPerDelivery'), 2)), ratio(w, 'serverCpuUsPerDelivery'));
  row(`(${w}) CPU % of a core: server / producer / observer procs`, '', (s) => rcell(s, w, cpuCell));
  row(`(${w}) lost / dup (all ${P.runs} runs)`, '0 / 0', (s) =>
    rcell(s, w, (l) =>
      undrained(l)
        ? `${fmtInt(sum(l, 'lost'))} not drained ${p.drainMs / 1000} s after / ${fmtInt(sum(l, 'dup'))}`
        : ld(sum(l, 'lost'), sum(l, 'dup'))),
  `load ${loads(w)}`);
};
fanoutRows('a', `${P.a.observers} obs, 1 event per request at ${P.a.rate} ev/s`, { rate: `>= ${Math.round(P.a.rate * 0.99)}`, p99: '<= 1.0x plain ws (b)' });
fanoutRows('b', `${P.b.observers} obs, ${P.b.perRequest} events every ${(1000 * P.b.perRequest) / P.b.rate} ms`, { p99: '<= 1.0x plain ws' });
fanoutRows('h', `${P.h.observers} obs, 1 event per request, ${P.h.clients} clients flat out`, {});
fanoutRows('i', `${P.i.observers} obs, 1 event per request, ${P.i.clients} clients flat out`, {});
if (ONLY.has('c')) {
  row(`(c) ${P.c.observers} obs, 500-event requests flat out: accepted ev/s`, '', (s) => rcell(s, 'c', (l) => fmtInt(med(l, 'acceptedPerS'))), ratio('c', 'acceptedPerS'));
  row('(c) delivered ev/s per observer', '>= 0.8x plain ws', (s) => rcell(s, 'c', (l) => fmtInt(med(l, 'deliveredPerObsPerS'))), ratio('c', 'deliveredPerObsPerS'));
  row('(c) server CPU per delivered event, µs', '', (s) => rcell(s, 'c', (l) => fmt(med(l, 'serverCpuUsPerDelivery'), 2)), ratio('c', 'serverCpuUsPerDelivery'));
  row('(c) CPU % of a core: server / producer / observer proc', '', (s) => rcell(s, 'c', cpuCell));
  row(`(c) lost / dup (all ${P.runs} runs)`, '0 / 0', (s) => rcell(s, 'c', (l) => ld(sum(l, 'lost'), sum(l, 'dup'))), `load ${loads('c')}`);
}
if (ONLY.has('d')) {
  const catchUps = (l) => ok(l).map((r) => r.catchUpS).filter((x) => x != null);
  row(`(d) late joiner: catch-up of ${fmtInt(P.d.events)} events, s (median; fastest-slowest run)`, '<= 0.2', (s) =>
    rcell(s, 'd', (l) => {
      const times = catchUps(l);
      return times.length === 0 ? 'never (no replay)' : `${fmt(median(times), 3)} (${fmt(Math.min(...times), 3)}-${fmt(Math.max(...times), 3)})`;
    }));
  row(`(d) lost / dup (all runs)`, '0 / 0', (s) => rcell(s, 'd', (l) => ld(sum(l, 'lost'), sum(l, 'dup'))));
}
if (ONLY.has('e')) {
  row(`(e) server RSS per idle observer, KiB (${fmtInt(P.e.observers)} obs)`, '<= 10', (s) => cell(s, 'e', (d) => fmt(d.perObserverKiB, 1)));
  row('(e) of which JS heap, KiB', '', (s) => cell(s, 'e', (d) => fmt(d.heapPerObserverKiB, 1)));
  row(`(e) marginal RSS per observer (last ${fmtInt(P.e.observers - Math.round(P.e.observers / 5))}), KiB`, '', (s) =>
    cell(s, 'e', (d) => fmt(d.marginalPerObserverKiB, 1)));
}
if (ONLY.has('f')) {
  row(`(f) drop ${P.f.shortGapMs / 1000} s: lost / dup`, '0 / 0', (s) => cell(s, 'f', (e) => ld(e.short.lost, e.short.dup)));
  row(`(f) drop ${P.f.longGapMs / 1000} s (> ${P.f.recoveryMs / 1000} s Socket.IO window): lost / dup`, '0 / 0', (s) =>
    cell(s, 'f', (e) => ld(e.long.lost, e.long.dup)));
}
if (ONLY.has('g')) {
  row(`(g) joins after ${fmtInt(P.g.before)} events: lost / dup`, '0 / 0', (s) => cell(s, 'g', (f) => ld(f.lost, f.dup)));
}

const header = ['workload', ...SYSTEMS.map((s) => LABEL[s]), 'target', 'ratio, load'];
const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => String(r[k]).length)));
const line = (cells) => `| ${cells.map((c, k) => String(c).padEnd(widths[k])).join(' | ')} |`;
const table = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');

const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? cpus()[0]?.model ?? 'unknown';
const machine = `${cpus().length} CPUs (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${process.platform} ${process.arch}; ${speedText(speed)}`;
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: BENCH_DIR, encoding: 'utf8' }).trim();
  } catch (err) {
    return `unknown (${err.message.split('\n')[0]})`;
  }
})();
const runtrailBuild = opt('runtrail-dist') ? `${opt('runtrail-dist')} (built from commit ${commit})` : `packages/server/dist at commit ${commit}`;
const allLoads = SYSTEMS.flatMap((s) => REPEATED.flatMap((w) => ok(results[s][w]).map((r) => r.load))).filter(Number.isFinite);
const loadNote = allLoads.length
  ? `1-minute load average at the start of each repeated run: ${fmt(Math.min(...allLoads), 2)} to ${fmt(Math.max(...allLoads), 2)} (2 CPUs; the issue's figures want a machine with nothing else running)`
  : 'no load recorded';

// Issue 13's "Done when", checked against the numbers above (each a ratio within this one run).
const checks = [];
if (SYSTEMS.includes('runtrail')) {
  const rt = results.runtrail;
  const repeatedLost = REPEATED.filter((w) => ONLY.has(w)).flatMap((w) => [sum(rt[w], 'lost'), sum(rt[w], 'dup')]);
  const allLost = [
    ...repeatedLost,
    ...['e', 'g'].filter((w) => ONLY.has(w)).flatMap((w) => [rt[w]?.lost, rt[w]?.dup]),
    ...(ONLY.has('f') ? [rt.f?.short?.lost, rt.f?.short?.dup, rt.f?.long?.lost, rt.f?.long?.dup] : []),
  ];
  const failedAny = Object.values(rt).some((v) => (Array.isArray(v) ? v.some((x) => x.failed) : v.failed));
  checks.push(['zero lost / duplicate events in every workload', !failedAny && allLost.every((x) => x === 0)]);
  const ws = SYSTEMS.includes('ws') ? results.ws : null;
  if (ONLY.has('a')) {
    const rate = med(rt.a, 'producedPerS');
    checks.push([`(a) producer achieves >= ${Math.round(P.a.rate * 0.99)} ev/s (${fmt(rate, 0)})`, rate >= P.a.rate * 0.99]);
    if (ws && ONLY.has('b')) {
      const p99 = med(rt.a, 'p99');
      const base = med(ws.b, 'p99');
      checks.push([`(a) p99 <= 1.0x plain ws's p99 in (b) (${fmt(p99, 2)} vs ${fmt(base, 2)} ms)`, p99 <= base]);
    }
  }
  if (ONLY.has('b') && ws) {
    const p99 = med(rt.b, 'p99');
    const base = med(ws.b, 'p99');
    checks.push([`(b) p99 <= 1.0x plain ws (${fmt(p99, 2)} vs ${fmt(base, 2)} ms)`, p99 <= base]);
  }
  if (ONLY.has('c') && ws) {
    const d = med(rt.c, 'deliveredPerObsPerS');
    const base = med(ws.c, 'deliveredPerObsPerS');
    checks.push([`(c) delivered ev/s per observer >= 0.8x plain ws (${fmtInt(d)} vs ${fmtInt(0.8 * base)})`, d >= 0.8 * base]);
  }
  if (ONLY.has('d')) {
    const catchUp = med(rt.d, 'catchUpS');
    checks.push([`(d) catch-up of ${fmtInt(P.d.events)} events <= 0.2 s (${fmt(catchUp, 3)} s, median)`, catchUp <= 0.2]);
  }
  if (ONLY.has('e')) checks.push([`(e) <= 10 KiB per idle observer (${fmt(rt.e?.perObserverKiB, 1)} KiB)`, rt.e?.perObserverKiB <= 10]);
}
const checkText = checks.map(([what, met]) => `- ${met ? 'MET' : 'MISSED'}: ${what}`).join('\n');
const minutes = ((Date.now() - startedAt) / 60_000).toFixed(1);

console.log(`\n${machine}\n${date}${quick ? ' (--quick sizes)' : ''}, ${minutes} min\n${loadNote}\n\n${table}\n\nruntrail targets (issue 13):\n${checkText}\n`);

if (!flag('no-write')) {
  const fanoutHow = (w) =>
    `${P[w].observers} observers of one run; ${P[w].rate ? `${P[w].rate} ev/s` : 'flat out'}, ${P[w].perRequest} event(s) per request, ` +
    `${P[w].clients} concurrent HTTP client(s), for ${P[w].durationMs / 1000} s; latency of events sent after the first ${P[w].warmupMs} ms`;
  const md = `# Live delivery benchmark: runtrail vs plain ws vs Socket.IO

${date}${quick ? ' (**--quick sizes, not the real measurement**)' : ''}, ${machine}.
Produced by \`node bench/stream/run.mjs${argv.length ? ` ${argv.join(' ')}` : ''}\` (${minutes} min); runtrail: ${runtrailBuild}.
Repeated workloads (${REPEATED.join(', ')}) are medians of ${P.runs} run(s), systems interleaved (the broadcasters' (d) once: they cannot replay); every other workload ran once.
${loadNote}.

${table}

runtrail targets (issue 13's "Done when"; ratios are within this run):
${checkText}

## How it was measured
- Three kinds of process per workload, started fresh for each system: the server, one producer, and
  the observers (${P.a.obsProcs} process(es) for the 1,000-observer workloads, one otherwise), all on 127.0.0.1.
- runtrail: \`startServer\` from packages/server/dist, SQLite in a temp dir, log level silent, the abuse
  limits raised (maxConnectionsPerIp/Token 100,000, appendEventsPerSecond and wsMessagesPerSecondPerIp 10,000,000: every observer comes
  from 127.0.0.1 and the broadcasters have no such limits). Watchers use
  the WebSocket protocol (\`subscribe\` with \`after\`) and resubscribe with after = last seq after a drop.
- plain ws: an HTTP endpoint that broadcasts each appended event to every open \`ws\` connection (one frame
  per event, serialized once), no log; a dropped watcher reconnects and gets what comes next.
- plain ws, frame/batch: the same broadcaster sending one frame per appended request in runtrail's frame
  format (only where a request carries several events).
- Socket.IO 4.8: the same broadcaster on a room, \`connectionStateRecovery\` with
  maxDisconnectionDuration ${P.f.recoveryMs / 1000} s (the default is 2 min; shortened so (f) can exceed it),
  clients on the websocket transport with their own reconnection.
- The producer appends over HTTP (\`POST /api/v1/runs/:id/events\`, same body for all systems), each event
  with an idempotency id, its number \`i\` and the time its request was sent (CLOCK_MONOTONIC, shared by all
  processes); latency = observer receive time - that send time (HTTP append, server, fan-out, socket).
  A server slower than a workload's rate holds the producer's next request back: that shows as a producer
  rate under the target (the producer gives up 1.5x the duration after it started), not as latency.
- Lost/duplicate = events of the producer's sequence an observer never got / got twice, summed over observers.
- CPU % = CPU time of each process over the workload's window, in % of one core (${cpus().length} cores for all
  processes). Server CPU per delivered event = server CPU time / events received summed over observers.
- Load = the machine's 1-minute load average when the run started (in the raw results per run).
- (a) ${fanoutHow('a')}.
- (b) ${fanoutHow('b')}.
- (h) ${fanoutHow('h')}.
- (i) ${fanoutHow('i')}.
- (c) ${P.c.observers} observers, the producer sends full 500-event requests back to back for ${P.c.durationMs / 1000} s.
- (d) ${fmtInt(P.d.events)} events appended, then a new watcher (after=0); catch-up = its connect to its last
  backlog event. One live event follows, to know when a system with no replay has delivered all it will.
- (e) server RSS after GC with ${fmtInt(P.e.observers)} connected, subscribed, idle observers minus before them, / observers
  (the issue's measure). It includes one-off growth the first connections trigger (V8's young generation,
  malloc arenas), so the marginal row also gives (RSS at all - RSS at the first fifth) / the other four fifths.
- (f) two watchers lose their TCP connection 1 s into a ${P.f.rate} ev/s stream; one is back after
  ${P.f.shortGapMs / 1000} s, the other after ${P.f.longGapMs / 1000} s.
- (g) ${fmtInt(P.g.before)} events appended, then a watcher joins (after=0) while ${P.g.rate} ev/s keep coming for ${P.g.liveMs / 1000} s.

## Raw results
\`\`\`json
${JSON.stringify(results, null, 1)}
\`\`\`
`;
  writeFileSync(join(BENCH_DIR, 'results.md'), md);
  log('wrote bench/stream/results.md');
}
process.exit(0);
