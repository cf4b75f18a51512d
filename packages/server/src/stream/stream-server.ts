import type { FastifyInstance } from 'fastify';
import { LAST_EVENT_ID_HEADER, RuntrailError, runNotFound } from '@runtrail/protocol';
import { serve } from '../http/route-table.js';
import { SseConnection, sseAfter } from './sse-transport.js';
import { positionProblem } from './run-subscription.js';
import { RateLimiter, type Validity } from '../security/index.js';
import type { StreamConnection, StreamDeps } from './types.js';
import { WsConnection, createWsServer } from './ws-transport.js';

/** How often open streams' tokens are checked again (expiry, revocation on another node). */
export const AUTH_RECHECK_MS = 1000;

/**
 * How long a closing server waits for WebSocket peers to answer its close
 * frame before it resets their connections. A peer that does not read (a
 * stalled tab, a client stuck behind a full buffer) never answers, and the
 * ws library would wait 30 s for each: SIGTERM took 35 s with 20 such
 * watchers open, past a typical orchestrator's kill deadline.
 */
export const CLOSE_ANSWER_MS = 2000;

export interface StreamStats {
  connections: { ws: number; sse: number };
  /** Run and runs-list subscriptions held by those connections. */
  subscriptions: { ws: number; sse: number };
  /** Bytes queued right now over all stream connections. */
  queuedBytes: number;
  /** The most bytes any one connection has had queued since the last resetPeakQueuedBytes(), or since start (bounded by sendBufferBytes + one frame). */
  peakQueuedBytes: number;
  /** Connections over their bound right now (reading from the store when they drain). */
  blockedConnections: number;
}

/**
 * The live transports of a node: WebSocket at routes.stream, SSE at
 * routes.streamRun, one keepalive timer for both, and a gauge of the bytes
 * they hold.
 */
export class StreamServer {
  private readonly conns = new Set<StreamConnection>();
  private peakOfClosed = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly authTimer: NodeJS.Timeout;
  private rechecking = false;
  /** Called when the last connection is gone (a closing server waits on it). */
  private onEmpty: (() => void) | null = null;

  constructor(
    private readonly http: FastifyInstance,
    private readonly deps: StreamDeps,
  ) {
    const onClosed = (conn: StreamConnection): void => this.remove(conn);
    // One bucket per client address for all its WebSockets: each socket's own budget, times the sockets an address may open, was no bound.
    const rate = deps.limits.wsMessagesPerSecondPerIp;
    const addressMessages = new RateLimiter(rate, 2 * rate, deps.now);
    const { wss, onUpgrade, gate } = createWsServer(deps, (ws, socket, admission) => {
      this.add(new WsConnection(ws, socket, deps, admission, addressMessages, onClosed));
    });
    http.server.on('upgrade', onUpgrade);

    // A plain GET of the WebSocket route is a client mistake worth a clear answer (and keeps the route table honest).
    serve(http, 'stream', async () => {
      throw new RuntrailError('invalid_request', 'this route is a WebSocket: connect with an Upgrade: websocket request');
    });

    serve(http, 'streamRun', async ({ params, query, request, reply }) => {
      const runId = params.id!;
      const after = sseAfter(request.headers[LAST_EVENT_ID_HEADER], query.after);
      const run = await deps.store.getRun(runId);
      if (!run) throw runNotFound(runId);
      const beyond = positionProblem(runId, after, run);
      if (beyond) throw beyond;
      // Fastify answers HEAD with the GET handler; a HEAD must not open a stream that never ends.
      if (request.method === 'HEAD') return reply.header('content-type', 'text/event-stream; charset=utf-8').send();
      const admission = gate.admit(request.principal, deps.clientKey(request.raw));
      // A stream keeps itself alive with pings and ends with its reader or its
      // run; the connection idle timeout is for requests, and would cut it.
      request.socket.setTimeout(0);
      // A hijacked reply sends none of the headers set on it (the security headers, CORS for an
      // allowed origin): they go on the raw response, which the stream writes its head with.
      for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
      reply.hijack();
      this.add(new SseConnection(reply.raw, runId, after, { observers: query.observers === 'true', compact: query.compact === 'true', untilDeleted: query.untilDeleted === 'true' }, deps, admission, onClosed));
      return undefined;
    });

    this.timer = setInterval(() => {
      for (const conn of this.conns) conn.tick();
    }, deps.pingIntervalMs);
    this.timer.unref();

    // A token revoked here or on another node sharing the store (its notification) ends its
    // streams at once; expiry, and a revoke whose notification was missed, the periodic check finds.
    const stopListening = deps.tokens.onRevoked((revoked) => {
      for (const conn of [...this.conns]) {
        const p = conn.principal;
        if (p.kind === 'open') continue;
        if (p.hash === revoked.hash || (p.kind === 'run' && p.id === revoked.id)) conn.revoke('revoked');
        else if (p.kind === 'run' && p.mintedBy === revoked.id) conn.revoke('minter_revoked');
      }
    });
    this.authTimer = setInterval(() => void this.recheckTokens(), AUTH_RECHECK_MS);
    this.authTimer.unref();

    // Open streams would keep http.close() waiting for ever; end them first.
    http.addHook('preClose', async () => {
      clearInterval(this.timer);
      clearInterval(this.authTimer);
      stopListening();
      // What was committed before the close goes out first: the runs the executor just ended
      // (interrupted) waited for the hub's next flush, and their watchers were closed without
      // the end. Bounded: a flush hands out what is queued, it does not wait for readers.
      let flushTimer: NodeJS.Timeout | undefined;
      await Promise.race([deps.hub.whenFlushed(), new Promise<void>((resolve) => (flushTimer = setTimeout(resolve, CLOSE_ANSWER_MS)))]);
      clearTimeout(flushTimer);
      const open = this.disconnectAll('close');
      wss.close();
      if (open === 0) return;
      const started = Date.now();
      if (await this.emptied(CLOSE_ANSWER_MS)) {
        deps.log.info({ streams: open, ms: Date.now() - started }, `closed ${open} live stream(s): watchers were told the server is going away`);
        return;
      }
      const silent = this.disconnectAll('reset');
      deps.log.warn(
        { streams: open, reset: silent },
        `closed ${open} live stream(s); ${silent} WebSocket watcher(s) did not answer the close within ${CLOSE_ANSWER_MS} ms (not reading), so their connections were reset rather than holding up the shutdown`,
      );
    });
  }

