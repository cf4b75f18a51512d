import WebSocket from 'ws';
import type { RunEvent, ServerMessage } from '@runtrail/protocol';
import type { RunningServer } from '../start.js';

/**
 * Helpers shared by the stream tests (real server on loopback, real sockets).
 * What other packages' tests need too (a test server, waiting, event lists)
 * lives in @runtrail/test-support; it is re-exported here so the server's
 * tests have one place to import from.
 */
export { isExactRange, progressEvents, waitFor } from '@runtrail/test-support';
export { startTestServer, testScope } from '@runtrail/test-support/server';

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
