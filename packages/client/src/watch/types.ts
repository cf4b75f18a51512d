import type { BackoffOptions } from '../backoff.js';
import type { Clock } from '../clock.js';

/**
 * How a watcher is connected right now. `idle` is never a watcher's: it is
 * what the React hooks say when they have nothing to watch (`useRun(null)`),
 * so a page with no run selected is not shown "connecting" for ever.
 */
export type ConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'polling' | 'ended';

export type TransportName = 'ws' | 'sse' | 'poll';

/**
 * The part of the WebSocket API the watcher uses: the browser's
 * `WebSocket` and the `ws` package's class both fit. (Handlers take `any`
 * because the two declare different event classes.)
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /* eslint-disable @typescript-eslint/no-explicit-any */
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  /* eslint-enable @typescript-eslint/no-explicit-any */
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface WatchConnectionOptions {
  /** Base URL of the runtrail server, e.g. http://127.0.0.1:4310 */
  url: string;
  /**
   * WebSocket class. Defaults to `globalThis.WebSocket` (browsers, Node 22+);
   * in Node 20 pass `WebSocket` from the `ws` package. `null` = never use
   * WebSocket. Without one the watcher uses SSE (over fetch), then polling.
   */
  WebSocket?: WebSocketConstructor | null;
  fetch?: typeof fetch;
  headers?: Record<string, string>;
  /**
   * A token for servers with auth on: `Authorization: Bearer` over HTTP and
   * SSE, `?token=` on the WebSocket URL (browsers cannot set its headers).
   */
  token?: string | undefined;
  /**
   * Where this watcher's user gives a token, in their terms, said after the
   * server's message when it wants one and none was given (default: the
   * `token` option; the React hooks name `<RuntrailProvider token>`, the CLI
   * RUNTRAIL_TOKEN).
   */
  tokenHint?: string;
  /** Transports to try, best first. Default ['ws', 'sse', 'poll']. */
  transports?: TransportName[];
  /** Reconnect delays: exponential with full jitter. Default 250 ms doubling up to 10 s. */
  backoff?: BackoffOptions;
  /** Polling interval when polling is the transport in use. Default 1000 ms. */
  pollIntervalMs?: number;
  /**
   * A transport that failed to connect twice in a row is skipped for this
   * long, then tried again (so a watcher that fell back to polling comes
   * back to WebSocket). Default 30 s.
   */
  transportRetryMs?: number;
  /**
   * A stream that delivers nothing (not even keepalives) for this long is
   * taken for dead and reconnected. Default 45 s (the server keeps streams
   * talking every 15 s by default).
   */
  idleTimeoutMs?: number;
  /** Per-HTTP-request timeout. Default 10 s. */
  requestTimeoutMs?: number;
  /**
   * Stop, with an `unavailable` error saying so, once the server has not
   * answered for this long (not reached, or every try failed since the
   * last answer): `done` resolves and iterators throw, so a script that
   * waits for a run ends rather than waiting for ever. Default: keep
   * trying for ever (right for a dashboard).
   */
  giveUpAfterMs?: number;
  /**
   * Stop watching when this aborts, as `close()` does: `done` resolves
   * with `closed_by_client` and `for await` loops end. An aborted signal
   * stops the watcher before it opens anything. One signal may stop many
   * watchers: they share one listener on it (no leak warning past ten),
   * and a watcher that ends first takes its part of it away.
   */
  signal?: AbortSignal;
  /** Randomness of the jitter (tests may fix it). */
  random?: () => number;
  /** Time for backoff, transport pauses, polling and the idle watchdog (tests may drive it). */
  clock?: Clock;
}
