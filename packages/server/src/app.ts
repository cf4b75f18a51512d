import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { uuidv7 } from 'uuidv7';
import { openBlobStore, type BlobStore, type RunStore } from '@runtrail/store';
import { MAX_ARTIFACT_NAME, MAX_RUN_TOKEN_TTL_S, RuntrailError, echo } from '@runtrail/protocol';
import { ArtifactService, registerArtifactRoutes } from './artifacts/index.js';
import type { ServerConfig } from './config.js';
import { Executor, registerExecutorRoutes } from './executor/index.js';
import { Hub } from './hub.js';
import { registerApiDocs } from './http/api-docs.js';
import { Readiness, registerHealthRoutes } from './http/health.js';
import { clientErrorHandler, installErrorHandler, toRuntrailError } from './http/errors.js';
import { createLogger, deferredRequestLogger, logRunIds, logRunLifecycle } from './logger.js';
import { ServerMetrics, registerMetrics } from './http/metrics.js';
import { serve } from './http/route-table.js';
import { registerRunRoutes } from './http/runs-routes.js';
import { registerStatic, repairedDashboardUrl } from './http/static.js';
import { Reaper } from './leases/reaper.js';
import { registerOutputLogRoute } from './runs/output-log.js';
import { RunService } from './runs/run-service.js';
import { BrowserGuard, RateLimiter, SECURITY_HEADERS, TokenService, clientKey, installAuth, limitConnectionsPerAddress, limitRequestBodies, limitUnreadAnswers, plainAddress, registerTokenRoutes, servePipelinedInTurn } from './security/index.js';
import { StreamServer } from './stream/index.js';

/** The version of @runtrail/server (in the OpenAPI document). */
export const SERVER_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface AppDeps {
  config: ServerConfig;
  store: RunStore;
  /** Where artifact content lives (default: files in `artifactsDir`, else `<dataDir>/artifacts`). */
  blobs?: BlobStore;
  /** The server's logger, when made before the app (createServer logs the store's opening with it). */
  log?: FastifyBaseLogger;
  /** Injected so tests can drive leases and timeouts without sleeping. */
  now?: () => number;
  newId?: () => string;
  /** The node's metrics, when made before the app (createServer counts the cluster parts' store errors in them). */
  metrics?: ServerMetrics;
}

export interface App {
  http: FastifyInstance;
  runs: RunService;
  artifacts: ArtifactService;
  /** Local fan-out; a shared store's remote fan-out publishes other nodes' appends into it. */
  hub: Hub;
  /** Live transports (WebSocket, SSE) and their buffered-bytes gauge. */
  stream: StreamServer;
  config: ServerConfig;
  /** Runs registered handlers; started by startServer. */
  executor: Executor;
  /** Ends runs whose owner is gone or whose limits passed; started by startServer. */
  reaper: Reaper;
  /** Scoped and run tokens; `enabled` when auth is on. */
  tokens: TokenService;
  /** Register the handler of runs named `name`: `app.define('eval', async (ctx) => …)`. */
  define: Executor['define'];
  /** Whether the store takes writes; checked on a timer (started by startServer) and by GET /readyz. */
  readiness: Readiness;
  /** What /metrics serves; `instrumentStore` counts a store's failed calls in it. */
  metrics: ServerMetrics;
}

/**
 * How often the store's readiness is checked (and a change logged): a
 * deleted database file or a lock that does not end shows in the log within
 * this, even when no write comes to find it.
 */
const READINESS_INTERVAL_MS = 1000;

/**
 * Request ids minted for requests that bring none: unique (a random prefix
 * per server start, then a counter) and cheap, since every request gets one;
 * a UUIDv7 per request took about 4 % of the server's time under
 * one-event appends.
 */
function requestIds(): () => string {
  const prefix = randomBytes(6).toString('hex');
  let next = 0;
  return () => `${prefix}-${(next++).toString(36)}`;
}

