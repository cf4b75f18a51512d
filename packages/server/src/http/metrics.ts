import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { isTerminalStatus } from '@runtrail/protocol';
import type { Hub } from '../hub.js';
import type { StreamServer } from '../stream/index.js';
import { serve } from './route-table.js';

/**
 * Prometheus metrics at routes.metrics. Counted from the hub (what was
 * committed), so the numbers say what the log holds, not what was attempted.
 */
export function registerMetrics(http: FastifyInstance, deps: { hub: Hub; stream: StreamServer }): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'runtrail_' });
  const appended = new Counter({
    name: 'runtrail_events_appended_total',
    help: 'Events committed to run logs on this node',
    registers: [registry],
  });
  const created = new Counter({ name: 'runtrail_runs_created_total', help: 'Runs created on this node', registers: [registry] });
  const ended = new Counter({
    name: 'runtrail_runs_ended_total',
    help: 'Runs that reached their terminal event on this node, by status and error kind',
    labelNames: ['status', 'kind'],
    registers: [registry],
  });
  new Gauge({
    name: 'runtrail_stream_connections',
    help: 'Open live-stream connections, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      const { connections } = deps.stream.stats();
      this.set({ transport: 'ws' }, connections.ws);
      this.set({ transport: 'sse' }, connections.sse);
    },
  });
  new Gauge({
    name: 'runtrail_stream_queued_bytes',
    help: 'Bytes queued in live-stream send buffers (bounded per connection by sendBufferBytes)',
    registers: [registry],
    collect() {
      this.set(deps.stream.stats().queuedBytes);
    },
  });

  deps.hub.subscribeAll((events) => appended.inc(events.length));
  deps.hub.subscribeRuns((change, run) => {
    if (change === 'created') created.inc();
    else if (change === 'updated' && isTerminalStatus(run.status) && run.seq === run.snapshot.terminal?.seq) {
      ended.inc({ status: run.status, kind: run.error?.kind ?? 'none' });
    }
  });

  serve(http, 'metrics', async ({ reply }) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
