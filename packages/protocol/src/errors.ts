import { z } from 'zod';

/**
 * One error type with stable codes; the HTTP status of each code is defined
 * here once so the server maps and the client interprets them the same way.
 */
export const errorStatus = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  run_not_found: 404,
  route_not_found: 404,
  handler_not_found: 404,
  token_not_found: 404,
  artifact_not_found: 404,
  log_not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  run_already_terminal: 409,
  run_not_terminal: 409,
  run_not_retryable: 409,
  idempotency_conflict: 409,
  event_id_conflict: 409,
  lease_lost: 409,
  artifact_conflict: 409,
  run_already_exists: 409,
  too_many_run_tokens: 409,
  payload_too_large: 413,
  range_not_satisfiable: 416,
  host_not_allowed: 421,
  headers_too_large: 431,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof errorStatus;

export const ErrorCodeSchema = z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]);

export const ErrorBodySchema = z
  .object({ error: z.object({ code: ErrorCodeSchema, message: z.string(), details: z.unknown().optional() }) })
  .meta({ id: 'Error', description: 'Every error: a stable code, a message saying what to do, details' });
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

export class RuntrailError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  /** How long the server asked the client to wait before retrying (a 503's Retry-After), if it said. */
  retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'RuntrailError';
    this.code = code;
    this.details = details;
    this.retryAfterMs = undefined;
  }

  get status(): number {
    return errorStatus[this.code];
  }

  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }

  static isCode(err: unknown, code: ErrorCode): err is RuntrailError {
    return err instanceof RuntrailError && err.code === code;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorStatus, value);
}

/**
 * The one "run not found", built here so every route, stream and store says
 * it alike (field notes 2: a subscriber to a run that does not exist gets a
 * clear error). `role: 'parent'` is for a parentId that names no run.
 */
export function runNotFound(given: string, role: 'run' | 'parent' = 'run'): RuntrailError {
  const runId = echo(given);
  return role === 'parent'
    ? new RuntrailError('run_not_found', `parent run ${runId} does not exist`, { parentId: runId })
    : new RuntrailError('run_not_found', `run ${runId} does not exist`, { runId });
}

/** The most characters of a client's text (a path, an id) an error repeats back. */
export const MAX_ECHO_CHARS = 200;

/**
 * A client's text as an error quotes it: at most MAX_ECHO_CHARS, marked
 * when cut, so a 10,000-character id is not sent back (and logged) whole.
 */
export function echo(text: string): string {
  return text.length <= MAX_ECHO_CHARS ? text : `${text.slice(0, MAX_ECHO_CHARS)}… (${text.length} characters)`;
}
