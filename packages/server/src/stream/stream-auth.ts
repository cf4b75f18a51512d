import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { RuntrailError, errorStatus, routes, type ErrorCode } from '@runtrail/protocol';
import { ConnectionCounter, SECURITY_HEADERS, tokenOf, type Principal } from '../security/index.js';
import type { StreamDeps } from './types.js';

/** A stream connection admitted: who it is, and the slot it holds until released. */
export interface Admission {
  principal: Principal;
  /** The client address key it is counted under (see addressKey). */
  address: string;
  release(): void;
}

/**
 * Who may open a stream, for both transports: the token (header, or
 * `?token=` for browsers), and the connections that token and that client
 * address already hold.
 */
export class StreamGate {
  private readonly counter = new ConnectionCounter();

  constructor(private readonly deps: StreamDeps) {}

  /** Count a connection of `principal` from the client `address` (its key: see addressKey), or throw rate_limited (429). */
  admit(principal: Principal, address: string): Admission {
    const { maxConnectionsPerIp, maxConnectionsPerToken } = this.deps.limits;
    const keys = [{ key: `ip:${address}`, limit: maxConnectionsPerIp, what: `client address ${address}` }];
    if (principal.kind !== 'open') keys.push({ key: `token:${principal.hash}`, limit: maxConnectionsPerToken, what: 'this token' });
    const slot = this.counter.acquire(keys);
    if ('refused' in slot) {
      throw new RuntrailError('rate_limited', `${slot.refused}; close one first`, { retryAfterMs: 5000 });
    }
    return { principal, address, release: slot.release };
  }

  /**
   * Check a WebSocket upgrade before the handshake: its Host and Origin
   * (refused with an HTTP status: a page elsewhere never gets a socket);
   * then its token (a socket is opened and closed with 4401, so a browser,
   * which cannot read a refused handshake's status, learns why).
   */
  checkUpgrade(request: IncomingMessage): void {
    const path = (request.url ?? '').split('?')[0];
    if (path !== routes.stream.path) throw new RuntrailError('route_not_found', `no WebSocket at ${path}; use ${routes.stream.path}`);
    this.deps.guard.checkHost(request.headers);
    if (!this.deps.guard.wsOriginAllowed(request.headers)) {
      throw new RuntrailError('forbidden', `WebSocket from origin ${request.headers.origin} refused; allow it with --allowed-origins`);
    }
  }

  /** The principal of an upgrade request (throws unauthorized). */
  authenticate(request: IncomingMessage): Promise<Principal> {
    return this.deps.tokens.authenticate(tokenOf(request.headers, request.url, true));
  }
}

/**
 * How long a refused socket has to read its answer before it is closed:
 * ending it at once would reset it under a request it had already sent,
 * and the client would see a reset instead of why.
 */
const REFUSED_GRACE_MS = 1000;

/**
 * Answer an upgrade request (or a connection refused before any request)
 * with a plain HTTP error and close the socket. Ending our side is not
 * enough: the server keeps a half-closed socket until the client ends its
 * own, and no idle timeout is left on it (stopped at the upgrade), so a
 * client that never closed held it for ever; it is destroyed after the grace.
 */
export function refuseUpgrade(socket: Duplex, err: RuntrailError): void {
  const status = errorStatus[err.code as ErrorCode];
  const body = JSON.stringify(err.toBody());
  const retry = (err.details as { retryAfterMs?: number } | undefined)?.retryAfterMs;
  const headers = [
    `HTTP/1.1 ${status} ${err.code}`,
    'Connection: close',
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...(retry === undefined ? [] : [`Retry-After: ${Math.ceil(retry / 1000)}`]),
    // Past Fastify's hooks (a refused upgrade, a connection over its address's limit): the headers every answer carries.
    ...Object.entries(SECURITY_HEADERS).map(([name, value]) => `${name}: ${value}`),
  ];
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
  const timer = setTimeout(() => socket.destroy(), REFUSED_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