/** Assemble the HTTP app around a store. Does not listen; see startServer. */
export async function buildApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  const newId = deps.newId ?? uuidv7;
  const http = Fastify({
    bodyLimit: config.bodyLimitBytes,
    loggerInstance: deps.log ?? createLogger(config),
    childLoggerFactory: deferredRequestLogger,
    // A caller's X-Request-Id is kept, so its logs and ours join up; otherwise we mint one.
    requestIdHeader: 'x-request-id',
    genReqId: requestIds(),
    // close() ends every connection, not only those idle at that instant: a
    // keep-alive socket that had streamed an artifact could stay out of Node's
    // idle list and hold close() for the whole keep-alive timeout (72 s).
    // Handlers and streams are already stopped by then (startServer's close).
    forceCloseConnections: true,
    // Node closes a connection that is slow to send its request's head, but
    // never one that sends nothing at all: without an idle timeout, silent
    // sockets held the process's file descriptors for ever (20,000 of them
    // and it could accept no one). Streams take themselves out of it.
    connectionTimeout: config.connectionIdleTimeoutMs,
    // An artifact name may have MAX_ARTIFACT_NAME characters, each up to 12 once
    // percent-encoded (4 UTF-8 bytes); the router's default (100) refused names of 34 emoji or 101 letters.
    routerOptions: { maxParamLength: MAX_ARTIFACT_NAME * 12 },
    // One log line per request would drown the lines that matter at thousands of appends/s.
    logController: new LogController({ disableRequestLogging: true }),
    // A key named "__proto__" (a meta key, a label) is data the producer chose.
    // JSON.parse makes it a plain own property; what would make it dangerous
    // is copying it into a plain object by assignment, which the protocol's
    // data-keys helpers never do (issue 11). Refusing such bodies would make
    // a valid name unusable.
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    clientErrorHandler,
    // Errors Fastify raises before routing (a malformed URL) get our error body too, and the
    // headers every answer carries (no hook runs for them: they echo the URL, so nosniff matters).
    frameworkErrors: (err, request, reply) => {
      // A mangled link to a dashboard page gets the dashboard (which says it is no run), not raw JSON.
      const repaired = err.code === 'FST_ERR_BAD_URL' ? repairedDashboardUrl(request.raw.url ?? '') : null;
      if (repaired !== null) return void (reply as FastifyReply).headers(SECURITY_HEADERS).redirect(repaired);
      const mapped = toRuntrailError(err);
      void (reply as FastifyReply).headers(SECURITY_HEADERS).status(mapped.status).send(mapped.toBody());
    },
  });
  const trustedProxies = new Set(config.trustedProxies.map((address) => plainAddress(address)!));
  // Every per-address limit counts a request under this key (IPv6 by its /64: see addressKey).
  const keyOf = (request: IncomingMessage): string => clientKey(request, trustedProxies);
  limitConnectionsPerAddress(http, { max: config.maxHttpConnectionsPerIp, trustedProxies, log: http.log });
  servePipelinedInTurn(http);
  limitRequestBodies(http, { maxBytesPerAddress: config.maxBodyBytesPerIp, timeoutMs: config.requestBodyTimeoutMs, clientKey: keyOf });
  const unreadAnswer = limitUnreadAnswers(http, { maxBytesPerAddress: config.maxUnreadAnswerBytesPerIp, clientKey: keyOf });
  const now = deps.now ?? Date.now;
  const hub = new Hub((err) => http.log.error({ err }, 'a stream watcher failed during a hub flush'));
  const metrics = deps.metrics ?? new ServerMetrics();
  const store = metrics.instrumentStore(deps.store);
  const runs = new RunService({
    store,
    hub,
    now,
    newId,
    leaseTtlMs: config.leaseTtlMs,
  });
  const artifacts = new ArtifactService({
    runs,
    blobs: deps.blobs ?? openBlobStore({ dir: config.artifactsDir ?? join(config.dataDir, 'artifacts') }),
    limits: {
      maxArtifactBytes: config.maxArtifactBytes,
      maxRunArtifactBytes: config.maxRunArtifactBytes,
      payload: config,
      maxImportRuns: config.maxImportRuns,
      maxImportBytes: config.maxImportBytes,
      readPageBytes: config.readPageBytes,
    },
    log: http.log,
  });
  installErrorHandler(http);
  logRunIds(http);
  const readiness = new Readiness(store, http.log, READINESS_INTERVAL_MS, artifacts.blobs);
  // One id per process: runs held under another id on this node belong to a dead incarnation
  // (unless /healthz of the process that announced it answers with it: see start.ts).
  const incarnation = newId();
  registerHealthRoutes(http, { node: config.node, incarnation, store, readiness });
  // Bodies are JSON or nothing: Fastify's default text/plain parser is what let
  // a cross-site "simple" POST through (issue 15).
  http.removeContentTypeParser('text/plain');
  // An empty body is no body, whatever its content-type: clients that always
  // send `content-type: application/json` (a DELETE, a cancel or retry with
  // nothing to say) got 400 "Body cannot be empty"; a route that needs a
  // body still says which field is missing.
  const parseJson = http.getDefaultJsonParser('ignore', 'ignore');
  http.removeContentTypeParser('application/json');
  http.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined);
    else parseJson(request, body as string, done);
  });
  // Bodies are read as sent: a compressed one was parsed as if it were not ("not valid JSON"), and
  // an upload's compressed bytes would be stored as its content. Refused, naming the header.
  // (A callback hook, not an async one: it runs on every append, and a promise each costs more than the check.)
  http.addHook('onRequest', (request, _reply, done) => {
    const encoding = request.headers['content-encoding'];
    if (encoding === undefined || encoding.trim().toLowerCase() === 'identity') return done();
    done(
      new RuntrailError('invalid_request', `content-encoding ${JSON.stringify(echo(encoding))} is not supported: send the body uncompressed, without a Content-Encoding header`, {
        issues: [{ path: 'content-encoding', message: 'must be absent (or identity)' }],
      }),
    );
  });
  const guard = new BrowserGuard(config);
  guard.install(http);
  const tokens = new TokenService({ store, now, newId, adminToken: config.adminToken, cacheMs: config.tokenCacheMs, maxRunTokensPerRun: config.maxRunTokensPerRun });
  installAuth(http, { tokens, store });
  // Per-run output logs: written by ctx.exec (and an embedded `runtrail exec`), served at GET /runs/:id/log.
  const logDir = join(config.dataDir, 'logs');
  const executor = new Executor({
    runs,
    artifacts,
    node: config.node,
    incarnation,
    concurrency: config.concurrency,
    shutdownGraceMs: config.shutdownGraceMs,
    log: http.log,
    logDir,
    eventLimits: { maxEventDataBytes: config.maxEventDataBytes, maxMetaBytes: config.maxMetaBytes },
    // A subprocess reports into its run and no other: its token writes to that run's tree only, for as long as a run token may live.
    runToken: tokens.enabled ? async (runId) => (await tokens.mintRunToken(runId, MAX_RUN_TOKEN_TTL_S, true)).token : null,
    // As often as watcher counts are repeated: a killed node's handlers stop counting within 2.5 of these.
    announceEveryMs: Math.max(250, Math.floor(config.leaseTtlMs / 3)),
  });
  const reaper = new Reaper({
    runs,
    node: config.node,
    incarnation,
    intervalMs: config.reaperIntervalMs,
    log: http.log,
    onReaped: metrics.onReaped,
    queuedOrphanTimeoutMs: config.queuedOrphanTimeoutMs,
  });
  registerRunRoutes(http, runs, {
    requireHandler: (name, input) => executor.requireHandler(name, input),
    limits: config,
    readPageBytes: config.readPageBytes,
    heldHeartbeats: {
      perIp: config.maxConnectionsPerIp,
      perToken: config.maxConnectionsPerToken,
      maxHoldMs: Math.floor(config.connectionIdleTimeoutMs / 2),
    },
    clientKey: keyOf,
    createRate: { limiter: new RateLimiter(config.createRunsPerSecondPerIp, 2 * config.createRunsPerSecondPerIp, now), perSecond: config.createRunsPerSecondPerIp },
    appendRate: new RateLimiter(
      config.appendEventsPerSecond,
      Math.max(2 * config.appendEventsPerSecond, config.maxEventsPerBatch),
      now,
    ),
  });
  registerOutputLogRoute(http, runs, { logDir, node: config.node });
  registerExecutorRoutes(http, executor, reaper, config.queuedOrphanTimeoutMs);
  registerTokenRoutes(http, {
    tokens,
    runs,
    mintRate: { limiter: new RateLimiter(config.mintRunTokensPerSecond, 2 * config.mintRunTokensPerSecond, now), perSecond: config.mintRunTokensPerSecond },
    clientKey: keyOf,
  });
  // What the guard writes into the CSP, for the dashboard to offer previews of exactly those hosts' links.
  serve(http, 'dashboardConfig', async () => ({ linkPreviewHosts: config.linkPreviewHosts }));
  await registerArtifactRoutes(http, artifacts, { minBytesPerSecond: config.minUploadBytesPerSecond, graceMs: config.requestBodyTimeoutMs, unreadAnswer });
  const stream = new StreamServer(http, {
    store,
    hub,
    metrics,
    sendBufferBytes: config.sendBufferBytes,
    readPageBytes: config.readPageBytes,
    pingIntervalMs: config.streamPingIntervalMs,
    log: http.log,
    tokens,
    guard,
    now,
    limits: config,
    clientKey: keyOf,
  });
  registerMetrics(http, metrics, { hub, stream, store, executor, concurrency: config.concurrency, heldHeartbeats: () => runs.heldHeartbeats, ready: () => readiness.ready });
  logRunLifecycle(http.log, hub);
  await registerApiDocs(http, SERVER_VERSION);
  await registerStatic(http, config.webDir);
  return { http, runs, artifacts, hub, stream, config, executor, reaper, readiness, tokens, metrics, define: executor.define.bind(executor) };
}
