import { HttpApi } from '../http-api.js';
import type { WatchConnectionOptions, WebSocketConstructor } from './types.js';

/** The HTTP side of a watcher (reads, polling, gap fills), from its connection options. */
export function watcherApi(options: WatchConnectionOptions): HttpApi {
  return new HttpApi({
    url: options.url,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
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
