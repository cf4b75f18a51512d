import type { FastifyBaseLogger } from 'fastify';
import type { AppendFeed, SharedRunStore, WatchersAnnouncement } from '@runtrail/store';
import type { Run, RunEvent } from '@runtrail/protocol';
import type { Hub } from '../hub.js';
import type { ClusterWatchers } from './cluster-watchers.js';
import { RepeatedFailureLog } from '../repeated-failure-log.js';

/** What the fan-out tells of tokens revoked on any node (the TokenService). */
export interface TokenRevocations {
  revoked(revoked: { id: string; hash: string | null }): void;
  forgetAll(): void;
}

/** Events read from the store per query when catching up with other nodes' appends (and readPageBytes of them at most). */
const PAGE = 1000;
/** Runs whose last known seq is remembered for the live runs lists; past it the memory restarts (costs one extra read each). */
const MAX_LISTED = 10_000;

/**
 * Brings other nodes' commits into this node's hub, so a watcher connected
 * here sees events appended anywhere. The store's feed says only
 * `(runId, seq)`; for runs someone here watches, the events up to that seq
 * are read from the store ONCE (however many watchers) as their stored JSON
 * texts and queued for the hub's next flush like a local commit, in pages,
 * with notifications that arrive meanwhile folded into the next read (one
 * query per page; the run is read too only for in-process listeners).
 * A page holds readPageBytes of events at most; after one its bytes cut
 * short, the next is read once the hub has flushed it, so a backlog of big
 * events (a listener outage) is never queued here whole.
 *
 * Correctness never rests on this path: a subscription delivers only
 * `lastSent + 1` onwards and reads the store itself when it sees a gap.
 * But every gap costs a store read PER WATCHER, so this path avoids making
 * them: a run this node starts following starts at the first event of the
 * commit notified (its watchers read the store, after attaching, up to at
 * least there), not at its last event. After a reconnect every watched run
 * is re-read from what this node last published, and live runs lists are
 * told to refetch (a missed notification never means a stale list).
 *
 * Tokens revoked on any node are heard on the same channel: this node drops
 * them from its cache and ends their streams at once. After a reconnect it
 * forgets every token it checked, since it cannot know which revokes it
 * missed (a missed one would otherwise be honoured until tokenCacheMs).
 */
export class RemoteFanout implements AppendFeed {
  /** Per watched run: the highest seq published to the hub here (local or remote). */
  private readonly published = new Map<string, number>();
  /** Per watched run: the highest seq other nodes said exists. */
  private readonly target = new Map<string, number>();
  private readonly reading = new Set<string>();
  /** Per run: the seq of the last run change the live runs lists here were given. */
  private readonly listed = new Map<string, number>();
  private readonly runChanges = new Map<string, number>();
  private runFlushScheduled = false;
  private readonly unsubscribe: Array<() => void> = [];
  private feed: { close(): Promise<void> } | null = null;
  private stopped = false;
  /** Reconnect attempts fail every backoff (≤ 2 s) while PostgreSQL is down: the loss logged once, counted, and the reconnect. */
  private readonly listenerLosses: RepeatedFailureLog;

  constructor(
    private readonly store: SharedRunStore,
    private readonly hub: Hub,
    private readonly log: FastifyBaseLogger,
    /** Other nodes' watcher counts, heard on the same channel. */
    private readonly watchers: ClusterWatchers | null,
    /** Bytes of events one read of the store returns at most (at least one event). */
    private readonly readPageBytes: number,
    private readonly tokens: TokenRevocations,
  ) {
    this.listenerLosses = new RepeatedFailureLog(log, {
      failed: 'database listener disconnected; reconnecting',
      recovered: 'database listener reconnected; catching up watched runs and live runs lists,',
      level: 'warn',
    });
    // What this node commits it publishes itself: never read it back.
    this.unsubscribe.push(
      hub.subscribeAll((events, run) => {
        if (hub.observers(run.id) > 0) this.advance(run.id, events[events.length - 1]!.seq);
      }),
      hub.subscribeRuns((change, run, origin) => {
        // A run deleted here is never listed again: its own notification is skipped.
        if (origin === 'local') this.remember(run.id, change === 'deleted' ? Infinity : run.seq);
      }),
    );
  }

