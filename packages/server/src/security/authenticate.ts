import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { PathParams, parseOrThrow, type RouteName } from '@runtrail/protocol';
import type { RunStore } from '@runtrail/store';
import { authorize, listedParents, routeAccess } from './access.js';
import type { Principal, TokenService } from './tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request; set for every route of the table before its handler runs. */
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** The route-table name of the route (set by `serve`). */
    routeName?: RouteName;
  }
}

/** Routes that also take `?token=`: streams, which browsers open without a way to set headers. */
export const QUERY_TOKEN_ROUTES: ReadonlySet<RouteName> = new Set(['streamRun', 'stream']);

/**
 * The token of a request: `Authorization: Bearer <token>`, or for streams
 * `?token=`. Another Authorization scheme counts as no token.
 */
export function tokenOf(headers: IncomingHttpHeaders, url: string | undefined, allowQuery: boolean): string | undefined {
  const auth = headers.authorization;
  if (auth !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    return match ? match[1] : undefined;
  }
  if (!allowQuery || url === undefined) return undefined;
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}

/**
 * `?token=…` (and nothing else) replaced, for logs. The name is compared
 * decoded, as tokenOf reads it: `?%74oken=` is the token too.
 */
export function redactUrl(url: string): string {
  return url.replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, sep: string, name: string) =>
    queryName(name).toLowerCase() === 'token' ? `${sep}${name}=[redacted]` : whole,
  );
}

/** A query parameter's name as URLSearchParams decodes it; as sent when it is no valid escape. */
function queryName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch (err) {
    void err; // a malformed escape (%E0%A4%A): compared as it was sent
    return raw;
  }
}

/**
 * Authenticate and authorize every request of a route in the table, before
 * its body is read: who may call what is `routeAccess`, in one place.
 */
export function installAuth(http: FastifyInstance, deps: { tokens: TokenService; store: RunStore }): void {
  // Null until the hook sets it; Fastify wants the shape of the property known up front.
  http.decorateRequest('principal', null as never);
  http.addHook('onRequest', async (request) => {
    const name = request.routeOptions.config.routeName;
    if (name === undefined) return;
    const access = routeAccess[name];
    request.principal = await deps.tokens.authenticate(
      access === 'open' ? undefined : tokenOf(request.headers, request.url, QUERY_TOKEN_ROUTES.has(name)),
    ).catch((err: unknown) => {
      if (access === 'open') return { kind: 'open' } as const;
      throw err;
    });
    // A run token's check reads the store by this id: refuse a control character before that, as the route would.
    const runId = parseOrThrow(PathParams, request.params ?? {}, 'path').id;
    await authorize(deps.store, request.principal, access, runId, access === 'readChildren' ? listedParents(request.query as object) : []);
  });
}
