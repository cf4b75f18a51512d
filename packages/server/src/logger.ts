import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';
import { isEndUpdate, type Hub } from './hub.js';
import PinoPretty from 'pino-pretty';
import type { ServerConfig } from './config.js';
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
): FastifyBaseLogger {
  const options = {
    level: config.logLevel,
    base: { node: config.node },
    // A ?token= in a URL is a credential: it never reaches a log line, nor does an Authorization header.
    serializers: {
      req: (req: { method?: string; url?: string; id?: string }) => ({ id: req.id, method: req.method, url: req.url === undefined ? undefined : redactUrl(req.url) }),
    },
  };
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && isTTY);
  if (!pretty) return pino(options);
  // Synchronous, in this thread: a worker-thread transport could lose the last lines when the process exits.
  return pino(
    options,
    PinoPretty({ sync: true, colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,node' }),
  );
}

/** Every line logged while serving a request about one run carries its `runId` (and the request id). */
export function logRunIds(http: FastifyInstance): void {
  http.addHook('preValidation', async (request) => {
    const runId = (request.params as { id?: unknown } | undefined)?.id;
    if (typeof runId === 'string') request.log = request.log.child({ runId });
  });
  // The id a caller can quote to find our lines about its request.
  http.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
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
