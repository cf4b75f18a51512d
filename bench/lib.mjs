import http from 'node:http';
import { cpus, totalmem } from 'node:os';

/** What machine a figure was measured on, printed with every result. */
export function machine() {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} cores (${cpu.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

/**
 * How fast this machine is at what the benches spend their time on, measured
 * just before them: a round trip to another process over loopback TCP (a
 * socket write that wakes another process, as every request, commit and
 * frame here does) and a fixed amount of JSON work. Machines of one kind
 * differ: on 2026-11-27 two of them gave the same workload's cross-node
 * p99 as 0.3 s and 6 s, and these two figures are what tells such machines
 * apart, so every result line carries them.
 */
export async function machineSpeed() {
  const { spawn } = await import('node:child_process');
  const net = await import('node:net');
  // The echo runs in a process of its own: a round trip within one process wakes nobody.
  const echo = spawn(
    process.execPath,
    ['-e', `const s = require('node:net').createServer((c) => { c.setNoDelay(true); c.pipe(c); }).listen(0, '127.0.0.1', () => console.log(s.address().port));`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const port = await new Promise((resolve, reject) => {
      echo.stdout.once('data', (line) => resolve(Number(String(line).trim())));
      echo.once('exit', (code) => reject(new Error(`machineSpeed: echo process exited ${code}`)));
    });
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const rtts = [];
    const payload = Buffer.alloc(64, 1);
    for (let i = 0; i < 2000; i++) {
      const sent = process.hrtime.bigint();
      socket.write(payload);
      let got = 0;
      await new Promise((resolve) => {
        const onData = (chunk) => {
          got += chunk.length;
          if (got < payload.length) return;
          socket.off('data', onData);
          resolve();
        };
        socket.on('data', onData);
      });
      rtts.push(Number(process.hrtime.bigint() - sent) / 1000);
    }
    socket.destroy();
    // The fastest of 5 rounds: a busy neighbour or the JIT only ever adds time.
    let jsMs = Infinity;
    let checksum = 0;
    for (let round = 0; round < 5; round++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 100_000; i++) {
        const text = JSON.stringify({ seq: i, type: 'x.tick', ts: 1_764_000_000_000 + i, data: { i, label: `item ${i}`, scores: [i % 7, i % 11, i % 13] } });
        checksum += JSON.parse(text).data.scores[1];
      }
      jsMs = Math.min(jsMs, Number(process.hrtime.bigint() - started) / 1e6);
    }
    if (checksum < 0) throw new Error('unreachable: keeps the JSON work from being optimized away');
    return { loopbackRttUs: median(rtts.slice(200)), jsMs };
  } finally {
    echo.kill();
  }
}

/** machineSpeed's figures as a result line states them. */
export const speedText = ({ loopbackRttUs, jsMs }) =>
  `loopback round trip to another process ${loopbackRttUs.toFixed(0)} µs (median of 1,800), 100,000 JSON stringify+parse ${jsMs.toFixed(0)} ms (fastest of 5)`;

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * A runtrail server's delivery-latency histogram (commit, or a notified commit's read, to the
 * frame written to a WebSocket watcher's socket): the cumulative buckets of GET /metrics.
 */
export async function deliveryBuckets(url) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  const buckets = [];
  for (const m of text.matchAll(/^runtrail_delivery_latency_seconds_bucket\{([^}]*)\} (\S+)$/gm)) {
    if (!/transport="ws"/.test(m[1])) continue;
    const le = /le="([^"]+)"/.exec(m[1])[1];
    buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: Number(m[2]) });
  }
  return buckets;
}

/**
 * p50 and p99 in ms of the observations between two readings of a cumulative Prometheus histogram
 * (deliveryBuckets), interpolated linearly within a bucket as histogram_quantile does: as coarse as
 * the buckets (1, 2.5, 5, 10, 25, 50, 100 ms ...), enough to tell the server's share of a latency.
 */
export function bucketQuantiles(before, after) {
  if (!before || !after) return null;
  const counts = after.map((b, k) => ({ le: b.le, count: b.count - (before[k]?.count ?? 0) }));
  const total = counts.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const at = (q) => {
    const rank = q * total;
    let lowerLe = 0;
    let lowerCount = 0;
    for (const { le, count } of counts) {
      if (count >= rank) {
        if (le === Infinity) return lowerLe * 1000;
        return (lowerLe + ((le - lowerLe) * (rank - lowerCount)) / Math.max(1, count - lowerCount)) * 1000;
      }
      lowerLe = le;
      lowerCount = count;
    }
    return lowerLe * 1000;
  };
  return { p50: at(0.5), p99: at(0.99) };
}

export function fmt(n) {
  return Math.round(n).toLocaleString('en-US');
}

/**
 * A realistic mix: an LLM call starting, finishing, progress, a metric; each
 * with the idempotency id the producer SDK always sends.
 */
export function makeEvents(n, offset = 0) {
  const events = new Array(n);
  for (let i = 0; i < n; i++) {
    const k = offset + i;
    const callId = `c${k >> 2}`;
    const id = `producer-1.${k}`;
    switch (k % 4) {
      case 0: events[i] = { id, type: 'call.started', data: { callId, label: `Evaluating doc_${k >> 2} with gpt-4` } }; break;
      case 1: events[i] = { id, type: 'call.succeeded', data: { callId, durationMs: 120 } }; break;
      case 2: events[i] = { id, type: 'progress', data: { done: k >> 2, total: 1_000_000 } }; break;
      default: events[i] = { id, type: 'metric', data: { name: 'latency_ms', value: 120 + (k % 50), step: k >> 2 } };
    }
  }
  return events;
}

/**
 * One-by-one appends (one event per request) to a new run on the server at
 * `url`, from `concurrency` keep-alive clients; returns events/s and checks
 * the server stored every one. node:http rather than fetch: fetch's own
 * overhead would make this a benchmark of the client.
 */
export async function httpOneByOneAppends(url, total, concurrency) {
  const created = await fetch(`${url}/api/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench-http' }),
  }).then((r) => r.json());
  const { hostname, port } = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const path = `/api/v1/runs/${created.id}/events`;
  const post = (body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { hostname, port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`append answered ${res.statusCode}: ${Buffer.concat(chunks)}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const bodies = makeEvents(total).map((e) => JSON.stringify({ events: [e] }));
  let next = 0;
  const worker = async () => {
    while (next < total) await post(bodies[next++]);
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  const run = await fetch(`${url}/api/v1/runs/${created.id}`).then((r) => r.json());
  if (run.seq !== total) throw new Error(`expected seq ${total}, the server has ${run.seq}`);
  return total / seconds;
}
