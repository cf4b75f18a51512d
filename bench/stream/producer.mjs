// The producer process: `node producer.mjs <baseUrl>`. It appends over HTTP
// the way the runtrail producer SDK does (RunHandle): events queue up, a
// batch leaves 20 ms after its first event or at once when 500 wait, one
// batch in flight at a time, each event with an idempotency id. Every event
// carries `data.i` (1, 2, 3, ... per run: what observers count lost and
// duplicate events by) and `data.t`, the moment its batch was handed to the
// socket (nowUs), from which observers compute latency.
import http from 'node:http';
import { nowUs, serveRpc } from './lib.mjs';

const base = new URL(process.argv[2]);
// One socket per concurrent client: `paced` with clients=32 is 32 keep-alive connections.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const FLUSH_MS = 20;
const MAX_BATCH = 500;
const owner = { kind: 'producer', node: 'bench', id: `bench-${process.pid}` };

function post(path, body) {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        path,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode >= 300) reject(new Error(`POST ${path}: ${res.statusCode} ${text}`));
          else resolve(JSON.parse(text));
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`POST ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

let runId = null;
let nextI = 1;

function makeEvent() {
  const i = nextI++;
  return { type: 'x.bench', data: { i, t: 0 }, ts: Date.now(), id: `${owner.id}.${i}` };
}

async function send(batch) {
  const t = nowUs();
  for (const e of batch) e.data.t = t;
  return post(`/api/v1/runs/${encodeURIComponent(runId)}/events`, { events: batch, owner });
}

serveRpc({
  async createRun() {
    const run = await post('/api/v1/runs', { name: 'bench', owner, leaseTtlMs: 600_000 });
    runId = run.id;
    nextI = 1;
    return { runId, seq: run.seq };
  },

  /**
   * Produce `rate` events/s for `durationMs`, batched as the SDK does.
   * Events are generated on schedule whether or not the server keeps up;
   * a server slower than the rate shows up as a growing queue (and latency).
   */
  async rate({ rate, durationMs }) {
    const firstI = nextI;
    const start = nowUs();
    const total = Math.round((rate * durationMs) / 1000);
    let generated = 0;
    let queue = [];
    let inFlight = null;
    let firstQueuedAt = 0;
    let acked = 0;
    let failure = null;
    const pump = () => {
      if (inFlight || queue.length === 0 || failure) return;
      const due = queue.length >= MAX_BATCH || nowUs() - firstQueuedAt >= FLUSH_MS * 1000 || generated >= total;
      if (!due) return;
      const batch = queue.slice(0, MAX_BATCH);
      queue = queue.slice(batch.length);
      firstQueuedAt = nowUs();
      inFlight = send(batch).then(
        () => {
          acked += batch.length;
          inFlight = null;
          pump();
        },
        (err) => {
          failure = err;
        },
      );
    };
    await new Promise((resolve, reject) => {
      const tick = () => {
        if (failure) return reject(failure);
        const shouldHave = Math.min(total, Math.floor(((nowUs() - start) / 1e6) * rate));
        while (generated < shouldHave) {
          if (queue.length === 0) firstQueuedAt = nowUs();
          queue.push(makeEvent());
          generated++;
        }
        pump();
        if (generated >= total && queue.length === 0 && !inFlight) return resolve();
        setTimeout(tick, 1);
      };
      tick();
    });
    return { firstI, lastI: nextI - 1, startUs: start, endUs: nowUs(), acked };
  },

  /**
   * The pipelines of field-notes.md: every request carries `perRequest`
   * events (1: one event per call completion), sent by `clients` concurrent
   * HTTP clients, each with one request in flight. With `rate`, events are
   * generated on schedule (`perRequest` of them every perRequest/rate s), and
   * a server slower than that shows as an achieved rate under `rate`; without
   * it each client sends its next request as soon as the last is answered
   * (the most the server accepts). Each request's events carry the moment it
   * was sent.
   */
  async paced({ rate = null, durationMs, clients = 1, perRequest = 1 }) {
    const firstI = nextI;
    const start = nowUs();
    const endUs = start + durationMs * 1000;
    // A server that falls behind the schedule is given half the duration again to catch up; what is
    // still queued then is never sent (the workload reports the rate it achieved, not a longer run).
    const giveUpUs = start + durationMs * 1500;
    let sentI = firstI - 1;
    const total = rate ? Math.round((rate * durationMs) / 1000) : Infinity;
    let generated = 0;
    let queue = [];
    let failure = null;
    /** Clients waiting for the schedule to make the next events. */
    let waiting = [];
    const wakeAll = () => {
      const w = waiting;
      waiting = [];
      for (const r of w) r();
    };
    const generate = () => {
      // Whole requests' worth at a time: "5 events every 10 ms" makes 5 at each 10 ms boundary.
      const due = Math.min(total, Math.floor(((nowUs() - start) / 1e6) * (rate / perRequest)) * perRequest);
      while (generated < due) {
        queue.push(makeEvent());
        generated++;
      }
    };
    const ticker = rate
      ? setInterval(() => {
          generate();
          if (queue.length > 0 || generated >= total) wakeAll();
        }, 1)
      : null;
    const client = async () => {
      for (;;) {
        if (failure) return;
        if (rate) {
          generate();
          if (nowUs() >= giveUpUs) return;
          if (queue.length === 0) {
            if (generated >= total) return;
            await new Promise((r) => waiting.push(r));
            continue;
          }
        } else if (nowUs() >= endUs) return;
        const batch = rate ? queue.splice(0, perRequest) : Array.from({ length: perRequest }, makeEvent);
        for (const e of batch) if (e.data.i > sentI) sentI = e.data.i;
        try {
          await send(batch);
        } catch (err) {
          failure = err;
          return;
        }
      }
    };
    const workers = Array.from({ length: clients }, client);
    await Promise.all(workers);
    if (ticker) clearInterval(ticker);
    if (failure) throw failure;
    // Unsent events are the newest (the queue is first in, first out): numbering resumes after the last sent.
    nextI = sentI + 1;
    return { firstI, lastI: sentI, startUs: start, endUs: nowUs(), acked: sentI - firstI + 1, unsent: queue.length };
  },

  /** Append as fast as the server accepts: full batches, one in flight, for durationMs or count events. */
  async burst({ durationMs = Infinity, count = Infinity, batch = MAX_BATCH }) {
    const firstI = nextI;
    const start = nowUs();
    let sent = 0;
    while (sent < count && nowUs() - start < durationMs * 1000) {
      const n = Math.min(batch, count - sent);
      const events = [];
      for (let k = 0; k < n; k++) events.push(makeEvent());
      await send(events);
      sent += n;
    }
    return { firstI, lastI: nextI - 1, startUs: start, endUs: nowUs(), acked: sent };
  },
});
