import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { uuidv7 } from 'uuidv7';
import { routes } from '@runtrail/protocol';
import type { RunStore } from '@runtrail/store';
import type { ServerConfig } from './config.js';
import { Hub } from './hub.js';
import { installErrorHandler } from './http/errors.js';
import { registerRunRoutes } from './http/runs-routes.js';
import { registerStatic } from './http/static.js';
import { RunService } from './runs/run-service.js';
import { StreamServer } from './stream/index.js';

export interface AppDeps {
  config: ServerConfig;
  store: RunStore;
  /** Injected so tests can drive leases and timeouts without sleeping. */
  now?: () => number;
  newId?: () => string;
}

export interface App {
  http: FastifyInstance;
  runs: RunService;
  hub: Hub;
  /** Live transports (WebSocket, SSE) and their buffered-bytes gauge. */
  stream: StreamServer;
  config: ServerConfig;
}

/** Assemble the HTTP app around a store. Does not listen; see startServer. */
export async function buildApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  const http = Fastify({
    bodyLimit: config.bodyLimitBytes,
    logger: { level: config.logLevel, base: { node: config.node } },
    // One log line per request would drown the lines that matter at thousands of appends/s.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const hub = new Hub();
  const runs = new RunService({
    store: deps.store,
    hub,
    now: deps.now ?? Date.now,
    newId: deps.newId ?? uuidv7,
    leaseTtlMs: config.leaseTtlMs,
  });
  installErrorHandler(http);
  http.get(routes.health.path, async () => ({ ok: true, node: config.node, store: deps.store.kind }));
  registerRunRoutes(http, runs);
  const stream = new StreamServer(http, {
    store: deps.store,
    hub,
    sendBufferBytes: config.sendBufferBytes,
    pingIntervalMs: config.streamPingIntervalMs,
    log: http.log,
  });
  await registerStatic(http, config.webDir);
  return { http, runs, hub, stream, config };
}
