import type { FastifyInstance } from 'fastify';
import type { HandlersResponse } from '@runtrail/protocol';
import { serve } from '../http/route-table.js';
import type { Reaper } from '../leases/reaper.js';
import type { Executor } from './executor.js';

export function registerExecutorRoutes(app: FastifyInstance, executor: Executor, reaper: Pick<Reaper, 'unclaimable'>, queuedOrphanTimeoutMs: number): void {
  serve(app, 'listHandlers', async () => {
    // Which process and where it answers is for nodes checking each other, not for readers.
    const nodes = (await executor.liveNodes()).map(({ node, handlers, heardAt, liveUntil, slots }) => ({ node, handlers, heardAt, liveUntil, ...(slots ? { slots } : {}) }));
    return {
      handlers: executor.names(),
      nodes,
      queuedOrphanTimeoutMs,
      // The reaper's own count, not one worked out again here: a page says the moment its sweep acts on.
      unclaimable: reaper.unclaimable(),
      inputs: handlerInputs(executor, nodes),
    };
  });
}

/**
 * Each handler a run can be started for here, with the nodes that define
 * it and its input: this node's own schema, else `elsewhere` (another
 * node's schema is not in the registry, and is not guessed from the name).
 */
function handlerInputs(executor: Executor, nodes: ReadonlyArray<{ node: string; handlers: string[] }>): HandlersResponse['inputs'] {
  const names = [...new Set([...executor.names(), ...nodes.flatMap((n) => n.handlers)])].sort();
  return names.map((handler) => {
    const definedBy = nodes.filter((n) => n.handlers.includes(handler)).map((n) => n.node);
    return { handler, nodes: definedBy, input: executor.inputOf(handler) ?? { kind: 'elsewhere', nodes: definedBy } };
  });
}
