import type { FastifyBaseLogger } from 'fastify';
import type { RunStore } from '@runtrail/store';
import type { Hub } from '../hub.js';
import type { Outlet } from './outlet.js';

export interface StreamDeps {
  store: RunStore;
  hub: Hub;
  sendBufferBytes: number;
  pingIntervalMs: number;
  log: FastifyBaseLogger;
}

/** What the stream server needs of a WS or SSE connection. */
export interface StreamConnection {
  readonly kind: 'ws' | 'sse';
  readonly outlet: Outlet;
  readonly subscriptions: number;
  /** Keepalive tick (ping, or an SSE comment). */
  tick(): void;
  /** End it from the server side: a clean close, or a TCP reset (tests, shutdown). */
  disconnect(mode: 'close' | 'reset'): void;
}
