import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CLIENT_HEADER, RuntrailError, declaredRequestHeaders, routes } from '@runtrail/protocol';

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
  /** Origins (checked and canonical: config.ts) whose linked artifacts the dashboard may load; none by default. */
  linkPreviewHosts: string[];
}

const LOOPBACK_NAMES = new Set(['localhost']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * What an allowed origin's page may send (CORS preflight): what every route
 * reads (a token, a body's type, the forgery check's header) and the headers
 * the route table declares, so a header a route comes to read is allowed
 * once it is declared there, as the OpenAPI document lists it.
 */
const CORS_HEADERS = [...new Set(['authorization', 'content-type', CLIENT_HEADER, ...declaredRequestHeaders()])].join(', ');
/** Every method of the route table (an allowed origin's page uploading an artifact sends a PUT). */
const CORS_METHODS = [...new Set(Object.values(routes).map((route) => route.method))].join(', ');

/**
 * What every page of the server may do, whatever it is: script only from
 * the server's own files, no plugins, no <base>, forms only to itself, no
 * framing at all; images, media and connections only to itself (`data:`
 * and `blob:` are the previews of content it stores) and to the origins of
 * `linkPreviewHosts`.
 *
 * A producer may record an artifact as a link to where it keeps it (an
 * object store) and a viewer may preview it in the page. Opening these
 * directives to every http(s) host for that would let a script that got
 * into the page, or a link a viewer was lured into previewing, send
 * anything the page reads to any host, or reach into the viewer's own
 * network. So only the hosts a deployment names are reachable, and the
 * dashboard, told which they are (routes.dashboardConfig), offers a preview
 * only of links to those. The cost is a setting to keep in step with where
 * producers keep their artifacts; a deployment that sets none keeps links
 * that open in a tab. The CSP still cannot tell a load the viewer asked for
 * from one the page made by itself: the dashboard loads a link's preview
 * only when the viewer presses a button naming its host
 * (web/src/components/Artifacts.tsx).
 *
 * The dashboard's WebSocket needs no `ws:`/`wss:` source: CSP Level 3's
 * 'self' matches ws: and wss: to the page's own host and port, as Chromium
 * and Firefox implement it (proved in Chromium by
 * web/test/e2e/artifact-links.e2e.test.ts, which opens one). A source built
 * from the request's Host would not be needed, and the Host check below
 * limits it to names this server answers to anyway.
 */
function basePolicy(linkPreviewHosts: readonly string[]): string[] {
  // Canonical origins only (config.ts refuses anything else): no `;`, `,` or space can add a directive or a source.
  const hosts = linkPreviewHosts.map((origin) => ` ${origin}`).join('');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src 'self' data: blob:${hosts}`,
    `media-src 'self' data: blob:${hosts}`,
    `connect-src 'self' data: blob:${hosts}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ];
}

/**
 * The dashboard's policy, sent with every answer but the API docs page:
 * Trusted Types, so no string ever reaches an HTML or script sink
 * (innerHTML, DOMParser, script src, eval): a producer's text that slipped
 * past rendering still could not become markup. The dashboard (React, no
 * innerHTML of its own) needs no policy of its own, so none may be made.
 */
function contentSecurityPolicy(linkPreviewHosts: readonly string[]): string {
  return [...basePolicy(linkPreviewHosts), "require-trusted-types-for 'script'", "trusted-types 'none'"].join('; ');
}

/**
 * How many linkPreviewHosts a deployment may name, and how large the policy
 * they make may be. Each origin is written three times into every answer's
 * Content-Security-Policy; a proxy refuses an answer whose headers overflow
 * its buffer (nginx's proxy_buffer_size: 4 or 8 KB for all of them, by
 * platform) with a 502 for every page and API call alike. 32 origins cover
 * a deployment's object stores (a wildcard covers a domain's hosts), and a
 * 3 KiB policy leaves a 4 KB buffer room for the other headers.
 */
