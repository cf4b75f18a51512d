import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { STREAM_CLOSE_CODES, routes } from '@runtrail/protocol';
import { serverFixture, spawnFixture, tempDir, waitUntil } from '../leases/lease.test-kit.js';

/**
 * Issue 11, item 1, as the attacker did it: a raw TCP client completes the
 * WebSocket upgrade, never reads, and floods pings and malformed frames.
 * The server runs in a child process so that its resident memory is its own.
 */

const SEND_BUFFER_BYTES = 256 * 1024;
/**
 * Headroom for the runtime itself, a constant rather than a function of the
 * flood: parsing MiBs of tiny frames grows V8's young generation (up to 48 MiB
 * with Node's defaults) before garbage collection settles; measured +40-48 MiB.
 * Before the fix the replies alone grew the server by 1.8 GiB.
 */
const RSS_SLACK_BYTES = 80 * 2 ** 20;
const FLOOD_BYTES = 64 * 2 ** 20;

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanups.splice(0).reverse()) fn();
});

function rssOf(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** A masked client frame (RFC 6455 §5.2) with a payload under 126 bytes. */
function clientFrame(opcode: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const mask = randomBytes(4);
  const masked = Buffer.from(body.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | body.length]), mask, masked]);
}

async function upgrade(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  cleanups.push(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(
    `GET ${routes.stream.path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let head = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (!head.startsWith('HTTP/1.1 101')) reject(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
      else resolve();
    };
    socket.on('data', onData);
  });
  return socket;
}

/** Read server frames until a close frame; returns its code. */
function closeCode(socket: Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let offset = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          offset = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          offset = 10;
        }
        if (buf.length < offset + len) return;
        if (opcode === 0x8) return resolve(buf.readUInt16BE(offset));
        buf = buf.subarray(offset + len);
      }
    });
    socket.once('close', () => reject(new Error('connection closed without a close frame')));
    setTimeout(() => reject(new Error('no close frame within 15 s')), 15_000).unref();
  });
}

describe('a WebSocket client that floods and never reads (issue 11, item 1)', () => {
  it('pings and malformed frames: server RSS stays within the send buffer bound plus a constant, and the connection is closed with 4008', async () => {
    const dir = tempDir('runtrail-flood-');
    cleanups.push(() => dir.remove());
    const { child, hello } = await spawnFixture(serverFixture('serve-with-handlers.mjs'), {
      RUNTRAIL_DATA_DIR: dir.path,
      RUNTRAIL_PORT: '0',
      RUNTRAIL_LOG_LEVEL: 'silent',
      RUNTRAIL_SEND_BUFFER_BYTES: String(SEND_BUFFER_BYTES),
      // This test is about the send bound (4008); the message-rate limits (issue 15, close 4429), the socket's and its
      // address's, would end the flood first.
      RUNTRAIL_WS_MESSAGES_PER_SECOND: '100000000',
      RUNTRAIL_WS_MESSAGES_PER_SECOND_PER_IP: '100000000',
    }, 30_000);
    cleanups.push(() => void child.kill('SIGKILL'));
    const url = hello.url as string;

    const socket = await upgrade(url);
    socket.pause();
    const baseline = rssOf(child.pid!);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(child.pid!))), 20);
    cleanups.push(() => clearInterval(sampler));

    // 8-byte `{}` frames (JSON, but no message: each once got a ~150-byte error), broken
    // JSON, app pings, and WebSocket pings whose 125-byte payload a pong echoes.
    const unit = Buffer.concat([
      clientFrame(0x1, '{}'),
      clientFrame(0x1, '{"op":'),
      clientFrame(0x1, '{"op":"ping"}'),
      clientFrame(0x9, 'p'.repeat(125)),
    ]);
    const chunk = Buffer.concat(Array.from({ length: Math.ceil(65536 / unit.length) }, () => unit));
    let sent = 0;
    let writeError: Error | null = null;
    socket.on('error', (err) => (writeError = err));
    // Flood until the server has given up on this connection (it leaves the
    // stream gauge), or FLOOD_BYTES. Replies first fill the kernel's socket
    // buffers (several MiB on loopback), so how much it takes varies.
    let dropped = false;
    const watching = (async () => {
      while (!dropped) {
        const metrics = await (await fetch(`${url}/metrics`)).text();
        dropped = /runtrail_stream_connections\{transport="ws"\} 0\b/.test(metrics);
        if (!dropped) await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const deadline = Date.now() + 40_000;
    while (sent < FLOOD_BYTES && !dropped && !writeError && !socket.destroyed && Date.now() < deadline) {
      if (!socket.write(chunk)) {
        // The server reads what we send even while it is closing us; wait for room, briefly.
        await Promise.race([new Promise((r) => socket.once('drain', r)), new Promise((r) => setTimeout(r, 200))]);
      }
      sent += chunk.length;
    }
    // What is still in flight reaches the server without us: its queue only grows while we do not read.
    await waitUntil(() => dropped, { timeoutMs: 15_000, what: `the server to drop the connection after ${(sent / 2 ** 20).toFixed(1)} MiB` });
    await watching;
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(child.pid!));

    const growth = peak - baseline;
    console.log(
      `ws flood: ${(sent / 2 ** 20).toFixed(1)} MiB of pings and malformed frames from a client that never read; ` +
        `server RSS ${(baseline / 2 ** 20).toFixed(0)} MiB -> peak ${(peak / 2 ** 20).toFixed(0)} MiB (+${(growth / 2 ** 20).toFixed(1)} MiB; bound ${SEND_BUFFER_BYTES / 1024} KiB)`,
    );
    expect(growth).toBeLessThan(SEND_BUFFER_BYTES + RSS_SLACK_BYTES);

    const code = closeCode(socket);
    socket.resume();
    expect(await code).toBe(STREAM_CLOSE_CODES.sendBufferFull);
  }, 120_000);
});
