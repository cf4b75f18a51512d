import { RuntrailError, type ClientMessage, type ServerMessage } from '@runtrail/protocol';
import { closeError } from './connection.js';
import { idleWatchdog } from './idle-watchdog.js';
import type { Connection, Transport } from './transport.js';
import type { WebSocketConstructor, WebSocketLike } from './types.js';
import { toWebSocketUrl } from './ws-url.js';

export interface WsTransportOptions {
  WebSocket: WebSocketConstructor;
  /** HTTP URL of the stream route (made a ws:// URL here). */
  url: string;
  /** Sent as `?token=` (a browser WebSocket cannot send an Authorization header). */
  token: string | undefined;
  /** What to send once the socket is open (read at that moment: the watcher's position then). */
  hello(): ClientMessage;
  idleTimeoutMs: number;
}

/**
 * WebSocket: sends `hello()` on open and delivers every server message.
 * Browsers cannot see WebSocket pings, so after a third of the idle timeout
 * in silence it sends an app-level `ping`; after the whole timeout it takes
 * the connection for dead.
 */
export class WsTransport implements Transport<ServerMessage> {
  readonly name = 'ws';

  constructor(private readonly options: WsTransportOptions) {}

  connect(conn: Connection, deliver: (message: ServerMessage) => void): void {
    const { idleTimeoutMs } = this.options;
    const ws: WebSocketLike = new this.options.WebSocket(toWebSocketUrl(this.options.url, this.options.token));
    const watchdog = idleWatchdog(
      idleTimeoutMs,
      conn.clock,
      () => {
        if (ws.readyState === 1) ws.send('{"op":"ping"}');
      },
      () => conn.finish({ reason: 'idle_timeout', error: new RuntrailError('unavailable', `nothing received for ${idleTimeoutMs} ms; reconnecting`) }),
    );
    conn.signal.addEventListener(
      'abort',
      () => {
        watchdog.stop();
        ws.onmessage = ws.onclose = null;
        // This connection is over: whatever the socket reports now is nobody's business.
        ws.onerror = () => undefined;
        if (ws.readyState === 1) {
          ws.onopen = null;
          ws.close();
        } else if (ws.readyState === 0) {
          // Closing a socket that is still connecting makes a browser log "WebSocket is closed before the
          // connection is established" as an error of the page (React's StrictMode mount, unmount, mount
          // does it on every page load; so does leaving a page while it connects). Close it once it opens
          // instead, without subscribing; a handshake that fails closes it anyway.
          ws.onopen = () => ws.close();
        } else {
          ws.onopen = null;
        }
      },
      { once: true },
    );
    ws.onopen = () => ws.send(JSON.stringify(this.options.hello()));
    ws.onerror = () => {
      // The close event that follows carries the outcome.
    };
    ws.onclose = (event: { code?: number; reason?: string }) => {
      // 4401/4403: the server refused the token; the watcher ends with that error instead of reconnecting.
      const denied = closeError(event);
      conn.finish(denied ? { reason: 'error', error: denied } : { reason: 'closed' });
    };
    ws.onmessage = (event: { data: unknown }) => {
      if (!conn.alive()) return;
      watchdog.touch();
      conn.heard();
      let message: ServerMessage;
      try {
        message = JSON.parse(String(event.data)) as ServerMessage;
      } catch (error) {
        conn.finish({ reason: 'error', error });
        return;
      }
      deliver(message);
    };
  }
}
