import type { FastifyInstance } from 'fastify';
import { serve } from '../http/route-table.js';
import type { Executor } from './executor.js';

export function registerExecutorRoutes(app: FastifyInstance, executor: Executor): void {
  serve(app, 'listHandlers', async () => ({ handlers: executor.names(), nodes: await executor.liveNodes() }));
}
