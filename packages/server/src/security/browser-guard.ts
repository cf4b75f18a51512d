import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_HEADER, RuntrailError, routes } from '@runtrail/protocol';

/**
 * Defences against hostile web pages, on whether or not auth is on (issue
 * 15, item 5): a page on another origin must not change anything (CSRF),
 * read anything (CORS, Origin), or reach the server under its own name
 * (DNS rebinding, the Host check); the dashboard's responses carry headers
 * that keep it from being framed, sniffed or scripted inline.
 */
export interface BrowserGuardOptions {
  /** The address the server is bound to (`--host`). */
  host: string;
  /** Extra host names the server answers to. */
  allowedHosts: string[];
  /** Origins allowed to call the HTTP API cross-origin (CORS). */
  corsOrigins: string[];
  /** Origins allowed to open the WebSocket, besides the server's own. */
  allowedOrigins: string[];
}

const LOOPBACK_NAMES = new Set(['localhost']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CORS_HEADERS = ['authorization', 'content-type', 'idempotency-key', 'last-event-id', CLIENT_HEADER].join(', ');

/**
 * What every page of the server may do, whatever it is: script only from
 * the server's own files, no plugins, no <base>, forms only to itself, no
 * framing at all.
 *
 * Images, media and connections may go further (any http(s) host) because
 * a producer may record an artifact as a link to where it keeps it (an
 * object store) and a viewer may preview it in the page. The CSP cannot
 * tell a load the viewer asked for from one the page made by itself, so it
 * cannot keep a producer's URL from being fetched: the dashboard does, by
 * loading a link's preview only when the viewer presses a button naming
 * its host (web/src/components/Artifacts.tsx). Narrowing these to 'self'
 * would end those previews, and a list of hosts would be a setting every
 * deployment must keep in step with its producers; so they stay open to
 * http(s), written out rather than `*` so a reader sees what that means.
 * What the CSP buys is the rest: no injected or inline script, no string
 * turned into markup or script (Trusted Types, below), no plugin, no
 * framing.
 */
const BASE_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' http: https: data: blob:",
  "media-src 'self' http: https: data: blob:",
  "connect-src 'self' http: https: ws: wss: data: blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
];

/**
 * The dashboard's policy, sent with every answer but the API docs page:
 * Trusted Types, so no string ever reaches an HTML or script sink
 * (innerHTML, DOMParser, script src, eval): a producer's text that slipped
 * past rendering still could not become markup. The dashboard (React, no
 * innerHTML of its own) needs no policy of its own, so none may be made.
 */
export const CONTENT_SECURITY_POLICY = [...BASE_POLICY, "require-trusted-types-for 'script'", "trusted-types 'none'"].join('; ');

/**
 * The API docs page (Swagger UI, third-party) sets innerHTML from strings
 * and parses Markdown into markup: under Trusted Types it renders nothing.
 * It shows the server's own OpenAPI document, no producer's data, so it
 * keeps the rest of the policy without them.
 */
const API_DOCS_CONTENT_SECURITY_POLICY = BASE_POLICY.join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  // Run tokens travel in dashboard URLs (?token=): never pass them on to another site.
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

export class BrowserGuard {
  private readonly hosts: Set<string>;
  private readonly cors: Set<string>;
  private readonly wsOrigins: Set<string>;

  constructor(options: BrowserGuardOptions) {
    this.hosts = new Set([...options.allowedHosts, options.host].map(normalizeHostname));
    this.cors = new Set(options.corsOrigins.map(normalizeOrigin));
    this.wsOrigins = new Set([...options.allowedOrigins].map(normalizeOrigin));
  }

  /**
   * DNS rebinding points a name the attacker owns at this server; the
   * browser then sends that name as Host. IP literals cannot be rebound, and
   * `localhost` and the configured names are ours, so only those pass.
   */
  checkHost(headers: IncomingHttpHeaders): void {
    const host = headers.host;
    const name = host === undefined ? undefined : hostnameOf(host);
    if (name !== undefined && (isIP(name) !== 0 || LOOPBACK_NAMES.has(name) || this.hosts.has(name))) return;
    throw new RuntrailError(
      'host_not_allowed',
      `this server does not answer to the host ${JSON.stringify(host ?? '')}; add the name with --allowed-hosts if it is yours`,
    );
  }

