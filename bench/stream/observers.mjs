// The observer process: many watchers of one run on one system, each
// counting what it receives by the producer's `data.i` (so lost and
// duplicate events are counted the same way on every system, whatever its
// own seq), and recording append->receive latency from `data.t`.
//
// How each system's watcher connects and resumes:
// - runtrail: WebSocket /api/v1/stream, {"op":"subscribe","runId","after"};
//   after a drop it subscribes again with after = the last seq it received.
// - ws: WebSocket /ws; after a drop it simply connects again.
// - socketio: socket.io-client (websocket transport), joins the run's room;
//   after a drop its own reconnection runs, and connectionStateRecovery
//   replays missed packets if the socket was away less than the server's
//   window (otherwise `recovered` is false and it joins again).
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';
import { Histogram, nowUs, serveRpc, waitUntil } from './lib.mjs';

const hist = new Histogram();
/** Events sent before this moment (nowUs) are not counted in the latency histogram: the warm-up. */
let measureFromUs = 0;
let watchers = [];

class Watcher {
  constructor(o) {
    // A variant of runtrail (run.mjs --variant) speaks runtrail's protocol.
    this.o = { ...o, system: o.system.split(':')[0] };
    this.seen = new Uint8Array((o.maxI ?? 1024) + 2);
    this.received = 0;
    this.distinct = 0;
    this.dup = 0;
    this.maxSeen = 0;
    this.lastSeq = o.after ?? 0;
    this.startUs = 0;
    this.completeUs = 0;
    this.firstRecvUs = 0;
    this.lastRecvUs = 0;
    this.connected = false;
    this.reconnects = 0;
    this.unexpectedCloses = 0;
    this.errors = [];
    this.cutting = false;
    this.closed = false;
    this.recovered = null;
  }

  onEvent(i, t, recvUs) {
    if (i >= this.seen.length) {
      const grown = new Uint8Array(Math.max(i + 2, this.seen.length * 2));
      grown.set(this.seen);
      this.seen = grown;
    }
    this.received++;
    if (this.seen[i] > 0) this.dup++;
    else {
      this.distinct++;
      if (this.o.target && this.distinct === this.o.target) this.completeUs = recvUs;
    }
    if (this.seen[i] < 255) this.seen[i]++;
    if (i > this.maxSeen) this.maxSeen = i;
    if (this.firstRecvUs === 0) this.firstRecvUs = recvUs;
    this.lastRecvUs = recvUs;
    if (this.o.measure && i >= (this.o.warmupI ?? 0) && t >= measureFromUs) hist.record(recvUs - t);
  }