export const MAX_LINK_PREVIEW_HOSTS = 32;
export const MAX_CONTENT_SECURITY_POLICY_BYTES = 3072;

/** Why these origins cannot make the policy (too many, or too long a header), or null when they can: for config.ts to refuse at start-up. */
export function linkPreviewHostsProblem(linkPreviewHosts: readonly string[]): string | null {
  const count = linkPreviewHosts.length;
  const advice = "each origin is written three times into every answer's Content-Security-Policy header, which proxies cap (nginx: 4-8 KB of headers); list fewer (https://*.domain.tld covers every host of a domain)";
  if (count > MAX_LINK_PREVIEW_HOSTS) return `${count} origins, more than the ${MAX_LINK_PREVIEW_HOSTS} allowed: ${advice}`;
  const bytes = Buffer.byteLength(contentSecurityPolicy(linkPreviewHosts));
  if (bytes > MAX_CONTENT_SECURITY_POLICY_BYTES) {
    return `${count} origins make a Content-Security-Policy header of ${bytes} bytes, more than the ${MAX_CONTENT_SECURITY_POLICY_BYTES} allowed: ${advice}`;
  }
  return null;
}

/**
 * The API docs page (Swagger UI, third-party) sets innerHTML from strings
 * and parses Markdown into markup: under Trusted Types it renders nothing.
 * It shows the server's own OpenAPI document, no producer's data, so it
 * keeps the rest of the policy without them, and no producer's host.
 */
const API_DOCS_CONTENT_SECURITY_POLICY = basePolicy([]).join('; ');

/**
 * The headers every answer carries. The answers written where no guard is at
 * hand (a malformed request's 400, a refused upgrade or connection) are JSON
 * errors, never the dashboard: they get the policy without any producer's host.
 */
function securityHeaders(linkPreviewHosts: readonly string[]): Record<string, string> {
  return {
    'content-security-policy': contentSecurityPolicy(linkPreviewHosts),
    'x-content-type-options': 'nosniff',
    // Run tokens travel in dashboard URLs (?token=): never pass them on to another site.
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  };
}

export const SECURITY_HEADERS: Record<string, string> = securityHeaders([]);

export class BrowserGuard {
  private readonly hosts: Set<string>;
  private readonly cors: Set<string>;
  private readonly wsOrigins: Set<string>;
  private readonly headers: Record<string, string>;

  constructor(options: BrowserGuardOptions) {
    this.headers = securityHeaders(options.linkPreviewHosts);
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
      host === undefined || host === ''
        ? 'a request without a Host header is refused (HTTP/1.0?): send Host with a name in --allowed-hosts, localhost or an IP address'
        : `this server does not answer to the host ${JSON.stringify(host)}; add the name with --allowed-hosts if it is yours`,
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
      for (const [name, value] of Object.entries(this.headers)) void reply.header(name, value);
      if (isApiDocsPage(request.url)) void reply.header('content-security-policy', API_DOCS_CONTENT_SECURITY_POLICY);
      // A balancer's probe may send any Host, or none (HTTP/1.0); what the probes answer (up, ready, the node's
      // name) is no secret a rebinding page could want, and refusing them marked every node down.
      if (!isProbe(request.method, request.url)) this.checkHost(request.headers);
      const origin = request.headers.origin;
      if (origin !== undefined && !this.sameOrigin(origin, request.headers) && this.cors.has(normalizeOrigin(origin))) {
        void reply.header('access-control-allow-origin', origin).header('vary', 'Origin');
        void reply.header('access-control-expose-headers', 'retry-after, www-authenticate');
        if (request.method === 'OPTIONS') {
          return reply
            .status(204)
            .header('access-control-allow-methods', CORS_METHODS)
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

/** GET (or HEAD) /healthz or /readyz: the probes a load balancer sends. */
function isProbe(method: string, url: string): boolean {
  const path = url.split('?')[0]!;
  return (method === 'GET' || method === 'HEAD') && (path === routes.health.path || path === routes.ready.path);
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
