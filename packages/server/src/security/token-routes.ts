import type { FastifyInstance } from 'fastify';
import { serve } from '../http/route-table.js';
import type { RunService } from '../runs/run-service.js';
import type { TokenService } from './tokens.js';

export function registerTokenRoutes(http: FastifyInstance, deps: { tokens: TokenService; runs: RunService }): void {
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

  serve(http, 'createRunToken', async ({ params, body, reply }) => {
    const run = await deps.runs.get(params.id!);
    void reply.status(201);
    return deps.tokens.mintRunToken(run.id, body.ttlSeconds);
  });
}
