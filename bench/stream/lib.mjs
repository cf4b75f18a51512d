// Shared helpers of the stream benchmark: child processes with an RPC over
// the IPC channel, a clock every process on the machine shares, and a
// latency histogram that can be merged across processes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = join(BENCH_DIR, '..', '..');

/**
 * Microseconds on CLOCK_MONOTONIC. It is one clock for the whole machine, so
 * a time taken in the producer and one taken in an observer subtract
 * correctly (Date.now() would too, but only to the millisecond).
 */
export function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Start a bench process with an IPC channel. Through bash so the fd limit can
 * be raised first: 5,000 sockets need more than the usual 1,024. child_process
 * sets NODE_CHANNEL_FD for the 'ipc' stdio slot, and `exec` keeps it, so the
 * node started by bash is connected exactly as with fork().
 */
export function startChild(script, { args = [], nodeArgs = [], env = {} } = {}) {
  const cmd = `ulimit -n "$(ulimit -Hn)"; exec "${process.execPath}" ${nodeArgs.join(' ')} "${join(BENCH_DIR, script)}" ${args
    .map((a) => `'${a}'`)
    .join(' ')}`;
  const child = spawn('bash', ['-c', cmd], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  return new ChildRpc(child, script);
}

/** The parent's side of a child: call(cmd, args) -> Promise of its answer. */
export class ChildRpc {
  constructor(child, name) {
    this.child = child;
    this.name = name;
    this.pid = child.pid;
    this.nextId = 1;
    this.pending = new Map();
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        for (const { reject } of this.pending.values()) {
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) during a call`));
        }
        this.pending.clear();
        resolve({ code, signal });
      });
    });
    child.on('message', (msg) => {
      const waiting = this.pending.get(msg.id);
      if (!waiting) return;
      this.pending.delete(msg.id);
      clearTimeout(waiting.timer);
      if (msg.error) waiting.reject(new Error(`${name}: ${msg.error}`));
      else waiting.resolve(msg.result);
    });
  }

  call(cmd, args = {}, timeoutMs = 120_000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} took more than ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ id, cmd, args });
    });
  }

  /** Ask the child to exit; kill it if it does not within a few seconds. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      await this.call('exit', {}, 5_000);
    } catch (err) {
      // The child may exit before it can answer; only a child still alive matters.
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
      void err;
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** The child's side: serve(handlers); handlers[cmd](args) may be async. */
export function serveRpc(handlers) {
  process.on('message', async (msg) => {
    const { id, cmd, args } = msg;
    if (cmd === 'exit') {
      process.send({ id, result: null }, () => process.exit(0));
      return;
    }
    // Every bench process answers `cpu`, so a workload can tell which process was the bottleneck.
    const handler = cmd === 'cpu' ? () => process.cpuUsage() : handlers[cmd];
    try {
      if (!handler) throw new Error(`unknown command ${cmd}`);
      const result = await handler(args);
      process.send({ id, result: result ?? null });
    } catch (err) {
      process.send({ id, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    }
  });
  // The parent going away (crash, ^C) must not leave bench processes behind.
  process.on('disconnect', () => process.exit(0));
}

/** Poll a condition until it holds or the deadline passes; true if it held. */
export async function waitUntil(cond, { timeoutMs, intervalMs = 5 }) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return true;
}

/**
 * Latency histogram in 10 µs buckets up to 10 s (larger values land in the
 * last bucket). Sent between processes as [bucket, count] pairs.
 */
export class Histogram {
  static BUCKET_US = 10;
  static BUCKETS = 1_000_000;

  constructor() {
    this.counts = new Uint32Array(Histogram.BUCKETS);
    this.n = 0;
    this.maxUs = 0;
  }

  record(us) {
    const b = Math.min(Histogram.BUCKETS - 1, Math.max(0, Math.floor(us / Histogram.BUCKET_US)));
    this.counts[b] += 1;
    this.n += 1;
    if (us > this.maxUs) this.maxUs = us;
  }

  toJSON() {
    const pairs = [];
    for (let b = 0; b < this.counts.length; b++) if (this.counts[b] > 0) pairs.push([b, this.counts[b]]);
    return { pairs, n: this.n, maxUs: this.maxUs };
  }

  static merge(parts) {
    const h = new Histogram();
    for (const part of parts) {
      for (const [b, c] of part.pairs) h.counts[b] += c;
      h.n += part.n;
      h.maxUs = Math.max(h.maxUs, part.maxUs);
    }
    return h;
  }

  /** Value (µs, bucket midpoint) below which a fraction q of samples lie. */
  quantileUs(q) {
    if (this.n === 0) return NaN;
    const target = Math.ceil(q * this.n);
    let seen = 0;
    for (let b = 0; b < this.counts.length; b++) {
      seen += this.counts[b];
      if (seen >= target) return (b + 0.5) * Histogram.BUCKET_US;
    }
    return this.maxUs;
  }
}

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}
