import type { SharedRunStore } from '@runtrail/store';

/** How often the offset to the database clock is measured again, at most: and at least once per lease TTL (see createServer). */
export const CLOCK_RESYNC_MS = 30_000;

/**
 * Nodes sharing a database judge leases on ITS clock, not their own: a node
 * whose clock runs ahead would otherwise reap healthy runs of the others.
 * `now()` is the local clock plus the offset measured to the database (from
 * the midpoint of a round trip), re-measured every `resyncMs`; a failed
 * measurement keeps the last offset.
 */
export class DatabaseClock {
  private offsetMs = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly store: SharedRunStore,
    private readonly onError: (err: unknown) => void,
    private readonly resyncMs: number,
  ) {}

  readonly now = (): number => Date.now() + this.offsetMs;

  get offset(): number {
    return this.offsetMs;
  }

  async start(): Promise<void> {
    await this.sync();
    this.timer = setInterval(() => {
      // A failed measurement keeps the last offset; the error is reported.
      this.sync().catch(this.onError);
    }, this.resyncMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async sync(): Promise<void> {
    const sent = Date.now();
    const db = await this.store.databaseNow();
    const received = Date.now();
    this.offsetMs = Math.round(db - (sent + received) / 2);
  }
}
