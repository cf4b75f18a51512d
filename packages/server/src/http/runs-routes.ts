import type { FastifyInstance } from 'fastify';
import { MAX_READ_LIMIT, RuntrailError, labelsAsSent } from '@runtrail/protocol';
import type { RunService } from '../runs/run-service.js';
import { serve } from './route-table.js';

export interface RunRoutesOptions {
  /** Throws handler_not_found unless this node can execute runs of that name. */
  requireHandler?: (name: string) => void;
}

export function registerRunRoutes(app: FastifyInstance, runs: RunService, options: RunRoutesOptions = {}): void {
  serve(app, 'createRun', async ({ body, request, reply }) => {
    if (body.execute) options.requireHandler?.(body.name);
    const key = request.headers['idempotency-key'];
    if (Array.isArray(key)) throw new RuntrailError('invalid_request', 'send one Idempotency-Key header');
    if (key !== undefined && (key.length === 0 || key.length > 200)) {
      throw new RuntrailError('invalid_request', 'Idempotency-Key must be 1 to 200 characters');
    }
    const labels = labelsAsSent(request.body, body.labels);
    const { run, created } = await runs.create({ ...body, labels }, key === undefined ? {} : { idempotencyKey: key });
    void reply.status(created ? 201 : 200);
    return run;
  });

  serve(app, 'listRuns', async ({ query }) => runs.list(query));
  serve(app, 'getRun', async ({ params }) => runs.get(params.id!));

  serve(app, 'deleteRun', async ({ params, reply }) => {
    await runs.delete(params.id!);
    void reply.status(204);
    return null;
  });

  serve(app, 'appendEvents', async ({ params, body }) => runs.append(params.id!, body));

  serve(app, 'readEvents', async ({ params, query }) =>
    runs.readEvents(params.id!, query.after ?? 0, query.limit ?? MAX_READ_LIMIT),
  );

  serve(app, 'finishRun', async ({ params, body }) => runs.finish(params.id!, body));
  serve(app, 'heartbeat', async ({ params, body }) => runs.heartbeat(params.id!, body.owner));
  serve(app, 'cancelRun', async ({ params, body }) => runs.cancel(params.id!, body.reason));

  serve(app, 'retryRun', async ({ params, reply }) => {
    const run = await runs.retry(params.id!, options.requireHandler);
    void reply.status(201);
    return run;
  });
}
