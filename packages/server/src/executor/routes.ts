import type { FastifyInstance } from 'fastify';
import { serve } from '../http/route-table.js';
import type { Reaper } from '../leases/reaper.js';
import type { Executor } from './executor.js';

export function registerExecutorRoutes(app: FastifyInstance, executor: Executor, reaper: Pick<Reaper, 'unclaimable'>, queuedOrphanTimeoutMs: number): void {
  serve(app, 'listHandlers', async () => ({
    handlers: executor.names(),
    // Which process and where it answers is for nodes checking each other, not for readers.
    nodes: (await executor.liveNodes()).map(({ node, handlers, heardAt, liveUntil }) => ({ node, handlers, heardAt, liveUntil })),
    queuedOrphanTimeoutMs,
    // The reaper's own count, not one worked out again here: a page says the moment its sweep acts on.
    unclaimable: reaper.unclaimable(),
  }));
}
