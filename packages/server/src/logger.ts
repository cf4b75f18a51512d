import { createRequire } from 'node:module';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino, { type ChildLoggerOptions } from 'pino';
import { isEndUpdate, type Hub } from './hub.js';
import type { ServerConfig } from './config.js';
import type PinoPrettyModule from 'pino-pretty';
import { redactUrl } from './security/index.js';

/**
 * The server's logger: pino JSON lines (one per event that matters) for
 * machines, human lines when a person watches a terminal. `auto` decides by
 * whether stdout is a TTY, so `runtrail serve` in a terminal is readable and
 * the same command under systemd or in a container logs JSON.
 */
export function createLogger(
  config: Pick<ServerConfig, 'logLevel' | 'logFormat' | 'node'>,
  isTTY = Boolean(process.stdout.isTTY),
  /** Where lines go instead of stdout (a command that draws its own line on the terminal routes them past it). */
  destination?: NodeJS.WritableStream,
  env: Record<string, string | undefined> = process.env,
): FastifyBaseLogger {
  const options = {
    level: config.logLevel,
    base: { node: config.node },
    // A ?token= in a URL is a credential: it never reaches a log line, nor does an Authorization header.
    serializers: {
      req: (req: { method?: string; url?: string; id?: string }) => ({ id: req.id, method: req.method, url: req.url === undefined ? undefined : redactUrl(req.url) }),
    },
  };
  const pretty = logsForPeople(config, isTTY);
  if (!pretty) return destination ? pino(options, destination) : pino(options);
  // Required here, not imported at the top: only a pretty log needs it, and loading it took about 30 ms of
  // every JSON-logging start. A synchronous require keeps createLogger synchronous.
  const PinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPrettyModule;
  // Synchronous, in this thread: a worker-thread transport could lose the last lines when the process exits.
  return pino(
    options,
    // NO_COLOR (no-color.org): set and not empty, a terminal gets no colour codes either.
    PinoPretty({ sync: true, colorize: isTTY && !env.NO_COLOR, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,node', ...(destination ? { destination } : {}) }),
  );
}

/** Whether the log is written as human lines (a terminal, or `--log-format pretty`) rather than JSON for machines. */
export function logsForPeople(config: Pick<ServerConfig, 'logFormat'>, isTTY = Boolean(process.stdout.isTTY)): boolean {
  return config.logFormat === 'pretty' || (config.logFormat === 'auto' && isTTY);
}

/** How long a stopping server waits for its last log lines to be written (a stdout nobody reads may take none). */
const LOG_FLUSH_WAIT_MS = 2_000;

/**
 * Wait, at most `waitMs`, for the lines the log still holds to be written
 * before the process goes. pino's stdout stream (sonic-boom) writes
 * asynchronously and flushes on 'exit', which a process ended by a signal
 * never emits (a server closed on SIGTERM raises it again), so the
 * shutdown's own last lines, which runs ended how, could be lost. Not with
 * its flushSync: that retries a write failing with EPIPE (stdout's reader
 * gone: `serve | head -1`, a dead log shipper) every 100 ms for ever, and
 * the server never exited. Its flush(cb) does not wait for a write under
 * way; 'drain' comes when the last one is done, 'error' when one fails
 * (pino then drops what follows).
 */
export async function flushLog(log: FastifyBaseLogger, waitMs = LOG_FLUSH_WAIT_MS): Promise<void> {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | (Partial<Pick<NodeJS.EventEmitter, 'once' | 'off'>> & { _writing?: boolean })
    | undefined;
  // sonic-boom's own state: nothing under way, nothing to wait for (and another kind of stream: pretty, sync).
  if (stream?._writing !== true || typeof stream.once !== 'function' || typeof stream.off !== 'function') return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      stream.off!('drain', done);
      stream.off!('error', done);
      resolve();
    };
    const timer = setTimeout(done, waitMs);
    timer.unref();
    stream.once!('drain', done);
    stream.once!('error', done);
  });
}

