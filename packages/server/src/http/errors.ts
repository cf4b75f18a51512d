import type { FastifyError, FastifyInstance } from 'fastify';
import { RuntrailError, type ErrorBody } from '@runtrail/protocol';

/** Map every failure to `{error: {code, message, details}}` with the status of its code. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | RuntrailError, request, reply) => {
    const mapped = toRuntrailError(err);
    if (mapped.code === 'internal') request.log.error({ err }, 'request failed');
    // Producers' SDKs wait this long before retrying a 503 (a locked or unreachable store).
    if (mapped.code === 'unavailable') void reply.header('retry-after', String(retryAfterSeconds(mapped)));
    if (mapped.code === 'unauthorized') void reply.header('www-authenticate', 'Bearer');
    const retryAfterMs = (mapped.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    if (mapped.code === 'rate_limited' && typeof retryAfterMs === 'number') {
      void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    }
    void reply.status(mapped.status).send(mapped.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      error: { code: 'route_not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` },
    };
    void reply.status(404).send(body);
  });
}

function retryAfterSeconds(err: RuntrailError): number {
  const ms = (err.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof ms === 'number' && ms > 0 ? Math.ceil(ms / 1000) : 1;
}

export function toRuntrailError(err: unknown): RuntrailError {
  if (err instanceof RuntrailError) return err;
  const fe = err as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new RuntrailError('payload_too_large', `request body is larger than the limit of this server: ${fe.message}`);
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new RuntrailError('invalid_request', `send JSON with content-type application/json: ${fe.message}`);
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new RuntrailError('invalid_request', fe.message);
  }
  return new RuntrailError('internal', 'internal error; see the server log');
}
