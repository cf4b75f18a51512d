import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a server: the "network" a watcher goes through.
 * `cut()` kills every connection with a reset and refuses new ones until
 * `allow()`, which is how tests make an outage of a chosen length.
 */
export class TcpProxy {
  refused = 0;
  accepted = 0;
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private readonly frozen = new Set<[Socket, Socket]>();
  private open = true;
  /** While set, new connections get this HTTP answer instead of the server (see answerUnavailable). */
  private unavailable = false;

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => {
      if (!proxy.open) {
        proxy.refused++;
        client.resetAndDestroy();
        return;
      }
      proxy.accepted++;
      if (proxy.unavailable) {
        // Whatever the request (an upgrade included), once its head has arrived, as a server that is closing answers it.
        client.on('error', () => client.destroy()); // a client giving up first is the point of the test, not a failure
        client.once('data', () => client.end('HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 19\r\nconnection: close\r\n\r\nService Unavailable'));
        return;
      }
      const upstream = connect(Number(target.port), target.hostname);
      const pair: [Socket, Socket] = [client, upstream];
      proxy.pairs.add(pair);
      const drop = () => {
        proxy.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      // Either side failing ends the pair; the error itself is the test's subject, not a failure.
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  /** Reset every connection through the proxy and refuse new ones. */
  cut(): void {
    this.open = false;
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    this.pairs.clear();
  }

  /**
   * Stop forwarding on every current connection without closing it (a NAT
   * that forgot the flow, a sleeping laptop): nobody sees a close or a
   * reset. New connections still work.
   */
  freeze(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      this.frozen.add([client, upstream]);
    }
    this.pairs.clear();
  }

  /**
   * Reset every connection and answer new ones `503 Service Unavailable`
   * until `allow()`: a server that is stopping or starting (Fastify while it
   * closes), or a load balancer with no node behind it.
   */
  answerUnavailable(): void {
    this.cut();
    this.open = true;
    this.unavailable = true;
  }

  /** Refuse new connections, leave the current ones alone. */
  block(): void {
    this.open = false;
  }

  allow(): void {
    this.open = true;
    this.unavailable = false;
  }

  async close(): Promise<void> {
    this.cut();
    for (const [client, upstream] of this.frozen) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
