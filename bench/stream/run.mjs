// Live-delivery benchmark (issue 5): runtrail vs a plain `ws` broadcaster vs
// Socket.IO 4.8 with connectionStateRecovery, same workloads, same run.
// Producer, server and observers are separate processes on this machine.
//
//   flock /tmp/build.lock npx tsc -b      # runtrail is loaded from packages/*/dist
//   node bench/stream/run.mjs             # full run (< 10 min), writes results.md
//   node bench/stream/run.mjs --quick     # small sizes, for development
//   options: --systems runtrail,ws,socketio  --only a,b,c,d,e,f  --runs 3
//            --cpu-prof (profile the runtrail server; .cpuprofile files in bench/stream/profiles)
//            --set a.observers=300,a.durationMs=3000 (override sizes)  --obs-procs 2
//            --runtrail-dist /path/to/packages/server/dist (measure another server build)
//            --no-write (do not overwrite results.md)
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, Histogram, median, startChild, waitUntil } from './lib.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(`--${name}`);
const opt = (name, dflt) => {
  const k = argv.indexOf(`--${name}`);
  return k >= 0 ? argv[k + 1] : dflt;
};

const quick = flag('quick');
const P = quick
  ? {
      runs: 1,
      a: { observers: 100, rate: 500, durationMs: 2_000, warmupMs: 500, obsProcs: 1, drainMs: 10_000 },
      b: { observers: 10, durationMs: 1_500 },
      c: { events: 10_000 },
      d: { observers: 500 },
      e: { rate: 200, shortGapMs: 2_000, recoveryMs: 3_000, longGapMs: 4_000 },
      f: { before: 2_000, rate: 500, liveMs: 1_000 },
    }
  : {
      runs: 3,
      // A broadcaster that cannot keep up gets drainMs after the producer stops; what has not arrived by
      // then is reported as not drained (it is late, not lost), and its latency is a lower bound.
      // Two observer processes: with 1,000 sockets in one process the observers' own event loop
      // (near 100% of a core) set the p99 for every system, hiding the server's latency.
      a: { observers: 1_000, rate: 500, durationMs: 6_000, warmupMs: 1_000, obsProcs: 2, drainMs: 15_000 },
      b: { observers: 10, durationMs: 4_000 },
      c: { events: 100_000 },
      d: { observers: 5_000 },
      e: { rate: 200, shortGapMs: 2_000, recoveryMs: 10_000, longGapMs: 12_000 },
      f: { before: 10_000, rate: 500, liveMs: 3_000 },
    };