/**
 * A child logger made when it first logs, not when it is asked for: pino's
 * child() serializes its bindings on the spot, and every request asks for
 * one (Fastify's, with the request id, and ours with the runId), while
 * almost no request of the hot routes (appends, thousands a second) ever
 * logs a line. A line it does log carries the same bindings in the same
 * order as an eager child's would.
 */
export class DeferredChildLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | null = null;
  private levelSet: string | null = null;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Record<string, unknown>,
    private readonly options: ChildLoggerOptions = {},
  ) {}

  /** The real child, made now if it was not yet. */
  private get logger(): FastifyBaseLogger {
    if (this.made) return this.made;
    const parent = this.parent instanceof DeferredChildLogger ? this.parent.logger : this.parent;
    this.made = parent.child(this.bindings, this.options);
    if (this.levelSet !== null) this.made.level = this.levelSet;
    return this.made;
  }

  get level(): string {
    return this.made?.level ?? this.levelSet ?? this.options.level ?? this.parent.level;
  }
  set level(level: string) {
    this.levelSet = level;
    if (this.made) this.made.level = level;
  }

  isLevelEnabled(level: string): boolean {
    if (this.made) return levelEnabled(this.made, level);
    const own = this.levelSet ?? this.options.level;
    if (own === undefined) return levelEnabled(this.parent, level);
    // This logger's own level (a route's logLevel), through pino's numbers for the levels.
    const values = pino.levels.values as Record<string, number>;
    return own !== 'silent' && (values[level] ?? Infinity) >= (values[own] ?? Infinity);
  }

  fatal: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('fatal', args);
  error: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('error', args);
  warn: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('warn', args);
  info: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('info', args);
  debug: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('debug', args);
  trace: pino.LogFn = (...args: Parameters<pino.LogFn>) => this.log('trace', args);
  silent: pino.LogFn = () => undefined;

  child(bindings: Record<string, unknown>, options?: ChildLoggerOptions): FastifyBaseLogger {
    return new DeferredChildLogger(this, bindings, options);
  }

  private log(level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: Parameters<pino.LogFn>): void {
    if (!this.isLevelEnabled(level)) return;
    (this.logger[level] as (...a: unknown[]) => void)(...(args as unknown[]));
  }
}

/** Whether `logger` writes lines of `level` (pino's answer; a logger that cannot say is asked to log). */
function levelEnabled(logger: FastifyBaseLogger, level: string): boolean {
  const { isLevelEnabled } = logger as Partial<Pick<pino.Logger, 'isLevelEnabled'>>;
  return isLevelEnabled ? isLevelEnabled.call(logger, level) : true;
}

/** Fastify's childLoggerFactory: the per-request logger (with the request id) is made on its first line. */
export function deferredRequestLogger(logger: FastifyBaseLogger, bindings: Record<string, unknown>, options: ChildLoggerOptions): FastifyBaseLogger {
  return new DeferredChildLogger(logger, bindings, options);
}

/** Every line logged while serving a request about one run carries its `runId` (and the request id). */
export function logRunIds(http: FastifyInstance): void {
  // Callback hooks, not async ones: they run for every request, and a promise per request is not free.
  http.addHook('preValidation', (request, _reply, done) => {
    const runId = (request.params as { id?: unknown } | undefined)?.id;
    if (typeof runId === 'string') request.log = new DeferredChildLogger(request.log, { runId });
    done();
  });
  // The id a caller can quote to find our lines about its request.
  http.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('x-request-id', request.id);
    done(null, payload);
  });
}

/** One line when a run starts and one when it ends: what an operator greps for, not one per event. */
export function logRunLifecycle(log: FastifyBaseLogger, hub: Hub): void {
  hub.subscribeRuns((change, run) => {
    if (change === 'created') log.info({ runId: run.id, name: run.name, status: run.status }, 'run created');
    else if (isEndUpdate(change, run)) {
      log.info({ runId: run.id, name: run.name, status: run.status, kind: run.error?.kind }, `run ended ${run.status}`);
    }
  });
}
