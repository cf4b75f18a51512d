import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RuntrailError, RunStatus, routes } from '@runtrail/protocol';
import type { RunStore } from '@runtrail/store';
import type { Executor } from '../executor/index.js';
import { isEndUpdate, type Hub } from '../hub.js';
import type { ReapKind } from '../leases/reaper.js';
import type { StreamServer } from '../stream/index.js';
import type { StreamMetrics, Transport } from '../stream/types.js';
import { HotHistogram } from './hot-histogram.js';
import { serve } from './route-table.js';

/** Seconds; from sub-millisecond local appends to a struggling disk or a far-away Postgres. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Default process metrics whose names `promtool check metrics` rejects (gauges named *_total). */
const REJECTED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

const TRANSPORTS: Transport[] = ['ws', 'sse'];

/**
 * The Prometheus metrics of one node, answering an operator's questions: how
 * many runs in each state, how fast appends commit and events reach
 * watchers, who is connected, who fell behind, what the reaper ended, how
 * busy the executor is, whether the store fails. Event and run counts come
 * from the hub (what was committed), not from what was attempted.
 */
export class ServerMetrics implements StreamMetrics {
  readonly registry = new Registry();
  /**
   * Counted per event in a plain map (a prom-client label lookup per event
   * costs more than the rest of the bookkeeping), handed to the counter when
   * /metrics is scraped.
   */
  private readonly appendedByType = new Map<string, number>();
  private readonly appended = new Counter({
    name: 'runtrail_events_appended_total',
    help: 'Events committed to run logs on this node, by event type',
    labelNames: ['type'],
    registers: [this.registry],
    collect: () => {
      for (const [type, n] of this.appendedByType) if (n > 0) this.appended.inc({ type }, n);
      this.appendedByType.clear();
    },
  });
  /** Observed for every append request and every frame delivered, so cheap to observe (see HotHistogram). */
  readonly appendDuration = new HotHistogram(
    'runtrail_append_duration_seconds',
    'Time to answer one POST /api/v1/runs/:id/events request (validate, commit, publish)',
    LATENCY_BUCKETS,
    null,
    [''],
    this.registry,
  );
  private readonly delivery = new HotHistogram(
    'runtrail_delivery_latency_seconds',
    'From the commit of a batch of live events to its frame being written to a watcher, by transport',
    LATENCY_BUCKETS,
    'transport',
    TRANSPORTS,
    this.registry,
  );
  private readonly resyncs = new Counter({
    name: 'runtrail_slow_consumer_resyncs_total',
    help: 'Times a watcher fell behind its send-buffer bound and was switched to catch-up reads from the store, by transport',
    labelNames: ['transport'],
    registers: [this.registry],
  });
  private readonly created = new Counter({
    name: 'runtrail_runs_created_total',
    help: 'Runs created on this node',
    registers: [this.registry],
  });
  private readonly ended = new Counter({
    name: 'runtrail_runs_ended_total',
    help: 'Runs that reached their terminal event on this node, by status and error kind',
    labelNames: ['status', 'kind'],
    registers: [this.registry],
  });
  private readonly reaped = new Counter({
    name: 'runtrail_reaped_runs_total',
    help: "Runs this node's reaper ended (orphaned, timeout, cancelled) or marked stalled, by kind",
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly storeErrors = new Counter({
    name: 'runtrail_store_errors_total',
    help: 'Store calls that failed (not counting answers such as run_not_found), by operation',
    labelNames: ['operation'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'runtrail_' });
    for (const name of REJECTED_DEFAULTS) this.registry.removeSingleMetric(`runtrail_${name}`);
    for (const transport of TRANSPORTS) {
      this.resyncs.inc({ transport }, 0);
    }
    for (const kind of ['orphaned', 'timeout', 'stalled', 'cancelled'] satisfies ReapKind[]) this.reaped.inc({ kind }, 0);
  }

  delivered(transport: Transport, seconds: number): void {
    this.delivery.observe(transport, seconds);
  }

  resynced(transport: Transport): void {
    this.resyncs.inc({ transport });
  }

  onReaped = (kind: ReapKind): void => {
    this.reaped.inc({ kind });
  };

  /** The store, with every failed call counted in runtrail_store_errors_total. */
  instrumentStore(store: RunStore): RunStore {
    const errors = this.storeErrors;
    const failed = (operation: string, err: unknown) => {
      // A RuntrailError is the store's answer (not found, conflict), not a failure of the store,
      // except `unavailable`: the database is locked, read-only or gone.
      if (!(err instanceof RuntrailError) || err.code === 'unavailable') errors.inc({ operation });
      throw err;
    };
    return new Proxy(store, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== 'function' || typeof key !== 'string') return value;
        return (...args: unknown[]) => {
          try {
            const result: unknown = value.apply(target, args);
            return result instanceof Promise ? result.catch((err: unknown) => failed(key, err)) : result;
          } catch (err) {
            return failed(key, err);
          }
        };
      },
    });
  }

  /** Count what the hub publishes: committed events by type, created and ended runs. */
  observe(hub: Hub): void {
    hub.subscribeAll((events) => {
      const counts = this.appendedByType;
      for (const event of events) {
        const type = event.type.startsWith('x.') ? 'x.*' : event.type;
        counts.set(type, (counts.get(type) ?? 0) + 1);
      }
    });
    hub.subscribeRuns((change, run) => {
      if (change === 'created') this.created.inc();
      else if (isEndUpdate(change, run)) this.ended.inc({ status: run.status, kind: run.error?.kind ?? 'none' });
    });
  }
}

