import type pg from 'pg';
import { pgDriver } from './driver.js';
import type { AppendFeed } from '../store.js';
import { dispatchNotification } from './notifications.js';

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;

/**
 * The ONE listening connection of a node: `LISTEN` on the store's channel,
 * payloads (./notifications.ts) handed to the feed. When the connection dies (a
 * PostgreSQL restart, a network cut) it reconnects with backoff and tells
 * the feed, which catches up from the store: a notification missed while
 * disconnected never means an event missed.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private closed = false;
  /** Whether LISTEN is in place now (false from a loss until the reconnect's LISTEN). */
  listening = false;
  /** Losses made good: connections made again after one was lost. */
  reconnects = 0;
  private backoffMs = MIN_BACKOFF_MS;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly connectionString: string,
    private readonly channel: string,
    private readonly feed: AppendFeed,
    private readonly applicationName: string,
  ) {}

  /** Resolves once listening; rejects if the first connection fails. */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    if (client) await client.end();
  }

  private async connect(): Promise<void> {
    const client = new (pgDriver().Client)({ connectionString: this.connectionString, keepAlive: true, connectionTimeoutMillis: 5_000, application_name: this.applicationName });
    let lost = false;
    const onLost = (err: Error) => {
      if (lost || this.closed) return;
      lost = true;
      if (this.client === client) this.client = null;
      this.listening = false;
      this.feed.onDisconnect(err);
      client.end().catch(() => undefined /* already broken: ending it is only tidying up */);
      this.retry();
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the listening connection ended')));
    client.on('notification', (msg) => dispatchNotification(msg.payload ?? '', this.feed));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
    } catch (err) {
      lost = true;
      client.end().catch(() => undefined /* it never fully connected */);
      throw err;
    }
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
    this.listening = true;
    this.backoffMs = MIN_BACKOFF_MS;
  }

  private retry(): void {
    if (this.closed || this.timer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      this.connect().then(
        () => {
          if (this.closed) return;
          this.reconnects++;
          this.feed.onReconnect();
        },
        (err: unknown) => {
          this.feed.onDisconnect(err as Error);
          this.retry();
        },
      );
    }, delay);
    this.timer.unref?.();
  }
}
