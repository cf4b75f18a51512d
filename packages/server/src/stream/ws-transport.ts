import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  RuntrailError,
  STREAM_CLOSE_CODES,
  STREAM_ERROR_REPLIES_PER_SECOND,
  STREAM_REPLY_ALLOWANCE_BYTES,
  issuesOf,
  parseClientMessage,
  runNotFound,
  type RunsFilter,
  type ServerMessage,
  type StreamEnd,
} from '@runtrail/protocol';
import type { EventText, JoinedEventTexts } from '@runtrail/store';
import { authorize, listedParents, type RateLimiter, type Validity } from '../security/index.js';
import { sendFrames, wsEventFrames, wsJoinedFrameParts } from './frames.js';
import { Outlet } from './outlet.js';
import { RunSubscription, positionProblem, type SubscriptionSink } from './run-subscription.js';
import { RunsSubscription, liveListLabels } from './runs-subscription.js';
import { subscriptionContext, type StreamConnection, type StreamDeps } from './types.js';
import { StreamGate, refuseUpgrade, type Admission } from './stream-auth.js';

/** Largest client message accepted (subscribe messages are tiny); a bigger one closes the socket with 1009. */
export const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;

class WsOutlet extends Outlet {
  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    limitBytes: number,
  ) {
    super(limitBytes);
  }

  queuedBytes(): number {
    return this.ws.bufferedAmount;
  }

  protected hold(): void {
    this.socket.cork();
  }

  protected release(): void {
    this.socket.uncork();
  }

  protected write(data: string | Buffer, onFlushed: ((err?: Error | null) => void) | undefined, framed: boolean): void {
    if (!framed) {
      // Buffers are shared frames of UTF-8 JSON: text frames, not binary.
      this.ws.send(data, { binary: false }, onFlushed);
      return;
    }
    // A shared frame, already a whole WebSocket frame: straight to ws's own
    // socket. Without compression (perMessageDeflate is off) ws writes every
    // message to the socket synchronously, so these keep their order with
    // its writes, and ws.bufferedAmount counts them (the socket's queue).
    // Like ws.send, nothing is written once a close has begun.
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.socket.write(data, onFlushed);
  }
}

/** The connection a socket belongs to, for the listeners every socket shares. */
const CONNECTION = Symbol('runtrail.wsConnection');
type OwnedSocket = WebSocket & { [CONNECTION]: WsConnection };
const connectionOf = (ws: WebSocket): WsConnection => (ws as OwnedSocket)[CONNECTION];

// One set of listeners for every socket (EventEmitter calls them with the
// socket as `this`): 5,000 idle watchers would otherwise hold 5,000 copies
// of each closure and its context.
function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const conn = connectionOf(this);
  if (conn.acceptsMore()) conn.onMessage(data, isBinary);
}
// Answered here rather than by ws (autoPong is off): a pong is queued bytes like any other.
function onWsPing(this: WebSocket, data: Buffer): void {
  if (connectionOf(this).acceptsMore()) this.pong(data);
}
function onWsPong(this: WebSocket): void {
  connectionOf(this).alive = true;
}
function onWsError(this: WebSocket, err: Error): void {
  connectionOf(this).deps.log.debug({ err }, 'websocket error');
}
function onWsClose(this: WebSocket): void {
  connectionOf(this).cleanup();
}

/** A token bucket's tokens `now`, refilled at `ratePerSecond` since `at`, at most `capacity`. */
function refilled(tokens: number, at: number, now: number, ratePerSecond: number, capacity: number): number {
  return Math.min(capacity, tokens + ((now - at) / 1000) * ratePerSecond);
}

