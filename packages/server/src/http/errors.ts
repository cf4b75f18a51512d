import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyError, FastifyInstance } from 'fastify';
import { API_PREFIX, MAX_ARTIFACT_NAME, RuntrailError, echo, routes, type ErrorBody, type RouteName } from '@runtrail/protocol';
import { RepeatedFailureLog } from '../repeated-failure-log.js';
import { SECURITY_HEADERS } from '../security/browser-guard.js';

/** Map every failure to `{error: {code, message, details}}` with the status of its code. */
export function installErrorHandler(app: FastifyInstance): void {
  // A 503 (the database down, a file store unreachable) is on the node's log too, not only in
  // runtrail_store_errors_total: once per outage and then as a count, since every request fails alike.
  // One log per kind of refusal (the store's reason, and /readyz's "not ready: …" apart): one outage
  // is refused in several words (a full disk refuses the database's writes and the artifacts' uploads,
  // /readyz says it again when probed), and in one log each alternation was logged as a new failure.
  const unavailable = new Map<string, RepeatedFailureLog>();
  const unavailableLog = (key: string): RepeatedFailureLog => {
    let log = unavailable.get(key);
    // Reasons are a few fixed words; the bound keeps an unexpected source from growing the map.
    if (!log && unavailable.size < 32) unavailable.set(key, (log = new RepeatedFailureLog(app.log, { failed: 'answered 503: unavailable', level: 'warn' })));
    return log ?? unavailableLog('');
  };
  app.setErrorHandler((err: FastifyError | RuntrailError, request, reply) => {
    const mapped = toRuntrailError(err, request.routeOptions.bodyLimit, {
      route: request.routeOptions.config.routeName,
      contentType: request.headers['content-type'],
    });
    if (mapped.code === 'internal') request.log.error({ err }, 'request failed');
    if (mapped.code === 'unavailable') {
      const reason = (mapped.details as { reason?: unknown } | undefined)?.reason;
      const key = request.routeOptions.url === routes.ready.path ? 'ready' : typeof reason === 'string' ? `reason:${reason}` : '';
      unavailableLog(key).failed(mapped, { route: request.routeOptions.config.routeName ?? request.routeOptions.url });
    }
    // Producers' SDKs wait this long before retrying a 503 (a locked or unreachable store).
    if (mapped.code === 'unavailable') void reply.header('retry-after', String(retryAfterSeconds(mapped)));
    if (mapped.code === 'unauthorized') void reply.header('www-authenticate', 'Bearer');
    const retryAfterMs = (mapped.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    if (mapped.code === 'rate_limited' && typeof retryAfterMs === 'number') {
      void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    }
    void reply.status(mapped.status).send(mapped.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = methodsOf(path);
    // A path a route of this method would take but the router did not (a parameter over its length): not found.
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      void reply
        .status(405)
        .header('allow', allowed.join(', '))
        .send(new RuntrailError('method_not_allowed', `${request.method} is not a method of ${echo(path)}; it takes ${allowed.join(', ')}`, { allow: allowed }).toBody());
      return;
    }
    const body: ErrorBody = {
      error: { code: 'route_not_found', message: `no route ${echo(request.method)} ${echo(path)}` },
    };
    // A person who followed a bad link gets a page with a way back; API clients (and mistyped API URLs) get JSON.
    if (request.method === 'GET' && !path.startsWith(API_PREFIX) && /\btext\/html\b/.test(request.headers.accept ?? '')) {
      void reply.status(404).type('text/html; charset=utf-8').send(notFoundPage(path));
      return;
    }
    void reply.status(404).send(body);
  });
}

/** The page a browser gets for a path that is neither the dashboard's nor the API's. */
function notFoundPage(path: string): string {
  const shown = echo(path).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><meta charset="utf-8"><title>Not found · runtrail</title>
<body>
<h1>No page at <code>${shown}</code></h1>
<p>The runs are at <a href="/">the dashboard</a>; a run's page is <code>/runs/&lt;id&gt;</code>. The API is under <code>${API_PREFIX}</code> (<a href="/api/docs">reference</a>).</p>
</body>
`;
}

/** Each route of the shared table as a pattern of its path (`:id` is one segment), with its method. */
const routePatterns = Object.values(routes).map((route) => ({
  method: route.method,
  pattern: new RegExp(`^${route.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z]+/g, '[^/]+')}$`),
}));

/** The methods the route table serves at `path` (HEAD with GET, as Fastify answers it); none: no such path. */
function methodsOf(path: string): string[] {
  const methods = new Set<string>();
  for (const { method, pattern } of routePatterns) {
    if (!pattern.test(path)) continue;
    methods.add(method);
    if (method === 'GET') methods.add('HEAD');
  }
  return [...methods];
}

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (headers
 * too large, a malformed header or Content-Length, a request that takes too
 * long), answered with the documented error body instead of Fastify's own.
 * The connection is closed after: the parser cannot find the next request.
 */
export function clientErrorHandler(this: { log: FastifyBaseLogger }, err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new RuntrailError('headers_too_large', 'the request line and headers are larger than this server reads (16 KiB with Node defaults): send a shorter URL, fewer headers or smaller ones')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new RuntrailError('request_timeout', 'the request did not arrive in time; send it again')
        : new RuntrailError('invalid_request', `malformed HTTP request: ${err.reason ?? err.message} (${err.code ?? 'parse error'}); a header value must not hold control characters and Content-Length must be the body's length in decimal digits`);
  this.log.trace({ err }, 'client error');
  if (socket.writable) {
    const body = JSON.stringify(error.toBody());
    // No hook runs for this answer: it carries the headers every answer does itself.
    const security = Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${security}Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

function retryAfterSeconds(err: RuntrailError): number {
  const ms = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === 'number' && ms > 0 ? Math.ceil(ms / 1000) : 1;
}

/** Routes whose bodies are not JSON but content of any type (the artifact routes' own parser takes every media type). */
export const RAW_BODY_ROUTES: ReadonlySet<RouteName> = new Set(['putArtifact', 'importRun']);

/**
 * `bodyLimit`: the route's body limit in bytes, which a 413 names (the
 * client cannot guess it); `request`: the route and the Content-Type sent,
 * so a refused type is named for what that route takes.
 */
export function toRuntrailError(err: unknown, bodyLimit?: number, request: { route?: RouteName | undefined; contentType?: string | undefined } = {}): RuntrailError {
  if (err instanceof RuntrailError) return err;
  const fe = err as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    if (bodyLimit === undefined) return new RuntrailError('payload_too_large', `request body is larger than the limit of this server: ${fe.message}`);
    return new RuntrailError(
      'payload_too_large',
      `request body is larger than the limit of this server, ${bodyLimit} bytes (bodyLimitBytes on the server); send less in one request (smaller batches of events)`,
      { limit: bodyLimit },
    );
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // An upload takes any type, but only a type: "garbage" is no media type, and "send JSON" would send the uploader astray.
    if (request.route !== undefined && RAW_BODY_ROUTES.has(request.route)) {
      return new RuntrailError(
        'invalid_request',
        `content-type ${JSON.stringify(echo(request.contentType ?? ''))} is not a media type (type/subtype, such as text/plain or image/png); ${request.route === 'putArtifact' ? 'send one, or none to have the type sniffed' : 'send application/x-tar'}`,
        { issues: [{ path: 'content-type', message: 'must be a media type such as text/plain or image/png' }] },
      );
    }
    return new RuntrailError('invalid_request', `send JSON with content-type application/json: ${fe.message}`);
  }
  if (fe.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    // The router's message quoted the whole URL and named its setting, not what was too long.
    return new RuntrailError(
      'invalid_request',
      `a part of the URL's path is too long: no run id, token id or artifact name (at most ${MAX_ARTIFACT_NAME} characters) is that long`,
      { issues: [{ path: 'path', message: 'a part of the path is too long' }] },
    );
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new RuntrailError('invalid_request', fe.message);
  }
  return new RuntrailError('internal', 'internal error; see the server log');
}
