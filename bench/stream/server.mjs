// The server process of one system under test: `node server.mjs <system>`.
// runtrail: the real server (startServer, SQLite in a temp dir).
// ws: the hand-built pattern: receive events over HTTP, broadcast each one to
//     whoever is connected right now; no log, no seq-based resume.
// wsbatch: the same, one frame per appended batch (runtrail's framing).
// socketio: the same broadcaster on Socket.IO 4.8 rooms with
//     connectionStateRecovery, which replays what a socket missed while it
//     was disconnected for less than maxDisconnectionDuration.
// All three take the producer's appends on the same route and body
// (POST /api/v1/runs/:id/events {events:[...]}) so the producer is identical.
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_DIR, serveRpc } from './lib.mjs';
import { deliveryBuckets } from '../lib.mjs';

// A variant of runtrail (run.mjs --variant: runtrail:name) is runtrail from another build.
const system = process.argv[2].split(':')[0];
const recoveryMs = Number(process.argv[3] ?? 10_000);

let closeServer = async () => {};
let profiler = null;

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/**
 * The HTTP side the broadcasters share: create a run (a name, nothing
 * stored) and append a batch, handing the batch to `broadcast` with a per-run
 * counter as each event's seq, as a hand-built backend would.
 */
function broadcasterHttp(broadcast) {
  const seqs = new Map();
  return createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      if (req.method === 'POST' && url.pathname === '/api/v1/runs') {
        await readJson(req);
        const id = `run-${seqs.size + 1}`;
        seqs.set(id, 0);
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id, seq: 0 }));
        return;
      }
      const m = /^\/api\/v1\/runs\/([^/]+)\/events$/.exec(url.pathname);
      if (req.method === 'POST' && m) {
        const runId = decodeURIComponent(m[1]);
        const body = await readJson(req);
        let seq = seqs.get(runId) ?? 0;
        const events = body.events.map((event) => ({
          runId,
          seq: ++seq,
          type: event.type,
          ts: event.ts ?? Date.now(),
          data: event.data,
          id: event.id,
        }));
        seqs.set(runId, seq);
        broadcast(runId, events);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ seq }));
        return;
      }
      res.writeHead(404).end();
    } catch (err) {
      res.writeHead(500).end(String(err));
    }
  });
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

async function startRuntrail() {
  // --runtrail-dist (run.mjs) points at another build, to measure a proposed server change side by side.
  const dist = process.env.BENCH_RUNTRAIL_DIST || join(REPO_DIR, 'packages/server/dist');
  const { startServer } = await import(join(dist, 'index.js'));
  const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-bench-'));
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir,
    logLevel: 'silent',
    // Every observer comes from 127.0.0.1 without a token, and the producer flat out exceeds one run's
    // default append rate: the abuse limits (1,024 streams per address, 20,000 ev/s per run, 1,000 WebSocket
    // messages/s per address: 1,000 observers resubscribing at once) are policy, not the machinery measured
    // here, and the broadcasters have none.
    maxConnectionsPerIp: 100_000,
    wsMessagesPerSecondPerIp: 10_000_000,
    maxConnectionsPerToken: 100_000,
    appendEventsPerSecond: 10_000_000,
  });
  closeServer = async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return server.url;
}

/**
 * perBatch=false: one frame per event, the pattern of the issue.
 * perBatch=true: one frame per appended batch, in runtrail's frame format:
 * the same fan-out work as runtrail minus the log, to see what durability costs.
 */
async function startWs(perBatch) {
  const { WebSocketServer } = await import('ws');
  const clients = new Set();
  const http = broadcasterHttp((runId, events) => {
    const frames = perBatch
      ? [JSON.stringify({ type: 'events', runId, events })]
      : events.map((event) => JSON.stringify({ type: 'event', runId, event }));
    for (const frame of frames) for (const ws of clients) if (ws.readyState === 1) ws.send(frame);
  });
  const wss = new WebSocketServer({ server: http, path: '/ws' });
  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
    // Tells the client it is registered: events from here on reach it.
    ws.send('{"type":"hello"}');
  });
  const url = await listen(http);
  closeServer = async () => {
    for (const ws of clients) ws.terminate();
    wss.close();
    await new Promise((r) => http.close(r));
  };
  return url;
}

async function startSocketIo() {
  const { Server } = await import('socket.io');
  let io = null;
  const http = broadcasterHttp((runId, events) => {
    for (const event of events) io.to(runId).emit('event', event);
  });
  io = new Server(http, {
    serveClient: false,
    connectionStateRecovery: { maxDisconnectionDuration: recoveryMs, skipMiddlewares: true },
  });
  io.on('connection', (socket) => {
    socket.on('join', (runId, ack) => {
      void socket.join(runId);
      ack({ ok: true });
    });
  });
  const url = await listen(http);
  closeServer = async () => {
    io.disconnectSockets(true);
    await new Promise((r) => io.close(() => r()));
  };
  return url;
}

const starters = {
  runtrail: startRuntrail,
  ws: () => startWs(false),
  wsbatch: () => startWs(true),
  socketio: startSocketIo,
};
if (!starters[system]) throw new Error(`unknown system ${system}`);
const url = await starters[system]();

serveRpc({
  url: () => url,
  /**
   * runtrail's own delivery-latency histogram (commit → frame written to a watcher's socket), its
   * cumulative bucket counts now: run.mjs subtracts two readings to split a workload's latency into
   * the server's part and the rest (kernel, observer processes). null for the broadcasters.
   */
  deliveryBuckets: async () => (system === 'runtrail' ? deliveryBuckets(url) : null),
  /** Resident memory after a full collection (the process runs with --expose-gc). */
  memory: async () => {
    for (let i = 0; i < 3; i++) {
      global.gc();
      await new Promise((r) => setTimeout(r, 50));
    }
    const m = process.memoryUsage();
    // Space sizes tell a per-connection cost from a one-off growth of V8's young generation.
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((sp) => [sp.space_name, sp.space_size]));
    return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
  },
  close: async () => {
    await closeServer();
  },
  /** V8 CPU profile of the workload's window only (run.mjs --cpu-prof): not start-up, connects or shutdown. */
  profileStart: async () => {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
  },
  profileStop: async ({ file }) => {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    writeFileSync(file, JSON.stringify(profile));
    return file;
  },
});
