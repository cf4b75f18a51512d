import {
  API_PREFIX,
  CLIENT_HEADER,
  RuntrailError,
  buildPath,
  invalidRequest,
  isErrorCode,
  routes,
  type ErrorBody,
  type RouteBody,
  type RouteName,
  type RouteParams,
  type RouteQuery,
  type RouteResult,
} from '@runtrail/protocol';
import { jsonText } from './json-text.js';

export interface HttpApiOptions {
  /** Base URL of a runtrail server, e.g. http://127.0.0.1:4310 */
  url: string;
  /** Per-request timeout; a request that takes longer fails (and producers retry it). */
  requestTimeoutMs?: number;
  headers?: Record<string, string>;
  /** Sent as `Authorization: Bearer <token>` on every request (servers with auth on need one). */
  token?: string | undefined;
  /**
   * Where this client's user gives a token, in their terms, said after the
   * server's message when it answers 401 and no token was given (the
   * server's "send Authorization: Bearer" is written for any HTTP client).
   * RuntrailClient names its `token` option; the CLI names RUNTRAIL_TOKEN.
   */
  tokenHint?: string;
  fetch?: typeof fetch;
}

/**
 * The server's base URL, checked when the client is made: one fetch cannot
 * use (`127.0.0.1:4310`, no scheme) fails every request with a TypeError,
 * which is taken for a network failure and retried for `startTimeoutMs`
 * or reconnected forever, to say only "Failed to parse URL" in the end.
 */
function serverUrl(url: string): string {
  let protocol: string | null = null;
  try {
    protocol = new URL(url).protocol;
  } catch (err) {
    // Not a URL at all: refused below, as one with another scheme is.
    void err;
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw invalidRequest('client options', [{ path: 'url', message: `${JSON.stringify(url)} is not an http:// or https:// URL of a runtrail server (such as http://127.0.0.1:4310)` }]);
  }
  const root = rootOfApiUrl(url);
  if (root !== null) {
    throw invalidRequest('client options', [{ path: 'url', message: `${JSON.stringify(url)} is the server's API; give ${JSON.stringify(root)}, the server's root (the client adds ${API_PREFIX} itself)` }]);
  }
  return url.replace(/\/+$/, '');
}

/**
 * For the API's URL (pasted from a curl line or the docs), the server's root
 * to give instead; null for any other. Every route is built as
 * <url>/api/v1/…, so the API's URL answered every request route_not_found
 * for /api/v1/api/v1/runs, naming only that path. A path before the API's (a
 * proxy's prefix) is the root's.
 */
export function rootOfApiUrl(url: string): string | null {
  const { origin, pathname } = new URL(url);
  const api = new RegExp(`${API_PREFIX}(/|$)`).exec(pathname);
  return api === null ? null : `${origin}${pathname.slice(0, api.index)}`;
}

/** `Authorization: Bearer <token>` when there is a token. */
export function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A failure no retry or reconnect can fix: the token is missing, wrong, expired or not allowed this. */
export function isAuthFailure(err: unknown): err is RuntrailError {
  return err instanceof RuntrailError && (err.code === 'unauthorized' || err.code === 'forbidden');
}

/**
 * A request body already serialized as JSON, standing for a T: a producer
 * serializes each event's data once, when it is recorded, and sends that text.
 */
export class JsonBody<T> {
  declare private readonly of: T;
  constructor(readonly text: string) {}
}

/**
 * The options of a call to route R, checked against the route table: the
 * params its path names (required when it has any), its query and its body.
 */
export type RequestOptions<R extends RouteName> = (keyof RouteParams<R> extends never
  ? { params?: undefined }
  : { params: RouteParams<R> }) & {
  query?: RouteQuery<R>;
  body?: RouteBody<R> | JsonBody<RouteBody<R>>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /**
   * This call's timeout instead of the client's: longer for a request the
   * server holds on purpose, null for none (a large upload or download takes
   * as long as it takes).
   */
  timeoutMs?: number | null;
};

/** The options argument, optional for a route that needs none. */
type OptionsArg<O> = object extends O ? [options?: O] : [options: O];

/** RequestOptions of any route, as the one place that sends them reads them. */
interface AnyRequestOptions {
  params?: Record<string, string> | undefined;
  query?: Readonly<Record<string, unknown>>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number | null;
}

/**
 * Typed calls to the routes of the shared table. Every URL is built by
 * `buildPath` from that table, never spelled out here (field note 2).
 */
export class HttpApi {
  readonly baseUrl: string;
  /** Each request's timeout unless the call gives its own. */
  readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly fetchImpl: typeof fetch;
  /** Said on a 401 when this client has no token; undefined: the server's words alone. */
  private readonly missingTokenHint: string | undefined;

  constructor(options: HttpApiOptions) {
    this.baseUrl = serverUrl(options.url);
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.headers = { ...options.headers, ...authHeaders(options.token) };
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    // A token given and refused keeps the server's own words: the hint is for one never given.
    this.missingTokenHint = options.token ? undefined : options.tokenHint;
  }

