import { RuntrailError, SSE_EVENTS, type CompactRunEvent, type ObserversCount, type RunEvent, type ServerMessage, type StreamEnd } from '@runtrail/protocol';
import { errorFromResponse, unreachable } from '../http-api.js';
import { idleWatchdog } from './idle-watchdog.js';
import { SseParser } from './sse-parser.js';
import type { Connection, ConnectionReason, Transport } from './transport.js';

export interface SseTransportOptions {
  runId: string;
  /** The stream URL for the watcher's position at the moment of connecting. */
  url(): string;
  fetch: typeof fetch;
  headers: Record<string, string>;
  idleTimeoutMs: number;
}

/**
 * Server-Sent Events over fetch (the same code in browsers and in Node,
 * which has no EventSource). Records become the WebSocket's messages
 * (`events`, `end`, `error`), so a watcher handles one kind of message.
 */
export class SseTransport implements Transport<ServerMessage> {
  readonly name = 'sse';

  constructor(private readonly options: SseTransportOptions) {}

  connect(conn: Connection, deliver: (message: ServerMessage) => void): void {
    void this.read(conn, deliver).then((end) => conn.finish(end));
  }

  private async read(conn: Connection, deliver: (message: ServerMessage) => void): Promise<{ reason: ConnectionReason; error?: unknown }> {
    const { runId, idleTimeoutMs } = this.options;
    const url = this.options.url();
    // From the request on: a pooled connection that died silently would
    // otherwise hang before the headers. Once streaming, SSE has no
    // client->server channel; the server's keepalive comments are what we wait for.
    const watchdog = idleWatchdog(
      idleTimeoutMs,
      conn.clock,
      () => undefined,
      () => conn.finish({ reason: 'idle_timeout', error: new RuntrailError('unavailable', `nothing received for ${idleTimeoutMs} ms; reconnecting`) }),
    );
    try {
      // fetch's own network failure says only "fetch failed": the watcher's error says which server and why, as its HTTP reads do.
      const response = await this.options.fetch(url, { headers: { ...this.options.headers, accept: 'text/event-stream' }, signal: conn.signal }).catch((err: unknown) => {
        throw unreachable(err, 'GET', url, null);
      });
      if (!response.ok) return { reason: 'error', error: errorFromResponse(response.status, safeJson(await response.text()), `GET ${url}`) };
      if (!(response.headers.get('content-type') ?? '').includes('text/event-stream') || !response.body) {
        return { reason: 'error', error: new RuntrailError('unavailable', `GET ${url} did not answer with an event stream`) };
      }
      conn.heard();
      conn.open();
      const parser = new SseParser();
      const decoder = new TextDecoder();
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        watchdog.touch();
        if (done || !conn.alive()) return { reason: 'closed' };
        // Keepalive comments included: they say the server is there, and parse to nothing.
        conn.heard();
        // Compact when the URL asked for it: the watcher's eventsOf puts the runId back.
        let events: Array<RunEvent | CompactRunEvent> = [];
        for (const record of parser.push(decoder.decode(value, { stream: true }))) {
          if (record.event === SSE_EVENTS.event) {
            events.push(JSON.parse(record.data) as RunEvent | CompactRunEvent);
            continue;
          }
          // Keep order: what came before this record is delivered first.
          if (events.length > 0) deliver({ type: 'events', runId, events });
          events = [];
          if (record.event === SSE_EVENTS.end) deliver({ type: 'end', ...(JSON.parse(record.data) as StreamEnd) });
          else if (record.event === SSE_EVENTS.observers) deliver({ type: 'observers', ...(JSON.parse(record.data) as ObserversCount) });
          else if (record.event === SSE_EVENTS.error) {
            const body = JSON.parse(record.data) as { code: RuntrailError['code']; message: string };
            return { reason: 'error', error: new RuntrailError(body.code, body.message) };
          }
        }
        if (events.length > 0) deliver({ type: 'events', runId, events });
      }
    } catch (error) {
      // Also reached when the connection was finished elsewhere (idle, closed): that first outcome stands.
      return { reason: 'error', error };
    } finally {
      watchdog.stop();
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // Not JSON (a proxy's HTML page): errorFromResponse falls back to the status.
    return { parseError: String(err) };
  }
}
