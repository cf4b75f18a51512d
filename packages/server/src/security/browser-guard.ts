import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_HEADER, RuntrailError } from '@runtrail/protocol';

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
 * Script only from the server's own files; connections, images and media
 * may go further because artifact previews load from wherever the producer
 * stored them (or from blob: URLs of content fetched with the tab's token).
 * No framing at all.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  'img-src * data: blob:',
  'media-src * data: blob:',
  "connect-src 'self' http: https: ws: wss: data: blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

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