/** One WebSocket connection with its subscriptions (see the protocol in @runtrail/protocol stream.ts). */
export class WsConnection implements StreamConnection {
  readonly kind = 'ws' as const;
  readonly outlet: WsOutlet;
  /** Answered the last ping (or sent something since). */
  alive = true;
  private readonly subs = new Map<string, RunSubscription>();
  private runsSub: RunsSubscription | null = null;
  /** Counts subscribeRuns and unsubscribeRuns: a run token's check that a later one overtook is dropped. */
  private runsGeneration = 0;
  /** Error replies this connection may still get now (a token bucket refilled over time). */
  private errorTokens = STREAM_ERROR_REPLIES_PER_SECOND;
  private errorTokensAt = Date.now();
  private suppressedErrors = 0;
  /**
   * Messages this connection may still send (a flood of subscribes must not
   * cost the server more than it allows): a bucket of 2 s worth, refilled at
   * wsMessagesPerSecond. Two numbers here, not a RateLimiter per connection.
   */
  private messageTokens: number;
  private messageTokensAt: number;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    readonly deps: StreamDeps,
    private readonly admission: Admission,
    /** Messages of all the WebSockets of one client address (wsMessagesPerSecondPerIp), keyed by admission.address. */
    private readonly addressMessages: RateLimiter,
    private readonly onClosed: (conn: WsConnection) => void,
  ) {
    this.outlet = new WsOutlet(ws, socket, deps.sendBufferBytes);
    this.messageTokens = 2 * deps.limits.wsMessagesPerSecond;
    this.messageTokensAt = deps.now();
    (ws as OwnedSocket)[CONNECTION] = this;
    ws.on('message', onWsMessage);
    ws.on('ping', onWsPing);
    ws.on('pong', onWsPong);
    ws.on('error', onWsError);
    ws.on('close', onWsClose);
  }

  get subscriptions(): number {
    return this.subs.size + (this.runsSub ? 1 : 0);
  }

  get principal() {
    return this.admission.principal;
  }

  revoke(why: Exclude<Validity, 'valid'>): void {
    this.ws.close(STREAM_CLOSE_CODES.unauthorized, why === 'expired' ? 'token expired' : 'token revoked');
    this.cleanup();
  }

  /** Keepalive tick: a peer that did not answer the previous ping is dead. */
  tick(): void {
    if (!this.alive) {
      this.deps.log.info({ subscriptions: [...this.subs.keys()] }, 'websocket peer missed a ping; terminating');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  disconnect(mode: 'close' | 'reset'): void {
    if (mode === 'reset' && 'resetAndDestroy' in this.socket) {
      (this.socket as import('node:net').Socket).resetAndDestroy();
      this.cleanup();
    } else this.ws.close(STREAM_CLOSE_CODES.goingAway, 'server going away');
  }

  cleanup(): void {
    if (this.outlet.closed) return;
    this.outlet.markClosed();
    this.admission.release();
    for (const sub of this.subs.values()) sub.close();
    this.subs.clear();
    this.runsGeneration++;
    this.runsSub?.close();
    this.runsSub = null;
    this.onClosed(this);
  }

  /** A run subscription ended or failed by itself: forget it, unless it was replaced meanwhile. */
  subscriptionOver(runId: string, sink: WsRunSink): void {
    if (this.subs.get(runId)?.sink === sink) this.subs.delete(runId);
  }

  send(message: ServerMessage): void {
    this.outlet.send(JSON.stringify(message));
  }

  /**
   * Whether to act on a message the client sent. Everything queued for the
   * connection counts against its bound: replies may take it
   * STREAM_REPLY_ALLOWANCE_BYTES past sendBufferBytes, and a client that
   * sends while its queue is beyond that does not read what it asks for,
   * so it is closed instead of growing the server's memory.
   */
  acceptsMore(): boolean {
    if (this.outlet.closed) return false;
    const queued = this.outlet.queuedBytes();
    if (queued <= this.outlet.limitBytes + STREAM_REPLY_ALLOWANCE_BYTES) return true;
    this.deps.log.warn(
      { queuedBytes: queued, sendBufferBytes: this.outlet.limitBytes, subscriptions: [...this.subs.keys()] },
      'websocket peer keeps sending without reading; closing it (4008)',
    );
    this.cleanup();
    this.ws.close(STREAM_CLOSE_CODES.sendBufferFull, 'send buffer full: read what the server sends');
    return false;
  }

  /** An invalid_request reply, unless this connection had its share this second (then it is counted, not sent). */
  private sendInvalid(message: string, runId?: string): void {
    const now = Date.now();
    this.errorTokens = refilled(this.errorTokens, this.errorTokensAt, now, STREAM_ERROR_REPLIES_PER_SECOND, STREAM_ERROR_REPLIES_PER_SECOND);
    this.errorTokensAt = now;
    if (this.errorTokens < 1) {
      this.suppressedErrors++;
      return;
    }
    this.errorTokens -= 1;
    const dropped = this.suppressedErrors;
    this.suppressedErrors = 0;
    const note = dropped > 0 ? ` (${dropped} more invalid messages were not answered)` : '';
    this.send({ type: 'error', ...(runId === undefined ? {} : { runId }), code: 'invalid_request', message: `${message}${note}` });
  }

  onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (this.outlet.closed) return;
    const rate = this.deps.limits.wsMessagesPerSecond;
    const now = this.deps.now();
    this.messageTokens = refilled(this.messageTokens, this.messageTokensAt, now, rate, 2 * rate);
    this.messageTokensAt = now;
    if (this.messageTokens < 1) {
      this.ws.close(STREAM_CLOSE_CODES.rateLimited, `more than ${rate} messages per second`);
      this.cleanup();
      return;
    }
    if (this.addressMessages.take(this.admission.address, 1) > 0) {
      const perIp = this.deps.limits.wsMessagesPerSecondPerIp;
      // A close reason is at most 123 bytes: a long address key (an IPv6 /64 with a zone id) is cut, the setting's name kept.
      // (Keys are ASCII: isIP refuses any other character, so characters are bytes here.)
      const reason = `over wsMessagesPerSecondPerIp: more than ${perIp} messages per second from ${this.admission.address}`;
      this.ws.close(STREAM_CLOSE_CODES.rateLimited, reason.slice(0, 123));
      this.cleanup();
      return;
    }
    this.messageTokens -= 1;
    if (isBinary) {
      this.sendInvalid('send JSON in text frames, not binary ones');
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString());
    } catch (err) {
      this.sendInvalid(`send JSON text frames: ${(err as Error).message}`);
      return;
    }
    const result = parseClientMessage(parsed);
    if (!result.success) {
      // Said with the run it was about, so a client with many subscriptions knows which one.
      const runId = (parsed as { runId?: unknown } | null)?.runId;
      this.sendInvalid(
        `not a client message of the stream protocol: ${issuesOf(result.error, parsed).map((i) => `${i.path}: ${i.message}`).join('; ')}`,
        typeof runId === 'string' && runId.length <= 100 ? runId : undefined,
      );
      return;
    }
    const msg = result.data;
    switch (msg.op) {
      case 'subscribe':
        void this.subscribe(msg.runId, msg.after, msg.compact, msg.observers, msg.untilDeleted === true);
        return;
      case 'unsubscribe':
        this.subs.get(msg.runId)?.close();
        this.subs.delete(msg.runId);
        // Behind every frame of the old subscription already queued on this connection.
        this.send({ type: 'unsubscribed', runId: msg.runId });
        return;
      case 'subscribeRuns': {
        let labels: Array<[string, string]>;
        try {
          labels = liveListLabels(msg.filter.label);
        } catch (err) {
          this.sendInvalid((err as Error).message);
          return;
        }
        this.runsSub?.close();
        this.runsSub = null;
        const generation = ++this.runsGeneration;
        // Synchronous for every principal but a run token, which lists only the runs under its run.
        if (this.principal.kind === 'run') {
          void authorize(this.deps.store, this.principal, 'readChildren', undefined, listedParents(msg.filter)).then(
            // Unless another subscribeRuns or an unsubscribeRuns came meanwhile.
            () => generation === this.runsGeneration && this.subscribeRuns(msg.filter, labels),
            (err: unknown) => {
              if (generation !== this.runsGeneration) return;
              const forbidden = RuntrailError.isCode(err, 'forbidden');
              if (!forbidden) this.deps.log.error({ err }, 'stream subscribeRuns: checking the run token failed');
              this.send({ type: 'error', code: forbidden ? 'forbidden' : 'internal', message: forbidden ? (err as Error).message : 'could not check the token; try again' });
            },
          );
          return;
        }
        this.subscribeRuns(msg.filter, labels);
        return;
      }
      case 'unsubscribeRuns':
        this.runsGeneration++;
        this.runsSub?.close();
        this.runsSub = null;
        return;
      case 'ping':
        this.send({ type: 'pong' });
        return;
      default: {
        const never: never = msg;
        throw new Error(`unhandled client message ${JSON.stringify(never)}`);
      }
    }
  }

  private subscribeRuns(filter: RunsFilter, labels: Array<[string, string]>): void {
    this.runsSub = new RunsSubscription(this.deps.hub, filter, labels, this.outlet, (m) => this.send(m));
  }

  private async subscribe(runId: string, after: number, compact: boolean, observers: boolean, untilDeleted: boolean): Promise<void> {
    this.subs.get(runId)?.close();
    this.subs.delete(runId);
    const max = this.deps.limits.maxSubscriptionsPerConnection;
    if (this.subs.size >= max) {
      this.send({
        type: 'error',
        runId,
        code: 'rate_limited',
        message: `at most ${max} subscriptions per connection; unsubscribe or open another connection`,
      });
      return;
    }
    const sub = new RunSubscription(subscriptionContext(this.deps, 'ws'), runId, after, new WsRunSink(this, runId, compact, observers, untilDeleted));
    this.subs.set(runId, sub);
    let run;
    try {
      await authorize(this.deps.store, this.principal, 'readRun', runId);
      run = await this.deps.store.getRun(runId);
    } catch (err) {
      if (RuntrailError.isCode(err, 'forbidden')) {
        // Not for a subscription that was replaced or unsubscribed meanwhile.
        if (sub.closed || this.subs.get(runId) !== sub) return;
        sub.close();
        this.subs.delete(runId);
        this.send({ type: 'error', runId, code: err.code, message: err.message });
        return;
      }
      this.deps.log.error({ err, runId }, 'stream subscribe: reading the run failed');
      run = undefined;
    }
    // Unsubscribed, replaced or disconnected while we looked the run up.
    if (sub.closed || this.subs.get(runId) !== sub) return;
    if (!run) {
      sub.close();
      this.subs.delete(runId);
      const err =
        run === null
          ? runNotFound(runId)
          : new RuntrailError('internal', `could not read run ${runId}; see the server log`);
      this.send({ type: 'error', runId, code: err.code, message: err.message });
      return;
    }
    const beyond = positionProblem(runId, after, run);
    if (beyond) {
      sub.close();
      this.subs.delete(runId);
      this.send({ type: 'error', runId, code: beyond.code, message: beyond.message });
      return;
    }
    this.send({ type: 'subscribed', runId, after, seq: run.seq, status: run.status });
    sub.start();
  }
}

