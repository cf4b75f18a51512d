import { delay } from '../backoff.js';
import type { Connection, ConnectionReason, Transport } from './transport.js';

export interface PollTransportOptions<M> {
  /** One read; `more` = a full page came back, read again at once. */
  read(signal: AbortSignal): Promise<{ messages: M[]; more: boolean }>;
  intervalMs: number;
}

/**
 * Polling over plain HTTP, for when no stream gets through. Each read's
 * messages are applied before the next read (which starts from where they
 * left the watcher). It gives way when a better transport's pause is over.
 */
export class PollTransport<M> implements Transport<M> {
  readonly name = 'poll';

  constructor(private readonly options: PollTransportOptions<M>) {}

  connect(conn: Connection, deliver: (message: M) => void | Promise<void>): void {
    void this.loop(conn, deliver).then((end) => conn.finish(end));
  }

  private async loop(conn: Connection, deliver: (message: M) => void | Promise<void>): Promise<{ reason: ConnectionReason; error?: unknown }> {
    try {
      while (conn.alive()) {
        const page = await this.options.read(conn.signal);
        if (!conn.alive()) break;
        conn.heard();
        conn.open();
        for (const message of page.messages) await deliver(message);
        if (page.more) continue;
        if (conn.upgradeDue()) return { reason: 'upgrade' };
        await delay(this.options.intervalMs, conn.signal, conn.clock);
      }
      return { reason: 'closed' };
    } catch (error) {
      return { reason: 'error', error };
    }
  }
}
