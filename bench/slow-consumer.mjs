// A paused WebSocket reader while 200,000 events (~86 MiB) flow past it:
// the latency of a fast watcher (append -> its WebSocket has the batch) and
// the server's retained heap growth. These figures moved here from
// stream.test.ts, whose thresholds failed on a loaded machine; the unit test
// keeps what must hold at any speed (bounded buffer, order, catch-up).
//
//   npm run build && node --expose-gc bench/slow-consumer.mjs [--events 200000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { startServer } from '../packages/server/dist/index.js';
import { machine } from './lib.mjs';

const { values: args } = parseArgs({ options: { events: { type: 'string', default: '200000' } } });
const total = Number(args.events);
const batch = 2000;
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc (the heap figure is retained memory, not garbage)');

const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-bench-slow-'));
const server = await startServer({ port: 0, dataDir, logLevel: 'silent', sendBufferBytes: 256 * 1024, streamPingIntervalMs: 600_000 });
const wsUrl = server.url.replace(/^http/, 'ws') + '/api/v1/stream';
const { run } = await server.runs.create({ name: 'firehose' });

const open = (onMessage) =>
  new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    ws.on('message', onMessage);
    ws.once('open', () => {
      ws.send(JSON.stringify({ op: 'subscribe', runId: run.id, after: 0 }));
      resolve(ws);
    });
  });
const slow = await open(() => undefined);
slow.pause();
let fastSeq = 0;
let waiting = null;
const fast = await open((data) => {
  for (const e of JSON.parse(data.toString()).events ?? []) fastSeq = e.seq;
  if (waiting && fastSeq >= waiting.seq) waiting.resolve();
});
const reached = (seq) => (fastSeq >= seq ? Promise.resolve() : new Promise((resolve) => (waiting = { seq, resolve })));

const retained = () => {
  globalThis.gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
const before = retained();
let peak = 0;
const latencies = [];
const message = 'x'.repeat(400);
for (let done = 0; done < total; done += batch) {
  const events = Array.from({ length: batch }, (_, i) => ({ type: 'log', data: { level: 'info', message: `${done + i} ${message}` } }));
  const t0 = performance.now();
  await server.runs.appendEvents(run.id, events);
  await reached(done + batch);
  latencies.push(performance.now() - t0);
  if ((done / batch) % 10 === 9) peak = Math.max(peak, retained());
}
latencies.sort((a, b) => a - b);
const stats = server.stream.stats();
const p = (q) => latencies[Math.floor(latencies.length * q)].toFixed(1);
console.log(`machine: ${machine()}`);
console.log(`${total} events of ~450 B while one reader is paused (send buffer bound 256 KiB)`);
console.log(`fast watcher batch latency: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (target p99 < 1000 ms)`);
console.log(`server peak queued bytes per connection: ${stats.peakQueuedBytes}; blocked connections: ${stats.blockedConnections}`);
console.log(`retained heap+external growth: ${((peak - before) / 2 ** 20).toFixed(1)} MiB (target < 24 MiB: nothing held for the paused reader)`);
slow.terminate();
fast.terminate();
await server.close();
rmSync(dataDir, { recursive: true, force: true });
