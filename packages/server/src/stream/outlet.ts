/**
 * The write side of one streaming connection (a WebSocket or an SSE
 * response), with its send buffer bounded by bytes.
 *
 * Subscriptions never queue events of their own: they write while the
 * connection is under its bound and otherwise wait for `whenDrained`, then
 * read what they missed from the store. So a connection holds at most
 * `limitBytes` plus one frame, however slow its reader is (field note 9).
 */
/** Bytes a transport adds to a write (a WebSocket frame header, an HTTP chunk's size line), at most. */
const FRAMING_BYTES = 64;

export abstract class Outlet {
  /** Largest number of queued bytes seen right after a write since StreamServer.resetPeakQueuedBytes (the gauge tests and /metrics read). */
  peakQueuedBytes = 0;
  /** Made when first needed: most connections never go over their bound. */
  private drainWaiters: Array<() => void> | null = null;
  private flushedCallback: ((err?: Error | null) => void) | null = null;
  private closedFlag = false;
  /** Bytes given to `send` since the connection opened. */
  private sentBytes = 0;

  constructor(readonly limitBytes: number) {}

  /**
   * Bytes the peer's side has taken (handed to the kernel) so far, give or
   * take the transport's framing: grows only when the reader reads, whatever
   * is written meanwhile, which the queued bytes alone cannot tell (a reader
   * that drained a full queue and had it filled again looks the same).
   */
  get takenBytes(): number {
    return this.sentBytes - this.queuedBytes();
  }

  /** Bytes written but not yet handed to the kernel. */
  abstract queuedBytes(): number;
  /** `framed`: `data` is a whole frame of the transport already (see Frame.framed), not a message to frame. */
  protected abstract write(data: string | Buffer, onFlushed: ((err?: Error | null) => void) | undefined, framed: boolean): void;

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Over its bound: subscriptions must stop writing until `whenDrained` calls back. */
  get blocked(): boolean {
    return this.queuedBytes() > this.limitBytes;
  }

  send(data: string | Buffer, framed = false): void {
    if (this.closedFlag) return;
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.sentBytes += size;
    // Only a write that takes the queue over the bound needs to say when it
    // is flushed (a flush callback costs a tick per write, per watcher): no
    // write is added while blocked but replies, and every write that leaves
    // the queue over the bound carries one, so the last of them comes when
    // the queue is back under it.
    if (this.queuedBytes() + size + FRAMING_BYTES > this.limitBytes) {
      this.write(data, (this.flushedCallback ??= (err) => this.onFlushed(err)), framed);
    } else this.write(data, undefined, framed);
    const queued = this.queuedBytes();
    if (queued > this.peakQueuedBytes) this.peakQueuedBytes = queued;
  }

  /**
   * One whole frame of the transport given in parts (a catch-up page as the
   * store read it, with its frame's head and tail), written in order as one
   * write: no part is copied into a frame of its own.
   */
  sendParts(parts: readonly Buffer[]): void {
    this.hold();
    try {
      for (const part of parts) this.send(part, true);
    } finally {
      this.release();
    }
  }

  /** Hold writes until `release`, so those in between go out together (a socket's cork). */
  protected abstract hold(): void;
  protected abstract release(): void;

  private onFlushed(err?: Error | null): void {
    // A failed write means the peer is gone; the transport's close handler
    // ends the subscriptions, so there is nothing to resume here.
    if (err || !this.drainWaiters || this.blocked) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    for (const waiter of waiters) waiter();
  }

  /**
   * Call `fn` once the queued bytes are back under the bound. Writes are
   * flushed in order, so the flush callback of the last write that left the
   * queue over the bound always comes; no timer is needed.
   */
  whenDrained(fn: () => void): void {
    if (this.closedFlag) return;
    if (!this.blocked) {
      queueMicrotask(fn);
      return;
    }
    (this.drainWaiters ??= []).push(fn);
  }

  markClosed(): void {
    this.closedFlag = true;
    this.drainWaiters = null;
  }
}