  /** Where and how this client connects, as plain data: what a worker thread needs to send a producer's last words at exit. */
  get connection(): { url: string; headers: Record<string, string>; timeoutMs: number } {
    return { url: this.baseUrl, headers: { ...this.headers }, timeoutMs: this.timeoutMs };
  }

  url<R extends RouteName>(name: R, params: RouteParams<R>, query?: RouteQuery<R>): string {
    // RouteQuery of a route with a query is an object; the compiler cannot see that for every R at once.
    return this.baseUrl + buildPath(name, params, query as AnyRequestOptions['query']);
  }

  /** Call route `name` and answer its JSON body, typed by the route's response schema. */
  async request<R extends RouteName>(name: R, ...[given]: OptionsArg<RequestOptions<R>>): Promise<RouteResult<R>> {
    const route = routes[name];
    const options = (given ?? {}) as AnyRequestOptions;
    const url = this.baseUrl + buildPath(name, (options.params ?? {}) as RouteParams<R>, options.query);
    const signal = this.signalFor(options);
    const hasBody = options.body !== undefined;
    const response = await this.fetchImpl(url, {
      method: route.method,
      headers: {
        // Marks the request as the SDK's, not a forged cross-site form post (the server refuses those).
        [CLIENT_HEADER]: '1',
        ...this.headers,
        ...(hasBody ? { 'content-type': 'application/json' } : {}),
        ...options.headers,
      },
      body: !hasBody ? null : options.body instanceof JsonBody ? options.body.text : jsonText(options.body, `${name} request`, ''),
      signal,
    }).catch((err: unknown) => {
      throw unreachable(err, route.method, url, this.timeoutOf(options));
    });
    // A route without a JSON answer (204) has RouteResult undefined.
    if (response.status === 204) return undefined as RouteResult<R>;
    const text = await response.text();
    let payload: unknown;
    try {
      payload = text.length > 0 ? (JSON.parse(text) as unknown) : undefined;
    } catch (err) {
      // Another server answered (a dev server on the wrong port, a proxy's page): say so, not "Unexpected token '<'".
      void err;
      if (response.ok) throw notRuntrail(`${route.method} ${url}`, `${response.status} with ${response.headers.get('content-type') ?? 'no content type'}`);
      payload = undefined;
    }
    if (!response.ok) {
      const err = this.errorOf(response.status, payload, `${route.method} ${url}`);
      err.retryAfterMs = retryAfterMs(response.headers.get('retry-after'));
      throw err;
    }
    // The one place a server answer becomes its type: RouteResult is the route's response schema.
    return payload as RouteResult<R>;
  }

  private timeoutOf(options: AnyRequestOptions): number | null {
    return options.timeoutMs === undefined ? this.timeoutMs : options.timeoutMs;
  }

  /**
   * The caller's signal and this call's timeout (the client's, unless the
   * call says otherwise) as one. fetch is never handed the caller's own
   * signal, even with no timeout (a streamed download): Node's fetch adds a
   * listener to it per request, kept until the request is garbage
   * collected, and raises its listener limit; a signal of AbortSignal.any
   * follows the caller's without a listener on it.
   */
  private signalFor(options: AnyRequestOptions): AbortSignal | undefined {
    const timeoutMs = this.timeoutOf(options);
    const timeout = timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs);
    if (!options.signal) return timeout;
    return AbortSignal.any(timeout ? [options.signal, timeout] : [options.signal]);
  }

  /** Raw calls (artifact content, archives): the Response itself, or a RuntrailError if it is not ok. */
  async send<R extends RouteName>(name: R, ...[given]: OptionsArg<SendOptions<R>>): Promise<Response> {
    const route = routes[name];
    const options = (given ?? {}) as AnyRequestOptions & SendExtras;
    const url = this.baseUrl + buildPath(name, (options.params ?? {}) as RouteParams<R>, options.query);
    const signal = this.signalFor(options);
    const isStream = options.raw !== undefined && typeof options.raw === 'object' && options.raw !== null && 'getReader' in options.raw;
    const init: RequestInit & { duplex?: 'half' } = {
      method: route.method,
      headers: { [CLIENT_HEADER]: '1', ...this.headers, ...options.headers },
      body: options.raw ?? null,
      ...(signal ? { signal } : {}),
      // fetch sends a stream body only when told the request is half duplex.
      ...(isStream ? { duplex: 'half' } : {}),
    };
    const response = await this.fetchImpl(url, init).catch((err: unknown) => {
      throw unreachable(err, route.method, url, this.timeoutOf(options));
    });
    if (!response.ok && response.status !== 304) {
      const text = await response.text();
      let payload: unknown;
      try {
        payload = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        // Not our JSON error body (a proxy's page): the status says enough.
        payload = undefined;
      }
      throw this.errorOf(response.status, payload, `${route.method} ${url}`);
    }
    return response;
  }

  /** The server's error, with where to give a token when it wants one and this client has none. */
  private errorOf(status: number, payload: unknown, what: string): RuntrailError {
    const err = errorFromResponse(status, payload, what);
    if (err.code === 'route_not_found' && new URL(this.baseUrl).pathname !== '/') {
      // The server's own answer names only the path: the usual cause is a URL given with a path (a run's page).
      return new RuntrailError('route_not_found', `${err.message}; this client's URL is ${this.baseUrl}: give the server's root (with only the prefix a proxy serves it under)`, err.details);
    }
    if (err.code !== 'unauthorized' || this.missingTokenHint === undefined) return err;
    return new RuntrailError('unauthorized', `${err.message} (${NO_TOKEN_GIVEN}: ${this.missingTokenHint})`, err.details);
  }
}