  /** Resolves once the server has registered this watcher (events from now on reach it). */
  connect() {
    if (this.startUs === 0) this.startUs = nowUs();
    if (this.o.system === 'socketio') return this.connectSocketIo();
    return new Promise((resolve, reject) => {
      const path = this.o.system === 'runtrail' ? '/api/v1/stream' : '/ws';
      const ws = new WebSocket(this.o.url.replace(/^http/, 'ws') + path, { perMessageDeflate: this.o.system === 'runtrail' ? undefined : false });
      this.ws = ws;
      let settled = false;
      ws.on('open', () => {
        if (this.o.system === 'runtrail') {
          ws.send(JSON.stringify({ op: 'subscribe', runId: this.o.runId, after: this.lastSeq }));
        }
      });
      ws.on('message', (data) => {
        const recvUs = nowUs();
        const msg = JSON.parse(data);
        switch (msg.type) {
          case 'events':
            for (const e of msg.events) {
              if (e.seq <= this.lastSeq) this.errors.push(`seq ${e.seq} after ${this.lastSeq}`);
              this.lastSeq = e.seq;
              if (e.data && typeof e.data.i === 'number') this.onEvent(e.data.i, e.data.t, recvUs);
            }
            break;
          case 'event':
            this.onEvent(msg.event.data.i, msg.event.data.t, recvUs);
            break;
          case 'subscribed':
          case 'hello':
            this.connected = true;
            if (!settled) {
              settled = true;
              resolve();
            }
            break;
          case 'error':
            this.errors.push(`${msg.code}: ${msg.message}`);
            break;
          default:
            break;
        }
      });
      ws.on('error', (err) => {
        this.errors.push(String(err.message ?? err));
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      ws.on('close', () => {
        this.connected = false;
        if (this.closed) return;
        if (this.cutting) {
          this.cutting = false;
          setTimeout(() => this.reconnect(), this.o.gapMs ?? 0);
        } else {
          // The server dropped us (a keepalive or backpressure decision):
          // a real watcher reconnects at once, so this one does too.
          this.unexpectedCloses++;
          setTimeout(() => this.reconnect(), 50);
        }
      });
    });
  }

  reconnect() {
    if (this.closed) return;
    this.reconnects++;
    this.connect().catch((err) => this.errors.push(`reconnect: ${err.message}`));
  }

  connectSocketIo() {
    return new Promise((resolve) => {
      const gap = this.o.gapMs ?? 1000;
      const socket = ioClient(this.o.url, {
        transports: ['websocket'],
        forceNew: true,
        reconnectionDelay: gap,
        reconnectionDelayMax: gap,
        randomizationFactor: 0,
      });
      this.socket = socket;
      let settled = false;
      socket.on('event', (e) => this.onEvent(e.data.i, e.data.t, nowUs()));
      socket.on('connect', () => {
        const ready = () => {
          this.connected = true;
          if (!settled) {
            settled = true;
            resolve();
          }
        };
        if (settled) {
          this.reconnects++;
          this.recovered = socket.recovered;
        }
        // A recovered socket is back in its rooms with the missed packets;
        // otherwise it joins again, as an app would.
        if (socket.recovered) ready();
        else socket.emit('join', this.o.runId, ready);
      });
      socket.on('disconnect', (reason) => {
        this.connected = false;
        if (!this.cutting && !this.closed) this.unexpectedCloses++;
        this.cutting = false;
        void reason;
      });
      socket.on('connect_error', (err) => this.errors.push(`connect_error: ${err.message}`));
    });
  }

  /** Kill the TCP connection under the watcher, as a network drop would; it comes back after gapMs. */
  cut() {
    this.cutting = true;
    if (this.o.system === 'socketio') this.socket.io.engine.transport.ws._socket.destroy();
    else this.ws._socket.destroy();
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.disconnect();
    if (this.ws) this.ws.terminate();
  }

  complete(firstI, lastI) {
    if (this.completeThrough === lastI) return true;
    for (let i = firstI; i <= lastI; i++) if (i >= this.seen.length || this.seen[i] === 0) return false;
    this.completeThrough = lastI;
    return true;
  }

  /** Missing events among firstI..lastI. */
  lost(firstI, lastI) {
    let missing = 0;
    for (let i = firstI; i <= lastI; i++) if (i >= this.seen.length || this.seen[i] === 0) missing++;
    return missing;
  }
}

async function connectAll(options, count, concurrency) {
  const created = [];
  for (let k = 0; k < count; k++) created.push(new Watcher(options));
  let next = 0;
  const worker = async () => {
    while (next < created.length) {
      const w = created[next++];
      await w.connect();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return created;
}

serveRpc({
  /** Connect `count` watchers; resolves once every one is registered by the server. */
  async connect({ count, concurrency = 50, ...options }) {
    const start = nowUs();
    const created = await connectAll(options, count, concurrency);
    watchers.push(...created);
    return { count: created.length, ms: (nowUs() - start) / 1000, total: watchers.length };
  },

  /** Count latency only of events sent from `warmupMs` from now on. */
  measureFrom({ warmupMs }) {
    measureFromUs = nowUs() + warmupMs * 1000;
    return null;
  },

  cut({ indexes }) {
    for (const i of indexes) watchers[i].cut();
    return { cut: indexes.length };
  },

  /**
   * Wait until every watcher has seen event lastI and is connected (with a
   * deadline), then report lost/duplicate counts over firstI..lastI.
   */
  async settle({ firstI, lastI, timeoutMs, exact = false }) {
    // exact: several producer clients make the numbering arrive out of order, so seeing lastI does not
    // mean everything before it came: wait for every number (a watcher that has them all stays done).
    const done = await waitUntil(() => watchers.every((w) => w.maxSeen >= lastI && w.connected && (!exact || w.complete(firstI, lastI))), {
      timeoutMs,
      intervalMs: 20,
    });
    return summary(firstI, lastI, done);
  },

  summary: ({ firstI, lastI }) => summary(firstI, lastI, true),

  async closeAll() {
    for (const w of watchers) w.close();
    watchers = [];
    return null;
  },
});

function summary(firstI, lastI, settled) {
  let lost = 0;
  let dup = 0;
  let received = 0;
  let firstRecvUs = Infinity;
  let lastRecvUs = 0;
  const errors = [];
  const per = [];
  for (const w of watchers) {
    const l = lastI >= firstI ? w.lost(firstI, lastI) : 0;
    lost += l;
    dup += w.dup;
    received += w.received;
    if (w.firstRecvUs) firstRecvUs = Math.min(firstRecvUs, w.firstRecvUs);
    lastRecvUs = Math.max(lastRecvUs, w.lastRecvUs);
    errors.push(...w.errors.slice(0, 3));
    if (watchers.length <= 10) {
      per.push({
        lost: l,
        dup: w.dup,
        received: w.received,
        startUs: w.startUs,
        completeUs: w.completeUs,
        lastRecvUs: w.lastRecvUs,
        reconnects: w.reconnects,
        recovered: w.recovered,
        unexpectedCloses: w.unexpectedCloses,
      });
    }
  }
  return {
    settled,
    watchers: watchers.length,
    lost,
    dup,
    received,
    firstRecvUs,
    lastRecvUs,
    unexpectedCloses: watchers.reduce((s, w) => s + w.unexpectedCloses, 0),
    errors: errors.slice(0, 10),
    hist: hist.toJSON(),
    per,
  };
}
