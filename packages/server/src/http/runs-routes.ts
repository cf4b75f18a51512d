import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY_CHARS, MAX_READ_LIMIT, RuntrailError, labelsAsSent, type Run } from '@runtrail/protocol';
import { terminalEventOf, type RunService } from '../runs/run-service.js';
import { ConnectionCounter, authorizeEvents, checkEventData, checkRunData, countedAgainst, rateLimited, type PayloadLimits, type RateLimiter } from '../security/index.js';
import { serve } from './route-table.js';

export interface RunRoutesOptions {
  /** Throws handler_not_found unless this node, or another live one, can execute runs of that name. */
  requireHandler?: (name: string, input?: unknown) => void | Promise<void>;
  /** Size limits of what producers send (see ServerConfig); absent: the protocol's own bounds only. */
  limits?: PayloadLimits;
  /** Events per second per run; absent: unlimited. */
  appendRate?: RateLimiter;
  /** Runs created (and retried) per second per client key, and its setting's value; absent: unlimited. */
  createRate?: { limiter: RateLimiter; perSecond: number };
  /**
   * Heartbeats held open (?waitMs=) at once per client address and per
   * token (the stream connection limits); one past them is answered at
   * once, as by a server that does not hold. Absent: 1,024 each.
   * `maxHoldMs`: the longest one is held (half the connection idle
   * timeout, so the wait never reads as an idle connection to close).
   */
  heldHeartbeats?: { perIp: number; perToken: number; maxHoldMs?: number };
  /**
   * Bytes one page holds at most: of events (readEvents), of runs' inputs, outputs and errors
   * (listRuns); at least one of either. Absent: no bound but the count.
   */
  readPageBytes?: number;
  /** The key a held heartbeat is counted under: its client's address (an IPv6 one by its /64; see addressKey). */
  clientKey: (request: IncomingMessage) => string;
}

export function registerRunRoutes(app: FastifyInstance, runs: RunService, options: RunRoutesOptions): void {
  /**
   * `make` a run for the client of `request`, or 429 past its address's rate: each one is a
   * row kept until deleted and a message to every live list, and nothing else bounded how fast one client made them.
   * Only a run made counts: a replay of an Idempotency-Key (the client's retry after a lost answer) or a refusal
   * gives its token back, so a producer retrying as it should is not pushed over the budget by its own retries.
   */
  const countedCreate = async (request: IncomingMessage, make: () => Promise<{ run: Run; created: boolean }>) => {
    const rate = options.createRate;
    if (!rate) return make();
    const address = options.clientKey(request);
    return countedAgainst(
      rate.limiter,
      address,
      (wait) => rateLimited(`client address ${address} is creating runs faster than ${rate.perSecond} per second (createRunsPerSecondPerIp on the server); retry after Retry-After`, wait),
      make,
      (result) => result.created,
    );
  };
  serve(app, 'createRun', async ({ body, request, reply }) => {
    if (options.limits) checkRunData(body, options.limits);
    if (body.execute) await options.requireHandler?.(body.name, body.input);
    const key = idempotencyKeyOf(request.headers);
    const labels = labelsAsSent(request.body, body.labels);
    const { run, created } = await countedCreate(request.raw, () => runs.create({ ...body, labels }, key === undefined ? {} : { idempotencyKey: key }));
    void reply.status(created ? 201 : 200);
    return run;
  });

  // A page of runs with large inputs is cut short by its bytes, with a nextCursor to the rest.
  serve(app, 'listRuns', async ({ query }) => runs.list(query, options.readPageBytes));
  serve(app, 'countRuns', async ({ query }) => runs.count(query));
  serve(app, 'getRun', async ({ params }) => runs.get(params.id!));

  serve(app, 'deleteRun', async ({ params, reply }) => {
    await runs.delete(params.id!);
    void reply.status(204);
    return null;
  });

  serve(app, 'appendEvents', async ({ params, body, request }) => {
    authorizeEvents(request.principal, body.events);
    if (options.limits) checkEventData(body.events, options.limits);
    const wait = options.appendRate?.take(params.id!, body.events.length) ?? 0;
    if (wait > 0) throw rateLimited(`run ${params.id} is receiving events faster than this server accepts; retry later`, wait);
    return runs.append(params.id!, body);
  }, {
    // Counted before the schema checks every event: a batch over the setting is a size problem (413), not a malformed one.
    precheck: (raw) => {
      const max = options.limits?.maxEventsPerBatch;
      const events = (raw as { events?: unknown } | null | undefined)?.events;
      if (max !== undefined && Array.isArray(events) && events.length > max) {
        throw new RuntrailError(
          'payload_too_large',
          `${events.length} events in one append, over the limit of ${max} (maxEventsPerBatch on the server); send smaller batches`,
          { limit: max },
        );
      }
    },
  });

  serve(app, 'readEvents', async ({ params, query, reply }) => {
    // A page of big events is cut short by its bytes: its `seq` tells the reader more is waiting.
    const body = await runs.readEventsJson(params.id!, query.after ?? 0, query.limit ?? MAX_READ_LIMIT, options.readPageBytes);
    // Already JSON (the events' stored texts): sent as it is.
    void reply.type('application/json; charset=utf-8');
    return body;
  });

  serve(app, 'finishRun', async ({ params, body }) => {
    // The output (and error) become the terminal event's data: the same limit as any event's.
    if (options.limits) checkEventData([terminalEventOf(body)], options.limits, (type) => `the finish's output and error (the data of its ${type} event)`);
    return runs.finish(params.id!, body);
  });
  const held = new ConnectionCounter();
  const heldLimits = options.heldHeartbeats ?? { perIp: 1024, perToken: 1024 };
  serve(app, 'heartbeat', async ({ params, body, query, request, reply }) => {
    if (!query.waitMs) return runs.heartbeat(params.id!, body.owner);
    const principal = request.principal;
    const ip = options.clientKey(request.raw);
    const slot = held.acquire([
      { key: `ip:${ip}`, limit: heldLimits.perIp, what: `client address ${ip}` },
      ...(principal && principal.kind !== 'open' ? [{ key: `token:${principal.hash}`, limit: heldLimits.perToken, what: 'this token' }] : []),
    ]);
    // Past the bound: renewed and answered at once; the producer asks again lease/3 later.
    if ('refused' in slot) return runs.heartbeat(params.id!, body.owner);
    // A held heartbeat stops waiting when its caller hangs up, or the server closes its connection.
    const gone = new AbortController();
    reply.raw.once('close', () => gone.abort());
    try {
      const waitMs = Math.min(query.waitMs, heldLimits.maxHoldMs ?? Infinity);
      return await runs.heartbeat(params.id!, body.owner, { waitMs, gone: gone.signal });
    } finally {
      slot.release();
    }
  });
  serve(app, 'cancelRun', async ({ params, body }) => runs.cancel(params.id!, body.reason));

  serve(app, 'retryRun', async ({ params, request, reply }) => {
    const key = idempotencyKeyOf(request.headers);
    const { run, created } = await countedCreate(request.raw, () => runs.retry(params.id!, options.requireHandler, key));
    void reply.status(created ? 201 : 200);
    return run;
  });
}

/** The request's Idempotency-Key: the same key gets the same run back (createRun, retryRun), not a second one. */
function idempotencyKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const key = headers[IDEMPOTENCY_KEY_HEADER];
  if (Array.isArray(key)) throw new RuntrailError('invalid_request', 'send one Idempotency-Key header');
  if (key !== undefined && (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_CHARS)) {
    throw new RuntrailError('invalid_request', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY_CHARS} characters`);
  }
  return key;
}
