import { readFileSync } from 'node:fs';
import { createServer as createNetServer, isIP, type AddressInfo } from 'node:net';
import { serverPortsInThisProcess } from '@runtrail/client';
import { connectStore, isSharedStore, type RunStore } from '@runtrail/store';
import { buildApp, type App } from './app.js';
import { CLOCK_RESYNC_MS, DatabaseClock } from './cluster/database-clock.js';
import { ServerMetrics } from './http/metrics.js';
import { ClusterWatchers } from './cluster/cluster-watchers.js';
import { RemoteFanout } from './cluster/remote-fanout.js';
import { describeChangedConfig, describeConfig, resolveConfig, type ConfigSources, type ServerConfig, type ServerConfigInput } from './config.js';
import { createLogger, flushLog, logsForPeople } from './logger.js';
import { openFileLimit, openFileLimitProblem } from './open-file-limit.js';
import { RepeatedFailureLog } from './repeated-failure-log.js';
import { stopOnSignals } from './stop-on-signals.js';

import { StartupError } from './startup-error.js';
import { refuseLiveNamesake } from './leases/live-namesake.js';
import { checkAuthAgreement, openNodeWarning, watchAuthAgreement, type AuthRequired } from './security/auth-required.js';

export { StartupError };

/** Whether an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * The admin token from --admin-token-file or RUNTRAIL_ADMIN_TOKEN, and the
 * one rule of an open server: without a token it listens on loopback only,
 * unless told --insecure.
 */
export function resolveSecurity(config: ServerConfig): ServerConfig {
  let adminToken = config.adminToken;
  if (config.adminTokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(config.adminTokenFile, 'utf8').trim();
    } catch (err) {
      throw new StartupError(`cannot read the admin token file ${config.adminTokenFile}: ${(err as Error).message}`);
    }
    if (text.length < 16) throw new StartupError(`the admin token in ${config.adminTokenFile} must be at least 16 characters`);
    adminToken = text;
  }
  if (adminToken === undefined && !isLoopback(config.host) && !config.insecure) {
    throw new StartupError(
      `refusing to serve ${config.host} without auth: set RUNTRAIL_ADMIN_TOKEN or --admin-token-file (or pass --insecure to serve it open)`,
    );
  }
  return { ...config, adminToken };
}

/**
 * Fail as listen would (EADDRINUSE, EACCES, EADDRNOTAVAIL) when host:port cannot be
 * listened on, before the store is opened: a serve whose port was taken had already
 * created and migrated its PostgreSQL schema (or its data file), then failed. Another
 * process may still take the port before listen(), which then fails as before.
 */
async function checkListenable(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createNetServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, resolve);
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}

export interface RunningServer extends App {
  url: string;
  store: RunStore;
  close(): Promise<void>;
}

/** runtrail built but not listening: define handlers, then `listen()`. */
export interface RuntrailServer extends App {
  store: RunStore;
  /** Recover this node's runs, start the reaper and the executor, and listen on config host:port. */
  listen(): Promise<RunningServer>;
  close(): Promise<void>;
}

export interface StartOptions extends ServerConfigInput {
  /** A store to use instead of opening the configured one (PostgreSQL at databaseUrl, else SQLite in dataDir). */
  store?: RunStore;
  /** Where the settings not given here come from (environment, config file). */
  sources?: ConfigSources;
  /** Where log lines go instead of stdout (`runtrail demo` routes them past its progress line). */
  logDestination?: NodeJS.WritableStream;
  /**
   * Close gracefully on SIGTERM and SIGINT, then end the process by the
   * signal unless it listens for it itself (default true). False: the
   * application handles signals and calls close().
   */
  stopOnSignals?: boolean;
  /**
   * Called once the server has stopped by itself, with why: auth off on a
   * PostgreSQL database whose other nodes came to require tokens (the
   * message says so in one line, as a start refusal would). Not given: with
   * stopOnSignals (the default) the process then exits with status 1; without
   * it, the server is closed and the log says why.
   */
  onStoppedItself?: (why: StartupError) => void;
}

/**
 * runtrail in your own program: `const rt = await createServer({ dataDir })`,
 * `rt.define(name, handler)`, then `await rt.listen()`. Options are the
 * configuration keys (README, Configuration); keys not given come from
 * RUNTRAIL_* variables, runtrail.json and the defaults, as for `runtrail serve`.
 */
