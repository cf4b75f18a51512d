import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { OBSERVER_COUNT_INTERVAL_MS } from '@runtrail/protocol';
import type { SharedRunStore, WatchersAnnouncement } from '@runtrail/store';
import type { Hub } from '../hub.js';

/** A node not heard repeating a count for this many of its refresh intervals is gone (killed): its count is dropped. */
const MISSED_REFRESHES = 2.5;
/** Counts of one announcement notification are sent in one query; more runs than this changed go in several. */
const MAX_RUNS_PER_ANNOUNCEMENT = 5_000;

interface HeardCount {
  count: number;
  /** When it was heard (performance.now()), and how often its node said it repeats it. */
  at: number;
  refreshMs: number;
}

/**
 * "N watching" across a cluster: each node tells the others, over the
 * store's notification channel, how many watch which runs through it, and
 * adds what it heard to its own count (Hub.watchersEverywhere).
 *
 * A change of this node's counts is announced at most once per
 * OBSERVER_COUNT_INTERVAL_MS, all changed runs in one notification; every
 * `refreshMs` the node repeats its non-zero counts, so a node that started
 * later learns them, and a count not repeated for MISSED_REFRESHES of its
 * node's intervals is dropped (that node was killed, or its "0" was lost
 * while this node's listener was reconnecting). An announcement that fails
 * (the database down) is made again at the next tick. Nodes are told apart
 * by an id of this process, so a restarted node's old counts simply expire.
 */
export class ClusterWatchers {
  /** Run → announcing process → its count. */
  private readonly heard = new Map<string, Map<string, HeardCount>>();
  /** This node's counts as last announced (non-zero only). */
  private readonly announced = new Map<string, number>();
  private readonly changed = new Set<string>();
  private readonly instance = randomUUID();
  private announceTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastAnnounceAt = -Infinity;
  private sending: Promise<void> = Promise.resolve();
  private offWatchersChanged: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly store: SharedRunStore,
    private readonly hub: Hub,
    private readonly log: FastifyBaseLogger,
    private readonly refreshMs: number,
  ) {}

  start(): void {
    this.hub.countRemoteWatchersWith((runId) => this.count(runId));
    this.offWatchersChanged = this.hub.onWatchersChanged((runId) => {
      if (this.hub.watchers(runId) === (this.announced.get(runId) ?? 0)) return;
      this.changed.add(runId);
      this.scheduleAnnounce();
    });
    this.refreshTimer = setInterval(() => this.refresh(), this.refreshMs);
    this.refreshTimer.unref();
    this.sweepTimer = setInterval(() => this.sweep(), Math.min(this.refreshMs, OBSERVER_COUNT_INTERVAL_MS));
    this.sweepTimer.unref();
  }

  /** Withdraw this node's counts (its watchers are gone with it), so other nodes do not wait for them to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.offWatchersChanged?.();
    for (const timer of [this.announceTimer, this.refreshTimer, this.sweepTimer]) if (timer) clearTimeout(timer);
    this.hub.countRemoteWatchersWith(() => 0);
    await this.sending;
    const withdrawn = [...this.announced.keys()].map((runId): [string, number] => [runId, 0]);
    if (withdrawn.length === 0) return;
    await this.store.announceWatchers(this.announcement(withdrawn)).catch((err: unknown) =>
      this.log.warn({ err }, `could not withdraw this node's watcher counts; other nodes drop them within ${MISSED_REFRESHES * this.refreshMs} ms`),
    );
  }

  /** An announcement heard on the channel (ours included: skipped). */
  onAnnouncement(announcement: WatchersAnnouncement): void {
    if (this.stopped || announcement.node === this.instance) return;
    const at = performance.now();
    for (const [runId, count] of announcement.counts) {
      let nodes = this.heard.get(runId);
      const before = nodes?.get(announcement.node)?.count ?? 0;
      if (count > 0) {
        if (!nodes) this.heard.set(runId, (nodes = new Map()));
        nodes.set(announcement.node, { count, at, refreshMs: announcement.refreshMs });
      } else if (nodes) {
        nodes.delete(announcement.node);
        if (nodes.size === 0) this.heard.delete(runId);
      }
      if (count !== before) this.hub.remoteWatchersChanged(runId);
    }
  }

  /** Watchers of the run on the other nodes, as last heard. */
  count(runId: string): number {
    let total = 0;
    for (const { count } of this.heard.get(runId)?.values() ?? []) total += count;
    return total;
  }

  private scheduleAnnounce(): void {
    if (this.announceTimer || this.stopped) return;
    const wait = Math.max(0, this.lastAnnounceAt + OBSERVER_COUNT_INTERVAL_MS - performance.now());
    this.announceTimer = setTimeout(() => {
      this.announceTimer = null;
      this.lastAnnounceAt = performance.now();
      const runs = [...this.changed];
      this.changed.clear();
      this.send(runs.map((runId): [string, number] => [runId, this.hub.watchers(runId)]));
    }, wait);
    this.announceTimer.unref();
  }

  /** Repeat every non-zero count of this node (and anything still waiting to be said). */
  private refresh(): void {
    const counts = [...new Set([...this.announced.keys(), ...this.changed])].map((runId): [string, number] => [runId, this.hub.watchers(runId)]);
    this.changed.clear();
    this.send(counts);
  }

  private send(counts: Array<[string, number]>): void {
    if (counts.length === 0 || this.stopped) return;
    this.sending = this.sending.then(async () => {
      for (let i = 0; i < counts.length; i += MAX_RUNS_PER_ANNOUNCEMENT) {
        const part = counts.slice(i, i + MAX_RUNS_PER_ANNOUNCEMENT);
        try {
          await this.store.announceWatchers(this.announcement(part));
        } catch (err) {
          // The database is away: these are said again at the next tick, whatever they are by then.
          this.log.debug({ err }, 'could not announce watcher counts; trying again');
          for (const [runId] of part) this.changed.add(runId);
          this.scheduleAnnounce();
          continue;
        }
        for (const [runId, count] of part) {
          if (count > 0) this.announced.set(runId, count);
          else this.announced.delete(runId);
        }
      }
    });
  }

  private announcement(counts: Array<[string, number]>): WatchersAnnouncement {
    return { node: this.instance, refreshMs: this.refreshMs, counts };
  }

  /** Drop the counts of nodes not heard repeating them in time. */
  private sweep(): void {
    const now = performance.now();
    for (const [runId, nodes] of this.heard) {
      let dropped = false;
      for (const [node, { at, refreshMs }] of nodes) {
        if (now - at > MISSED_REFRESHES * refreshMs) {
          nodes.delete(node);
          dropped = true;
        }
      }
      if (nodes.size === 0) this.heard.delete(runId);
      if (dropped) this.hub.remoteWatchersChanged(runId);
    }
  }
}
