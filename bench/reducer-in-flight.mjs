// Call events appended per second through the SQLite store with 10, 100 and
// 1,000 calls in flight (issue 12 item 7). The reducer folds every batch
// inside the append transaction and the snapshot (100 KB with 1,000 in
// flight) is persisted as a checkpoint every 1,000 events, so an event's cost
// must not grow with the calls in flight: target, the figure with 1,000 in
// flight >= 0.8x the one with 10.
// Each batch is half call ends, half call starts (the number in flight stays
// put), measured at 100 and 500 events per append (500 is the producer SDK's
// largest batch, which a busy producer sends).
//
//   npm run build && node bench/reducer-in-flight.mjs [--events 100000] [--runs 3] [--no-write]
//
// Prints the table and writes bench/reducer-in-flight.results.md.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SqliteRunStore } from '../packages/store/dist/index.js';
import { fmt, machine, median } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const total = Number(args.events);
const IN_FLIGHT = [10, 100, 1000];
const BATCHES = [100, 500];

async function measure(inFlight, batchSize, count = total) {
  const dir = mkdtempSync(join(tmpdir(), 'runtrail-bench-reducer-'));
  const store = new SqliteRunStore({ filename: join(dir, 'runtrail.db') });
  try {
    const { run } = await store.createRun({ id: 'bench-run', name: 'bench', now: Date.now(), leaseTtlMs: 30_000 });
    let next = 0;
    let oldest = 0;
    const start = () => ({ type: 'call.started', data: { callId: `c${next}`, label: `Evaluating doc_${next++} with gpt-4` } });
    for (let i = 0; i < inFlight; i += 500) {
      await store.append(run.id, Array.from({ length: Math.min(500, inFlight - i) }, start), { now: Date.now() });
    }
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (let done = 0; done < count; done += batchSize) {
      const events = [];
      for (let i = 0; i < batchSize / 2; i++) {
        events.push({ type: 'call.succeeded', data: { callId: `c${oldest++}`, durationMs: 5 } }, start());
      }
      await store.append(run.id, events, { now: Date.now() });
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const listed = Object.keys((await store.getRun(run.id)).snapshot.current).length;
    if (listed !== inFlight) throw new Error(`expected ${inFlight} calls in flight, the snapshot lists ${listed}`);
    return { wall: count / seconds, cpu: count / ((cpu.user + cpu.system) / 1e6) };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Untimed, so that the first figure does not pay for compiling the code paths.
for (const batch of BATCHES) await measure(1000, batch, 20_000);
const load = [];
const rates = {};
// Round by round over every figure, so that a change in the machine's load
// between rounds weighs on the figures alike and not on their ratio.
for (let r = 0; r < Number(args.runs); r++) {
  for (const batch of BATCHES) {
    for (const inFlight of IN_FLIGHT) {
      load.push(loadavg()[0]);
      (rates[`${batch}/${inFlight}`] ??= []).push(await measure(inFlight, batch));
    }
  }
}
const figures = Object.fromEntries(Object.entries(rates).map(([key, list]) => [key, median(list.map((r) => r.wall))]));
// Events per second of this process's CPU time: on a shared machine, steadier than wall time.
const cpuFigures = Object.fromEntries(Object.entries(rates).map(([key, list]) => [key, median(list.map((r) => r.cpu))]));
const ratio = (batch, of = figures) => of[`${batch}/1000`] / of[`${batch}/10`];
const lines = [
  `Call events appended through the SQLite store, ${fmt(total)} per figure, median of ${args.runs} runs.`,
  `${machine()}; 1-min load average during the runs ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)}`,
  '',
  `| calls in flight | ${BATCHES.map((b) => `events/s, ${b} events/append`).join(' | ')} |`,
  `|---|${BATCHES.map(() => '---|').join('')}`,
  ...IN_FLIGHT.map((n) => `| ${fmt(n)} | ${BATCHES.map((b) => fmt(figures[`${b}/${n}`])).join(' | ')} |`),
  `| 1,000 / 10 (target >= 0.8) | ${BATCHES.map((b) => `**${ratio(b).toFixed(2)}** ${ratio(b) >= 0.8 ? 'met' : 'NOT met'}`).join(' | ')} |`,
  '',
  `Per second of the bench process's CPU time (steadier than wall time on a shared machine): ${BATCHES.map(
    (b) => `${b}/append ${fmt(cpuFigures[`${b}/10`])} with 10 in flight, ${fmt(cpuFigures[`${b}/1000`])} with 1,000 (${ratio(b, cpuFigures).toFixed(2)})`,
  ).join('; ')}.`,
];
console.log(lines.join('\n'));
if (!args['no-write']) {
  const file = join(dirname(fileURLToPath(import.meta.url)), 'reducer-in-flight.results.md');
  writeFileSync(file, `# Reducer with many calls in flight (\`node bench/reducer-in-flight.mjs\`)\n\n${lines.join('\n')}\n`);
  console.log(`wrote ${file}`);
}