/** How a hinted 401's hint begins, as the watchers' "no token was given to this watcher". */
const NO_TOKEN_GIVEN = 'no token was given to this client';

interface SendExtras {
  /** A raw body (bytes, text, a stream); sent as is, not as JSON. */
  raw?: BodyInit;
}

export type SendOptions<R extends RouteName> = RequestOptions<R> & SendExtras;

/** What Chromium, Firefox and Safari's fetch reject with when no answer came (refused, CORS, offline). */
const BROWSER_NETWORK_FAILURE = /^(Failed to fetch|NetworkError when attempting to fetch resource\.?|Load failed)$/;

/**
 * fetch's own network failure says only "fetch failed" (Node) or "Failed to
 * fetch" (a browser), naming neither the server nor why. Say both; it stays
 * a TypeError with the same `cause`, so retries, reconnects and the CLI
 * treat it as the network failure it is.
 */
export function unreachable(err: unknown, method: string, url: string, timeoutMs: number | null): unknown {
  const what = `${method} ${url}`;
  if (err instanceof Error && err.name === 'TimeoutError' && timeoutMs !== null) {
    // AbortSignal.timeout's own message names neither the request nor the time. Still a TimeoutError: retried as one.
    const timedOut = new Error(`the runtrail server did not answer ${what} within ${timeoutMs} ms (requestTimeoutMs)`, { cause: err });
    timedOut.name = 'TimeoutError';
    return timedOut;
  }
  if (!(err instanceof TypeError)) return err;
  if (err.message === 'fetch failed') {
    const cause = err.cause as { code?: string; message?: string } | undefined;
    const why = cause?.code ?? cause?.message ?? 'no answer';
    return new TypeError(`cannot reach the runtrail server: ${what} failed (${why})`, { cause: err.cause });
  }
  if (!BROWSER_NETWORK_FAILURE.test(err.message)) return err;
  // A browser says the same for a server that is down and for one that refuses the page's origin (CORS),
  // and lets the page see neither: name both, with the flags that allow an app on another origin.
  const page = (globalThis as { location?: { origin?: string } }).location?.origin;
  // `url` is relative when the client was given '' (the page's own origin).
  const server = page !== undefined && page !== 'null' ? new URL(url, page).origin : undefined;
  const origin =
    server !== undefined && page !== server
      ? `, or it does not allow this page's origin ${page} (serve with --cors-origins ${page} --allowed-origins ${page})`
      : '';
  return new TypeError(`cannot reach the runtrail server: ${what} failed (${err.message}): it is not running or not reachable from here${origin}`, { cause: err });
}

export function errorFromResponse(status: number, payload: unknown, what: string): RuntrailError {
  const body = payload as Partial<ErrorBody> | undefined;
  const code = body?.error?.code;
  if (isErrorCode(code)) return new RuntrailError(code, body!.error!.message, body!.error!.details);
  // 501 (method not implemented: `python3 -m http.server` answers every POST so) and 505 say what the
  // server is, not that it is briefly away as a proxy's 502/503 do: retrying them only delays the advice.
  if (status >= 500 && status !== 501 && status !== 505) return new RuntrailError('unavailable', `${what} answered ${status}`);
  return notRuntrail(what, String(status));
}

/**
 * An answer without runtrail's JSON (no error body, or a success that is
 * not JSON): the URL reaches some other server. A status alone, or a JSON
 * parser's "Unexpected token '<'", leaves the user to guess that.
 */
function notRuntrail(what: string, answered: string): RuntrailError {
  return new RuntrailError('invalid_request', `${what} answered ${answered}, not as a runtrail server does: is the client's url the runtrail server's, with no path (such as http://127.0.0.1:4310)?`);
}

/** A Retry-After header (seconds or an HTTP date) in ms; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Worth retrying: the server was unreachable, overloaded, or failed on its side. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RuntrailError) return err.code === 'unavailable' || err.code === 'internal' || err.code === 'rate_limited';
  // fetch rejects with TypeError on network failure and with TimeoutError/AbortError on our timeout.
  return err instanceof TypeError || (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'));
}