export async function createServer(options: StartOptions = {}): Promise<RuntrailServer> {
  const { store: given, sources, logDestination, stopOnSignals: closeOnSignals = true, onStoppedItself, ...rest } = options;
  const resolved = resolveConfig(rest, sources);
  const config = resolveSecurity(resolved.config);
  const log = createLogger(config, undefined, logDestination);
  for (const warning of resolved.warnings) log.warn(warning);
  const fileLimitProblem = openFileLimitProblem(config.maxHttpConnectionsPerIp, openFileLimit());
  if (fileLimitProblem !== null) log.warn(fileLimitProblem);
  const poolLosses = new RepeatedFailureLog(log, {
    failed: 'database connection lost; the pool reconnects on next use',
    recovered: 'the pool connects to the database again',
    level: 'warn',
  });
  await checkListenable(config.host, config.port);
  // Set by onMigrating when the store's schema is upgraded while it opens.
  const upgrade = { to: 0, startedAt: 0 };
  const store =
    given ??
    (await connectStore({
      dataDir: config.dataDir,
      databaseUrl: config.databaseUrl,
      databaseSchema: config.databaseSchema,
      poolSize: config.databasePoolSize,
      statementTimeoutMs: config.databaseStatementTimeoutMs,
      applicationName: `runtrail ${config.node}`,
      // Every idle connection of the pool fails at once when the database goes away: one line, then a count.
      onError: (err) => poolLosses.failed(err),
      // The losses not yet reported as a count were otherwise only told with the next outage's first line.
      onConnect: () => poolLosses.succeeded(),
      onMigrating: (from, to) => {
        // A new store's schema is made in a moment; an upgrade rewrites what it holds.
        if (from === 0) return;
        Object.assign(upgrade, { to, startedAt: Date.now() });
        log.info(
          { from, to },
          `upgrading the ${config.databaseUrl ? 'database' : 'data file'}'s schema from version ${from} to ${to} before serving; ` +
            'a large event log takes a while (stopping now leaves it as it was)',
        );
      },
      // A rolling upgrade: a newer node migrated, additively. This node runs, but should be upgraded too.
      onNewerSchema: ({ version, known, compatibleFrom, message }) => log.warn({ version, known, compatibleFrom }, message),
    }));
  if (upgrade.to > 0) {
    const ms = Date.now() - upgrade.startedAt;
    log.info({ version: upgrade.to, ms }, `schema upgraded to version ${upgrade.to} in ${(ms / 1000).toFixed(1)} s`);
  }
  // Several nodes on one database: leases on the database's clock, and other
  // nodes' appends fanned out to this node's watchers.
  // Their store calls fail in runtrail_store_errors_total like the requests' (databaseNow,
  // announceWatchers), the fan-out's reads under a name of their own (fanoutRead): before, an
  // outage that only they met was a log line and no count. (The fan-out's listen() is counted
  // there too; it fails only at start, which then fails.)
  const shared = isSharedStore(store) ? store : null;
  const metrics = new ServerMetrics();
  const counted = shared ? metrics.instrumentStore(shared) : null;
  const clock = counted
    ? new DatabaseClock(counted, (err) => app.http.log.warn({ err }, 'could not read the database clock; keeping the last offset'), Math.min(CLOCK_RESYNC_MS, config.leaseTtlMs))
    : null;
  await clock?.start();
  const app = await buildApp({ config, store, log, metrics, ...(clock ? { now: clock.now } : {}) });
  // "N watching" counts every node's watchers: a node repeats its counts every lease TTL / 3.
  const watchers = counted ? new ClusterWatchers(counted, app.hub, app.http.log, Math.max(1_000, Math.round(config.leaseTtlMs / 3))) : null;
  const fanout = shared ? new RemoteFanout(metrics.instrumentStore(shared, 'fanoutRead'), app.hub, app.http.log, watchers, config.readPageBytes, app.tokens) : null;
  await fanout?.start();
  watchers?.start();
  let closed: Promise<void> | null = null;
  /** Whether listen() got as far as taking requests: a start refused before it (a taken node name) did not "stop". */
  let served = false;
  /** What listen() set up that close() undoes first. */
  const closing: Array<() => void> = [];
  let httpClosed: Promise<void> | null = null;
  const closeHttp = () => (httpClosed ??= app.http.close());
  /** `refuseFirst`: this node may no longer serve (see stopItself): requests and streams end before anything else. */
  const shutdown = (refuseFirst: boolean) =>
    (closed ??= (async () => {
      const started = Date.now();
      // Handlers get their grace period while watchers can still see them end; meanwhile
      // /readyz says 503 so that a load balancer stops sending this node new requests.
      app.readiness.drain(`node ${config.node} is shutting down`);
      for (const step of closing.splice(0)) step();
      // From here Fastify answers 503 to any request and closes every connection, the streams first.
      if (refuseFirst) await closeHttp();
      // The reaper first: it kept sweeping through the executor's grace period (seconds), and
      // failing every interval when the shutdown came with the database gone. What it would end
      // now, the next sweep of any node (this one's next start included) ends.
      await app.reaper.stop();
      await app.executor.shutdown();
      await closeHttp();
      await watchers?.stop();
      await fanout?.stop();
      clock?.stop();
      await store.close();
      // The last line: an operator reading the log of a stop knows it ended here, and how long it took.
      // A start refused before it served leaves its refusal as the last line instead (this one read as if the node had run).
      const ms = Date.now() - started;
      if (served) log.info({ ms }, `stopped in ${(ms / 1000).toFixed(1)} s: handlers ended, streams closed, store closed`);
      else log.debug({ ms }, 'closed without serving: store closed');
      await flushLog(log);
    })());
  const close = () => shutdown(false);
  /**
   * Stop as SIGTERM would, but with no request served meanwhile: the node runs with auth off
   * and the database's other nodes now require tokens, so each answer would be one it must
   * not give. Handlers still get their grace (they reach the store in-process, not over HTTP).
   */
  const stopItself = (why: StartupError): void => {
    void shutdown(true)
      .catch((err: unknown) => log.error({ err }, 'shutdown failed'))
      .then(() => {
        if (onStoppedItself) onStoppedItself(why);
        else if (closeOnSignals) process.exit(1);
      });
  };
  const listen = async (): Promise<RunningServer> => {
    // Not under the name of a process that still lives: its runs are not a dead one's.
    // Nor with auth off on a database whose other nodes require tokens: it would open their runs and mint tokens they accept.
    let openAmongAuthNodes: AuthRequired | null = null;
    try {
      await refuseLiveNamesake(app.runs, config.node, app.executor.owner.id);
      if (counted) {
        const auth = { on: config.adminToken !== undefined, insecure: config.insecure };
        openAmongAuthNodes = await checkAuthAgreement(counted, config.node, auth, clock?.now);
      }
    } catch (err) {
      await close();
      throw err;
    }
    // Before anyone can read a run: end what a previous incarnation of this
    // node was executing, so nobody sees a dead run as running.
    await app.reaper.start();
    const address = await app.http.listen({ host: config.host, port: config.port });
    served = true;
    // Producers of this process leave its runs be when the process goes away (see the client's exit guard).
    const { port } = app.http.server.address() as AddressInfo;
    serverPortsInThisProcess().add(port);
    closing.push(() => serverPortsInThisProcess().delete(port));
    app.executor.url = address;
    if (closeOnSignals) closing.push(stopOnSignals(close));
    // No record at start: a node with auth on may still come to use the database. Looked for again while this node runs.
    if (counted && config.adminToken === undefined && openAmongAuthNodes === null) {
      closing.push(watchAuthAgreement(counted, { address, insecure: config.insecure, log: app.http.log }, stopItself));
    }
    // A run of its handlers sent to another node right after this one answers is accepted there.
    await app.executor.start();
    app.readiness.start();
    // The port the system chose for `--port 0`, not the 0 asked for.
    const shown = logsForPeople(config) ? { ...describeChangedConfig(config), port, others: 'defaults (runtrail config lists every setting)' } : { ...describeConfig(config), port };
    app.http.log.info({ config: shown, store: store.kind }, `runtrail listening on ${address}`);
    if (config.adminToken === undefined) {
      if (isLoopback(config.host)) {
        app.http.log.info(`auth is off: anyone on this machine can read and write every run at ${address}; set RUNTRAIL_ADMIN_TOKEN to require tokens`);
      } else {
        app.http.log.warn(`INSECURE: auth is off on ${address}: anyone who can reach it can read, change and delete every run`);
      }
      if (openAmongAuthNodes) app.http.log.warn(openNodeWarning(openAmongAuthNodes, address));
    }
    return { ...app, url: address, store, close };
  };
  return { ...app, store, listen, close };
}

/** Open the configured store, build the app, listen: `createServer(options)` then `listen()`. */
export async function startServer(options: StartOptions = {}): Promise<RunningServer> {
  return (await createServer(options)).listen();
}
