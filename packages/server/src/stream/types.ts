import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import type { RunStore } from '@runtrail/store';
import type { Hub } from '../hub.js';
import type { BrowserGuard, Principal, TokenService, Validity } from '../security/index.js';
import { observerCountsOf } from './observer-counts.js';
import type { Outlet } from './outlet.js';
import type { SubscriptionContext } from './run-subscription.js';

export interface StreamDeps {
  store: RunStore;
  hub: Hub;
  sendBufferBytes: number;
  /** Bytes of events one read of the store returns at most (at least one event); a catch-up's, sendBufferBytes at most too. */
  readPageBytes: number;
  pingIntervalMs: number;
  log: FastifyBaseLogger;
  metrics?: StreamMetrics;
  tokens: TokenService;
  guard: BrowserGuard;
  now: () => number;
  limits: StreamLimits;
  /** The key a stream is counted under (maxConnectionsPerIp, wsMessagesPerSecondPerIp): its client's address, an IPv6 one by its /64 (see addressKey). */
  clientKey: (request: IncomingMessage) => string;
}

export interface StreamLimits {
  maxSubscriptionsPerConnection: number;
  maxConnectionsPerToken: number;
  maxConnectionsPerIp: number;
  wsMessagesPerSecond: number;
  wsMessagesPerSecondPerIp: number;
  /** A stream takes its connection out of this idle timeout while it streams, and puts it back when it ends. */
  connectionIdleTimeoutMs: number;
}

export type Transport = 'ws' | 'sse';

/** What the transports report to /metrics. */
export interface StreamMetrics {
  /** A live batch was written to a connection, `seconds` after its commit. */
  delivered(transport: Transport, seconds: number): void;
  /** A slow consumer went over its send-buffer bound and will catch up from the store. */
  resynced(transport: Transport): void;
}

const contexts = new WeakMap<StreamDeps, Partial<Record<Transport, SubscriptionContext>>>();

/**
 * What every run subscription of one transport shares (store, hub, the
 * hooks that log failures and feed StreamMetrics): made once per transport,
 * so an idle watcher carries no closures of its own.
 */
export function subscriptionContext(deps: StreamDeps, transport: Transport): SubscriptionContext {
  let byTransport = contexts.get(deps);
  if (!byTransport) contexts.set(deps, (byTransport = {}));
  const made = byTransport[transport];
  if (made) return made;
  const metrics = deps.metrics;
  return (byTransport[transport] = {
    store: deps.store,
    hub: deps.hub,
    observerCounts: observerCountsOf(deps.hub),
    // A page bigger than the connection's send buffer is mostly dropped (the outlet blocks past
    // sendBufferBytes and the rest is read again after the drain): 8 MiB pages of 512 KiB events
    // made ten watchers' catch-up take 42 s instead of 6.7 s with pages of the 1 MiB buffer.
    readPageBytes: Math.min(deps.readPageBytes, deps.sendBufferBytes),
    onError: (err, runId) => deps.log.error({ err, runId }, `${transport} subscription failed`),
    onDelivered: metrics && ((publishedAt) => metrics.delivered(transport, (performance.now() - publishedAt) / 1000)),
    onResync: metrics && (() => metrics.resynced(transport)),
  });
}

/** What the stream server needs of a WS or SSE connection. */
export interface StreamConnection {
  readonly kind: Transport;
  readonly outlet: Outlet;
  readonly subscriptions: number;
  /** Who opened it; checked again periodically while it is open. */
  readonly principal: Principal;
  /** Its token stopped being valid: tell the client why (WS close 4401, SSE `event: error`) and end it. */
  revoke(why: Exclude<Validity, 'valid'>): void;
  /** Keepalive tick (ping, or an SSE comment). */
  tick(): void;
  /** End it from the server side: a clean close, or a TCP reset (tests, shutdown). */
  disconnect(mode: 'close' | 'reset'): void;
}