/** Where a WebSocket run subscription's events go: one small object, its methods shared by all. */
class WsRunSink implements SubscriptionSink {
  readonly observers: ((count: number) => void) | undefined;

  constructor(
    private readonly conn: WsConnection,
    private readonly runId: string,
    readonly compact: boolean,
    observers: boolean,
    readonly untilDeleted: boolean,
  ) {
    // A closure only for the subscriptions that asked for the count.
    this.observers = observers ? (count) => conn.send({ type: 'observers', runId, count }) : undefined;
  }

  get outlet(): Outlet {
    return this.conn.outlet;
  }

  events(events: EventText[]): number {
    return sendFrames(this.conn.outlet, wsEventFrames(this.runId, events, this.compact));
  }

  joined(page: JoinedEventTexts): void {
    this.conn.outlet.sendParts(wsJoinedFrameParts(this.runId, page));
  }

  end(end: StreamEnd): void {
    // Kept (and counted) until the run's deletion or an unsubscribe.
    if (!this.untilDeleted) this.conn.subscriptionOver(this.runId, this);
    this.conn.send({ type: 'end', ...end });
  }

  fail(err: RuntrailError): void {
    this.conn.subscriptionOver(this.runId, this);
    this.conn.send({ type: 'error', runId: this.runId, code: err.code, message: err.message });
  }
}

