import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RuntrailError, RunStatus, routes } from '@runtrail/protocol';
import { CLUSTER_STORE_OPERATIONS, RUN_STORE_OPERATIONS, isSharedStore, type RunStore, type SharedRunStore, type StoreOperation } from '@runtrail/store';
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

  /**
   * The store, with every failed call counted in runtrail_store_errors_total
   * under its method's name, or under `as` whatever the method: a cluster
   * part's reads (the remote fan-out's) counted apart from the requests'.
   */
  instrumentStore<S extends RunStore>(store: S, as?: StoreOperation): S {
    const errors = this.storeErrors;
    // At zero from the start, one series per operation the wrapper counts under: a series born
    // with the first failure has no earlier sample, so rate() and increase() missed the start of
    // every outage. Only the methods this store has (readJoinedEventTexts is optional; a shared
    // store's databaseNow and announceWatchers), and `as`.
    if (as !== undefined) errors.inc({ operation: as }, 0);
    else for (const operation of [...RUN_STORE_OPERATIONS, ...CLUSTER_STORE_OPERATIONS]) if (typeof Reflect.get(store, operation) === 'function') errors.inc({ operation }, 0);
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
        const operation = as ?? key;
        return (...args: unknown[]) => {
          try {
            const result: unknown = value.apply(target, args);
            return result instanceof Promise ? result.catch((err: unknown) => failed(operation, err)) : result;
          } catch (err) {
            return failed(operation, err);
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
  /** Heartbeats held open now (RunService.heldHeartbeats). */
  heldHeartbeats: () => number;
  stream: StreamServer;
  store: RunStore;
  executor: Executor;
  concurrency: number;
  /** Whether the store took writes at the readiness timer's last check (GET /readyz). */
  ready: () => boolean;
}

/** Serve the metrics at routes.metrics, with the gauges read at scrape time. */
export function registerMetrics(http: FastifyInstance, metrics: ServerMetrics, deps: MetricsDeps): void {
  const { registry } = metrics;
  metrics.observe(deps.hub);
  // First: a scrape reads them before its own store reads take connections from the pool.
  if (isSharedStore(deps.store)) registerDatabaseMetrics(registry, deps.store);
  // The two gauges read from the store leave the scrape when the store cannot answer (the
  // database is down): /metrics keeps answering with everything else, which is when an
  // operator needs it most. The failed read is counted in runtrail_store_errors_total.
  new Gauge({
    name: 'runtrail_runs',
    help: 'Runs in the store, by status (absent while the store cannot be read)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await storeRead(() => deps.store.countRuns({}));
      this.reset();
      if (counts) for (const status of RunStatus.options) this.set({ status }, counts.byStatus[status]);
    },
  });
  new Gauge({
    name: 'runtrail_executor_queue_depth',
    help: 'Runs queued for a handler and not yet claimed by any node (absent while the store cannot be read)',
    registers: [registry],
    async collect() {
      const queued = await storeRead(() => deps.store.countRuns({ status: 'queued' }));
      this.reset();
      if (queued) this.set(queued.total);
    },
  });
  // What /readyz answers, for an alert written on metrics: read from the readiness timer's
  // last check (every second), never from the store, so it answers while the store cannot.
  new Gauge({
    name: 'runtrail_ready',
    help: 'Whether this node takes writes, as GET /readyz answers: 1 ready, 0 not (the store cannot be written or reached; the log says why)',
    registers: [registry],
    collect() {
      this.set(deps.ready() ? 1 : 0);
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
    name: 'runtrail_held_heartbeats',
    help: 'Heartbeats held open now (?waitMs=), each a producer waiting to hear of a cancel',
    registers: [registry],
    collect() {
      this.set(deps.heldHeartbeats());
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
  // Above 0 for long: watchers that cannot keep up (a slow link, a stalled tab), each reading from the store as it drains.
  new Gauge({
    name: 'runtrail_stream_blocked_connections',
    help: 'Live-stream connections whose send buffer is past sendBufferBytes now: not written to until they drain, then caught up from the store',
    registers: [registry],
    collect() {
      this.set(deps.stream.stats().blockedConnections);
    },
  });
  // What to size sendBufferBytes by: a connection holds at most the bound plus one frame. A
  // high-water mark that resets on collect (the Prometheus convention): a peak since start stayed
  // at the first burst's for ever and told an operator nothing after it.
  new Gauge({
    name: 'runtrail_stream_peak_queued_bytes',
    help: 'The most bytes one live-stream connection has had queued since the previous scrape (at most sendBufferBytes plus one frame)',
    registers: [registry],
    collect() {
      this.set(deps.stream.stats().peakQueuedBytes);
      deps.stream.resetPeakQueuedBytes();
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

/**
 * `read`'s answer, or null when the store failed it: the instrumented store
 * has counted the failure (runtrail_store_errors_total), and a scrape must
 * not fail with it. Anything that is not the store failing is thrown on.
 */
async function storeRead<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (err) {
    if (RuntrailError.isCode(err, 'unavailable') || !(err instanceof RuntrailError)) return null;
    throw err;
  }
}

/**
 * A shared store's connections, read from the node's own pool and listener
 * (never from the database, so they answer while it is down): what to size
 * databasePoolSize by, and whether other nodes' appends are reaching this one.
 */
function registerDatabaseMetrics(registry: Registry, store: SharedRunStore): void {
  new Gauge({
    name: 'runtrail_database_connections',
    help: "This node's pool connections to the database, by state (busy: taken for a statement or transaction); at most databasePoolSize",
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const { connections } = store.databaseStats();
      this.set({ state: 'busy' }, connections.busy);
      this.set({ state: 'idle' }, connections.idle);
    },
  });
  new Gauge({
    name: 'runtrail_database_waiting_queries',
    help: 'Statements waiting for a free pool connection (above 0 for long: raise databasePoolSize)',
    registers: [registry],
    collect() {
      this.set(store.databaseStats().waitingQueries);
    },
  });
  new Gauge({
    name: 'runtrail_database_listening',
    help: "1 while this node's listening connection (other nodes' appends) is up, 0 while it reconnects",
    registers: [registry],
    collect() {
      this.set(store.databaseStats().listening ? 1 : 0);
    },
  });
  let counted = 0;
  const reconnects = new Counter({
    name: 'runtrail_database_listener_reconnects_total',
    help: "Times this node's listening connection was lost and made again (each followed by a catch-up from the store)",
    registers: [registry],
    collect() {
      const now = store.databaseStats().listenerReconnects;
      reconnects.inc(now - counted);
      counted = now;
    },
  });
}
