import { RuntrailError } from '@runtrail/protocol';

/** Keys a rate limiter remembers before it forgets the idle ones. */
const MAX_BUCKETS = 10_000;

/**
 * Token buckets by key (a run id, a connection): `ratePerSecond` sustained,
 * bursts up to `capacity`. Memory is bounded: idle (full) buckets are
 * dropped when there are too many, and a full bucket is what a new key gets
 * anyway, so forgetting one changes nothing.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly capacity: number,
    private readonly now: () => number,
  ) {}

  /** Take `n` tokens: 0 if granted, else how many ms until they would be (nothing is taken). */
  take(key: string, n: number): number {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.capacity, at: now };
    bucket.tokens = Math.min(this.capacity, bucket.tokens + ((now - bucket.at) * this.ratePerSecond) / 1000);
    bucket.at = now;
    if (!this.buckets.has(key)) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune();
      this.buckets.set(key, bucket);
    }
    if (bucket.tokens >= n) {
      bucket.tokens -= n;
      return 0;
    }
    return Math.ceil(((Math.min(n, this.capacity) - bucket.tokens) * 1000) / this.ratePerSecond);
  }

  /** Return `n` tokens taken for work that was not done (up to the bucket's capacity). */
  giveBack(key: string, n: number): void {
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.capacity, bucket.tokens + n);
  }

  forget(key: string): void {
    this.buckets.delete(key);
  }

  private prune(): void {
    const now = this.now();
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) * this.ratePerSecond) / 1000 >= this.capacity) this.buckets.delete(key);
    }
    // Everyone is busy: drop the oldest half rather than grow without bound.
    if (this.buckets.size >= MAX_BUCKETS) {
      let drop = this.buckets.size / 2;
      for (const key of this.buckets.keys()) {
        if (drop-- <= 0) break;
        this.buckets.delete(key);
      }
    }
  }
}

/**
 * `work` counted against `key`'s rate: 429 (from `refusal`, given the wait)
 * when the budget is spent, else the work, whose token is given back unless
 * `counts` says it did what the rate bounds. A refusal (an unknown run, a
 * cap reached) or a replay made nothing: charging it would push a client
 * retrying as it should over the budget by its own retries.
 */
export async function countedAgainst<T>(
  limiter: RateLimiter,
  key: string,
  refusal: (waitMs: number) => RuntrailError,
  work: () => Promise<T>,
  counts: (result: T) => boolean = () => true,
): Promise<T> {
  const wait = limiter.take(key, 1);
  if (wait > 0) throw refusal(wait);
  let spent = false;
  try {
    const result = await work();
    spent = counts(result);
    return result;
  } finally {
    if (!spent) limiter.giveBack(key, 1);
  }
}

/** A 429 that says when to come back (the error handler turns retryAfterMs into Retry-After). */
export function rateLimited(message: string, retryAfterMs: number): RuntrailError {
  return new RuntrailError('rate_limited', message, { retryAfterMs });
}

/** A 413 naming the limit and its setting. */
export function tooLarge(what: string, bytes: number, limit: number, setting: string): RuntrailError {
  return new RuntrailError(
    'payload_too_large',
    `${what} is ${bytes} bytes, over the limit of ${limit} bytes (${setting} on the server)`,
    { limit, bytes },
  );
}

/** The size limits of what producers send (ServerConfig's keys of the same names). */
export interface PayloadLimits {
  maxEventsPerBatch: number;
  maxEventDataBytes: number;
  maxMetaBytes: number;
  maxInputBytes: number;
  maxLabelsBytes: number;
}

/**
 * 413 unless every event's data fits its limit. One check for every way an
 * event gets into a log (an append, a finish's terminal event, an import),
 * so none of them can store what another refuses.
 */
export function checkEventData(
  events: ReadonlyArray<{ type: string; data?: unknown }>,
  limits: PayloadLimits,
  what = (type: string) => `the data of a ${type} event`,
): void {
  for (const event of events) {
    const bytes = jsonBytes(event.data);
    const meta = event.type === 'meta';
    const max = meta ? limits.maxMetaBytes : limits.maxEventDataBytes;
    if (bytes > max) throw tooLarge(what(event.type), bytes, max, meta ? 'maxMetaBytes' : 'maxEventDataBytes');
  }
}

/** 413 unless a run's input and labels fit their limits (a create, an import). */
export function checkRunData(run: { input?: unknown; labels?: unknown }, limits: PayloadLimits): void {
  const input = jsonBytes(run.input);
  if (input > limits.maxInputBytes) throw tooLarge('the run input', input, limits.maxInputBytes, 'maxInputBytes');
  const labels = jsonBytes(run.labels);
  if (labels > limits.maxLabelsBytes) throw tooLarge('the labels', labels, limits.maxLabelsBytes, 'maxLabelsBytes');
}

/** Bytes of a value as JSON (undefined: 0). */
export function jsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value));
}

/**
 * Open stream connections counted by key (a token, a client IP); `acquire`
 * refuses when any key is at its limit.
 */
export class ConnectionCounter {
  private readonly counts = new Map<string, number>();

  /** Count a connection under every key, or say which limit it would pass. */
  acquire(keys: Array<{ key: string; limit: number; what: string }>): { release(): void } | { refused: string } {
    for (const { key, limit, what } of keys) {
      if ((this.counts.get(key) ?? 0) >= limit) return { refused: `${what} has ${limit} stream connections open, the most allowed` };
    }
    for (const { key } of keys) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        for (const { key } of keys) {
          const left = (this.counts.get(key) ?? 1) - 1;
          if (left <= 0) this.counts.delete(key);
          else this.counts.set(key, left);
        }
      },
    };
  }
}