/**
 * Accept WebSocket upgrades at the stream route on the Fastify server once
 * the gate admits them; anything else gets an HTTP error and no socket.
 */
export function createWsServer(deps: StreamDeps, onConnection: (ws: WebSocket, socket: Duplex, admission: Admission) => void) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_CLIENT_MESSAGE_BYTES,
    perMessageDeflate: false,
    // Pongs are queued bytes too: WsConnection answers pings within the connection's bound.
    autoPong: false,
  });
  const gate = new StreamGate(deps);
  // One listener for every socket, made out here: a closure made inside onUpgrade would share
  // its context, and so keep each connection's upgrade request and head alive as long as its socket.
  const onSocketError = (err: Error): void => deps.log.debug({ err }, 'websocket upgrade socket error');
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // A client may reset the socket while its token is being checked; that is its business, not a crash.
    socket.on('error', onSocketError);
    // Pings and pongs keep a WebSocket honest; the connection idle timeout is for HTTP requests
    // (Node stops acting on it at an upgrade, but its timer would go on firing).
    request.socket.setTimeout(0);
    try {
      gate.checkUpgrade(request);
    } catch (err) {
      refuseUpgrade(socket, err as RuntrailError);
      return;
    }
    const ip = deps.clientKey(request);
    gate.authenticate(request).then(
      (principal) => {
        if (socket.destroyed) return;
        let admission: Admission;
        try {
          admission = gate.admit(principal, ip);
        } catch (err) {
          wss.handleUpgrade(request, socket, head, (ws) => ws.close(STREAM_CLOSE_CODES.rateLimited, (err as Error).message.slice(0, 120)));
          return;
        }
        wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket, admission));
      },
      (err: unknown) => {
        if (socket.destroyed) return;
        if (!RuntrailError.isCode(err, 'unauthorized')) {
          deps.log.error({ err }, 'websocket authentication failed');
          refuseUpgrade(socket, new RuntrailError('unavailable', 'could not check the token; try again'));
          return;
        }
        wss.handleUpgrade(request, socket, head, (ws) => ws.close(STREAM_CLOSE_CODES.unauthorized, err.message.slice(0, 120)));
      },
    );
  };
  return { wss, onUpgrade, gate };
}
