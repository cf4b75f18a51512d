import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { RuntrailError, type WhoamiResponse } from '@runtrail/protocol';
import { serve } from '../http/route-table.js';
import type { RunService } from '../runs/run-service.js';
import { tokenOf } from './authenticate.js';
import { countedAgainst, rateLimited, type RateLimiter } from './limits.js';
import type { Principal, TokenService } from './tokens.js';

export interface TokenRoutesDeps {
  tokens: TokenService;
  runs: RunService;
  /** Run tokens one principal mints per second, bursts of the limiter's capacity; absent: no rate. */
  mintRate?: { limiter: RateLimiter; perSecond: number };
  /** The key an open server's requests are counted under (their client address): there is no token to count them by. */
  clientKey: (request: IncomingMessage) => string;
}

export function registerTokenRoutes(http: FastifyInstance, deps: TokenRoutesDeps): void {
  /**
   * `mint` counted against the principal's rate, 429 past it: each mint is a row kept until it
   * expires, and the per-run cap alone let one token fill that many for every run it can create.
   * Only a token minted counts (see countedAgainst): a mint refused for an unknown run or a run at
   * maxRunTokensPerRun costs nothing, as a refused create does.
   */
  const countedMint = <T>(principal: Principal, request: IncomingMessage, mint: () => Promise<T>): Promise<T> => {
    const rate = deps.mintRate;
    if (!rate) return mint();
    // Only scoped tokens and an open server's clients get here (routeAccess: produce).
    const who = principal.kind === 'scoped' ? `token ${principal.id}` : `client address ${deps.clientKey(request)}`;
    return countedAgainst(
      rate.limiter,
      who,
      (wait) => rateLimited(`${who} is minting run tokens faster than ${rate.perSecond} per second (mintRunTokensPerSecond on the server); retry after Retry-After`, wait),
      mint,
    );
  };

  // Open, so a login page can ask whether a token works before keeping it.
  serve(http, 'whoami', async ({ request }): Promise<WhoamiResponse> => {
    const auth = deps.tokens.enabled;
    let principal;
    try {
      principal = await deps.tokens.authenticate(tokenOf(request.headers, request.url, false));
    } catch (err) {
      if (!RuntrailError.isCode(err, 'unauthorized')) throw err;
      return { auth, principal: null };
    }
    if (principal.kind === 'open') return { auth, principal };
    if (principal.kind === 'run') {
      const { id, runId, expiresAt, write } = principal;
      return { auth, principal: { kind: 'run', ...(id === undefined ? {} : { id }), runId, expiresAt, write } };
    }
    const { id, name, scope, expiresAt } = principal;
    return { auth, principal: { kind: 'scoped', id, name, scope, expiresAt } };
  });

  serve(http, 'createToken', async ({ body, reply }) => {
    void reply.status(201);
    return deps.tokens.create(body);
  });

  serve(http, 'listTokens', async () => ({ tokens: await deps.tokens.list() }));

  serve(http, 'revokeToken', async ({ params, request }) => deps.tokens.revoke(params.id!, request.principal));

  serve(http, 'createRunToken', async ({ params, body, request, reply }) => {
    const minted = await countedMint(request.principal, request.raw, async () => {
      const run = await deps.runs.get(params.id!);
      return deps.tokens.mintRunToken(run.id, body.ttlSeconds, body.write, request.principal);
    });
    void reply.status(201);
    return minted;
  });
}