  stats(): StreamStats {
    let ws = 0;
    let sse = 0;
    let queuedBytes = 0;
    let peak = this.peakOfClosed;
    let blocked = 0;
    const subscriptions = { ws: 0, sse: 0 };
    for (const conn of this.conns) {
      if (conn.kind === 'ws') ws++;
      else sse++;
      subscriptions[conn.kind] += conn.subscriptions;
      queuedBytes += conn.outlet.queuedBytes();
      peak = Math.max(peak, conn.outlet.peakQueuedBytes);
      if (conn.outlet.blocked) blocked++;
    }
    return { connections: { ws, sse }, subscriptions, queuedBytes, peakQueuedBytes: peak, blockedConnections: blocked };
  }

  /**
   * Start a new window for stats().peakQueuedBytes (a scrape of /metrics
   * does, after reading it): a peak since start told nothing after the first
   * burst. Each open connection's window starts at what it holds now.
   */
  resetPeakQueuedBytes(): void {
    this.peakOfClosed = 0;
    for (const conn of this.conns) conn.outlet.peakQueuedBytes = conn.outlet.queuedBytes();
  }

  /** End every stream connection from the server side: a clean close, or a TCP reset. */
  disconnectAll(mode: 'close' | 'reset'): number {
    const all = [...this.conns];
    for (const conn of all) conn.disconnect(mode);
    return all.length;
  }

  /** End every stream whose token expired or was revoked (on any node: revocations are read from the store). */
  private async recheckTokens(): Promise<void> {
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      const verdicts = new Map<string, Promise<Validity>>();
      for (const conn of [...this.conns]) {
        const p = conn.principal;
        if (p.kind === 'open') continue;
        let verdict = verdicts.get(p.hash);
        if (!verdict) verdicts.set(p.hash, (verdict = this.deps.tokens.validity(p)));
        const validity = await verdict;
        if (validity !== 'valid' && this.conns.has(conn)) conn.revoke(validity);
      }
    } catch (err) {
      // The store could not be asked; the next round asks again.
      this.deps.log.warn({ err }, 'checking the tokens of open streams failed');
    } finally {
      this.rechecking = false;
    }
  }

  private add(conn: StreamConnection): void {
    this.conns.add(conn);
  }

  private remove(conn: StreamConnection): void {
    if (this.conns.delete(conn)) this.peakOfClosed = Math.max(this.peakOfClosed, conn.outlet.peakQueuedBytes);
    if (this.conns.size === 0) this.onEmpty?.();
  }

  /** Whether every connection has gone within `ms`. */
  private emptied(ms: number): Promise<boolean> {
    if (this.conns.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.onEmpty = null;
        resolve(false);
      }, ms);
      this.onEmpty = () => {
        clearTimeout(timer);
        this.onEmpty = null;
        resolve(true);
      };
    });
  }
}