P.runs = Number(opt('runs', P.runs));
// --set a.observers=300,e.longGapMs=5000: override single sizes (development, profiling).
for (const pair of (opt('set', '') || '').split(',').filter(Boolean)) {
  const [path, value] = pair.split('=');
  const [w, key] = path.split('.');
  if (!P[w] || !(key in P[w])) throw new Error(`--set: unknown size ${path}`);
  P[w][key] = Number(value);
}
P.a.obsProcs = Number(opt('obs-procs', P.a.obsProcs));
const SYSTEMS = opt('systems', 'runtrail,ws,wsbatch,socketio').split(',');
const ONLY = new Set(opt('only', 'a,b,c,d,e,f').split(','));
const CPU_PROF = flag('cpu-prof');
const PROFILE_DIR = join(BENCH_DIR, 'profiles');
const LABEL = { runtrail: 'runtrail', ws: 'plain ws', wsbatch: 'plain ws, frame/batch', socketio: 'Socket.IO 4.8' };
/** Workloads each system runs; the batched broadcaster only matters where framing does (a, b). */
const RUNS_WORKLOAD = (system, w) => system !== 'wsbatch' || w === 'a' || w === 'b';
const HARD_LIMIT_MS = 10 * 60_000;
/** Past this, remaining workloads are skipped (and marked so) to leave time for the report. */
const SOFT_LIMIT_MS = 8.5 * 60_000;

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
  if (CPU_PROF && system === 'runtrail') {
    mkdirSync(PROFILE_DIR, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=runtrail-${tag}-${Date.now()}.cpuprofile`);
  }
  const env = opt('runtrail-dist') ? { BENCH_RUNTRAIL_DIST: opt('runtrail-dist') } : {};
  const server = startChild('server.mjs', { args: [system, String(P.e.recoveryMs)], nodeArgs, env });
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
    return await fn({ server, producer, observers, url });
  } finally {
    await server.call('close', {}, 15_000).catch((err) => log(`${system}: close failed: ${err.message}`));
    await Promise.all(children.map((c) => c.stop()));
  }
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, k) => Math.floor(total / parts) + (k < total % parts ? 1 : 0));
}

async function workloadA(system, rep) {
  const { observers: n, rate, durationMs, warmupMs, obsProcs } = P.a;
  return withSystem(system, { obsProcs, tag: `a${rep}` }, async ({ server, producer, observers, url }) => {
    const { runId } = await producer.call('createRun');
    const total = Math.round((rate * durationMs) / 1000);
    const counts = split(n, observers.length);
    await Promise.all(
      observers.map((o, k) =>
        o.call('connect', {
          system, url, runId, count: counts[k], maxI: total + 2, measure: true,
          warmupI: Math.round((rate * warmupMs) / 1000) + 1, concurrency: 50,
        }),
      ),
    );
    const procs = [server, producer, ...observers];
    const cpu0 = await Promise.all(procs.map((p) => p.call('cpu')));
    const r = await producer.call('rate', { rate, durationMs }, durationMs + 120_000);
    const sums = await Promise.all(observers.map((o) => o.call('settle', { firstI: r.firstI, lastI: r.lastI, timeoutMs: P.a.drainMs }, P.a.drainMs + 30_000)));
    const cpu1 = await Promise.all(procs.map((p) => p.call('cpu')));
    const cpuS = cpu1.map((c, k) => (c.user + c.system - cpu0[k].user - cpu0[k].system) / 1e6);
    const hist = Histogram.merge(sums.map((s) => s.hist));
    const received = sums.reduce((s, x) => s + x.received, 0);
    const lastRecvUs = Math.max(...sums.map((s) => s.lastRecvUs));
    const windowS = (lastRecvUs - r.startUs) / 1e6;
    return {
      p50: hist.quantileUs(0.5) / 1000,
      p99: hist.quantileUs(0.99) / 1000,
      max: hist.maxUs / 1000,
      produced: r.lastI - r.firstI + 1,
      producedPerS: (r.lastI - r.firstI + 1) / ((r.endUs - r.startUs) / 1e6),
      deliveredPerObsPerS: received / n / windowS,
      deliveredPerS: received / windowS,
      // CPU share of one core while producing and draining: server, producer, observer process(es).
      cpuPct: cpuS.map((c) => Math.round((100 * c) / windowS)),
      lost: sums.reduce((s, x) => s + x.lost, 0),
      dup: sums.reduce((s, x) => s + x.dup, 0),
      settled: sums.every((s) => s.settled),
      unexpectedCloses: sums.reduce((s, x) => s + x.unexpectedCloses, 0),
      errors: sums.flatMap((s) => s.errors).slice(0, 5),
    };
  });
}

async function workloadB(system, rep) {
  const { observers: n, durationMs } = P.b;
  return withSystem(system, { tag: `b${rep}` }, async ({ server, producer, observers: [obs], url }) => {
    const { runId } = await producer.call('createRun');
    await obs.call('connect', { system, url, runId, count: n, maxI: 1 << 20 });
    const procs = [server, producer, obs];
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
      lost: s.lost,
      dup: s.dup,
      settled: s.settled,
      unexpectedCloses: s.unexpectedCloses,
      errors: s.errors.slice(0, 5),
    };
  });
}

async function workloadC(system) {
  const { events } = P.c;
  return withSystem(system, { tag: 'c' }, async ({ producer, observers: [obs], url }) => {
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

async function workloadD(system) {
  const { observers: n } = P.d;
  return withSystem(system, { tag: 'd' }, async ({ server, producer, observers: [obs], url }) => {
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

async function workloadE(system) {
  const { rate, shortGapMs, longGapMs } = P.e;
  return withSystem(system, { tag: 'e' }, async ({ producer, observers: [obs], url }) => {
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

async function workloadF(system) {
  const { before, rate, liveMs } = P.f;
  return withSystem(system, { tag: 'f' }, async ({ producer, observers: [obs], url }) => {
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

const results = Object.fromEntries(SYSTEMS.map((s) => [s, { a: [], b: [] }]));
// Systems interleaved within each step so drift in the machine's load hits all of them alike; every
// workload once before the repetitions of (a) and (b), so running out of time costs only repetitions.
const plan = [];
const step = (w, rep) => {
  if (ONLY.has(w)) for (const s of SYSTEMS) if (RUNS_WORKLOAD(s, w)) plan.push([w, s, rep]);
};
for (const w of ['a', 'b', 'c', 'd', 'e', 'f']) step(w, 1);
for (let rep = 2; rep <= P.runs; rep++) for (const w of ['a', 'b']) step(w, rep);

const fns = { a: workloadA, b: workloadB, c: workloadC, d: workloadD, e: workloadE, f: workloadF };
for (const [w, system, rep] of plan) {
  const t0 = Date.now();
  if (t0 - startedAt > SOFT_LIMIT_MS) {
    log(`(${w}) ${LABEL[system]}: skipped, the run is over ${SOFT_LIMIT_MS / 60_000} minutes`);
    const skipped = { failed: 'skipped: out of time' };
    if (w === 'a' || w === 'b') results[system][w].push(skipped);
    else results[system][w] = skipped;
    continue;
  }
  try {
    const res = await fns[w](system, rep);
    if (w === 'a' || w === 'b') results[system][w].push(res);
    else results[system][w] = res;
    log(`(${w}) ${LABEL[system]}${P.runs > 1 && (w === 'a' || w === 'b') ? ` run ${rep}` : ''}: ${JSON.stringify(res)} [${((Date.now() - t0) / 1000).toFixed(1)} s]`);
  } catch (err) {
    log(`(${w}) ${LABEL[system]} FAILED: ${err.stack ?? err}`);
    if (w === 'a' || w === 'b') results[system][w].push({ failed: String(err.message ?? err) });
    else results[system][w] = { failed: String(err.message ?? err) };
  }
}

// ---------------------------------------------------------------- report

const fmt = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits));
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const med = (list, key) => median(list.filter((r) => !r.failed).map((r) => r[key]));
const sum = (list, key) => list.filter((r) => !r.failed).reduce((s, r) => s + r[key], 0);
const ld = (lost, dup) => (Number.isFinite(lost) ? `${fmtInt(lost)} / ${fmtInt(dup)}` : 'n/a');
const get = (s, w) => results[s][w] ?? {};
const ran = (s, w) => RUNS_WORKLOAD(s, w) && results[s][w] !== undefined;
const cell = (s, w, f) => (!ran(s, w) ? '-' : get(s, w).failed ? (get(s, w).failed.startsWith('skipped') ? 'skipped' : 'failed') : f(get(s, w)));
const cpuCell = (list) => {
  const ok = list.filter((r) => !r.failed);
  return ok.length ? ok[0].cpuPct.map((_, k) => fmt(median(ok.map((r) => r.cpuPct[k])), 0)).join(' / ') : 'n/a';
};
const undrained = (list) => list.some((r) => !r.failed && !r.settled);

const rows = [];
const row = (label, target, f) => rows.push([label, ...SYSTEMS.map((s) => f(s)), target]);
if (ONLY.has('a')) {
  row(`(a) latency p50, ms (${P.a.observers} obs, ${P.a.rate} ev/s)`, '', (s) => fmt(med(results[s].a, 'p50'), 2));
  row('(a) latency p99, ms', '< 25 and <= 1.2x plain ws', (s) => `${undrained(results[s].a) ? '>= ' : ''}${fmt(med(results[s].a, 'p99'), 2)}`);
  row('(a) delivered ev/s per observer (all observers)', `${P.a.rate}`, (s) =>
    `${fmtInt(med(results[s].a, 'deliveredPerObsPerS'))} (${fmtInt(med(results[s].a, 'deliveredPerS'))})`);
  // A server slower than the rate makes the producer's batches wait (one in flight); latency counts from
  // a batch's send, so this row is where that shows.
  row('(a) rate the producer achieved, ev/s', `${P.a.rate}`, (s) => fmtInt(med(results[s].a, 'producedPerS')));
  row('(a) CPU % of a core: server / producer / each observer process', '', (s) => cpuCell(results[s].a));
  row(`(a) lost / dup (all ${P.runs} runs)`, '0 / 0', (s) =>
    undrained(results[s].a)
      ? `${fmtInt(sum(results[s].a, 'lost'))} not drained ${P.a.drainMs / 1000} s after / ${fmtInt(sum(results[s].a, 'dup'))}`
      : ld(sum(results[s].a, 'lost'), sum(results[s].a, 'dup')));
}
if (ONLY.has('b')) {
  row(`(b) max accepted ev/s (${P.b.observers} obs)`, '', (s) => fmtInt(med(results[s].b, 'acceptedPerS')));
  row('(b) delivered ev/s per observer', '', (s) => fmtInt(med(results[s].b, 'deliveredPerObsPerS')));
  row('(b) CPU % of a core: server / producer / each observer process', '', (s) => cpuCell(results[s].b));
  row(`(b) lost / dup (all ${P.runs} runs)`, '0 / 0', (s) => ld(sum(results[s].b, 'lost'), sum(results[s].b, 'dup')));
}
if (ONLY.has('c')) {
  row(`(c) late joiner: catch-up of ${fmtInt(P.c.events)} events, s`, '< 1', (s) =>
    cell(s, 'c', (c) => (c.catchUpS == null ? 'never (no replay)' : fmt(c.catchUpS, 3))));
  row('(c) lost / dup', '0 / 0', (s) => cell(s, 'c', (c) => ld(c.lost, c.dup)));
}
if (ONLY.has('d')) {
  row(`(d) server RSS per idle observer, KiB (${fmtInt(P.d.observers)} obs)`, '< 20', (s) => cell(s, 'd', (d) => fmt(d.perObserverKiB, 1)));
  row('(d) of which JS heap, KiB', '', (s) => cell(s, 'd', (d) => fmt(d.heapPerObserverKiB, 1)));
  row(`(d) marginal RSS per observer (last ${fmtInt(P.d.observers - Math.round(P.d.observers / 5))}), KiB`, '', (s) =>
    cell(s, 'd', (d) => fmt(d.marginalPerObserverKiB, 1)));
}
if (ONLY.has('e')) {
  row(`(e) drop ${P.e.shortGapMs / 1000} s: lost / dup`, '0 / 0', (s) => cell(s, 'e', (e) => ld(e.short.lost, e.short.dup)));
  row(`(e) drop ${P.e.longGapMs / 1000} s (> ${P.e.recoveryMs / 1000} s Socket.IO window): lost / dup`, '0 / 0', (s) =>
    cell(s, 'e', (e) => ld(e.long.lost, e.long.dup)));
}
if (ONLY.has('f')) {
  row(`(f) joins after ${fmtInt(P.f.before)} events: lost / dup`, '0 / 0', (s) => cell(s, 'f', (f) => ld(f.lost, f.dup)));
}

const header = ['workload', ...SYSTEMS.map((s) => LABEL[s]), 'target'];
const widths = header.map((h, k) => Math.max(h.length, ...rows.map((r) => String(r[k]).length)));
const line = (cells) => `| ${cells.map((c, k) => String(c).padEnd(widths[k])).join(' | ')} |`;
const table = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');

const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? cpus()[0]?.model ?? 'unknown';
const machine = `${cpus().length} CPUs (${cpuModel}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${process.platform} ${process.arch}`;
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: BENCH_DIR, encoding: 'utf8' }).trim();
  } catch (err) {
    return `unknown (${err.message.split('\n')[0]})`;
  }
})();
const runtrailBuild = opt('runtrail-dist') ? `${opt('runtrail-dist')} (built from commit ${commit})` : `packages/server/dist at commit ${commit}`;

// Targets for runtrail, checked against the numbers above.
const checks = [];
if (SYSTEMS.includes('runtrail')) {
  const rt = results.runtrail;
  const allLost = [
    ...(ONLY.has('a') ? [sum(rt.a, 'lost'), sum(rt.a, 'dup')] : []),
    ...(ONLY.has('b') ? [sum(rt.b, 'lost'), sum(rt.b, 'dup')] : []),
    ...['c', 'd', 'f'].filter((w) => ONLY.has(w)).flatMap((w) => [rt[w].lost, rt[w].dup]),
    ...(ONLY.has('e') ? [rt.e.short?.lost, rt.e.short?.dup, rt.e.long?.lost, rt.e.long?.dup] : []),
  ];
  const failedAny = Object.values(rt).some((v) => (Array.isArray(v) ? v.some((x) => x.failed) : v.failed));
  checks.push(['zero lost / duplicate events in every workload', !failedAny && allLost.every((x) => x === 0)]);
  if (ONLY.has('a')) {
    const p99 = med(rt.a, 'p99');
    checks.push([`(a) p99 < 25 ms (${fmt(p99, 2)} ms)`, p99 < 25]);
    for (const base of ['ws', 'wsbatch'].filter((b) => SYSTEMS.includes(b))) {
      const baseP99 = med(results[base].a, 'p99');
      checks.push([`(a) p99 <= 1.2x ${LABEL[base]} p99 (${fmt(p99, 2)} vs ${fmt(1.2 * baseP99, 2)} ms)`, p99 <= 1.2 * baseP99]);
    }
  }
  if (ONLY.has('c')) checks.push([`(c) catch-up of ${fmtInt(P.c.events)} events < 1 s (${fmt(rt.c.catchUpS, 3)} s)`, rt.c.catchUpS != null && rt.c.catchUpS < 1]);
  if (ONLY.has('d')) checks.push([`(d) < 20 KiB per idle observer (${fmt(rt.d.perObserverKiB, 1)} KiB)`, rt.d.perObserverKiB < 20]);
}
const checkText = checks.map(([what, ok]) => `- ${ok ? 'MET' : 'MISSED'}: ${what}`).join('\n');

console.log(`\n${machine}\n${date}${quick ? ' (--quick sizes)' : ''}\n\n${table}\n\nruntrail targets:\n${checkText}\n`);

if (!flag('no-write')) {
  const md = `# Live delivery benchmark: runtrail vs plain ws vs Socket.IO

${date}${quick ? ' (**--quick sizes, not the real measurement**)' : ''}, ${machine}.
Produced by \`node bench/stream/run.mjs\` (${((Date.now() - startedAt) / 60_000).toFixed(1)} min); runtrail: ${runtrailBuild}.
Latency and throughput are medians of ${P.runs} run(s); every other workload ran once.

${table}

runtrail targets:
${checkText}

## How it was measured
- Three kinds of process per workload, started fresh for each system: the server, one producer, and
  the observers (${P.a.obsProcs} process(es) for (a), one otherwise), all on 127.0.0.1.
- runtrail: \`startServer\` from packages/server/dist, SQLite in a temp dir, log level silent. Watchers use
  the WebSocket protocol (\`subscribe\` with \`after\`) and resubscribe with after = last seq after a drop.
- plain ws: an HTTP endpoint that broadcasts each appended event to every open \`ws\` connection (one frame
  per event, serialized once), no log; a dropped watcher reconnects and gets what comes next.
- Socket.IO 4.8: the same broadcaster on a room, \`connectionStateRecovery\` with
  maxDisconnectionDuration ${P.e.recoveryMs / 1000} s (the default is 2 min; shortened so (e) can exceed it),
  clients on the websocket transport with their own reconnection.
- The producer appends over HTTP (\`POST /api/v1/runs/:id/events\`, same body for all three) like the
  runtrail producer SDK: a batch leaves 20 ms after its first event or at 500 events, one batch in flight.
  Each event carries its number \`i\` and the time its batch was sent (CLOCK_MONOTONIC, shared by all
  processes); latency = observer receive time - that send time, so it covers HTTP append, server, fan-out
  and the observer's socket, not the producer's 20 ms batching. The first ${P.a.warmupMs} ms of (a) are not counted.
  A server that accepts appends slower than the rate holds the producer's next batch back; that shows as
  a producer rate under ${P.a.rate} ev/s, not as latency.
- plain ws, frame/batch: the plain ws broadcaster sending one frame per appended batch in runtrail's frame
  format: runtrail's fan-out work without the log, so the p99 comparison shows what durability costs.
- Lost/duplicate = events of the producer's sequence an observer never got / got twice, summed over observers.
- CPU % = CPU time of each process over the workload's window, in % of one core. The machine has
  ${cpus().length} cores for all processes, so it shows which process limited a system.
- (a) ${P.a.observers} observers of one run, ${P.a.rate} events/s for ${P.a.durationMs / 1000} s. Delivered ev/s =
  events received / (last receive - first send), per observer and over all observers.
- (b) ${P.b.observers} observers, the producer sends full 500-event batches back to back for ${P.b.durationMs / 1000} s.
- (c) ${fmtInt(P.c.events)} events appended, then a new watcher (after=0); catch-up = its connect to its last
  backlog event. One live event follows, to know when a system with no replay has delivered all it will.
- (d) server RSS after GC with ${fmtInt(P.d.observers)} connected, subscribed, idle observers minus before them, / observers
  (the issue's measure). It includes one-off growth the first connections trigger (V8's young generation,
  malloc arenas), so the marginal row also gives (RSS at all - RSS at the first fifth) / the other four fifths.
- (e) two watchers lose their TCP connection 1 s into a ${P.e.rate} ev/s stream; one is back after
  ${P.e.shortGapMs / 1000} s, the other after ${P.e.longGapMs / 1000} s.
- (f) ${fmtInt(P.f.before)} events appended, then a watcher joins (after=0) while ${P.f.rate} ev/s keep coming for ${P.f.liveMs / 1000} s.

## Raw results
\`\`\`json
${JSON.stringify(results, null, 1)}
\`\`\`
`;
  writeFileSync(join(BENCH_DIR, 'results.md'), md);
  log('wrote bench/stream/results.md');
}
process.exit(0);
