import { RuntrailError, WS_CLOSE } from '@runtrail/protocol';
import { HttpApi, authHeaders } from '../http-api.js';
import type { WatchConnectionOptions, WebSocketConstructor } from './types.js';

/** The HTTP side of a watcher (reads, polling, gap fills), from its connection options. */
export function watcherApi(options: WatchConnectionOptions): HttpApi {
  return new HttpApi({
    url: options.url,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
    token: options.token,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
  });
}

/**
 * The WebSocket class a watcher uses: the one given, else the platform's
 * (browsers, Node 22+), else none (`null`: SSE and polling only).
 */
export function resolveWebSocket(options: WatchConnectionOptions): WebSocketConstructor | null {
  if (options.WebSocket !== undefined) return options.WebSocket;
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? null;
}

/** Headers of a streaming request (SSE over fetch): the caller's, plus the token. */
export function streamHeaders(options: WatchConnectionOptions): Record<string, string> {
  return { ...options.headers, ...authHeaders(options.token) };
}

/** The server closed the WebSocket because of the token (4401/4403): an error no reconnect can fix; else null. */
export function closeError(event: { code?: number; reason?: string }): RuntrailError | null {
  if (event.code === WS_CLOSE.unauthorized) return new RuntrailError('unauthorized', event.reason || 'the token is not valid');
  if (event.code === WS_CLOSE.forbidden) return new RuntrailError('forbidden', event.reason || 'the token may not do this');
  return null;
}
