import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import { testScope, waitFor } from './stream.test-kit.js';

/**
 * A refused WebSocket upgrade (a wrong path, a foreign Origin or Host) is
 * answered with an HTTP error and half-closed. The idle timeout stops at an
 * upgrade, and the server keeps a half-closed socket open until the client
 * ends its side, so a client that read the answer and never closed held the
 * connection (and its slot under maxHttpConnectionsPerIp) for ever.
 */
const { cleanups, server } = testScope();

describe('a refused WebSocket upgrade', () => {
  it('is closed by the server even when its client never closes its side', async () => {
    const s = await server({ connectionIdleTimeoutMs: 60_000 });
    const port = Number(new URL(s.url).port);
    const serverConnections = () => new Promise<number>((resolve, reject) => s.http.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    const answers: string[] = [];
    const paths = ['/api/v1/not-a-stream', '/api/v1/stream'];
    paths.forEach((path, i) => {
      // allowHalfOpen: the client sees the server's end but does not end its own side.
      const socket = createConnection({ host: '127.0.0.1', port, allowHalfOpen: true }, () => {
        const origin = path === '/api/v1/stream' ? 'Origin: https://elsewhere.example\r\n' : '';
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${origin}\r\n`,
        );
      });
      answers[i] = '';
      socket.on('data', (chunk) => (answers[i] += chunk.toString()));
      // The server ends it; nothing to report from this side.
      socket.on('error', () => undefined);
      cleanups.push(() => socket.destroy());
    });
    await waitFor(() => answers.every((a) => a.includes('\r\n\r\n')), { what: 'both upgrades answered' });
    expect(answers[0]).toMatch(/^HTTP\/1.1 404/);
    expect(answers[1]).toMatch(/^HTTP\/1.1 403/);
    // Before: both stayed open on the server, half-closed, with no timer left to end them.
    // (The client cannot tell: after the server's FIN, its closing the socket sends nothing more.)
    await waitFor(async () => (await serverConnections()) === 0, { what: 'the server to close both refused upgrades', timeoutMs: 10_000 });
  });
});
