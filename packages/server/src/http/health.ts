import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { RuntrailError, routes } from '@runtrail/protocol';
import type { BlobStore, RunStore, StoreReadiness } from '@runtrail/store';
import { failureKind } from '../repeated-failure-log.js';

/**
 * Whether this node can take writes, checked on a timer so that a store
 * that went bad (its file deleted, a lock that never ends, a database that
 * cannot be reached) is logged loudly when it happens, not when the next
 * write finds it, and answered by GET /readyz with the reasons. The
 * artifacts folder counts too: read-only or on a full disk, every upload
 * got 503 while /readyz said ready, so a load balancer kept sending them.
 */
export class Readiness {
  private last: StoreReadiness = { ready: true, reasons: [] };
  private timer: NodeJS.Timeout | null = null;
  private notReadySince: number | null = null;
  /** Set once the node shuts down: from then on it is not ready, whatever the store says. */
  private stopping: string | null = null;
  /** The artifacts folder's last probe: it writes a file, so it runs once per interval, not per GET /readyz. */
  private blobProbe: { at: number; reason: Promise<string | null> } | null = null;

  constructor(
    private readonly store: RunStore,
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs: number,
    private readonly blobs?: BlobStore,
  ) {}

  /** The last check's answer, without checking again (the readiness gauge reads it at every scrape). */
  get ready(): boolean {
    return this.last.ready;
  }

  start(): void {
    this.timer ??= setInterval(() => void this.check({ probeBlobs: true }), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * The node is shutting down: GET /readyz answers 503 from now on, so a load balancer
   * health-checking it sends new requests elsewhere while handlers get their grace
   * period (up to shutdownGraceMs) and the node still answers the requests it has.
   */
  drain(reason: string): void {
    this.stop();
    this.stopping = reason;
    this.last = { ready: false, reasons: [reason] };
  }

  /** `probeBlobs`: probe the artifacts folder even if it was probed less than an interval ago (the timer does). */
  async check(options: { probeBlobs?: boolean } = {}): Promise<StoreReadiness> {
    // Not an outage: no NOT READY line, and no store query from a node that is closing its store.
    if (this.stopping !== null) return { ready: false, reasons: [this.stopping] };
    const blobReason = this.blobReason(options.probeBlobs === true);
    let now: StoreReadiness;
    try {
      now = await this.store.readiness();
    } catch (err) {
      now = { ready: false, reasons: [`the store's readiness check failed: ${(err as Error).message}`] };
    }
    const blobs = await blobReason;
    if (blobs !== null) now = { ready: false, reasons: [...now.reasons, blobs] };
    // The same outage seen through another call ("read ECONNRESET", "connect ECONNRESET …") is no change.
    // Each cause is logged once as it appears: a full disk is found by the artifacts probe and by the
    // database's next write at different moments, one outage that is not worth a line per combination.
    const seen = new Set(this.last.reasons.map(failureKind));
    const added = now.reasons.filter((reason) => !seen.has(failureKind(reason)));
    if (!now.ready && added.length > 0) {
      this.notReadySince ??= Date.now();
      this.log.error({ reasons: now.reasons, store: this.store.kind }, `NOT READY: writes are refused with 503: ${added.join('; ')}`);
    } else if (now.ready && !this.last.ready) {
      const ms = this.notReadySince === null ? 0 : Date.now() - this.notReadySince;
      this.notReadySince = null;
      this.log.warn({ store: this.store.kind, notReadyMs: ms }, `ready again after ${(ms / 1000).toFixed(1)} s: the store takes writes`);
    }
    this.last = now;
    return now;
  }

  private blobReason(fresh: boolean): Promise<string | null> {
    if (!this.blobs) return Promise.resolve(null);
    const blobs = this.blobs;
    if (fresh || this.blobProbe === null || Date.now() - this.blobProbe.at >= this.intervalMs) {
      const reason = blobs.probe().then(
        () => null,
        // The blob store's faults name the folder and why; anything else is named here.
        (err: unknown) => (err instanceof RuntrailError ? err.message : `the artifacts folder cannot be probed: ${err instanceof Error ? err.message : String(err)}`),
      );
      this.blobProbe = { at: Date.now(), reason };
    }
    return this.blobProbe.reason;
  }
}

/** GET /healthz (liveness: never waits on the store) and GET /readyz (can this node take writes, and if not why). */
export function registerHealthRoutes(app: FastifyInstance, options: { node: string; incarnation: string; store: RunStore; readiness: Readiness }): void {
  app.get(routes.health.path, async () => ({ ok: true, node: options.node, incarnation: options.incarnation, store: options.store.kind }));
  app.get(routes.ready.path, async () => {
    const state = await options.readiness.check();
    if (!state.ready) {
      throw new RuntrailError('unavailable', `not ready: ${state.reasons.join('; ')}`, { reasons: state.reasons });
    }
    return { ready: true, node: options.node, store: options.store.kind };
  });
}
