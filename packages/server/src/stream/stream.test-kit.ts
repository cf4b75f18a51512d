import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { RunEvent, ServerMessage } from '@runtrail/protocol';
import { startServer, type RunningServer } from '../start.js';
import type { ServerConfigInput } from '../config.js';

/** Helpers shared by the stream tests (real server on loopback, real sockets). */

export async function waitFor(cond: () => boolean | Promise<boolean>, options: { timeoutMs?: number; what?: string } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'condition'}`);
    await new Promise((r) => setTimeout(r, 5));
  }
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
