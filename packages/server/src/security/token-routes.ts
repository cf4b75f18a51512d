import type { FastifyInstance } from 'fastify';
import { RuntrailError, type WhoamiResponse } from '@runtrail/protocol';
import { serve } from '../http/route-table.js';
import type { RunService } from '../runs/run-service.js';
import { tokenOf } from './authenticate.js';
import type { TokenService } from './tokens.js';

export function registerTokenRoutes(http: FastifyInstance, deps: { tokens: TokenService; runs: RunService }): void {
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

  serve(http, 'revokeToken', async ({ params, reply }) => {
    await deps.tokens.revoke(params.id!);
    void reply.status(204);
    return null;
  });

  serve(http, 'createRunToken', async ({ params, body, request, reply }) => {
    const run = await deps.runs.get(params.id!);
    void reply.status(201);
    return deps.tokens.mintRunToken(run.id, body.ttlSeconds, body.write, request.principal);
  });
}
