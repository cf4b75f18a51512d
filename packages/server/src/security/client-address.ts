import type { IncomingMessage, Server } from 'node:http';
import { isIP, type Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { RuntrailError } from '@runtrail/protocol';
import { refuseUpgrade } from '../stream/stream-auth.js';

/**
 * An address in the one spelling it is compared in: `::ffff:10.0.0.1` (an
 * IPv4 client of a dual-stack listener), in any spelling, is 10.0.0.1, as
 * the client and an operator write it; any other IPv6 address is written
 * as RFC 5952 does (lower case, no leading zeros, the longest zero run as
 * `::`), as Node reports a peer. Compared as typed, `--trusted-proxies
 * 2001:0DB8::1` never matched the proxy Node calls `2001:db8::1`, and an
 * X-Forwarded-For hop spelt another way was another client.
 */
export function plainAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const zoneAt = address.indexOf('%');
  const bare = zoneAt < 0 ? address : address.slice(0, zoneAt);
  if (isIP(bare) !== 6) return address;
  const groups = ipv6Groups(bare);
  if (isMappedIpv4(groups)) return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  return `${ipv6Text(groups)}${zoneAt < 0 ? '' : address.slice(zoneAt)}`;
}

function isMappedIpv4(groups: number[]): boolean {
  return groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
}

/**
 * The key every per-address limit counts a client under (connections,
 * body bytes in flight, streams, held heartbeats, WebSocket messages,
 * run creations): an IPv4 address as it is (an IPv4-mapped IPv6 one,
 * `::ffff:10.0.0.1` in any spelling, as its IPv4 address); an IPv6
 * address by its /64, `2001:db8:1:2::/64`, in the RFC 5952 spelling
 * whatever the client's. A /64 is what one host (a home line, a VM) is
 * given, and it picks any address in it at will: keyed by the whole
 * address, one host had as many budgets as it cared to use. A zone id
 * (`fe80::1%eth0`) is kept, as `fe80::%eth0/64`: a link-local prefix is
 * the same on every link. Anything that is not an IP address ('?', an
 * unreadable peer) is its own key.
 */
export function addressKey(address: string): string {
  const zoneAt = address.indexOf('%');
  const bare = zoneAt < 0 ? address : address.slice(0, zoneAt);
  const version = isIP(bare);
  if (version !== 6) return address;
  const groups = ipv6Groups(bare);
  if (isMappedIpv4(groups)) return plainAddress(bare)!;
  return `${ipv6Text([...groups.slice(0, 4), 0, 0, 0, 0])}${zoneAt < 0 ? '' : address.slice(zoneAt)}/64`;
}

/** The eight 16-bit groups of an IPv6 address `isIP` accepted (no zone id): `::` expanded, an IPv4 tail as two groups. */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').flatMap((group) => {
      if (!group.includes('.')) return [parseInt(group, 16)];
      const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const gap = address.indexOf('::');
  if (gap < 0) return parse(address);
  const head = parse(address.slice(0, gap));
  const tail = parse(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Eight groups as RFC 5952 writes them: lower-case hex, no leading zeros, the longest run of two or more zero groups (the first of equals) as `::`. */
function ipv6Text(groups: number[]): string {
  let best = { at: -1, length: 1 };
  for (let at = 0; at < 8; ) {
    if (groups[at] !== 0) {
      at++;
      continue;
    }
    let end = at;
    while (end < 8 && groups[end] === 0) end++;
    if (end - at > best.length) best = { at, length: end - at };
    at = end;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.length).join(':')}`;
}

/**
 * The key a request is counted under by the per-address limits: addressKey
 * of its client's address (clientAddress).
 */
export function clientKey(request: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  return addressKey(clientAddress(request, trustedProxies));
}

/**
 * The address of the client a request comes from: the connection's peer,
 * unless that peer is one of `trustedProxies`, whose X-Forwarded-For is
 * then read from its right end (the entry the proxy itself added) past
 * every trusted hop. Entries a client wrote on the left are never reached
 * while a trusted proxy appends the address it saw, so a client cannot
 * pick its own address; an entry that is not an IP address stops the walk
 * at the proxy, which then counts as the client.
 */
export function clientAddress(request: IncomingMessage, trustedProxies: ReadonlySet<string>): string {
  let address = plainAddress(request.socket.remoteAddress) ?? '?';
  if (!trustedProxies.has(address)) return address;
  const header = request.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  while (trustedProxies.has(address) && hops.length > 0) {
    const hop = plainAddress(hops.pop()!.trim())!;
    if (isIP(hop) === 0) break;
    address = hop;
  }
  return address;
}

/**
 * Bound the TCP connections one client address holds at once (requests
 * being sent, idle keep-alive, streams). Node bounds none: one client that
 * opened thousands of idle or half-sent connections took the process's
 * file descriptors, and then no one else could connect, an artifact could
 * not be stored and the database could not be opened. One past the bound
 * is answered 429 naming the setting and closed. A trusted proxy's
 * connections are not counted here (they carry many clients; the proxy
 * bounds its own), the streams and held heartbeats behind it are, by the
 * address it forwards.
 */
export function limitConnectionsPerAddress(
  http: FastifyInstance,
  options: { max: number; trustedProxies: ReadonlySet<string>; log: FastifyBaseLogger },
): void {
  const server: Server = http.server;
  const counts = new Map<string, number>();
  const refused = new WeakSet<Socket>();
  // Before Node's own listener, so a refused connection is marked before any request of it is parsed.
  server.prependListener('connection', (socket: Socket) => {
    const peer = plainAddress(socket.remoteAddress);
    if (peer === undefined || options.trustedProxies.has(peer)) return;
    const address = addressKey(peer);
    const open = counts.get(address) ?? 0;
    if (open >= options.max) {
      refused.add(socket);
      options.log.debug({ address, open }, 'connection refused: its address holds the most connections allowed');
      // Answered and closed after a grace to read it (refuseUpgrade).
      refuseUpgrade(
        socket,
        new RuntrailError(
          'rate_limited',
          `client address ${address} has ${options.max} connections open, the most allowed (maxHttpConnectionsPerIp on the server); close some, or reuse them with keep-alive`,
          { retryAfterMs: 1000 },
        ),
      );
      return;
    }
    counts.set(address, open + 1);
    socket.once('close', () => {
      const left = (counts.get(address) ?? 1) - 1;
      if (left <= 0) counts.delete(address);
      else counts.set(address, left);
    });
  });
  // A request that arrived on a refused connection before it closed is not served: its answer was
  // the 429 (already on its way; the grace timer or the client ends the connection).
  http.addHook('onRequest', (request, reply, done) => {
    if (!refused.has(request.raw.socket)) return done();
    void reply.hijack();
  });
  server.prependListener('upgrade', (request: IncomingMessage, socket: Socket) => {
    if (refused.has(socket)) socket.destroy();
  });
}
