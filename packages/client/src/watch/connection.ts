import { RuntrailError, STREAM_CLOSE_CODES } from '@runtrail/protocol';
import type { BackoffOptions } from '../backoff.js';
import { systemClock, type Clock } from '../clock.js';
import { HttpApi, authHeaders } from '../http-api.js';
import type { TransportName, WatchConnectionOptions, WebSocketConstructor } from './types.js';

/** A watcher's connection options with every default filled in (the one place they are). */
export interface ConnectionSettings {
  /** The HTTP side (reads, polling, gap fills). */
  api: HttpApi;
  /** The WebSocket class: the one given, else the platform's (browsers, Node 22+), else none. */
  WebSocket: WebSocketConstructor | null;
  fetch: typeof fetch;
  /** Headers of a streaming request (SSE over fetch): the caller's, plus `Authorization` when there is a token. */
  headers: Record<string, string>;
  /** The token, for `?token=` on the WebSocket URL (browsers cannot set its headers). */
  token: string | undefined;
  /** Where the user gives a token (WatchConnectionOptions.tokenHint). */
  tokenHint?: string;
  /** Transports to try, best first. */
  wanted: TransportName[];
  idleTimeoutMs: number;
  pollIntervalMs: number;
  reconnect: { clock: Clock; backoff: BackoffOptions; random?: () => number; transportRetryMs: number };
  giveUpAfterMs: number | null;
}

export const WATCH_DEFAULTS = {
  transports: ['ws', 'sse', 'poll'] as TransportName[],
  backoff: { initialMs: 250, maxMs: 10_000 },
  pollIntervalMs: 1000,
  transportRetryMs: 30_000,
  idleTimeoutMs: 45_000,
  requestTimeoutMs: 10_000,
} as const;

export function connectionSettings(options: WatchConnectionOptions): ConnectionSettings {
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const WebSocket = options.WebSocket !== undefined ? options.WebSocket : ((globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? null);
  const wanted = options.transports ?? [...WATCH_DEFAULTS.transports];
  requireUsableTransports(wanted, WebSocket !== null);
  const { giveUpAfterMs } = options;
  if (giveUpAfterMs !== undefined && !(typeof giveUpAfterMs === 'number' && giveUpAfterMs > 0 && Number.isFinite(giveUpAfterMs))) {
    throw new RuntrailError('invalid_request', `giveUpAfterMs: a number of milliseconds above 0, not ${String(giveUpAfterMs)} (leave it out to keep trying for ever)`);
  }
  return {
    api: new HttpApi({
      url: options.url,
      fetch: fetchImpl,
      ...(options.headers ? { headers: options.headers } : {}),
      token: options.token,
      requestTimeoutMs: options.requestTimeoutMs ?? WATCH_DEFAULTS.requestTimeoutMs,
    }),
    WebSocket,
    fetch: fetchImpl,
    headers: { ...options.headers, ...authHeaders(options.token) },
    token: options.token,
    ...(options.tokenHint !== undefined ? { tokenHint: options.tokenHint } : {}),
    wanted,
    idleTimeoutMs: options.idleTimeoutMs ?? WATCH_DEFAULTS.idleTimeoutMs,
    pollIntervalMs: options.pollIntervalMs ?? WATCH_DEFAULTS.pollIntervalMs,
    reconnect: {
      clock: options.clock ?? systemClock,
      backoff: options.backoff ?? WATCH_DEFAULTS.backoff,
      ...(options.random ? { random: options.random } : {}),
      transportRetryMs: options.transportRetryMs ?? WATCH_DEFAULTS.transportRetryMs,
    },
    giveUpAfterMs: options.giveUpAfterMs ?? null,
  };
}

/**
 * Refuse, when the watcher is made, a `transports` list that leaves nothing
 * to connect with: a misspelt name, an empty list, or only 'ws' on a
 * platform with no WebSocket class (Node 20). Otherwise the reconnect loop
 * would have no transport to pick and fail later with a TypeError.
 */
function requireUsableTransports(wanted: readonly string[], hasWebSocket: boolean): void {
  const unknown = wanted.filter((name) => !(WATCH_DEFAULTS.transports as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new RuntrailError('invalid_request', `transports: unknown transport ${unknown.map((n) => JSON.stringify(n)).join(', ')}; use 'ws', 'sse' or 'poll'`, {
      transports: wanted,
    });
  }
  if (wanted.some((name) => name !== 'ws' || hasWebSocket)) return;
  throw new RuntrailError(
    'invalid_request',
    wanted.length === 0
      ? "transports: the list is empty; give at least one of 'ws', 'sse' or 'poll'"
      : "transports: only 'ws' was asked for, and this platform has no WebSocket class (Node 20 has none): " +
          "pass one (`import WebSocket from 'ws'`, then `{ WebSocket }`), or allow 'sse' or 'poll'",
    { transports: wanted },
  );
}

/** The server closed the WebSocket because of the token (4401/4403): an error no reconnect can fix; else null. */
export function closeError(event: { code?: number; reason?: string }): RuntrailError | null {
  if (event.code === STREAM_CLOSE_CODES.unauthorized) return new RuntrailError('unauthorized', event.reason || 'the token is not valid');
  if (event.code === STREAM_CLOSE_CODES.forbidden) return new RuntrailError('forbidden', event.reason || 'the token may not do this');
  return null;
}

/** Also how an error already hinted is known (a state's error handed back in is not hinted twice). */
const NO_TOKEN_GIVEN = 'no token was given to this watcher';

/**
 * The server's "send Authorization: Bearer <token>" is written for any HTTP
 * client; a watcher's user (a React app most of all) sets no header, and
 * needs to be told where this SDK takes a token: `where`, in the caller's
 * terms. Said only when none was given (a token given and refused keeps the
 * server's own words), after the server's message.
 */
export function withTokenHint(error: RuntrailError, token: string | undefined, where: string): RuntrailError {
  if (error.code !== 'unauthorized' || (token !== undefined && token !== '') || error.message.includes(NO_TOKEN_GIVEN)) return error;
  const hinted = new RuntrailError('unauthorized', `${error.message} (${NO_TOKEN_GIVEN}: ${where})`, error.details);
  hinted.retryAfterMs = error.retryAfterMs;
  return hinted;
}
