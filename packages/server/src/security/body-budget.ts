import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { RuntrailError } from '@runtrail/protocol';
import { RAW_BODY_ROUTES } from '../http/errors.js';

/**
 * Bound the bytes of request bodies one client address has on their way
 * in at once. A JSON body is held in memory until it is whole, and only
 * the idle timeout ended a slow one, which one byte a minute never meets:
 * a client that sent all but the last byte of 8 MiB bodies over many
 * connections made the server hold 8 MiB each (60 of them: 340 MiB more;
 * the connections one address may open, thousands: far past the heap).
 * A body that would pass the budget is refused with 429 (the SDKs retry
 * it), and its bytes so far are let go. Artifact uploads and imports are
 * streamed to their files, not held, so they are not counted.
 *
 * The budget bounds how much such bodies hold, not for how long: a byte
 * every few seconds never met the idle timeout, so one body held its
 * bytes and its connection for ever. A JSON body must also arrive whole
 * within `timeoutMs` of its first being read (408 naming the setting,
 * and the connection closed, as nginx's client_body_timeout and Node's
 * requestTimeout do). Uploads and imports are left without a total time:
 * gigabytes over a slow link legitimately take longer than any fixed
 * bound, and the idle timeout still ends one that stops.
 */
export function limitRequestBodies(
  http: FastifyInstance,
  options: { maxBytesPerAddress: number; timeoutMs: number; clientKey: (request: IncomingMessage) => string },
): void {
  const max = options.maxBytesPerAddress;
  const held = new Map<string, number>();
  const deadlines = new Deadlines(options.timeoutMs);
  // A closed server's requests are over: its timer and their deadlines go with it.
  http.addHook('onClose', (_instance, done) => {
    deadlines.clear();
    done();
  });
  // An answer sent before its request's body came whole (the auth hook's 401/403, which runs before
  // the body is read): Node reads and drops the rest, for as long as it trickled in (a byte every
  // few seconds keeps the idle timeout away), as the deadline below bounds only bodies being read.
  // The rest gets the same time; a body that is whole by then keeps its keep-alive connection.
  http.addHook('onResponse', (request, _reply, done) => {
    const raw = request.raw;
    if (!raw.complete) {
      const deadline = deadlines.add(() => {
        // The request, not raw.socket: destroying it closes its connection, and a request made in-process
        // (http.inject, an embedder's tests) has a socket without destroy(), which threw from this timer.
        if (!raw.complete) raw.destroy();
      });
      raw.once('end', () => deadlines.forget(deadline));
    }
    done();
  });
  http.addHook('preParsing', (request, reply, payload, done) => {
    const route = request.routeOptions.config.routeName;
    if (route !== undefined && RAW_BODY_ROUTES.has(route)) return done(null, payload);
    // No body (a GET, a DELETE): nothing to count, and no stream to put in its way.
    const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
    if (chunked === undefined && (length === undefined || length === '0')) return done(null, payload);
    const address = options.clientKey(request.raw);
    let counted = 0;
    const release = (): void => {
      deadlines.forget(deadline);
      const left = (held.get(address) ?? 0) - counted;
      counted = 0;
      if (left <= 0) held.delete(address);
      else held.set(address, left);
    };
    // Over when the request is: answered, or its connection gone.
    reply.raw.once('close', release);
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        const now = held.get(address) ?? 0;
        if (now + chunk.length > max) {
          release();
          callback(
            new RuntrailError(
              'rate_limited',
              `client address ${address} is sending more than ${max} bytes of request bodies at once (maxBodyBytesPerIp on the server); send them one after another`,
              { retryAfterMs: 1000, limit: max },
            ),
          );
          return;
        }
        held.set(address, now + chunk.length);
        counted += chunk.length;
        callback(null, chunk);
      },
      flush(callback) {
        deadlines.forget(deadline);
        callback();
      },
    });
    const deadline = deadlines.add(() => {
      // Closed after the answer: else Node reads (and drops) the rest of the body for as long as it trickles.
      if (!reply.sent) void reply.header('connection', 'close');
      counter.destroy(
        new RuntrailError(
          'request_timeout',
          `the request body did not arrive whole within ${options.timeoutMs} ms (requestBodyTimeoutMs on the server); send each body at once, not a little at a time`,
          { limit: options.timeoutMs },
        ),
      );
    });
    payload.on('error', (err) => counter.destroy(err));
    payload.pipe(counter);
    done(null, counter);
  });
}

/**
 * Deadlines `ms` from when each was added, checked by one timer for all of
 * them: every append carries a body, and a timer set and cleared for each
 * cost more than the rest of this budget. One is met at most a tenth of
 * `ms` (and at most a second) late.
 */
class Deadlines {
  private readonly pending = new Set<{ dueAt: number; expire: () => void }>();
  private sweeper: NodeJS.Timeout | null = null;
  private readonly everyMs: number;

  constructor(private readonly ms: number) {
    this.everyMs = Math.max(10, Math.min(1000, Math.floor(ms / 10)));
  }

  add(expire: () => void): object {
    const deadline = { dueAt: Date.now() + this.ms, expire };
    this.pending.add(deadline);
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), this.everyMs);
      // Bodies under way never keep the process alive by themselves.
      this.sweeper.unref();
    }
    return deadline;
  }

  forget(deadline: object): void {
    this.pending.delete(deadline as { dueAt: number; expire: () => void });
  }

  clear(): void {
    this.pending.clear();
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private sweep(): void {
    const now = Date.now();
    for (const deadline of this.pending) {
      if (deadline.dueAt > now) continue;
      this.pending.delete(deadline);
      deadline.expire();
    }
    if (this.pending.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}

/**
 * A streamed body (an artifact upload, an import) as it comes, failing with
 * 408 once it is slower than `minBytesPerSecond` on average after its first
 * `graceMs`: each byte it brings earns it more time (Apache's
 * mod_reqtimeout MinRate), so gigabytes over a slow link are never cut,
 * but a byte every minute (which the idle timeout never ends) no longer
 * holds a connection and an open file for ever. `onTooSlow` runs first, so
 * the answer can close the connection instead of reading the rest.
 */
export async function* atLeastRate(
  body: AsyncIterable<Buffer>,
  options: { minBytesPerSecond: number; graceMs: number; now?: () => number; onTooSlow?: () => void },
): AsyncGenerator<Buffer> {
  const now = options.now ?? Date.now;
  const start = now();
  let received = 0;
  for await (const chunk of body) {
    received += chunk.length;
    const earnedMs = options.graceMs + (received * 1000) / options.minBytesPerSecond;
    if (now() - start > earnedMs) {
      options.onTooSlow?.();
      throw new RuntrailError(
        'request_timeout',
        `the body came slower than ${options.minBytesPerSecond} bytes per second on average after its first ${options.graceMs} ms (minUploadBytesPerSecond and requestBodyTimeoutMs on the server); send it again over a faster link`,
        { minBytesPerSecond: options.minBytesPerSecond, graceMs: options.graceMs, receivedBytes: received },
      );
    }
    yield chunk;
  }
}
