// What a watcher saves by subscribing `compact` (events without the runId
// each would repeat; what the SDK, and so the dashboard, does): its CPU time
// to receive and parse a run's events, and the bytes it is sent.
//
// One server on SQLite; per round, a run and 200 WebSocket watchers in a
// process of their own, all subscribed compact or all not; a producer
// appends 20,000 events in batches of 20; the watchers' process reports its
// CPU time once each has every event, and the bytes its sockets received.
// Rounds alternate the order (full, compact / compact, full); medians, and
// the median of each round's compact/whole ratio.
//
//   node bench/compact-frames.mjs [--rounds 6] [--watchers 200] [--events 20000]
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { fmt, machine, machineSpeed, median, speedText } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    watchers: { type: 'string', default: '200' },
    events: { type: 'string', default: '20000' },
    watch: { type: 'string' },
    'run-id': { type: 'string' },
    compact: { type: 'boolean', default: false },
  },
});

/** The watchers' process: reports when all are subscribed, then its CPU time and bytes once all have every event. */
function watch() {
  const count = Number(args.watchers);
  const total = Number(args.events);
  let subscribed = 0;
  let complete = 0;
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(args.watch);
    let seen = 0;
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', runId: args['run-id'], after: 0, compact: args.compact })));
    ws.on('message', (raw) => {
      bytes += raw.length;
      const msg = JSON.parse(raw.toString());
      if (msg.type === 'subscribed' && ++subscribed === count) process.send({ subscribed });
      if (msg.type !== 'events') return;
      // Touch what a watcher reads, so nothing parsed goes unused.
      for (const e of msg.events) if (e.seq > 0 && e.data.i >= 0) seen++;
      if (seen === total && ++complete === count) {
        const cpu = process.cpuUsage();
        process.send({ cpuMs: (cpu.user + cpu.system) / 1000, bytes }, () => process.exit(0));
      }
    });
  }
}

async function main() {
  const { startServer } = await import('../packages/server/dist/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'rt-bench-compact-'));
  const server = await startServer({ port: 0, dataDir: dir, logLevel: 'silent' });
  const post = (path, body) =>
    fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
  const total = Number(args.events);
  const speed = await machineSpeed();
  const results = { full: { cpuMs: [], bytes: [] }, compact: { cpuMs: [], bytes: [] } };
  try {
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const mode of round % 2 === 0 ? ['full', 'compact'] : ['compact', 'full']) {
        const run = await post('/api/v1/runs', { name: 'bench-compact' });
        const wsUrl = `${server.url.replace(/^http/, 'ws')}/api/v1/stream`;
        const child = fork(new URL(import.meta.url).pathname, [
          '--watch', wsUrl, '--run-id', run.id, '--watchers', args.watchers, '--events', args.events, ...(mode === 'compact' ? ['--compact'] : []),
        ]);
        const next = () =>
          new Promise((resolve, reject) => {
            child.once('message', resolve);
            child.once('exit', (code) => reject(new Error(`watchers' process exited ${code}`)));
          });
        await next();
        const done = next();
        for (let i = 0; i < total; i += 20) {
          await post(`/api/v1/runs/${run.id}/events`, { events: Array.from({ length: 20 }, (_, k) => ({ type: 'x.tick', data: { sentAt: Date.now(), i: i + k } })) });
        }
        const { cpuMs, bytes } = await done;
        results[mode].cpuMs.push(cpuMs);
        results[mode].bytes.push(bytes);
        process.stderr.write(`round ${round + 1} ${mode}: watchers' CPU ${fmt(cpuMs)} ms, ${fmt(bytes)} bytes received\n`);
      }
    }
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const deliveries = total * Number(args.watchers);
  // Each round measured both, one after the other: its pair's ratio is steadier than a ratio of medians.
  const ratios = (figure) => {
    const r = results.compact[figure].map((c, i) => c / results.full[figure][i]);
    return `${median(r).toFixed(2)}× (${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)})`;
  };
  const line = (mode) => {
    const r = results[mode];
    return `| ${mode === 'compact' ? '`"compact":true`' : 'whole events'} | ${((1000 * median(r.cpuMs)) / deliveries).toFixed(2)} µs | ${(median(r.bytes) / deliveries).toFixed(0)} bytes |`;
  };
  process.stdout.write(
    [
      `${fmt(Number(args.watchers))} WebSocket watchers in one process, ${fmt(total)} events appended in batches of 20, median of ${args.rounds} rounds; ${machine()}; ${speedText(speed)}`,
      '',
      "| subscription | watchers' CPU per event delivered (connecting included) | received per event delivered |",
      '|---|---|---|',
      line('full'),
      line('compact'),
      `| compact / whole, median of the rounds' pairs (range) | ${ratios('cpuMs')} | ${ratios('bytes')} |`,
      '',
    ].join('\n'),
  );
}

if (args.watch) watch();
else await main();
