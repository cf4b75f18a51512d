import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RuntrailError, SSE_EVENTS, wholeNumber, type ErrorCode, type ObserversCount } from '@runtrail/protocol';
import { sendFrames, sseEventChunks } from './frames.js';
import { Outlet } from './outlet.js';
import { invalidTokenMessage, type Validity } from '../security/index.js';
import { RunSubscription } from './run-subscription.js';
import { subscriptionContext, type StreamConnection, type StreamDeps } from './types.js';
import type { Admission } from './stream-auth.js';

/** Reconnect delay a browser EventSource is told to use after a drop. */
export const SSE_RETRY_MS = 1000;

class SseOutlet extends Outlet {
  constructor(
    private readonly res: ServerResponse,
    limitBytes: number,
  ) {
    super(limitBytes);
  }

  queuedBytes(): number {
    // Includes the socket's queue (ServerResponse adds it in writableLength).
    return this.res.writableLength;
  }

  // SSE has no framing of its own to add: every write goes out as it is, framed or not.
  protected write(data: string | Buffer, onFlushed: ((err?: Error | null) => void) | undefined): void {
    this.res.write(data, onFlushed);
  }

  protected hold(): void {
    this.res.cork();
  }

  protected release(): void {
    this.res.uncork();
  }
}

/**
 * `after` of an SSE request: the Last-Event-ID header (what a browser sends
 * when it reconnects by itself) wins over `?after=`, so a resumed
 * EventSource continues where it was and not where its URL started.
 */
export function sseAfter(lastEventId: string | string[] | undefined, queryAfter: number | undefined): number {
  if (lastEventId === undefined || lastEventId === '') return queryAfter ?? 0;
  const value = Array.isArray(lastEventId) ? lastEventId[lastEventId.length - 1]! : lastEventId;
  // The rule of every integer query parameter (`?after=`), so the two ways to say where to resume agree.
  const seq = wholeNumber(0).safeParse(value);
  if (!seq.success) {
    throw new RuntrailError('invalid_request', `Last-Event-ID must be a seq (a whole number in decimal digits), got ${JSON.stringify(value.slice(0, 100))}`);
  }
  return seq.data;
}

/** One SSE response streaming one run. */
export class SseConnection implements StreamConnection {
  readonly kind = 'sse' as const;
  readonly outlet: SseOutlet;
  private readonly sub: RunSubscription;
  /** The outlet's takenBytes at the last tick that found its send buffer full (null: it was not). */
  private takenAtFullTick: number | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly runId: string,
    after: number,
    { observers, compact, untilDeleted }: { observers: boolean; compact: boolean; untilDeleted: boolean },
    private readonly deps: StreamDeps,
    private readonly admission: Admission,
    private readonly onClosed: (conn: SseConnection) => void,
  ) {
    this.outlet = new SseOutlet(res, deps.sendBufferBytes);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Reverse proxies (nginx) would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    this.outlet.send(`retry: ${SSE_RETRY_MS}\n\n`);
    this.sub = new RunSubscription(subscriptionContext(deps, 'sse'), runId, after, {
      outlet: this.outlet,
      untilDeleted,
      events: (events) => sendFrames(this.outlet, sseEventChunks(events, SSE_EVENTS.event, compact ? runId : undefined)),
      end: (end) => {
        this.outlet.send(`event: ${SSE_EVENTS.end}\ndata: ${JSON.stringify(end)}\n\n`);
        // Open, with keepalives, until the run is deleted (then `fail`) or the client goes.
        if (!untilDeleted) this.finish();
      },
      fail: (err) => {
        this.sendError(err.code, err.message);
        this.finish();
      },
      observers: observers
        ? (count) => this.outlet.send(`event: ${SSE_EVENTS.observers}\ndata: ${JSON.stringify({ runId, count } satisfies ObserversCount)}\n\n`)
        : undefined,
    });
    res.on('close', () => this.cleanup());
    this.sub.start();
  }

  get subscriptions(): number {
    return this.sub.closed ? 0 : 1;
  }

  get principal() {
    return this.admission.principal;
  }

  revoke(why: Exclude<Validity, 'valid'>): void {
    this.sendError('unauthorized', invalidTokenMessage(why, this.principal));
    this.finish();
  }

  tick(): void {
    // A comment line keeps proxies from timing the stream out; a dead peer
    // shows up as a failed write and a 'close'.
    if (!this.outlet.blocked) {
      this.takenAtFullTick = null;
      this.outlet.send(': ping\n\n');
      return;
    }
    // A peer that is alive but does not read fails no write: its full buffer would hold the
    // connection (and its slot under maxConnectionsPerIp) for ever. A WebSocket that does not read
    // misses a pong; this is the same bound, a whole interval without a byte taken.
    const taken = this.outlet.takenBytes;
    if (this.takenAtFullTick !== null && taken <= this.takenAtFullTick) {
      this.deps.log.info({ runId: this.runId, queuedBytes: this.outlet.queuedBytes() }, 'SSE reader took nothing of its full send buffer for a ping interval; closing it');
      this.disconnect('reset');
      return;
    }
    this.takenAtFullTick = taken;
  }

  disconnect(mode: 'close' | 'reset'): void {
    const socket = this.res.socket as Socket | null;
    if (mode === 'reset' && socket) socket.resetAndDestroy();
    else this.res.end();
    this.cleanup();
  }

  private sendError(code: ErrorCode, message: string): void {
    this.outlet.send(`event: ${SSE_EVENTS.error}\ndata: ${JSON.stringify({ code, message })}\n\n`);
  }

  private finish(): void {
    this.res.end();
    // Its reader may never take the last bytes: the idle timeout the stream took off its connection
    // is put back, or the connection and its queue stayed as long as the client kept it.
    this.res.socket?.setTimeout(this.deps.limits.connectionIdleTimeoutMs);
    this.cleanup();
  }

  private cleanup(): void {
    if (this.outlet.closed) return;
    this.outlet.markClosed();
    this.admission.release();
    this.sub.close();
    this.onClosed(this);
  }
}
