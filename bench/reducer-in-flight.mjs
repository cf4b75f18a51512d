// Appends/s of call events through the SQLite store with 10, 100 and 1,000
// calls in flight (issue 12 item 7): the reducer runs inside every append
// transaction, so its cost per event must not grow with the calls in flight.
// Each batch is 100 call events (50 ends, 50 starts, so the number in flight
// stays put), the way the producer SDK batches.
//
//   npm run build && node bench/reducer-in-flight.mjs [--events 100000] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteRunStore } from '../packages/store/dist/index.js';
import { fmt, machine, median } from './lib.mjs';

const { values: args } = parseArgs({ options: { events: { type: 'string', default: '100000' }, runs: { type: 'string', default: '3' }, batch: { type: 'string', default: '100' } } });
const total = Number(args.events);
const batchSize = Number(args.batch);

async function measure(inFlight) {
  const dir = mkdtempSync(join(tmpdir(), 'runtrail-bench-reducer-'));
  const store = new SqliteRunStore({ filename: join(dir, 'runtrail.db') });
  try {
    const { run } = await store.createRun({ id: 'bench-run', name: 'bench', now: Date.now(), leaseTtlMs: 30_000 });
    let next = 0;
    let oldest = 0;
    const start = (n) => Array.from({ length: n }, () => ({ type: 'call.started', data: { callId: `c${next}`, label: `call ${next++}` } }));
    for (let i = 0; i < inFlight; i += 500) await store.append(run.id, start(Math.min(500, inFlight - i)), { now: Date.now() });
    const t0 = performance.now();
    for (let done = 0; done < total; done += batchSize) {
      const events = [];
      for (let i = 0; i < batchSize / 2; i++) {
        events.push({ type: 'call.succeeded', data: { callId: `c${oldest++}`, durationMs: 5 } });
        events.push(...start(1));
      }
      await store.append(run.id, events, { now: Date.now() });
    }
    const seconds = (performance.now() - t0) / 1000;
    const final = await store.getRun(run.id);
    if (Object.keys(final.snapshot.current).length !== inFlight) throw new Error(`expected ${inFlight} in flight, found ${Object.keys(final.snapshot.current).length}`);
    return total / seconds;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`machine: ${machine()}`);
console.log(`${total} call events per figure, batches of ${batchSize}, median of ${args.runs} runs`);
const figures = {};
for (const inFlight of [10, 100, 1000]) {
  const rates = [];
  for (let r = 0; r < Number(args.runs); r++) rates.push(await measure(inFlight));
  figures[inFlight] = median(rates);
  console.log(`${String(inFlight).padStart(5)} in flight: ${fmt(figures[inFlight])} events/s`);
}
const ratio = figures[1000] / figures[10];
console.log(`1,000 in flight / 10 in flight: ${ratio.toFixed(2)} (target >= 0.8) ${ratio >= 0.8 ? 'MET' : 'NOT MET'}`);