export interface MetricsDeps {
  hub: Hub;
  stream: StreamServer;
  store: RunStore;
  executor: Executor;
  concurrency: number;
}

/** Serve the metrics at routes.metrics, with the gauges read at scrape time. */
export function registerMetrics(http: FastifyInstance, metrics: ServerMetrics, deps: MetricsDeps): void {
  const { registry } = metrics;
  metrics.observe(deps.hub);
  new Gauge({
    name: 'runtrail_runs',
    help: 'Runs in the store, by status',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const { byStatus } = await deps.store.countRuns({});
      for (const status of RunStatus.options) this.set({ status }, byStatus[status]);
    },
  });
  new Gauge({
    name: 'runtrail_executor_queue_depth',
    help: 'Runs queued for a handler and not yet claimed by any node',
    registers: [registry],
    async collect() {
      this.set((await deps.store.countRuns({ status: 'queued' })).total);
    },
  });
  new Gauge({
    name: 'runtrail_executor_busy_workers',
    help: "Runs this node's executor is working on now",
    registers: [registry],
    collect() {
      this.set(deps.executor.running);
    },
  });
  new Gauge({
    name: 'runtrail_executor_workers',
    help: "Runs this node's executor works on at once at most (config concurrency)",
    registers: [registry],
    collect() {
      this.set(deps.concurrency);
    },
  });
  new Gauge({
    name: 'runtrail_stream_connections',
    help: 'Open live-stream connections, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      const { connections } = deps.stream.stats();
      for (const transport of TRANSPORTS) this.set({ transport }, connections[transport]);
    },
  });
  new Gauge({
    name: 'runtrail_stream_subscriptions',
    help: 'Run and runs-list subscriptions held by live-stream connections, by transport',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      const { subscriptions } = deps.stream.stats();
      for (const transport of TRANSPORTS) this.set({ transport }, subscriptions[transport]);
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

  const appendUrl = routes.appendEvents.path;
  // A callback hook, not an async one: it runs for every request, and a promise per request is not free.
  http.addHook('onResponse', (request, reply, done) => {
    if (request.method === 'POST' && request.routeOptions.url === appendUrl) metrics.appendDuration.observe('', reply.elapsedTime / 1000);
    done();
  });

  serve(http, 'metrics', async ({ reply }) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}
