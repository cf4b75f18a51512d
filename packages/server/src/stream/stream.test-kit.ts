import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach } from 'vitest';
import type { RunEvent, ServerMessage } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import type { ServerConfigInput } from '../config.js';
import { waitUntil } from '@runtrail/test-support';

/** Helpers shared by the stream tests (real server on loopback, real sockets). */

export async function waitFor(cond: () => boolean | Promise<boolean>, options: { timeoutMs?: number; what?: string } = {}): Promise<void> {
  await waitUntil(cond, { intervalMs: 5, ...options });
}

/**
 * Servers and other resources a test file starts, released after each test
 * in reverse order: `const { cleanups, server } = testScope();`.
 */
export function testScope() {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  const server = async (options: ServerConfigInput = {}) => {
    const s = await startTestServer(options);
    cleanups.push(() => s.cleanup());
    return s;
  };
  return { cleanups, server };
}

export async function startTestServer(options: ServerConfigInput = {}): Promise<RunningServer & { cleanup(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'runtrail-stream-'));
  const server = await startServer({ port: 0, dataDir, logLevel: 'silent', ...options });
  return Object.assign(server, {
    async cleanup() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

export function wsUrl(server: RunningServer): string {
  return `${server.url.replace(/^http/, 'ws')}/api/v1/stream`;
}

/** A raw protocol client that records every message. */
export class RawWsClient {
  readonly ws: WebSocket;
  readonly messages: ServerMessage[] = [];
  readonly events = new Map<string, RunEvent[]>();
  readonly ended = new Set<string>();

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as ServerMessage;
      this.messages.push(msg);
      if (msg.type === 'events') {
        let list = this.events.get(msg.runId);
        if (!list) this.events.set(msg.runId, (list = []));
        for (const e of msg.events) list.push(e);
      } else if (msg.type === 'end') this.ended.add(msg.runId);
    });
  }

  opened(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  seqs(runId: string): number[] {
    return (this.events.get(runId) ?? []).map((e) => e.seq);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Assert-friendly check that seqs are exactly from+1..to, once each, in order. */
export function isExactRange(seqs: number[], from: number, to: number): boolean {
  if (seqs.length !== to - from) return false;
  for (let i = 0; i < seqs.length; i++) if (seqs[i] !== from + 1 + i) return false;
  return true;
}

export function progressEvents(n: number, start = 0): Array<{ type: 'progress'; data: { done: number } }> {
  return Array.from({ length: n }, (_, i) => ({ type: 'progress' as const, data: { done: start + i + 1 } }));
}

/**
 * A TCP proxy in front of a server: the "network" a watcher goes through.
 * `cut()` kills every connection with a reset and refuses new ones until
 * `allow()`, which is how tests make an outage of a chosen length.
 */
export class TcpProxy {
  refused = 0;
  accepted = 0;
  private readonly server: import('node:net').Server;
  private readonly pairs = new Set<[import('node:net').Socket, import('node:net').Socket]>();
  private readonly frozen = new Set<[import('node:net').Socket, import('node:net').Socket]>();
  private open = true;

  private constructor(server: import('node:net').Server) {
    this.server = server;
  }

  static async start(targetUrl: string): Promise<TcpProxy> {
    const net = await import('node:net');
    const target = new URL(targetUrl);
    const server = net.createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => {
      if (!proxy.open) {
        proxy.refused++;
        client.resetAndDestroy();
        return;
      }
      proxy.accepted++;
      const upstream = net.connect(Number(target.port), target.hostname);
      const pair: [import('node:net').Socket, import('node:net').Socket] = [client, upstream];
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
    const address = this.server.address() as import('node:net').AddressInfo;
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

  /** Refuse new connections, leave the current ones alone. */
  block(): void {
    this.open = false;
  }

  allow(): void {
    this.open = true;
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