  async start(): Promise<void> {
    this.feed = await this.store.listen(this);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const off of this.unsubscribe.splice(0)) off();
    await this.feed?.close();
  }

  onAppend(runId: string, seq: number, fromSeq: number): void {
    if (this.stopped) return;
    if (this.hub.observers(runId) > 0) {
      if (!this.published.has(runId)) this.published.set(runId, fromSeq);
      this.want(runId, seq);
    } else {
      this.published.delete(runId);
      this.target.delete(runId);
    }
    if (this.hub.wantsRemoteRunChanges && (this.listed.get(runId) ?? -1) < seq) {
      this.runChanges.set(runId, Math.max(seq, this.runChanges.get(runId) ?? -1));
      if (!this.runFlushScheduled) {
        this.runFlushScheduled = true;
        setImmediate(() => void this.flushRunChanges());
      }
    }
  }

  onStop(runId: string): void {
    if (!this.stopped) this.hub.publishStop(runId);
  }

  onDelete(runId: string, run: Run | null): void {
    if (this.stopped) return;
    this.published.delete(runId);
    this.target.delete(runId);
    this.runChanges.delete(runId);
    if (this.listed.get(runId) === Infinity) return;
    this.remember(runId, Infinity);
    // Too big for a notification: lists refetch rather than keep a deleted run.
    if (run) this.hub.publishRun('deleted', run, 'remote');
    else {
      this.hub.publishDeleted(runId);
      this.hub.remoteRunChangesLost();
    }
  }

  /** Notifications may have been lost while disconnected: re-read every watched run from what was published, lists refetch. */
  onReconnect(): void {
    this.listenerLosses.succeeded();
    this.tokens.forgetAll();
    this.hub.remoteRunChangesLost();
    this.hub.remoteStopsLost();
    // A deletion missed meanwhile would leave its watchers waiting for ever: look each run up.
    for (const runId of this.hub.deletionWatchedRuns()) {
      this.store.getRun(runId).then(
        (run) => {
          if (run === null) this.hub.publishDeleted(runId);
        },
        (err: unknown) => this.log.warn({ err, runId }, 'checking for a deletion after reconnect failed; the next reconnect retries'),
      );
    }
    for (const runId of this.hub.watchedRuns()) {
      this.store.getRun(runId).then(
        (run) => {
          if (run) this.want(runId, run.seq);
        },
        (err: unknown) => this.log.warn({ err, runId }, 'catch-up after reconnect failed; the next notification retries'),
      );
    }
  }

  onTokenRevoked(revoked: { id: string; hash: string | null }): void {
    if (!this.stopped) this.tokens.revoked(revoked);
  }

  onWatchers(announcement: WatchersAnnouncement): void {
    if (!this.stopped) this.watchers?.onAnnouncement(announcement);
  }

  onDisconnect(err: Error): void {
    this.listenerLosses.failed(err);
  }

  private advance(runId: string, seq: number): void {
    if ((this.published.get(runId) ?? -1) < seq) this.published.set(runId, seq);
  }

  private want(runId: string, seq: number): void {
    if ((this.target.get(runId) ?? -1) < seq) this.target.set(runId, seq);
    if ((this.published.get(runId) ?? -1) >= seq) return;
    if (!this.reading.has(runId)) void this.catchUp(runId);
  }

  private async catchUp(runId: string): Promise<void> {
    this.reading.add(runId);
    try {
      for (;;) {
        if (this.stopped || this.hub.observers(runId) === 0) {
          this.published.delete(runId);
          this.target.delete(runId);
          return;
        }
        const target = this.target.get(runId) ?? 0;
        const known = this.published.get(runId);
        if (known !== undefined && known >= target) return;
        // Not followed before and no commit notified (a reconnect): its last event.
        const from = known ?? Math.max(0, target - 1);
        // The stored texts, as a local append publishes them: watchers here get the flush's shared
        // frames, and no event is parsed or serialized again on the way.
        const { texts, cut } = await this.store.readEventTextPage(runId, from, PAGE, { maxBytes: this.readPageBytes });
        if (texts.length === 0) {
          this.advance(runId, target);
          continue;
        }
        const last = texts[texts.length - 1]!.seq;
        if (this.hub.observers(runId) > this.hub.watchers(runId)) {
          // An in-process listener follows the run (a handler, a cancel): it takes events and the run.
          const run = await this.store.getRun(runId);
          if (!run) {
            this.advance(runId, target);
            continue;
          }
          this.advance(runId, last);
          this.hub.publishEvents(run, texts.map((t) => JSON.parse(t.json) as RunEvent), 'remote', texts);
        } else {
          this.advance(runId, last);
          this.hub.publishRemoteTexts(runId, texts);
        }
        // More is stored than one page's bytes: hand this page to the watchers before holding the next.
        if (cut) await this.hub.whenFlushed();
      }
    } catch (err) {
      // The store failed (restarting?): the next notification, or the
      // reconnect that follows an outage, starts a new catch-up.
      this.log.warn({ err, runId }, 'reading other nodes\u2019 events failed');
    } finally {
      this.reading.delete(runId);
    }
  }

  private remember(runId: string, seq: number): void {
    if (this.listed.size >= MAX_LISTED && !this.listed.has(runId)) this.listed.clear();
    if ((this.listed.get(runId) ?? -1) < seq) this.listed.set(runId, seq);
  }

  /** Live runs lists here get other nodes' run changes, coalesced per turn of the event loop. */
  private async flushRunChanges(): Promise<void> {
    this.runFlushScheduled = false;
    const batch = [...this.runChanges];
    this.runChanges.clear();
    for (const [runId, seq] of batch) {
      if (this.stopped) return;
      if ((this.listed.get(runId) ?? -1) >= seq) continue;
      try {
        const run = await this.store.getRun(runId);
        if (!run) continue;
        this.remember(runId, run.seq);
        this.hub.publishRun(seq === 0 && run.seq === 0 ? 'created' : 'updated', run, 'remote');
      } catch (err) {
        this.log.warn({ err, runId }, 'reading a run changed on another node failed');
      }
    }
  }
}