  /** A cross-origin HTTP request is refused unless its origin is in --cors-origins. */
  checkHttpOrigin(headers: IncomingHttpHeaders): void {
    const origin = headers.origin;
    if (origin === undefined || this.sameOrigin(origin, headers) || this.cors.has(normalizeOrigin(origin))) return;
    throw new RuntrailError('forbidden', `cross-origin request from ${origin} refused; allow the origin with --cors-origins`);
  }

  /**
   * Browsers always send Origin on a WebSocket handshake; a page elsewhere
   * must be named in --allowed-origins. Clients that are not browsers send
   * none and are judged by their token alone.
   */
  wsOriginAllowed(headers: IncomingHttpHeaders): boolean {
    const origin = headers.origin;
    return origin === undefined || this.sameOrigin(origin, headers) || this.wsOrigins.has(normalizeOrigin(origin));
  }

  /**
   * A forged cross-site request can only be "simple": no custom header, a
   * form content type. Requiring JSON, our client header or a bearer token
   * makes a browser ask first (a CORS preflight), which we refuse.
   */
  checkCsrf(method: string, headers: IncomingHttpHeaders): void {
    if (SAFE_METHODS.has(method)) return;
    const type = (headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json' || headers[CLIENT_HEADER] !== undefined || headers.authorization !== undefined) return;
    throw new RuntrailError(
      'forbidden',
      `a ${method} must send content-type: application/json or an ${CLIENT_HEADER} header (cross-site request forgery protection)`,
    );
  }

  /** Fastify hooks: every HTTP request passes these before routing to a handler. */
  install(http: FastifyInstance): void {
    http.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) void reply.header(name, value);
      if (isApiDocsPage(request.url)) void reply.header('content-security-policy', API_DOCS_CONTENT_SECURITY_POLICY);
      this.checkHost(request.headers);
      const origin = request.headers.origin;
      if (origin !== undefined && !this.sameOrigin(origin, request.headers) && this.cors.has(normalizeOrigin(origin))) {
        void reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
        void reply.header('access-control-expose-headers', 'retry-after, www-authenticate');
        if (request.method === 'OPTIONS') {
          return reply
            .status(204)
            .header('access-control-allow-methods', 'GET, POST, DELETE')
            .header('access-control-allow-headers', CORS_HEADERS)
            .header('access-control-max-age', '600')
            .send();
        }
      }
      this.checkHttpOrigin(request.headers);
      // A path nobody serves changes nothing; it gets its honest 404.
      if (!request.is404) this.checkCsrf(request.method, request.headers);
      return undefined;
    });
  }

  private sameOrigin(origin: string, headers: IncomingHttpHeaders): boolean {
    const host = headers.host;
    if (host === undefined) return false;
    try {
      return new URL(origin).host === new URL(`http://${host}`).host;
    } catch (err) {
      // Not a URL (e.g. the opaque origin "null"): not our origin.
      void err;
      return false;
    }
  }
}

/** The API docs page and its files (a policy applies to the document it came with; the files' own do not matter, but they are one prefix). */
function isApiDocsPage(url: string): boolean {
  const path = url.split('?')[0]!;
  return path === routes.apiDocs.path || path.startsWith(`${routes.apiDocs.path}/`);
}

function normalizeHostname(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
}

/** The host name of a Host header (`name[:port]`, `[v6][:port]`), without port or brackets; undefined if it is not one. */
function hostnameOf(host: string): string | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?$/.exec(host.trim());
  return match ? normalizeHostname(match[1]!) : undefined;
}

function normalizeOrigin(origin: string): string {
  try {
    return new URL(origin).origin;
  } catch (err) {
    // Kept as given: it can only ever equal itself.
    void err;
    return origin;
  }
}
